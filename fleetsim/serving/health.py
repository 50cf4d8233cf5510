"""Crashes, throttling and repair inside a serving window (the reliability section, applied).

One SimPy process per pool steps the pool's `PoolHealth` every `thermal_step_s`, feeding it each
replica's busy fraction over the step just past (a one-step lag, far below the chips' thermal time
constant). The step gives each replica its clock fraction (the kernel's `throttle`, taking effect
at the replica's next batch change) and the exact crash times within the next step. A crash takes
the replica down; its requests are re-routed (`attempts` counts it) or rejected with reason
`crash_no_replica`, never dropped; a `RepairShop` brings the replica back after a restart, a
spare swap or a repair.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import simpy

from fleetsim.reliability import EventLog, PoolHealth, RepairShop
from fleetsim.reliability.cohort import resolve_chip
from fleetsim.reliability.thermal import clock_fraction, equilibrium
from fleetsim.scenario.reliability import ReliabilityConfig
from fleetsim.scenario.serving import ServingConfig
from fleetsim.serving.requests import CRASH_NO_REPLICA
from fleetsim.rng import stream


# The state the kernel's efficiencies describe: a busy chip in a design-spec hall (25 C inlet).
REFERENCE_UTILISATION = 0.9
REFERENCE_AMBIENT_C = 25.0


class ServingReliability:
    """The reliability section's settings, ready to attach to each window."""

    def __init__(self, cfg: ReliabilityConfig, chips: dict) -> None:
        self.cfg = cfg
        self.chips = chips
        self._chip: dict[str, tuple] = {}

    def chip(self, chip: str) -> tuple:
        """(resolved parameters, reference clock) of a chip kind, resolved once: a fleet run's
        windows share one ServingReliability (fleetsim.serving.window.run_fleet_window), and
        resolving every pool's chip and solving its reference equilibrium in every window was a
        tenth of a window's time."""
        hit = self._chip.get(chip)
        if hit is None:
            params = resolve_chip(self.cfg, chip, self.chips)
            # The kernel's efficiencies were calibrated on chips already running at their normal
            # loaded clock, so the kernel sees the clock relative to that reference state.
            clock_ref = float(equilibrium(params, REFERENCE_UTILISATION, REFERENCE_AMBIENT_C, 1.0)[1])
            hit = self._chip[chip] = (params, clock_ref)
        return hit

    def attach(self, env: simpy.Environment, serving: ServingConfig, pool_replicas: list[list],
               router, seed: int, window: int, start_temp_c: dict[str, float] | None = None,
               spares: dict[str, int] | None = None) -> "WindowHealth":
        return WindowHealth(self, env, serving, pool_replicas, router, seed, window,
                            start_temp_c=start_temp_c, spares=spares)


