"""Pool-level health for the serving layer: temperature, clock and crashes of each replica.

Knows nothing about requests. The serving layer calls `advance` from one SimPy process per pool
every `thermal_step_s` with each replica's busy fraction over the step. A fixed step is right
here, unlike in the request path: the cost is O(duration / step) numpy calls per pool, whatever
the request rate, and the thermal state changes on the scale of tau_s (about a minute), so a
10-30 s step resolves it. Temperatures are exact for constant power over a step; crash times
are exact for the step's (piecewise-constant) hazard, by cumulative-hazard inversion.
"""

from __future__ import annotations

import numpy as np

from fleetsim.catalog.reliability import ChipReliability
from fleetsim.reliability.events import EventLog
from fleetsim.reliability.hazard import first_passage, hazard_per_h, update_high_load_h
from fleetsim.reliability.thermal import (
    ambient_c,
    clock_fraction,
    crossing_offset_s,
    equilibrium,
    step_mean_temp,
    step_temp,
)


class PoolHealth:
    """Thermal state and crash clock of `n_replicas` replicas of `chips_per_replica` chips each.

    All chips of a replica share its load, so they share one temperature; the replica's hazard
    is `chips_per_replica` times the chip hazard (any chip's failure takes the replica down).

    After each `advance`:
      temp_c, throttle (clock fraction for the kernel), throttled (above throttle_c), up;
      last_crash_times_s (aligned with the returned indices),
      last_throttle_start / last_throttle_end (indices) with their *_times_s.
    Crashed replicas are marked down by `advance` itself; call `mark_up(i)` when repaired.
    Down replicas cool at idle power, accrue no hazard, and lose their high-load hours.
    """

    def __init__(
        self,
        params: ChipReliability,
        hall,
        n_replicas: int,
        chips_per_replica: int,
        rng: np.random.Generator,
        start_hour: float = 0.0,
        *,
        pool: str = "",
        crashes: bool = True,
        initial_utilisation: float = 0.0,
        log: EventLog | None = None,
    ) -> None:
        if n_replicas < 0 or chips_per_replica < 1:
            raise ValueError("n_replicas must be >= 0 and chips_per_replica >= 1")
        self.params = params
        self.hall = hall
        self.n = int(n_replicas)
        self.chips_per_replica = int(chips_per_replica)
        self.rng = rng
        self.start_hour = float(start_hour)
        self.pool = pool
        self.crashes = crashes
        self.log = log
        t0, f0 = equilibrium(
            params, initial_utilisation, ambient_c(hall, start_hour), hall.cooling_factor
        )
        self.temp_c = np.full(self.n, float(t0))
        self.throttle = np.full(self.n, float(f0))
        self.throttled = self.temp_c > params.throttle_c
        self.up = np.ones(self.n, dtype=bool)
        self.high_load_h = np.zeros(self.n)
        self._cum = np.zeros(self.n)
        self._threshold = rng.exponential(1.0, self.n)
        self.last_crash_times_s = np.zeros(0)
        self.last_throttle_start = np.zeros(0, dtype=np.int64)
        self.last_throttle_start_times_s = np.zeros(0)
        self.last_throttle_end = np.zeros(0, dtype=np.int64)
        self.last_throttle_end_times_s = np.zeros(0)
        # time integrals for the summary
        self.crash_count = 0
        self.elapsed_s = 0.0
        self._temp_s = 0.0
        self._clock_s = 0.0
        self._throttled_s = 0.0
        self._up_s = 0.0
        self.max_temp_c = float(t0)

    def hour_of_day(self, t_s: float) -> float:
        return (self.start_hour + t_s / 3600.0) % 24.0

    def advance(self, t_s: float, dt_s: float, utilisation) -> np.ndarray:
        """Move from t_s to t_s + dt_s; return indices of replicas that crashed in the step."""
        p = self.params
        dt_s = float(dt_s)
        if dt_s <= 0:
            raise ValueError(f"dt_s must be > 0, got {dt_s}")
        u = np.where(self.up, np.clip(np.asarray(utilisation, dtype=float), 0.0, 1.0), 0.0)
        amb = float(ambient_c(self.hall, self.hour_of_day(t_s + 0.5 * dt_s)))
        t0 = self.temp_c
        f0 = self.throttle
        t1, f1 = step_temp(p, t0, u, amb, dt_s, self.hall.cooling_factor)
        t_mean = step_mean_temp(p, t0, t1, dt_s)

        # crash clock: hazard constant over the step at the mean temperature and mid-step load hours
        dt_h = dt_s / 3600.0
        hl_mid = update_high_load_h(p, self.high_load_h, u, 0.5 * dt_h)
        rate_per_s = self.chips_per_replica * hazard_per_h(p, t_mean, hl_mid) / 3600.0
        live = self.up & self.crashes
        rate_per_s = np.where(live, rate_per_s, 0.0)
        crashed, offset = first_passage(self._cum, rate_per_s, dt_s, self._threshold)
        crashed &= live
        self._cum += rate_per_s * dt_s
        self.high_load_h = np.where(self.up, update_high_load_h(p, self.high_load_h, u, dt_h), 0.0)

        # throttle transitions at the exact crossing time on the exponential path
        was = self.throttled
        now = t1 > p.throttle_c
        starts = np.flatnonzero(now & ~was)
        ends = np.flatnonzero(~now & was)
        # the crossing times are read only where the throttle state changed (most steps: nowhere)
        cross = (crossing_offset_s(p, t0, t1, dt_s, p.throttle_c) if starts.size or ends.size
                 else np.zeros(0))
        self.last_throttle_start = starts
        self.last_throttle_start_times_s = t_s + cross[starts]
        self.last_throttle_end = ends
        self.last_throttle_end_times_s = t_s + cross[ends]

        # integrals for the summary (replica-seconds)
        hot_s = np.where(was & now, dt_s, 0.0)
        hot_s[starts] = dt_s - cross[starts]
        hot_s[ends] = cross[ends]
        self._throttled_s += float(hot_s.sum())
        self._temp_s += float(t_mean.sum()) * dt_s
        self._clock_s += float((0.5 * (f0 + f1)).sum()) * dt_s
        self._up_s += float(np.count_nonzero(self.up)) * dt_s
        self.elapsed_s += dt_s
        if self.n:
            self.max_temp_c = max(self.max_temp_c, float(t1.max()))

        self.temp_c = t1
        self.throttle = f1
        self.throttled = now
        idx = np.flatnonzero(crashed)
        self.last_crash_times_s = t_s + offset[idx]
        if idx.size:
            self.up[idx] = False
            self.crash_count += int(idx.size)
        if self.log is not None:
            chip = p.chip
            self.log.add_many(
                self.last_throttle_start_times_s,
                "throttle_start",
                replica=starts,
                temp_c=p.throttle_c,
                pool=self.pool,
                chip=chip,
            )
            self.log.add_many(
                self.last_throttle_end_times_s,
                "throttle_end",
                replica=ends,
                temp_c=p.throttle_c,
                pool=self.pool,
                chip=chip,
            )
            self.log.add_many(
                self.last_crash_times_s,
                "crash",
                replica=idx,
                temp_c=t_mean[idx],
                pool=self.pool,
                chip=chip,
            )
        return idx

    def mark_down(self, i) -> None:
        """Take replicas out of service (idle power, no hazard) without a crash."""
        self.up[np.asarray(i, dtype=np.int64)] = False

    def mark_up(self, i) -> None:
        """Back in service after repair: a fresh crash clock (memoryless) and no load history."""
        idx = np.atleast_1d(np.asarray(i, dtype=np.int64))
        self.up[idx] = True
        self._cum[idx] = 0.0
        self._threshold[idx] = self.rng.exponential(1.0, idx.size)
        self.high_load_h[idx] = 0.0

    def clock_at(self, temp_c) -> np.ndarray:
        return clock_fraction(self.params, temp_c)

    def stats(self) -> dict:
        """Time-averaged figures over everything advanced so far (JSON-able)."""
        rs = self.n * self.elapsed_s
        if rs <= 0:
            return {
                "crashes": self.crash_count,
                "mean_temp_c": float(np.mean(self.temp_c)) if self.n else None,
                "max_temp_c": self.max_temp_c,
                "throttled_share": 0.0,
                "mean_clock": 1.0,
                "up_share": 1.0,
            }
        return {
            "crashes": self.crash_count,
            "mean_temp_c": self._temp_s / rs,
            "max_temp_c": self.max_temp_c,
            "throttled_share": self._throttled_s / rs,
            "mean_clock": self._clock_s / rs,
            "up_share": self._up_s / rs,
        }
