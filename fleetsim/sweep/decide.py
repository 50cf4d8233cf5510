"""Break-even analysis of a chip against an alternative (`fleetsim decide`).

The chip is stated relative to a reference chip (`relative_to: {chip, perf_fraction,
price_fraction}`: the story's "30-50% of an H100 at half the price"), and the analysis maps the
plane of those two fractions:

1. **Cost per Mtok at SLO**, from the capacity function alone: what one replica of the chip's
   pool and one of the alternative's cost a year (capex spread over `finance.life_years`, with
   the channel's levy and the per-node server overhead; power at the goodput load, PUE, price
   per kWh and the subsidy in force at the horizon's midpoint; other opex), over the output
   tokens it serves at SLO in a year, at its goodput times availability all year. Price enters
   linearly, so the break-even price fraction at each performance fraction is solved exactly:
   the **cost frontier**.

Capacity is computed once per performance fraction (price does not change it) and cached.

2. **Fleet-level frontier** (`futures` > 0, fleetsim.sweep.frontier): at each point, over F
   futures shared by all points, does the chip enter the planner's fleet (its share of capex and
   of installed capacity), where it enters, across the alternative's ban probability per year and
   the chip's crash rate; and a tornado of what moves that decision.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from fleetsim.errors import ScenarioError

from fleetsim.sweep.economics import (  # noqa: F401 (public here since the first decide)
    HOURS_PER_YEAR,
    ReplicaEconomics,
    _channel_of,
    _pool_of,
    _price,
    replica_economics,
)


def _with_relative(scenario, chip: str, reference: str, perf: float, price: float):
    value = f"{{chip: {reference}, perf_fraction: {perf!r}, price_fraction: {price!r}}}"
    return scenario.with_overrides([f"catalog.chips.{chip}.relative_to={value}"])


def cost_frontier(scenario, chip: str, versus: str, reference: str, perfs: list[float],
                  prices: list[float], cache=None, progress: Callable[[str], None] | None = None
                  ) -> pd.DataFrame:
    """Cost per Mtok at SLO of `chip` (at each perf x price fraction of `reference`) and of
    `versus`; `break_even_price_fraction` per perf solves chip cost = versus cost exactly."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.fleet.capacity import replica_capacities

    if scenario.fleet is None:
        raise ScenarioError("decide needs a fleet scenario (its finance prices the chips)", field="fleet")
    chip_pool = _pool_of(scenario, chip, "decide --chip")
    versus_pool = _pool_of(scenario, versus, "decide --versus")
    workload = next(w for w, wl in scenario.serving.workloads.items()
                    if wl.model == scenario.serving.pools[chip_pool].model and w in scenario.fleet.demand)
    rows = []
    for perf in perfs:
        sc = _with_relative(scenario, chip, reference, perf, 1.0)
        chips, models = resolve_catalogs(sc)
        caps = replica_capacities(sc, chips, models, cache=cache, progress=progress)
        mine = replica_economics(sc, chip_pool, caps[(chip_pool, workload)], chips)
        theirs = replica_economics(sc, versus_pool, caps[(versus_pool, workload)], chips)
        ref_price = _price(sc, reference, chips) if reference != chip else float("nan")
        versus_cost = theirs.cost_usd_per_mtok(_price(sc, versus, chips))
        # chip cost(q) = (a q P_ref + fixed) / tokens = versus cost  ->  q*
        a = mine.capex_usd_per_year_per_unit_price * ref_price
        need = versus_cost * mine.tokens_per_year / 1e6 - mine.fixed_usd_per_year
        q_star = need / a if a > 0 and mine.tokens_per_year > 0 else math.nan
        for q in prices:
            rows.append({
                "perf_fraction": perf, "price_fraction": q,
                "chip_goodput_tokens_per_s": caps[(chip_pool, workload)].effective_tokens_per_s,
                "versus_goodput_tokens_per_s": caps[(versus_pool, workload)].effective_tokens_per_s,
                "chip_cost_usd_per_mtok_at_slo": mine.cost_usd_per_mtok(q * ref_price),
                "versus_cost_usd_per_mtok_at_slo": versus_cost,
                "break_even_price_fraction": q_star,
            })
    return pd.DataFrame(rows)


def frontier_table(costs: pd.DataFrame) -> pd.DataFrame:
    """One row per performance fraction: the break-even price fraction and both costs there."""
    return (costs.groupby("perf_fraction", as_index=False)
            .agg(break_even_price_fraction=("break_even_price_fraction", "first"),
                 chip_goodput_tokens_per_s=("chip_goodput_tokens_per_s", "first"),
                 versus_goodput_tokens_per_s=("versus_goodput_tokens_per_s", "first"),
                 versus_cost_usd_per_mtok_at_slo=("versus_cost_usd_per_mtok_at_slo", "first")))


