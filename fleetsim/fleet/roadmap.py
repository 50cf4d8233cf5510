"""Roadmaps: expand a channel's `roadmap` into catalog chips, serving pools and dated offers.

Expansion happens once, on the validated scenario (api.load_scenario and api.run), so every
later stage (capacity function, planner, windows, tables) sees ordinary chips and pools. It is
idempotent: generated names already present are left alone. Formula: RoadmapConfig.
"""

from __future__ import annotations

import datetime as dt

from fleetsim.errors import ScenarioError

SCALED = ("bf16_tflops", "fp8_tflops", "int8_tops", "fp4_tflops", "hbm_tbps")


def generation_fraction(r0: float, gap_closed_per_year: float, years: float) -> float:
    """Performance relative to the target after `years` of closing the gap."""
    return 1.0 - (1.0 - r0) * (1.0 - gap_closed_per_year) ** years


def expand(scenario, chips: dict):
    """The scenario with every roadmap generation added (a new Scenario, same source path)."""
    fleet = scenario.fleet
    if fleet is None or not any(ch.roadmap for ch in fleet.channels.values()):
        return scenario
    data = scenario.model_dump(mode="json", exclude_unset=False)
    cat = data["catalog"]["chips"]
    pools = data["serving"]["pools"]
    changed = False
    for name, ch in fleet.channels.items():
        rm = ch.roadmap
        if rm is None:
            continue
        where = f"fleet.channels.{name}.roadmap"
        for label, chip in (("base", rm.base), ("target", rm.target)):
            if chip not in chips:
                raise ScenarioError(f"unknown chip '{chip}'", field=f"{where}.{label}")
        base, target = chips[rm.base], chips[rm.target]
        if not (base.bf16_tflops and target.bf16_tflops):
            raise ScenarioError("roadmap needs bf16_tflops for base and target", field=where)
        r0 = min(1.0, base.bf16_tflops / target.bf16_tflops)
        pool_name = next((p for p, cfg in scenario.serving.pools.items() if cfg.chip == rm.base), None)
        if pool_name is None:
            raise ScenarioError(f"no serving pool uses the roadmap's base chip '{rm.base}'", field=f"{where}.base")
        for k in range(1, rm.generations + 1):
            chip_name, pname = f"{rm.base}-gen{k}", f"{pool_name}-gen{k}"
            if chip_name in cat or pname in pools:
                continue
            changed = True
            rk = generation_fraction(r0, rm.gap_closed_per_year, k * rm.every_years)
            spec = base.model_dump(mode="json")
            for f in SCALED:
                if spec.get(f) is not None:
                    spec[f] = spec[f] * rk / r0
            if spec.get("price_usd") is not None:
                spec["price_usd"] = spec["price_usd"] * rm.price_factor_per_generation ** k
            spec["name"] = f"{spec.get('name', rm.base)} generation {k} (roadmap)"
            spec["notes"] = (f"Roadmap generation {k} of {rm.base}: {rk:.3f} of {rm.target}'s bf16 "
                             f"compute (r0 {r0:.3f}, gap closed {rm.gap_closed_per_year:g}/yr). "
                             "A scenario projection, not a product.")
            cat[chip_name] = spec
            pools[pname] = {**pools[pool_name], "chip": chip_name}
            years = (k - 1) * rm.every_years
            offered = rm.first_date + dt.timedelta(days=round(years * 365))
            if offered < fleet.end:
                offer = {"chip": chip_name, "pool": pname, "from_date": offered.isoformat()}
                data["fleet"]["channels"][name]["offers"].append(offer)
    if not changed:
        return scenario
    out = type(scenario).model_validate(data)
    out._source_path = scenario.source_path
    out._notes = scenario.notes
    return out
