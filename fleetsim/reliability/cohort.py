"""Fleet-scale reliability run: cohorts of chips as numpy arrays, one SimPy process per cohort.

A cohort is `count` chips of one kind at one utilisation in one hall, grouped in nodes of
`chips_per_node`. Its load is constant, so its die temperature follows the hall's daily ambient
cycle; the thermal time constant (about a minute) is far below an hour, so each hour uses the
equilibrium temperature and clock, and the hazard is piecewise constant by the hour. All up
nodes of a cohort share that hazard, so one cumulative-hazard curve serves every node: a node
that comes up at t with threshold E ~ Exp(1) fails when size x (Lambda(t') - Lambda(t)) = E.
First failures of all nodes are drawn and sorted with numpy at the start; after that only
events cost anything (a crash, a restart, a bench repair finishing, a node coming back), each
handled in O(log n) Python with pre-drawn random numbers. The process wakes once per hour that
has events and handles that hour's events in time order, so SimPy sees at most one wake-up per
cohort-hour, and 500,000 chips cost what their failures cost, not what their count costs. With
a finite technician pool shared by the cohorts it wakes once per event instead, so repairs
reach the pool in global time order across cohorts.

The multi-year fleet uses `CohortFleet` (below): chip counts per delivery, stepped daily inside
the fleet's SimPy environment, with a load that follows demand.

Chip accounting (checked at the end of every run): active (in a node slot, healthy) + spare
(on the shelf) + in_repair (restarting, queued or on the bench) + lost = count + spares.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
from collections import deque
from typing import Any, Callable

import numpy as np
import simpy

from fleetsim.catalog.reliability import ChipReliability, chip_reliability, reliability_defaults
from fleetsim.errors import ScenarioError
from fleetsim.progress import run_env
from fleetsim.reliability.events import concat_events
from fleetsim.reliability.hazard import cumulative_knots, hazard_per_h, invert_cumulative
from fleetsim.reliability.repair import CrashDraws, spares_for
from fleetsim.reliability.thermal import ambient_c, equilibrium
from fleetsim.rng import poisson_from_uniform
from fleetsim.scenario.reliability import (
    CohortConfig,
    FixedDuration,
    HallConfig,
    ReliabilityConfig,
    RepairConfig,
)

DAY_S = 86400.0
HOUR_S = 3600.0
_KINDS = ("throttle_start", "throttle_end", "crash", "restart", "repair_done", "lost_for_good")
_K = {k: i for i, k in enumerate(_KINDS)}
_DETAILS = ("", "spare_swap", "repaired", "transient", "hardware")
_D = {k: i for i, k in enumerate(_DETAILS)}
_FAIL, _RESTART, _BENCH, _BACK = 0, 1, 2, 3


@dataclasses.dataclass
class ReliabilityResult:
    """Columns as numpy arrays (the results package makes the Parquet tables)."""

    events: dict[str, np.ndarray]
    timeline: dict[str, np.ndarray]
    summary: dict
    hourly: dict[str, np.ndarray]


def resolve_chip(cfg: ReliabilityConfig, chip: str, chips: dict | None) -> ChipReliability:
    """Chip defaults + the chip catalog's TDP + the scenario's `reliability.chips` override."""
    spec = (chips or {}).get(chip)
    tdp = getattr(spec, "tdp_w", None) if spec is not None else None
    return chip_reliability(chip, tdp, cfg.chips.get(chip))


class _Technicians:
    """FIFO multi-server repair queue (in order of arrival calls); None = no queue."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self._free: list[float] = [0.0] * capacity if capacity else []
        self.busy_s = 0.0
        self.wait_s = 0.0
        self.jobs = 0

    def assign(self, arrival_s: float, duration_s: float) -> float:
        """When a job arriving now is finished."""
        self.jobs += 1
        self.busy_s += duration_s
        if not self.capacity:
            return arrival_s + duration_s
        free = heapq.heappop(self._free)
        start = max(arrival_s, free)
        self.wait_s += start - arrival_s
        done = start + duration_s
        heapq.heappush(self._free, done)
        return done


class _Draws:
    """Random numbers drawn in blocks (one rng call per block, not per event); fixed order."""

    def __init__(self, cfg: RepairConfig, rng: np.random.Generator, block: int = 1024) -> None:
        self.cfg, self.rng, self.block = cfg, rng, block
        self._i = block
        self._e_i = block

    def crash(self) -> tuple[bool, float, float, float, bool]:
        if self._i >= self.block:
            d = CrashDraws.draw(self.cfg, self.rng, self.block)
            self._d = list(
                zip(
                    d.transient.tolist(),
                    d.restart_s.tolist(),
                    d.repair_s.tolist(),
                    d.swap_s.tolist(),
                    d.lost.tolist(),
                )
            )
            self._i = 0
        self._i += 1
        return self._d[self._i - 1]

    def threshold(self) -> float:
        if self._e_i >= self.block:
            self._e = self.rng.exponential(1.0, self.block).tolist()
            self._e_i = 0
        self._e_i += 1
        return self._e[self._e_i - 1]