def frontier_text(front: pd.DataFrame, chip: str, versus: str, reference: str) -> str:
    lines = [f"break-even for {chip} against {versus} (cost per Mtok at SLO; chip priced as a fraction "
             f"of the {reference}'s price):",
             f"  {'perf vs ' + reference:>14}  {chip + ' tok/s/replica':>22}  {versus + ' USD/Mtok':>16}  "
             f"{'break-even price':>16}"]
    for r in front.itertuples():
        q = r.break_even_price_fraction
        q_txt = "never" if not math.isfinite(q) or q <= 0 else f"{q:.2f} x {reference}"
        lines.append(f"  {r.perf_fraction:>14.2f}  {r.chip_goodput_tokens_per_s:>22,.0f}  "
                     f"{r.versus_cost_usd_per_mtok_at_slo:>16.3g}  {q_txt:>16}")
    lines.append(f"  below the break-even price the {chip} is the cheaper way to serve at the SLO "
                 "(capex over its life, power at goodput load, other opex; no supply risk)")
    return "\n".join(lines)


def decide(scenario, chip: str, versus: str, reference: str | None, perfs: list[float],
           prices: list[float], out_dir: Path | None = None, cache=None, progress=None, *,
           futures: int = 0, bans: list[float | None] | None = None, crashes: list[float] | None = None,
           tornado: bool = False, windows: bool = False, entry_share: float | None = None,
           ban_closed_days: float = 365.0, ban_on=None, executor=None, workers: int | None = None,
           scheduler: str | None = None, dask_local: int | None = None,
           log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The cost frontier (and its table and plot in `out_dir`); with `futures` > 0 the
    fleet-level frontier too (fleetsim.sweep.frontier: does the chip enter the planner's fleet,
    over `bans` x `crashes`, and with `tornado` what moves that)."""
    ref = reference or _reference_of(scenario, chip)
    if futures:
        from fleetsim.sweep.frontier import ENTRY_SHARE, FrontierGrid, fleet_frontier

        grid = FrontierGrid(chip, versus, ref, list(perfs), list(prices), list(bans or [None]),
                            list(crashes or [1.0]), int(futures), windows, ban_closed_days,
                            ENTRY_SHARE if entry_share is None else entry_share, ban_on)
        out = fleet_frontier(scenario, grid, out_dir, tornado=tornado, executor=executor, workers=workers,
                             scheduler=scheduler, dask_local=dask_local, log=log)
        out["reference"] = ref
        out["costs"] = out["points"]
        return out
    costs = cost_frontier(scenario, chip, versus, ref, perfs, prices, cache=cache, progress=progress)
    front = frontier_table(costs)
    out = {"costs": costs, "frontier": front, "text": frontier_text(front, chip, versus, ref), "reference": ref}
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        costs.to_parquet(out_dir / "decide.parquet", index=False)
        front.to_parquet(out_dir / "frontier.parquet", index=False)
        out["plot"] = _plot(costs, front, chip, versus, ref, out_dir / "frontier.png")
    return out


def _reference_of(scenario, chip: str) -> str:
    rel = (scenario.catalog.chips.get(chip) or {}).get("relative_to") if scenario.catalog.chips else None
    return rel["chip"] if isinstance(rel, dict) and "chip" in rel else "h100"


def _plot(costs: pd.DataFrame, front: pd.DataFrame, chip: str, versus: str, ref: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perfs = sorted(costs.perf_fraction.unique())
    prices = sorted(costs.price_fraction.unique())
    grid = costs.pivot(index="price_fraction", columns="perf_fraction", values="chip_cost_usd_per_mtok_at_slo")
    versus_cost = costs.groupby("perf_fraction").versus_cost_usd_per_mtok_at_slo.first()
    ratio = grid.to_numpy() / versus_cost.reindex(grid.columns).to_numpy()[None, :]
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    mesh = ax.pcolormesh(perfs, prices, ratio, cmap="RdYlGn_r", vmin=0.5, vmax=1.5, shading="nearest")
    fig.colorbar(mesh, ax=ax, label=f"{chip} cost per Mtok / {versus}'s")
    ok = np.isfinite(front.break_even_price_fraction)
    ax.plot(front.perf_fraction[ok], front.break_even_price_fraction[ok], "k-", lw=2, label="break-even (equal cost)")
    ax.set_xlabel(f"performance as a fraction of the {ref}")
    ax.set_ylabel(f"price as a fraction of the {ref}'s")
    ax.set_ylim(min(prices), max(prices))
    ax.set_title(f"Where the {chip} serves cheaper than the {versus} at the SLO")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
