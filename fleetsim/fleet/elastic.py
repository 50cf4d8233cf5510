"""Capacity that flexes within a day: hourly rentals from elastic rent channels, and owned
replicas moved to off-peak work when serving does not need them.

A day's demand is a 24-hour profile, so a fleet sized for the peak hour idles the rest of the
day. An elastic rent channel (`kind: rent` with `elastic:`) is not planned ahead: each hour it
rents the replicas that the hour's demand needs beyond the owned and day-rented capacity, each
for at least `min_term_hours` (greedy cover: a replica is rented when the need exceeds the
replicas still inside their term, which is the cheapest cover of a need profile by terms of one
fixed length). It is paid per chip-hour. `fleet.offpeak` values each owned replica-hour that
serving does not need (batch inference or training) per node-hour, and runs it at `load`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ElasticOffer:
    channel: str
    pool_ix: int
    tp: float
    usd_per_chip_hour: float  # levy included
    min_term_h: int
    max_replicas: float
    us_controlled: bool


@dataclass
class HourPlan:
    """What an elastic channel does for one model on one day."""

    pool_ix: int
    replicas_h: np.ndarray   # 24 replicas rented, hour by hour
    served_h: np.ndarray     # 24 output tokens/s it serves
    chip_hours: float
    usd: float
    us_controlled: bool


class ElasticRentals:
    """The elastic offers of a fleet, with each pool's rentals still inside their term."""

    def __init__(self, sim, offer_pool) -> None:
        self.offers: dict[str, list[ElasticOffer]] = {}
        for name in sim.channel_names:
            cfg = sim.fleet.channels[name]
            if cfg.kind != "rent" or cfg.elastic is None:
                continue
            for off in cfg.offers:
                pi = sim.pool_ix[offer_pool(sim.sc, off)]
                tp = float(sim.tp[pi])
                cap = math.inf if cfg.elastic.max_chips is None else cfg.elastic.max_chips / tp
                self.offers.setdefault(sim.pools[pi].model, []).append(ElasticOffer(
                    name, pi, tp, float(off.price_usd_per_chip_hour) * (1.0 + cfg.levy),
                    cfg.elastic.min_term_hours, math.floor(cap + 1e-9) if math.isfinite(cap) else math.inf,
                    cfg.us_controlled))
        # starts of the last min_term - 1 hours, per pool (terms run across midnight)
        self.recent = {o.pool_ix: np.zeros(max(0, o.min_term_h - 1))
                       for offs in self.offers.values() for o in offs}

    def __bool__(self) -> bool:
        return bool(self.offers)

    def plan(self, model: str, gap_h: np.ndarray, mix: np.ndarray, is_open) -> HourPlan | None:
        """Rent for `gap_h` (24 output tokens/s short) from the cheapest open offer per token."""
        best = None
        for o in self.offers.get(model, ()):
            if mix[o.pool_ix] <= 0 or not is_open(o.channel):
                continue
            usd_per_token = o.usd_per_chip_hour * o.tp / mix[o.pool_ix]
            if best is None or usd_per_token < best[0]:
                best = (usd_per_token, o)
        if best is None:
            return None
        o = best[1]
        per = float(mix[o.pool_ix])
        need = np.minimum(np.ceil(np.maximum(gap_h, 0.0) / per - 1e-9), o.max_replicas)
        reps = self._cover(o.pool_ix, need, o.min_term_h)
        served = np.minimum(np.maximum(gap_h, 0.0), reps * per)
        chip_hours = float(reps.sum() * o.tp)
        return HourPlan(o.pool_ix, reps, served, chip_hours, chip_hours * o.usd_per_chip_hour, o.us_controlled)

    def _cover(self, pi: int, need: np.ndarray, term_h: int) -> np.ndarray:
        """Replicas rented each hour: start max(0, need - still in term); 24 steps a day."""
        hist = self.recent[pi]
        starts = np.concatenate((hist, np.zeros(24)))
        k = len(hist)
        reps = np.zeros(24)
        for h in range(24):
            live = starts[k + h - (term_h - 1): k + h].sum() if term_h > 1 else 0.0
            starts[k + h] = max(0.0, need[h] - live)
            reps[h] = live + starts[k + h]
        self.recent[pi] = starts[len(starts) - k:] if k else hist
        return reps


def offpeak_replicas(up: float, needed_h: np.ndarray) -> np.ndarray:
    """Owned replicas serving does not need, hour by hour."""
    return np.maximum(0.0, up - np.ceil(needed_h - 1e-9))