class _CohortSim:
    """One cohort's state arrays, event heap and SimPy process."""

    def __init__(
        self,
        env,
        c: CohortConfig,
        p: ChipReliability,
        hall: HallConfig,
        repair: RepairConfig,
        techs: _Technicians,
        rng: np.random.Generator,
        days: int,
        start_hour: float,
    ) -> None:
        self.env, self.c, self.p, self.hall, self.repair, self.techs = (
            env,
            c,
            p,
            hall,
            repair,
            techs,
        )
        self.name = c.name
        self.start_s = c.start_day * DAY_S
        self.end_s = days * DAY_S
        self.n_hours = round((self.end_s - self.start_s) / HOUR_S)
        hours_abs = self.start_s / HOUR_S + np.arange(self.n_hours)
        self.hour_of_day = (start_hour + hours_abs + 0.5) % 24.0
        self.ambient_c = ambient_c(hall, self.hour_of_day)
        u = c.utilisation
        self.temp_c, self.clock = equilibrium(p, u, self.ambient_c, hall.cooling_factor)
        self.idle_temp_c = equilibrium(p, 0.0, self.ambient_c, hall.cooling_factor)[0]
        high_h = (
            (np.arange(self.n_hours) + 0.5) if u >= p.extended_threshold else np.zeros(self.n_hours)
        )
        self.rate = hazard_per_h(p, self.temp_c, high_h)  # per chip-hour, hour by hour
        self.knots = cumulative_knots(self.rate)
        self._knots = self.knots.tolist()
        self._rate = self.rate.tolist()
        self._temp = self.temp_c.tolist()

        n = c.count
        cpn = c.chips_per_node
        self.n_nodes = -(-n // cpn)
        self.size = np.full(self.n_nodes, cpn, dtype=np.int64)
        if n % cpn:
            self.size[-1] = n % cpn
        self._size = self.size.tolist()
        self.spares0 = spares_for(repair, n) if c.spares is None else c.spares
        self.draws = _Draws(repair, rng)

        # first failure of every node, drawn and sorted at once
        e = rng.exponential(1.0, self.n_nodes)
        t_first = self.start_s + HOUR_S * invert_cumulative(self.knots, self.rate, e / self.size)
        self.order = np.argsort(t_first, kind="stable")
        self.first_t = t_first[self.order]
        self.n_first = int(np.searchsorted(self.first_t, self.end_s, side="left"))
        self._ptr = 0
        self._heap: list[tuple] = []
        self._seq = 0
        self.waiting: deque = deque()

        self.active, self.spare, self.in_repair, self.lost = n, self.spares0, 0, 0
        self.up_chips = n
        self.nodes_up = self.n_nodes
        self.log_t = [self.start_s]
        self.log_state = [(n, self.spares0, 0, 0, n, self.n_nodes)]
        self.ev_t: list[float] = []
        self.ev_kind: list[int] = []
        self.ev_node: list[int] = []
        self.ev_temp: list[float] = []
        self.ev_detail: list[int] = []
        self.counts = {
            "crashes": 0,
            "transient": 0,
            "hardware": 0,
            "restarts": 0,
            "spare_swaps": 0,
            "repaired_returns": 0,
            "chips_lost": 0,
        }

    # -- cumulative hazard on the cohort's hourly grid ------------------------------------
    def _cum_at(self, t: float) -> float:
        x = (t - self.start_s) / HOUR_S
        k = min(int(x), self.n_hours - 1)
        return self._knots[k] + self._rate[k] * (x - k)

    def _time_of(self, target: float) -> float:
        k = bisect.bisect_right(self._knots, target) - 1
        if k >= self.n_hours:
            return math.inf
        return self.start_s + HOUR_S * (k + (target - self._knots[k]) / self._rate[k])

    def _temp_at(self, t: float) -> float:
        return self._temp[min(int((t - self.start_s) / HOUR_S), self.n_hours - 1)]

    # -- bookkeeping --------------------------------------------------------------------
    def _push(self, t: float, kind: int, node: int, arg=None) -> None:
        if t < self.end_s:
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, kind, node, arg))

    def _event(self, t: float, kind: str, node: int, temp: float, detail: str = "") -> None:
        self.ev_t.append(t)
        self.ev_kind.append(_K[kind])
        self.ev_node.append(node)
        self.ev_temp.append(temp)
        self.ev_detail.append(_D[detail])

    def _record(self, t: float) -> None:
        self.log_t.append(t)
        self.log_state.append(
            (self.active, self.spare, self.in_repair, self.lost, self.up_chips, self.nodes_up)
        )

    def _next_time(self) -> float:
        t1 = self.first_t[self._ptr] if self._ptr < self.n_first else math.inf
        t2 = self._heap[0][0] if self._heap else math.inf
        return min(t1, t2)

    # -- the process ---------------------------------------------------------------------
    def run(self):
        env = self.env
        if self.start_s > env.now:
            yield env.timeout(self.start_s - env.now)
        while True:
            t = self._next_time()
            if t >= self.end_s:
                return
            if t > env.now:
                yield env.timeout(t - env.now)
            if self.techs.capacity:
                # A shared, finite repair pool: one wake-up per event time, so every cohort's
                # repairs reach the technicians in global time order (SimPy orders the wake-ups).
                self._handle_until(min(math.nextafter(t, math.inf), self.end_s))
                continue
            hour_end = self.start_s + HOUR_S * (math.floor((t - self.start_s) / HOUR_S) + 1)
            self._handle_until(min(hour_end, self.end_s))

    def _handle_until(self, t_end: float) -> None:
        first_t, order = self.first_t, self.order
        while True:
            t1 = float(first_t[self._ptr]) if self._ptr < self.n_first else math.inf
            t2 = self._heap[0][0] if self._heap else math.inf
            if min(t1, t2) >= t_end:
                return
            if t1 <= t2:
                node = int(order[self._ptr])
                self._ptr += 1
                self._fail(node, t1)
                continue
            t, _, kind, node, arg = heapq.heappop(self._heap)
            if kind == _FAIL:
                self._fail(node, t)
            elif kind == _RESTART:
                self.in_repair -= 1
                self.active += 1
                self.counts["restarts"] += 1
                self._node_up(node, t, "restart", "")
            elif kind == _BENCH:
                self._bench_done(node, t, arg)
            else:
                self._node_up(node, t, "repair_done", arg)

    def _fail(self, node: int, t: float) -> None:
        transient, restart_s, repair_s, swap_s, lost = self.draws.crash()
        self.counts["crashes"] += 1
        self.up_chips -= self._size[node]
        self.nodes_up -= 1
        self.active -= 1
        self.in_repair += 1
        if transient:
            self.counts["transient"] += 1
            self._event(t, "crash", node, self._temp_at(t), "transient")
            self._push(t + restart_s, _RESTART, node)
        else:
            self.counts["hardware"] += 1
            self._event(t, "crash", node, self._temp_at(t), "hardware")
            self._push(self.techs.assign(t, repair_s), _BENCH, node, lost)
            if self.spare > 0:
                self.spare -= 1
                self.active += 1
                self.counts["spare_swaps"] += 1
                self._push(t + swap_s, _BACK, node, "spare_swap")
            else:
                self.waiting.append((node, swap_s))
        self._record(t)

    def _bench_done(self, origin: int, t: float, lost: bool) -> None:
        self.in_repair -= 1
        if lost:
            self.lost += 1
            self.counts["chips_lost"] += 1
            self._event(t, "lost_for_good", origin, math.nan)
        elif self.waiting:
            node, swap_s = self.waiting.popleft()
            self.active += 1
            self.counts["repaired_returns"] += 1
            self._push(t + swap_s, _BACK, node, "repaired")
        else:
            self.spare += 1
        self._record(t)

    def _node_up(self, node: int, t: float, kind: str, detail: str) -> None:
        size = self._size[node]
        self.up_chips += size
        self.nodes_up += 1
        self._event(t, kind, node, math.nan, detail)
        target = self._cum_at(t) + self.draws.threshold() / size
        self._push(self._time_of(target), _FAIL, node)
        self._record(t)

    # -- results -------------------------------------------------------------------------
    def _integral_at(self, times: np.ndarray) -> np.ndarray:
        """Integral of up_chips from the cohort start to each time (step function)."""
        lt = np.asarray(self.log_t)
        up = np.asarray([s[4] for s in self.log_state], dtype=float)
        cum = np.concatenate(([0.0], np.cumsum(up[:-1] * np.diff(lt))))
        j = np.searchsorted(lt, times, side="right") - 1
        return cum[j] + up[j] * (times - lt[j])

    def results(self) -> tuple[dict, dict, dict, dict]:
        c, p = self.c, self.p
        state = np.asarray(self.log_state, dtype=np.int64)
        total = state[:, :4].sum(axis=1)
        if (
            np.any(total != c.count + self.spares0)
            or np.any(state < 0)
            or np.any(state[:, 4] > c.count)
            or np.any(state[:, 5] > self.n_nodes)
        ):
            raise RuntimeError(f"cohort {self.name}: chip accounting broken (internal error)")

        hour_edges = self.start_s + HOUR_S * np.arange(self.n_hours + 1)
        up_h = np.diff(self._integral_at(hour_edges))  # up chip-seconds per hour
        cap_h = c.count * HOUR_S
        throttled = self.temp_c > p.throttle_c
        n_days = self.n_hours // 24
        per_day = lambda x: x.reshape(n_days, 24).sum(axis=1)
        temp_int = up_h * self.temp_c + (cap_h - up_h) * self.idle_temp_c
        up_day = per_day(up_h)
        day_end = self.start_s + DAY_S * np.arange(1, n_days + 1)
        j = np.searchsorted(np.asarray(self.log_t), day_end, side="right") - 1
        snap = state[j]
        timeline = {
            "day": (c.start_day + np.arange(n_days)).astype(np.int64),
            "cohort": np.full(n_days, self.name, dtype=object),
            "chip": np.full(n_days, p.chip, dtype=object),
            "active": snap[:, 0],
            "spare": snap[:, 1],
            "in_repair": snap[:, 2],
            "lost": snap[:, 3],
            "nodes_down": self.n_nodes - snap[:, 5],
            "availability": up_day / (c.count * DAY_S),
            "mean_temp_c": per_day(temp_int) / (c.count * DAY_S),
            "throttled_share": per_day(up_h * throttled) / (c.count * DAY_S),
            "mean_clock": per_day(up_h * self.clock) / np.maximum(up_day, 1e-300),
        }
        hourly = {
            "hour": (self.start_s / HOUR_S + np.arange(self.n_hours)).astype(np.int64),
            "cohort": np.full(self.n_hours, self.name, dtype=object),
            "ambient_c": self.ambient_c,
            "temp_c": self.temp_c,
            "clock": self.clock,
            "hazard_per_chip_h": self.rate,
            "up_share": up_h / cap_h,
        }
        events = self._events(throttled)
        daily_clock = self.clock[: n_days * 24].reshape(n_days, 24)
        swing = (daily_clock.max(axis=1) - daily_clock.min(axis=1)) / daily_clock.mean(axis=1)
        chip_h = float(up_h.sum()) / HOUR_S
        summary = {
            "cohort": self.name,
            "chip": p.chip,
            "count": c.count,
            "nodes": self.n_nodes,
            "chips_per_node": c.chips_per_node,
            "utilisation": c.utilisation,
            "hall": c.hall,
            "start_day": c.start_day,
            "spares_initial": self.spares0,
            "crashes": self.counts["crashes"],
            "interruptions": self.counts["crashes"],
            "hardware_faults": self.counts["hardware"],
            "transient_faults": self.counts["transient"],
            "restarts_done": self.counts["restarts"],
            "spare_swaps": self.counts["spare_swaps"],
            "repaired_returns": self.counts["repaired_returns"],
            "chips_lost": self.counts["chips_lost"],
            "expected_crashes_no_downtime": float(c.count * self.knots[-1]),
            "chip_hours_up": chip_h,
            "crashes_per_chip_year": self.counts["crashes"] / chip_h * 8766.0
            if chip_h > 0
            else None,
            "availability_mean": float(up_h.sum() / (cap_h * self.n_hours)),
            "availability_min_day": float(timeline["availability"].min()),
            "mean_temp_c": float(temp_int.sum() / (cap_h * self.n_hours)),
            "max_temp_c": float(self.temp_c.max()),
            "throttled_share": float((up_h * throttled).sum() / (cap_h * self.n_hours)),
            "mean_clock": float((up_h * self.clock).sum() / max(up_h.sum(), 1e-300)),
            "diurnal_clock_swing": float(swing.mean()),
            "end": {
                "active": int(state[-1, 0]),
                "spare": int(state[-1, 1]),
                "in_repair": int(state[-1, 2]),
                "lost": int(state[-1, 3]),
                "nodes_waiting": len(self.waiting),
            },
        }
        return events, timeline, hourly, summary

    def _events(self, throttled: np.ndarray) -> dict[str, np.ndarray]:
        flips = np.flatnonzero(np.diff(np.concatenate(([False], throttled))).astype(bool))
        t_flip = self.start_s + HOUR_S * flips
        kinds = np.where(throttled[flips], _K["throttle_start"], _K["throttle_end"])
        n_ev = len(self.ev_t)
        t = np.concatenate((np.asarray(self.ev_t, dtype=float), t_flip))
        kind = np.concatenate((np.asarray(self.ev_kind, dtype=np.int64), kinds))
        node = np.concatenate((np.asarray(self.ev_node, dtype=np.int64), np.full(len(flips), -1)))
        temp = np.concatenate((np.asarray(self.ev_temp, dtype=float), self.temp_c[flips]))
        detail = np.concatenate(
            (np.asarray(self.ev_detail, dtype=np.int64), np.zeros(len(flips), np.int64))
        )
        n = n_ev + len(flips)
        return {
            "time_s": t,
            "pool": np.full(n, "", dtype=object),
            "cohort": np.full(n, self.name, dtype=object),
            "replica": node,
            "chip": np.full(n, self.p.chip, dtype=object),
            "kind": np.asarray(_KINDS, dtype=object)[kind],
            "temp_c": temp,
            "detail": np.asarray(_DETAILS, dtype=object)[detail],
        }