class WindowHealth:
    """Per-window state: one PoolHealth and one RepairShop per pool, and the event log."""

    def __init__(self, rel: ServingReliability, env: simpy.Environment, serving: ServingConfig,
                 pool_replicas: list[list], router, seed: int, window: int,
                 start_temp_c: dict[str, float] | None = None,
                 spares: dict[str, int] | None = None) -> None:
        self.env = env
        self.router = router
        self.log = EventLog()
        self.window = window
        self.warmup_s = serving.warmup_s
        self.pools: dict[str, tuple[PoolHealth, RepairShop]] = {}
        self.power: dict[str, _PowerMeter] = {}
        cfg = rel.cfg
        for (pname, pool), reps in zip(serving.pools.items(), pool_replicas):
            params, clock_ref = rel.chip(pool.chip)
            health = PoolHealth(
                params, cfg.halls[pool.hall], len(reps), pool.tp, stream(seed, "health", pname, window),
                serving.start_hour, pool=pname, crashes=cfg.serving_crashes, log=self.log,
            )
            if start_temp_c and pname in start_temp_c:  # chips already warm (the fleet's state)
                t0 = float(start_temp_c[pname])
                health.temp_c[:] = t0
                health.throttle[:] = float(clock_fraction(params, t0))
                health.throttled[:] = t0 > params.throttle_c
                health.max_temp_c = t0
            shop = RepairShop(env, cfg.repair, stream(seed, "repair", pname, window),
                              n_chips=len(reps) * pool.tp, pool=pname, chip=pool.chip, log=self.log,
                              spares=None if spares is None or pname not in spares else spares[pname])
            self.pools[pname] = (health, shop)
            meter = self.power[pname] = _PowerMeter(params, pool.tp, reps, self.warmup_s, clock_ref)
            if reps:
                env.process(self._monitor(health, shop, reps, pool.tp, cfg.thermal_step_s, clock_ref,
                                          meter))

    def _monitor(self, health: PoolHealth, shop: RepairShop, reps: list, tp: int, step_s: float,
                 clock_ref: float, meter: "_PowerMeter"):
        env = self.env
        # Power follows compute activity, not just busy time: a replica decoding a small batch is
        # memory-bound and draws less than one running large batches or prefill (replica.py).
        busy_before = np.array([r.busy_at(env.now)[2] for r in reps])
        util = np.zeros(len(reps))
        while True:
            t = env.now
            f0 = health.throttle.copy()
            crashed = health.advance(t, step_s, util)
            f_abs = 0.5 * (f0 + health.throttle)
            clock = np.minimum(f_abs / clock_ref, 1.0)
            for r, f in zip(reps, clock.tolist()):
                r.throttle = f
            meter.begin(t, f_abs, busy_before)
            for i, t_crash in zip(crashed.tolist(), health.last_crash_times_s.tolist()):
                env.process(self._crash(health, shop, reps[i], i, tp, t_crash - t))
            yield env.timeout(step_s)
            busy_now = np.array([r.busy_at(env.now)[2] for r in reps])
            meter.end(env.now, busy_now)
            util = (busy_now - busy_before) / step_s
            busy_before = busy_now

    def _crash(self, health: PoolHealth, shop: RepairShop, replica, i: int, tp: int, delay_s: float):
        env = self.env
        yield env.timeout(max(delay_s, 0.0))
        rids = replica.crash()
        self.router.replicas_changed()
        for rid in rids:
            self.router.route(rid, reject_reason=CRASH_NO_REPLICA)
        outcome = yield env.process(shop.repair(i, tp, temp_c=float(health.temp_c[i])))
        if outcome.up_s is not None:
            health.mark_up(i)
            replica.restore()
            self.router.replicas_changed()

    def events(self) -> dict[str, Any]:
        arrays = self.log.to_arrays()
        arrays["window"] = np.full(len(arrays["time_s"]), self.window, dtype=np.int32)
        return arrays

    def summary(self, end_s: float | None = None) -> dict[str, Any]:
        """Per pool: thermal and crash figures, repairs, and over the measured interval the mean
        electrical power per replica and the mean clock the kernel saw (power_w_per_replica,
        clock_factor), integrated from each replica's power-activity area."""
        end_s = self.env.now if end_s is None else end_s
        out = {}
        for pname, (health, shop) in self.pools.items():
            out[pname] = health.stats() | {"repairs": dict(shop.counts)} | self.power[pname].figures(end_s)
        return out


class _PowerMeter:
    """Energy of a pool's chips over [warmup, end]: per thermal step, power is idle plus dynamic
    power times the step's power-activity area (exact for the step's clock, which the kernel also
    holds fixed over the step); a step cut by warm-up or the window's end counts pro rata."""

    def __init__(self, params, tp: int, reps: list, warmup_s: float, clock_ref: float) -> None:
        self.p, self.tp, self.reps, self.warmup_s, self.clock_ref = params, tp, reps, warmup_s, clock_ref
        self.energy_j = 0.0  # all chips of the pool
        self.clock_s = 0.0  # replica-seconds x relative clock
        self.span_s = 0.0  # replica-seconds measured
        self.activity_s = 0.0  # replica-seconds x power activity (0..1)
        self._t0 = 0.0
        self._f = np.ones(len(reps))
        self._a0 = np.zeros(len(reps))

    def begin(self, t: float, f_abs: np.ndarray, area: np.ndarray) -> None:
        self._t0, self._f, self._a0 = t, f_abs, area

    def end(self, t: float, area: np.ndarray) -> None:
        dt = t - self._t0
        lo = max(self._t0, self.warmup_s)
        w = max(0.0, t - lo) / dt if dt > 0 else 0.0
        if w <= 0 or not len(self.reps):
            return
        p = self.p
        act = area - self._a0  # seconds of full-power-equivalent activity per replica
        per_chip_j = p.idle_w * dt + p.dynamic_w * self._f ** p.clock_power_exp * act
        self.energy_j += w * self.tp * float(per_chip_j.sum())
        self.clock_s += w * dt * float(np.minimum(self._f / self.clock_ref, 1.0).sum())
        self.span_s += w * dt * len(self.reps)
        self.activity_s += w * float(act.sum())

    def figures(self, end_s: float) -> dict[str, float | None]:
        if self.reps and end_s > self._t0:  # the step under way at the window's end
            saved = (self.energy_j, self.clock_s, self.span_s, self.activity_s)
            self.end(end_s, np.array([r.busy_at(end_s)[2] for r in self.reps]))
            e, c, s, a = self.energy_j, self.clock_s, self.span_s, self.activity_s
            self.energy_j, self.clock_s, self.span_s, self.activity_s = saved
        else:
            e, c, s, a = self.energy_j, self.clock_s, self.span_s, self.activity_s
        if s <= 0:
            return {"energy_j": 0.0, "power_w_per_replica": None, "clock_factor": None,
                    "power_activity": None}
        return {"energy_j": e, "power_w_per_replica": e / s, "clock_factor": c / s,
                "power_activity": a / s}
