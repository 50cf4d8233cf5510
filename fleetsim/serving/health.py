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
from fleetsim.reliability.thermal import equilibrium
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

    def attach(self, env: simpy.Environment, serving: ServingConfig, pool_replicas: list[list],
               router, seed: int, window: int) -> "WindowHealth":
        return WindowHealth(self, env, serving, pool_replicas, router, seed, window)


class WindowHealth:
    """Per-window state: one PoolHealth and one RepairShop per pool, and the event log."""

    def __init__(self, rel: ServingReliability, env: simpy.Environment, serving: ServingConfig,
                 pool_replicas: list[list], router, seed: int, window: int) -> None:
        self.env = env
        self.router = router
        self.log = EventLog()
        self.window = window
        self.pools: dict[str, tuple[PoolHealth, RepairShop]] = {}
        cfg = rel.cfg
        for (pname, pool), reps in zip(serving.pools.items(), pool_replicas):
            params = resolve_chip(cfg, pool.chip, rel.chips)
            health = PoolHealth(
                params, cfg.halls[pool.hall], len(reps), pool.tp, stream(seed, "health", pname, window),
                serving.start_hour, pool=pname, crashes=cfg.serving_crashes, log=self.log,
            )
            shop = RepairShop(env, cfg.repair, stream(seed, "repair", pname, window),
                              n_chips=len(reps) * pool.tp, pool=pname, chip=pool.chip, log=self.log)
            self.pools[pname] = (health, shop)
            # The kernel's efficiencies were calibrated on chips already running at their normal
            # loaded clock, so the kernel sees the clock relative to that reference state.
            clock_ref = float(equilibrium(params, REFERENCE_UTILISATION, REFERENCE_AMBIENT_C, 1.0)[1])
            if reps:
                env.process(self._monitor(health, shop, reps, pool.tp, cfg.thermal_step_s, clock_ref))

    def _monitor(self, health: PoolHealth, shop: RepairShop, reps: list, tp: int, step_s: float,
                 clock_ref: float):
        env = self.env
        # Power follows compute activity, not just busy time: a replica decoding a small batch is
        # memory-bound and draws less than one running large batches or prefill (replica.py).
        busy_before = np.array([r.busy_at(env.now)[2] for r in reps])
        util = np.zeros(len(reps))
        while True:
            t = env.now
            f0 = health.throttle.copy()
            crashed = health.advance(t, step_s, util)
            clock = np.minimum(0.5 * (f0 + health.throttle) / clock_ref, 1.0)
            for r, f in zip(reps, clock.tolist()):
                r.throttle = f
            for i, t_crash in zip(crashed.tolist(), health.last_crash_times_s.tolist()):
                env.process(self._crash(health, shop, reps[i], i, tp, t_crash - t))
            yield env.timeout(step_s)
            busy_now = np.array([r.busy_at(env.now)[2] for r in reps])
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

    def summary(self) -> dict[str, Any]:
        return {
            pname: health.stats() | {"repairs": dict(shop.counts)}
            for pname, (health, shop) in self.pools.items()
        }