def _named_child(rng: np.random.Generator, name: str) -> np.random.Generator:
    """The child stream of `rng`'s seed named `name` (a SeedSequence child keyed by the name's
    CRC, not by position, so adding or reordering cohorts leaves the others' draws unchanged)."""
    import zlib

    ss = rng.bit_generator.seed_seq
    return np.random.default_rng(np.random.SeedSequence(
        entropy=ss.entropy, spawn_key=(*ss.spawn_key, zlib.crc32(str(name).encode()))))


def run_reliability(
    cfg: ReliabilityConfig, chips: dict, rng: np.random.Generator, progress: Any = None
) -> ReliabilityResult:
    """Reliability-only run of `cfg.fleet` (no requests): events, daily timeline, summary."""
    fleet = cfg.fleet
    if fleet is None:
        raise ScenarioError(
            "a reliability run needs 'reliability.fleet' (days and cohorts)",
            field="reliability.fleet",
        )
    known = reliability_defaults()
    env = simpy.Environment()
    techs = _Technicians(cfg.repair.technicians)
    sims = []
    rngs = [_named_child(rng, c.name) for c in fleet.cohorts]  # by name: adding a cohort shifts no other
    for i, c in enumerate(fleet.cohorts):
        if chips is not None and c.chip not in chips and c.chip not in known:
            allowed = sorted(set(chips) | (set(known) - {"default"}))
            raise ScenarioError(
                f"unknown chip '{c.chip}'; allowed: {', '.join(allowed)}",
                field=f"reliability.fleet.cohorts.{i}.chip",
            )
        if c.hall not in cfg.halls:
            raise ScenarioError(
                f"unknown hall '{c.hall}'; halls: {', '.join(sorted(cfg.halls))}",
                field=f"reliability.fleet.cohorts.{i}.hall",
            )
        p = resolve_chip(cfg, c.chip, chips)
        sim = _CohortSim(
            env, c, p, cfg.halls[c.hall], cfg.repair, techs, rngs[i], fleet.days, fleet.start_hour
        )
        sims.append(sim)
        env.process(sim.run())
    run_env(env, fleet.days * DAY_S, progress, "reliability run (simulated s)")

    parts = [s.results() for s in sims]
    events = concat_events([x[0] for x in parts])
    timeline = {k: np.concatenate([x[1][k] for x in parts]) for k in parts[0][1]}
    hourly = {k: np.concatenate([x[2][k] for x in parts]) for k in parts[0][2]}
    per = [x[3] for x in parts]
    chip_days = sum(s["count"] * (fleet.days - s["start_day"]) for s in per)
    w = [s["count"] * (fleet.days - s["start_day"]) / chip_days for s in per]
    summary = {
        "kind": "reliability",
        "days": fleet.days,
        "chips": sum(s["count"] for s in per),
        "crashes": sum(s["crashes"] for s in per),
        "interruptions": sum(s["interruptions"] for s in per),
        "hardware_faults": sum(s["hardware_faults"] for s in per),
        "transient_faults": sum(s["transient_faults"] for s in per),
        "chips_lost": sum(s["chips_lost"] for s in per),
        "expected_crashes_no_downtime": sum(s["expected_crashes_no_downtime"] for s in per),
        "availability_mean": float(sum(wi * s["availability_mean"] for wi, s in zip(w, per))),
        "availability_min_day": float(min(s["availability_min_day"] for s in per)),
        "mean_temp_c": float(sum(wi * s["mean_temp_c"] for wi, s in zip(w, per))),
        "throttled_share": float(sum(wi * s["throttled_share"] for wi, s in zip(w, per))),
        "technician_wait_h_mean": techs.wait_s / techs.jobs / HOUR_S if techs.jobs else 0.0,
        "cohorts": {s["cohort"]: s for s in per},
    }
    return ReliabilityResult(events=events, timeline=timeline, summary=summary, hourly=hourly)


