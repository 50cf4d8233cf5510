"""Repair after a crash: automated restart, or a hardware repair with spares and technicians.

A crash is one chip's failure; its unit (a replica's tp chips, or a node) is down until:
  - restart (probability `transient_share`): automated, `restart_min` later, no technician;
  - hardware: the broken chip goes to the bench (queue for a technician, then `repair_h`;
    with probability `lost_share` it is lost for good, else it goes to the spare shelf).
    The unit takes a chip from the shelf as soon as one is there (a spare now: 'spare_swap';
    later, a repaired chip: 'repaired') and is back `swap_h` after that. A unit whose own
    chip is lost keeps waiting on the shelf: any unit's repaired chip brings it back.
`RepairShop` is the SimPy form, one process per crash (serving windows see few crashes).
The fleet cohort run applies the same rules with vectorised draws (cohort.py).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import simpy

from fleetsim.reliability.events import EventLog
from fleetsim.scenario.reliability import FixedDuration, RepairConfig


def sample_duration(dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """n draws of a fixed or lognormal duration, in the distribution's own unit."""
    if isinstance(dist, FixedDuration):
        return np.full(n, float(dist.value))
    return dist.median * np.exp(dist.sigma * rng.standard_normal(n))


def spares_for(cfg: RepairConfig, n_chips: int) -> int:
    """Spare chips kept for `n_chips` in service (rounded to nearest)."""
    return math.floor(cfg.spare_fraction * n_chips + 0.5)


@dataclasses.dataclass(frozen=True)
class CrashDraws:
    """Random outcome of a batch of crashes, drawn together in a fixed order (deterministic)."""

    transient: np.ndarray
    restart_s: np.ndarray
    repair_s: np.ndarray
    swap_s: np.ndarray
    lost: np.ndarray

    @classmethod
    def draw(cls, cfg: RepairConfig, rng: np.random.Generator, n: int) -> CrashDraws:
        return cls(
            transient=rng.random(n) < cfg.transient_share,
            restart_s=60.0 * sample_duration(cfg.restart_min, rng, n),
            repair_s=3600.0 * sample_duration(cfg.repair_h, rng, n),
            swap_s=3600.0 * sample_duration(cfg.swap_h, rng, n),
            lost=rng.random(n) < cfg.lost_share,
        )


@dataclasses.dataclass(frozen=True)
class RepairOutcome:
    """How a crashed unit came back. A unit still waiting for a chip has no outcome yet (its
    process is pending); `up_s` None is kept for callers that build a 'lost_for_good' outcome."""

    kind: str  # 'restart' | 'spare_swap' | 'repaired' ('lost_for_good': not returned by repair)
    unit_id: int
    crash_s: float
    up_s: float | None

    @property
    def down_s(self) -> float:
        return math.inf if self.up_s is None else self.up_s - self.crash_s


class RepairShop:
    """Spare shelf (a SimPy Container) and technicians (a SimPy Resource, None = unlimited).

    `spares` defaults to `spare_fraction * n_chips` (the chips this shop looks after).
    Events go to `log` (kinds restart, repair_done, lost_for_good); the caller logs the crash.
    counts['lost_for_good'] counts units whose own chip was scrapped while the shelf was empty
    (they wait on for another chip); counts['chips_lost'] counts every scrapped chip.
    """

    def __init__(
        self,
        env: simpy.Environment,
        cfg: RepairConfig,
        rng: np.random.Generator,
        *,
        n_chips: int = 0,
        spares: int | None = None,
        pool: str = "",
        chip: str = "",
        log: EventLog | None = None,
    ) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = rng
        self.pool = pool
        self.chip = chip
        self.log = log if log is not None else EventLog()
        self.initial_spares = spares_for(cfg, n_chips) if spares is None else int(spares)
        self.shelf = simpy.Container(env, init=self.initial_spares)
        self.technicians = (
            simpy.Resource(env, capacity=cfg.technicians) if cfg.technicians else None
        )
        self.counts = {
            "crashes": 0,
            "restart": 0,
            "spare_swap": 0,
            "repaired": 0,
            "lost_for_good": 0,
            "chips_lost": 0,
            "in_repair": 0,
        }

    def repair(self, unit_id: int, n_chips: int = 1, *, temp_c: float = math.nan):
        """SimPy generator: yields until the unit is back; returns a RepairOutcome.

        `n_chips` is the unit's size (recorded; one chip of it is broken). Use as
        `outcome = yield env.process(shop.repair(i, tp))`.
        """
        env = self.env
        crash_s = env.now
        d = CrashDraws.draw(self.cfg, self.rng, 1)
        self.counts["crashes"] += 1
        if d.transient[0]:
            yield env.timeout(float(d.restart_s[0]))
            self.counts["restart"] += 1
            self.log.add(env.now, "restart", pool=self.pool, replica=unit_id, chip=self.chip)
            return RepairOutcome("restart", unit_id, crash_s, env.now)

        bench = env.process(self._bench(unit_id, float(d.repair_s[0]), bool(d.lost[0])))
        get = self.shelf.get(1)
        kind = "spare_swap" if get.triggered else "repaired"
        if not get.triggered:
            yield get | bench
            if not get.triggered:
                if not bench.value:  # own chip scrapped, no chip on the shelf yet
                    self.counts["lost_for_good"] += 1
                # Keep waiting (FIFO): another unit's repaired chip or a spare may still come.
                yield get
        yield env.timeout(float(d.swap_s[0]))
        self.counts[kind] += 1
        self.log.add(
            env.now, "repair_done", pool=self.pool, replica=unit_id, chip=self.chip, detail=kind
        )
        return RepairOutcome(kind, unit_id, crash_s, env.now)

    def _bench(self, unit_id: int, repair_s: float, lost: bool):
        """The broken chip: wait for a technician, get repaired or scrapped."""
        env = self.env
        self.counts["in_repair"] += 1
        if self.technicians is not None:
            with self.technicians.request() as req:
                yield req
                yield env.timeout(repair_s)
        else:
            yield env.timeout(repair_s)
        self.counts["in_repair"] -= 1
        if lost:
            self.counts["chips_lost"] += 1
            self.log.add(env.now, "lost_for_good", pool=self.pool, replica=unit_id, chip=self.chip)
            return False
        yield self.shelf.put(1)
        return True
