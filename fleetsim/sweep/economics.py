"""One replica type's yearly cost and output at the SLO, from the capacity function: the
economics under `fleetsim decide`'s cost frontier (fleetsim.sweep.decide) and its fleet-level
frontier (fleetsim.sweep.frontier), which both import it from here."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from fleetsim.errors import ScenarioError

HOURS_PER_YEAR = 8766.0


@dataclass(frozen=True)
class ReplicaEconomics:
    """One replica type's yearly cost split and its output at SLO."""

    pool: str
    chip: str
    capex_usd_per_year_per_unit_price: float  # x price per chip: the part that scales with price
    fixed_usd_per_year: float                  # overhead share, power, other opex
    tokens_per_year: float                      # output tokens at SLO (goodput x availability)

    def cost_usd_per_mtok(self, price_usd_per_chip: float) -> float:
        if self.tokens_per_year <= 0:
            return math.inf
        usd = self.capex_usd_per_year_per_unit_price * price_usd_per_chip + self.fixed_usd_per_year
        return usd / (self.tokens_per_year / 1e6)


def _channel_of(fleet, chip: str):
    for ch in fleet.channels.values():
        for off in ch.offers:
            if off.chip == chip:
                return ch, off
    return None, None


def replica_economics(scenario, pool: str, cap, chips: dict) -> ReplicaEconomics:
    """Yearly cost (split into a price-proportional part and the rest) and tokens of `pool`."""
    f, sv = scenario.fleet, scenario.serving
    p = sv.pools[pool]
    fin = f.finance
    ch, _ = _channel_of(f, p.chip)
    levy = float(getattr(ch, "levy", 0.0) or 0.0) if ch is not None else 0.0
    life = fin.life_years
    mid = f.start + dt.timedelta(days=f.days // 2)
    sub = 1.0
    for s in fin.subsidies:
        if p.chip in s.chips and s.from_date <= mid:
            sub *= s.power_price_multiplier
    power = cap.power_w_per_replica / 1000.0 * HOURS_PER_YEAR * fin.pue * fin.power_usd_per_kwh * sub
    fixed = (p.tp * fin.server_overhead_usd_per_node / fin.chips_per_node / life + power
             + p.tp * fin.other_opex_usd_per_chip_year)
    tokens = cap.effective_tokens_per_s * 3600.0 * HOURS_PER_YEAR
    return ReplicaEconomics(pool, p.chip, p.tp * (1.0 + levy) / life, fixed, tokens)


def _pool_of(scenario, chip: str, field: str) -> str:
    pools = [n for n, p in scenario.serving.pools.items() if p.chip == chip]
    if not pools:
        raise ScenarioError(f"no serving pool uses chip '{chip}'; pools use: "
                            f"{', '.join(sorted({p.chip for p in scenario.serving.pools.values()}))}",
                            field=field)
    return pools[0]


def _price(scenario, chip: str, chips: dict) -> float:
    _, off = _channel_of(scenario.fleet, chip)
    if off is not None and off.price_usd is not None:
        return float(off.price_usd)
    price = getattr(chips[chip], "price_usd", None)
    if price is None:
        raise ScenarioError(f"chip '{chip}' has no price: give one in its channel's offer", field="fleet.channels")
    return float(price)