# ---------------------------------------------------------------------------------------------
# The fleet's cohort engine: chip counts per cohort, stepped one day at a time.
# ---------------------------------------------------------------------------------------------
class CohortFleet:
    """Cohorts of a multi-year fleet as numpy arrays, hosted in the fleet's SimPy environment.

    A cohort is the chips of one delivery (pool, chip, channel, delivery day, capex per chip).
    The fleet steps it once per simulated day (`step`), with each pool's utilisation of that day,
    so the hazard follows demand: the die temperature is the equilibrium at the day's utilisation
    and the hall's daily-mean inlet, and the crash rate per chip-hour is `hazard_per_h` of it (the
    same model as the event engine above). Counts, not chips, are simulated: crashes per cohort
    per day ~ Poisson(serving chips x rate x 24 h), so a fleet of 10x the chips costs the same
    time. Crash outcomes follow RepairConfig: a share restarts (the replica is down for the
    restart), the rest go to ONE site-level repair pool (technicians, FIFO by arrival day across
    every chip kind, i.e. in global time order; `technicians: null` = no queue), take
    `repair_h` (its median), and are lost with `lost_share`, else return to their cohort (or
    retire, if the cohort has reached end of life meanwhile).

    Chip accounting per cohort, checked every day: delivered = active + in_repair + lost +
    retired + removed. `active` holds commissioning, spare and serving chips.
    """

    def __init__(self, pools: list[str], params: list[ChipReliability], halls: list[HallConfig],
                 repair: RepairConfig, rng: np.random.Generator, capacity: int = 256,
                 cohort_rng: Callable[[tuple], np.random.Generator] | None = None) -> None:
        self.pools, self.params, self.halls, self.repair, self.rng = pools, params, halls, repair, rng
        # crashes drawn per cohort from its own stream, `cohort_rng(key)` of the key `add` is given
        # (the fleet names each delivery by its order), so no purchase elsewhere, in the same pool
        # or not, shifts another cohort's crash draws; without it, one shared stream (`rng`)
        self.cohort_rng = cohort_rng
        self.cohort_rngs: list[np.random.Generator] = []
        self.n = 0
        self._alloc(capacity)
        self.queue: deque = deque()       # (ready_day, cohort indices, counts) FIFO
        self.repair_days = _median(repair.repair_h) / 24.0
        self.restart_h = _median(repair.restart_min) / 60.0
        self.swap_h = _median(repair.swap_h)
        techs = repair.technicians
        self.jobs_per_day = math.inf if techs is None else techs * 24.0 / max(_median(repair.repair_h), 1e-9)
        self.counts = {"crashes": 0, "transient": 0, "hardware": 0, "repaired": 0, "lost": 0}
        self.queue_wait_days = 0.0
        # crash rate memo per pool, shared by every CohortFleet of the process whose pool has the
        # same chip physics and hall cooling (the rate depends on nothing else): a run's futures
        # (and a sweep's points) solve each (load, inlet) equilibrium once, not once a future
        self._rates = [_rate_memo(p, h.cooling_factor) for p, h in zip(params, halls)]
        self.high_load_h = np.zeros(len(pools))  # hours of continuous high load per pool
        self._amb_mean = [h.ambient_c for h in halls]
        self._ext = tuple(np.array([getattr(p, a) for p in params], dtype=float) for a in (
            "extended_threshold", "extended_recovery", "extended_gain", "extended_tau_h"))

    _FIELDS = {"pool": np.int32, "channel": np.int32, "delivered_day": np.int32,
               "service_day": np.int32, "retire_day": np.int32, "delivered": np.int64,
               "active": np.int64, "in_repair": np.int64, "lost": np.int64, "retired": np.int64,
               "removed": np.int64, "capex_usd_per_chip": np.float64, "crashes": np.int64,
               "u_block": np.int64}
    # a keyed cohort's uniforms are drawn ahead, U_BLOCK days at a time (days aligned on multiples
    # of it), two a day: hardware crashes, transient crashes
    U_BLOCK = 32

    def _alloc(self, cap: int) -> None:
        for name, dtype in self._FIELDS.items():
            old = getattr(self, name, None)
            arr = np.zeros(cap, dtype=dtype)
            if old is not None:
                arr[: self.n] = old[: self.n]
            setattr(self, name, arr)
        old = getattr(self, "uniforms", None)
        self.uniforms = np.zeros((cap, self.U_BLOCK, 2))
        if old is not None:
            self.uniforms[: self.n] = old[: self.n]
        self.cap = cap

    def add(self, pool: int, channel: int, day: int, count: int, service_day: int,
            retire_day: int, capex_usd_per_chip: float, key: tuple | None = None) -> int:
        """A delivery becomes a cohort; returns its index. `key` names it (its crash stream)
        when the fleet has `cohort_rng`."""
        if self.n == self.cap:
            self._alloc(2 * self.cap)
        i = self.n
        self.pool[i], self.channel[i], self.delivered_day[i] = pool, channel, day
        self.service_day[i], self.retire_day[i] = service_day, retire_day
        self.delivered[i] = self.active[i] = count
        self.capex_usd_per_chip[i] = capex_usd_per_chip
        self.u_block[i] = -1
        if self.cohort_rng is not None:
            if key is None:
                raise ValueError("a fleet with keyed crash streams needs each cohort's key")
            g = self.cohort_rng(key)
            self.cohort_rngs.append(g)
            first = day % self.U_BLOCK  # the rest of the current block, from its delivery day
            self.uniforms[i, first:] = g.random((self.U_BLOCK - first, 2))
            self.u_block[i] = day - first
        self.n += 1
        return i

    def _uniforms(self, day: int, live: np.ndarray) -> np.ndarray:
        """Today's two uniforms per cohort (n x 2); the live cohorts whose block is over draw
        their next block from their own stream."""
        blk = day - day % self.U_BLOCK
        stale = np.flatnonzero(live & (self.view("u_block") != blk))
        for i in stale.tolist():
            self.uniforms[i] = self.cohort_rngs[i].random((self.U_BLOCK, 2))
            self.u_block[i] = blk
        return self.uniforms[: self.n, day - blk]

    def view(self, name: str) -> np.ndarray:
        return getattr(self, name)[: self.n]

    def remove_share(self, mask: np.ndarray, share: float) -> np.ndarray:
        """Forced removal: floor(share x active) chips of the masked cohorts leave; per cohort."""
        act = self.view("active")
        out = np.where(mask, np.floor(act * share + 1e-9).astype(np.int64), 0)
        act -= out
        self.view("removed")[:] += out
        return out

    def retire_due(self, day: int) -> np.ndarray:
        """Cohorts at end of life today retire their active chips; returns chips retired per cohort."""
        n = self.n
        out = np.where(self.retire_day[:n] == day, self.active[:n], 0)
        self.active[:n] -= out
        self.retired[:n] += out
        return out

    def step(self, day: int, utilisation: np.ndarray, spare_fraction: float,
             ambient_c: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One day: repairs finishing, crashes at the day's load (in each pool's hall at the day's
        `ambient_c`, default the hall's mean, after its hours of continuous high load);
        per-pool replica-chip downtime. The fleet's hot path (once a day per future): fields are
        read as slices, not through `view`, and the per-pool sums come from one bincount."""
        n, npools = self.n, len(self.pools)
        pool = self.pool[:n]
        rd = self.retire_day[:n]
        old = rd <= day
        in_service = (self.service_day[:n] <= day) & ~old
        act = self.active[:n]
        rep = self.in_repair[:n]
        # 1. repairs finishing today (site pool, FIFO by arrival, technician-limited)
        queue = self.queue
        if queue and queue[0][0] <= day:
            budget = self.jobs_per_day
            back = np.zeros(n, np.int64)
            lost = np.zeros(n, np.int64)
            while queue and queue[0][0] <= day and budget >= 1:
                ready, idx, cnt = queue[0]
                total = int(cnt.sum())
                take = total if total <= budget else int(budget)
                if take < total:
                    part = self.rng.multivariate_hypergeometric(cnt, take)
                    queue[0] = (ready, idx, cnt - part)
                    cnt = part
                else:
                    queue.popleft()
                budget -= take
                self.queue_wait_days += take * (day - ready)
                gone = self.rng.binomial(cnt, self.repair.lost_share)
                lost[idx] += gone  # idx: distinct cohorts (flatnonzero of a day's crashes)
                back[idx] += cnt - gone
            n_back, n_lost = int(back.sum()), int(lost.sum())
            if n_back or n_lost:
                rep -= back + lost
                self.lost[:n] += lost
                act += np.where(old, 0, back)
                self.retired[:n] += np.where(old, back, 0)
                self.counts["repaired"] += n_back
                self.counts["lost"] += n_lost
        # 2. crashes at today's utilisation (hazard rebuilt from the day's load)
        serving = np.where(in_service, act, 0)
        amb = self._amb_mean if ambient_c is None else np.asarray(ambient_c, dtype=float).tolist()
        u = np.asarray(utilisation, dtype=float)
        # hazard.update_high_load_h and extended_factor, every pool at once
        thr, recov, gain, tau = self._ext
        h = self.high_load_h
        self.high_load_h = h = np.where(u >= thr, h + 24.0, np.maximum(0.0, h - recov * 24.0))
        ext = 1.0 + gain * (1.0 - np.exp(-h / tau))
        rates, rate = self._rates, self._rate
        rate_h = []
        for k, (uk, ak) in enumerate(zip(u.tolist(), amb)):  # _rate's memo, looked up inline
            hit = rates[k].get((round(uk, 3), round(ak, 1)))
            rate_h.append(rate(k, uk, ak) if hit is None else hit)
        rate_h = np.array(rate_h) * ext
        lam = serving * (1.0 - spare_fraction) * rate_h[pool] * 24.0
        if self.cohort_rng is None:
            crashes = np.minimum(self.rng.poisson(lam), serving)
            transient = self.rng.binomial(crashes, self.repair.transient_share)
            hardware = crashes - transient
        else:  # each cohort's own uniforms; hardware and transient crashes as two thinned Poisson
            uu = self._uniforms(day, in_service)
            ts = self.repair.transient_share
            k = poisson_from_uniform(uu.T.ravel(), np.concatenate((lam * (1.0 - ts), lam * ts)))
            hardware = np.minimum(k[:n], serving)
            transient = np.minimum(k[n:], serving - hardware)
            crashes = hardware + transient
        self.crashes[:n] += crashes
        act -= hardware
        rep += hardware
        n_hw = int(hardware.sum())
        if n_hw:
            idx = np.flatnonzero(hardware)
            self.queue.append((day + max(1, round(self.repair_days)), idx, hardware[idx]))
        n_tr = int(transient.sum())
        self.counts["crashes"] += n_hw + n_tr
        self.counts["transient"] += n_tr
        self.counts["hardware"] += n_hw
        self._check()
        # the four per-pool sums in one bincount (row j's bins are j * npools + pool)
        w = np.stack((serving, np.where(in_service | old, rep, 0), transient, hardware))
        sums = np.bincount((self._rows4(npools) + pool).ravel(), weights=w.ravel(),
                           minlength=4 * npools).reshape(4, npools)
        return {"serving_chips": sums[0], "in_repair_chips": sums[1], "transient": sums[2],
                "hardware": sums[3], "hazard_per_chip_h": rate_h}

    def _rows4(self, npools: int) -> np.ndarray:
        r = getattr(self, "_rows4_cache", None)
        if r is None:
            r = self._rows4_cache = np.arange(4)[:, None] * npools
        return r

    def _rate(self, k: int, u: float, ambient_c: float) -> float:
        """Crash rate per chip-hour of pool k at utilisation u in its hall at `ambient_c`, before
        continuous high load (memo on u to 1e-3 and the inlet to 0.1 C: the equilibrium solve is
        the costly part, and daily loads repeat)."""
        key = (round(u, 3), round(ambient_c, 1))
        memo = self._rates[k]
        hit = memo.get(key)
        if hit is None:
            p, hall = self.params[k], self.halls[k]
            temp, _ = equilibrium(p, key[0], key[1], hall.cooling_factor)
            hit = memo[key] = float(hazard_per_h(p, temp))
        return hit

    def _check(self) -> None:
        n = self.n
        act, rep = self.active[:n], self.in_repair[:n]
        total = act + rep + self.lost[:n] + self.retired[:n] + self.removed[:n]
        if (total != self.delivered[:n]).any() or min(act.min(initial=0), rep.min(initial=0)) < 0:
            raise RuntimeError("cohort chip accounting broken (internal error)")

    def process(self, env, day_hook):
        """SimPy host: a generator stepping once per day at mid-day; `day_hook(day)` does the step."""
        day = int(env.now)
        while True:
            yield env.timeout(day + 0.5 - env.now)
            day_hook(day)
            day += 1


# (chip physics, hall cooling factor) -> {(utilisation to 1e-3, inlet to 0.1 C): crashes per
# chip-hour}; a value is a pure function of its keys, so sharing it changes no figure. Bounded:
# cleared when it holds more than _RATE_MEMO_MAX physics (a long sweep over chip figures).
_RATE_MEMO: dict[tuple, dict[tuple[float, float], float]] = {}
_RATE_MEMO_MAX = 256


def _rate_memo(p: ChipReliability, cooling_factor: float) -> dict[tuple[float, float], float]:
    key = (*(getattr(p, f.name) for f in dataclasses.fields(p) if f.name != "basis"), float(cooling_factor))
    memo = _RATE_MEMO.get(key)
    if memo is None:
        if len(_RATE_MEMO) >= _RATE_MEMO_MAX:
            _RATE_MEMO.clear()
        memo = _RATE_MEMO[key] = {}
    return memo


def _median(dist) -> float:
    return float(dist.value) if isinstance(dist, FixedDuration) else float(dist.median)
