"""The fleet-level break-even frontier of `fleetsim decide` (issue 19): does the chip enter the
planner's fleet, and what moves that decision.

A *point* is a performance fraction x price fraction of the reference chip (the chip's
`relative_to`), an annual ban probability on the alternative's channel and a crash-rate scale of
the chip. Each point is a whole fleet scenario run over F futures (`fleet.replications = F`) on
the same fleet seed, so every point sees the same futures (common random numbers) and a
difference between two points is paired future by future. Per future the frontier reads the
chip's share of capex (capex + levy + refunds booked to the chip), its share of installed
capacity on the last day (capacity tokens/s) and of tokens served, and the fleet's cost per Mtok.

How a point is made from the base scenario (`point_scenario`):
- performance: `relative_to: {chip: REF, perf_fraction: p, price_fraction: 1}` in the catalog;
  the price is set on the chip's channel offers (`price_usd = q x REF's price`), so the catalog
  chip, and with it the capacity search's cache key, is the same at every price: points sharing
  a performance fraction (and crash scale) share one capacity search;
- ban probability P per year: the alternative's channel gets an exporter-side random cycle
  (mean open days 365 / lambda, lambda = -ln(1 - P), closed as `banned` for `ban_closed_days`)
  and the planner's belief `risk_per_year = lambda`; its scripted events stay (they are the
  scenario's history); P = 0 removes the exporter cycle and the belief;
- crash scale s: `reliability.chips.CHIP.hazard_multiplier = s x the catalog's` (the capacity's
  availability and the fleet's crashes both follow);
- fleet windows are off by default (the planner buys on the capacity function, windows only
  measure SLO attainment; `windows=True` keeps them), F futures run in one process, which keeps
  the catalogs and capacity table warm across them.

Work goes to the sweep machinery's executors (local process pool or Dask) in two phases: the
capacity searches (one task per distinct replica type: every pool of the first point, then the
chip's pools at each further performance x crash value), then one task per point. Finished
points go to the sweep's PointStore (`points/` in the output folder), so a rerun resumes.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from fleetsim.errors import FleetsimError, ScenarioError
from fleetsim.sweep.runner import record_failure

#: a chip "enters" a point's fleet when its mean share of the fleet's installed capacity (tokens/s
#: on the last day) is at least this. Capacity, not capex: when the chip's supply is capped the
#: planner buys the same chips at any price, and their share of capex then rises with the price.
ENTRY_SHARE = 0.01
ENTRY_METRIC = "chip_capacity_share_end"
#: bump when a stored point row changes meaning (old rows are recomputed)
FRONTIER_VERSION = 1


@dataclass
class FrontierGrid:
    """The axes of a fleet-level frontier and how each point runs."""

    chip: str
    versus: str
    reference: str
    perfs: list[float]
    prices: list[float]
    bans: list[float | None] = field(default_factory=lambda: [None])  # None: the scenario's own regime
    crashes: list[float] = field(default_factory=lambda: [1.0])
    futures: int = 8
    windows: bool = False
    ban_closed_days: float = 365.0
    entry_share: float = ENTRY_SHARE
    #: None: a ban probability is a random exporter cycle; a date: it is the probability of one
    #: dated exporter ban on that day (a fleet event with `probability`: drawn in the realised world,
    #: held with that probability in the optimiser's futures), which then lasts
    ban_on: Any = None


# -- scenarios of points -----------------------------------------------------------------------

def _channels_offering(scenario, chip: str) -> list[str]:
    return [n for n, ch in scenario.fleet.channels.items() if any(o.chip == chip for o in ch.offers)]


def reference_price(scenario, reference: str) -> float:
    """The reference chip's price as the scenario prices it (its channel offer, else the
    catalog): the same price the capacity-only frontier scales."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.sweep.economics import _price

    chips, _ = resolve_catalogs(scenario)
    if reference not in chips:
        raise ScenarioError(f"unknown reference chip '{reference}'", field="decide --reference")
    return _price(scenario, reference, chips)


def base_hazard(scenario, chip: str) -> float:
    """The chip's crash-hazard multiplier as the run resolves it (catalog, then the scenario's)."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.reliability import resolve_chip
    from fleetsim.scenario.reliability import ReliabilityConfig

    chips, _ = resolve_catalogs(scenario)
    rel = scenario.reliability if scenario.reliability is not None else ReliabilityConfig()
    return float(resolve_chip(rel, chip, chips).hazard_multiplier)


def point_overrides(scenario, grid: FrontierGrid, perf: float, price: float, ban: float | None,
                    crash: float, ref_price: float | None = None, hazard: float | None = None) -> list[str]:
    """`--set` strings that make one frontier point of `scenario` (see the module doc)."""
    f = scenario.fleet
    chip = grid.chip
    ref_price = reference_price(scenario, grid.reference) if ref_price is None else ref_price
    rel = {"chip": grid.reference, "perf_fraction": float(perf), "price_fraction": 1.0}
    sets = [f"catalog.chips.{chip}.relative_to={json.dumps(rel)}",
            f"fleet.replications={int(grid.futures)}"]
    if not grid.windows:
        sets.append("fleet.windows.enabled=false")
    for name in _channels_offering(scenario, chip):
        offers = []
        for i, off in enumerate(f.channels[name].offers):
            d = off.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
            if off.chip == chip:
                if off.price_table is not None:
                    raise ScenarioError(f"decide sets the price of {chip}: its offer has a price_table",
                                        field=f"fleet.channels.{name}.offers.{i}.price_table")
                d["price_usd"] = float(price) * ref_price
            offers.append(d)
        sets.append(f"fleet.channels.{name}.offers={json.dumps(offers)}")
    if ban is not None and grid.ban_on is not None:
        if not 0.0 <= ban <= 1.0:
            raise ScenarioError(f"ban probability {ban}: give 0 <= P <= 1", field="decide --ban")
        import datetime as _dt

        end = f.start + _dt.timedelta(days=round(f.years * 365))
        if not f.start <= grid.ban_on < end:
            raise ScenarioError(f"--ban-on {grid.ban_on} is outside the fleet's horizon ({f.start} to {end})",
                                field="decide --ban-on")
        if ban > 0:
            events = [e.model_dump(mode="json", exclude_none=True, exclude_defaults=True) for e in f.events]
            events += [{"date": str(grid.ban_on), "channel": name, "exporter": "banned", "probability": float(ban),
                        "note": f"decide --ban {ban:g} --ban-on {grid.ban_on}"}
                       for name in _channels_offering(scenario, grid.versus)]
            sets.append(f"fleet.events={json.dumps(events)}")
    elif ban is not None:
        for name in _channels_offering(scenario, grid.versus):
            ch = f.channels[name]
            cycles = ch.random_cycle if isinstance(ch.random_cycle, list) else \
                [ch.random_cycle] if ch.random_cycle is not None else []
            from fleetsim.scenario.fleet import cycle_side

            keep = [c.model_dump(mode="json", exclude_none=True) for c in cycles if cycle_side(c) != "exporter"]
            if not 0.0 <= ban < 1.0:
                raise ScenarioError(f"ban probability {ban} per year: give 0 <= P < 1", field="decide --ban")
            lam = -math.log1p(-ban)
            if lam > 0:
                keep.append({"mean_open_days": 365.0 / lam, "mean_closed_days": float(grid.ban_closed_days),
                             "closed_state": "banned"})
            value = "null" if not keep else json.dumps(keep if len(keep) > 1 else keep[0])
            sets += [f"fleet.channels.{name}.random_cycle={value}", f"fleet.channels.{name}.risk_per_year={lam!r}"]
    if crash != 1.0:
        hazard = base_hazard(scenario, chip) if hazard is None else hazard
        sets.append(f"reliability.chips.{chip}.hazard_multiplier={hazard * float(crash)!r}")
    return sets


def without_chip(scenario, chip: str):
    """`scenario` with `chip` no longer offered: its offers removed, a channel left without offers
    removed with what names it (reference events, initial fleet). Pricing it out would not do: a
    security-weighted planner still buys a domestic chip at 1000 x the price."""
    from fleetsim.scenario.model import Scenario

    data = scenario.model_dump(mode="json", by_alias=True, exclude_unset=True)
    f = data["fleet"]
    gone = []
    for name, ch in list(f["channels"].items()):
        offers = [o for o in ch["offers"] if o["chip"] != chip]
        if offers:
            ch["offers"] = offers
        elif len(offers) != len(ch["offers"]):
            del f["channels"][name]
            gone.append(name)
    refs = f.get("reference_events") or {}
    for role, names in list(refs.items()):
        keep = [n for n in ([names] if isinstance(names, str) else names) if n not in gone]
        if not keep:
            del refs[role]
        else:
            refs[role] = keep[0] if isinstance(names, str) else keep
    if "initial_fleet" in f:
        f["initial_fleet"] = [c for c in f["initial_fleet"] if c.get("chip") != chip and c.get("channel") not in gone]
    out = Scenario.model_validate(data)
    out._source_path, out._notes = scenario._source_path, list(scenario._notes)
    return out


# -- work done in a worker ---------------------------------------------------------------------

def _pools_only(scenario, pools: list[str]):
    sv = scenario.serving
    return scenario.model_copy(update={"serving": sv.model_copy(update={"pools": {p: sv.pools[p] for p in pools}})})


def run_capacity(task: dict[str, Any]) -> dict[str, Any]:
    """Capacity searches of some pools (in a worker): written to the shared on-disk cache."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.fleet.capacity import replica_capacities, seasonal_capacities
    from fleetsim.results.cache import ResultCache

    t0, c0 = time.perf_counter(), time.process_time()
    sc = _pools_only(task["scenario"], task["pools"])
    chips, models = resolve_catalogs(sc)
    cache = ResultCache()
    replica_capacities(sc, chips, models, cache=cache)
    seasonal_capacities(sc, chips, models, cache=cache)
    return {"pools": task["pools"], "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def chip_shares(res, chip: str) -> dict[str, float]:
    """One future's figures for `chip`: share of capex, of capacity on the last day, of tokens
    served, chips installed at the end."""
    led = res.ledger
    kinds = np.asarray(led["kind"])
    amt = np.asarray(led["amount_usd"], dtype=float)
    capex_rows = np.isin(kinds, ["capex", "levy", "refund"])
    total = float(amt[capex_rows].sum())
    mine = float(amt[capex_rows & (np.asarray(led["chip"]) == chip)].sum())
    tl = res.timeline
    chips = np.asarray(tl["chip"])
    dates = np.asarray(tl["date"])
    last = dates == dates.max()
    cap = np.asarray(tl["capacity_tokens_per_s"], dtype=float)
    served = np.asarray(tl["served_tokens_per_s"], dtype=float)
    inst = np.asarray(tl["installed"], dtype=float)
    is_chip = chips == chip
    cap_end = float(cap[last].sum())
    served_all = float(served.sum())
    return {
        "chip_capex_usd": mine,
        "chip_capex_share": mine / total if total > 0 else 0.0,
        "chip_capacity_share_end": float(cap[last & is_chip].sum()) / cap_end if cap_end > 0 else 0.0,
        "chip_served_share": float(served[is_chip].sum()) / served_all if served_all > 0 else 0.0,
        "chip_installed_end": float(inst[last & is_chip].sum()),
        "chip_entered": float(mine > 0),
    }


FUTURE_KEYS = ("chip_capex_usd", "chip_capex_share", "chip_capacity_share_end", "chip_served_share",
               "chip_installed_end", "chip_entered", "cost_usd_per_mtok", "all_in_cost_usd_per_mtok",
               "unmet_demand_share", "capex_usd_total")


def run_frontier_point(task: dict[str, Any]) -> dict[str, Any]:
    """One point's F futures in this process (warm catalogs and capacity shared across them);
    never raises: a failing point is recorded."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.fleet.capacity import replica_capacities, seasonal_capacities
    from fleetsim.fleet.futures import WORKERS_ENV, run_futures
    from fleetsim.fleet.windows import window_runner
    from fleetsim.results.cache import ResultCache
    from fleetsim.sweep.economics import _pool_of, _price, replica_economics

    t0, c0 = time.perf_counter(), time.process_time()
    row: dict[str, Any] = {"key": task["key"], "status": "ok", "error": ""}
    before = os.environ.get(WORKERS_ENV)
    os.environ[WORKERS_ENV] = "1"  # parallel across points: a point's futures share its process
    try:
        sc, chip, versus = task["scenario"], task["chip"], task["versus"]
        chips, models = resolve_catalogs(sc)
        cache = ResultCache()
        caps = replica_capacities(sc, chips, models, cache=cache)
        grid = seasonal_capacities(sc, chips, models, cache=cache)
        fut = run_futures(sc, chips, models, caps, window_runner=window_runner(chips, models),
                          keep_all=True, caps_grid=grid)
        per: dict[str, list] = {k: [] for k in ("seed", *FUTURE_KEYS)}
        for s, res in zip(fut.seeds, fut.all_results):
            fig = chip_shares(res, chip) | {k: res.summary.get(k) for k in FUTURE_KEYS
                                             if k in res.summary}
            per["seed"].append(int(s))
            for k in FUTURE_KEYS:
                v = fig.get(k)
                per[k].append(float(v) if v is not None else math.nan)
        row["futures_json"] = json.dumps(per, sort_keys=True)
        wl = next(w for w, x in sc.serving.workloads.items()
                  if x.model == sc.serving.pools[_pool_of(sc, chip, "decide --chip")].model)
        for who, name in (("chip", chip), ("versus", versus)):
            pool = _pool_of(sc, name, f"decide --{who}")
            cap = caps[(pool, wl)]
            econ = replica_economics(sc, pool, cap, chips)
            row[f"{who}_goodput_tokens_per_s"] = cap.effective_tokens_per_s
            row[f"{who}_cost_usd_per_mtok_at_slo"] = econ.cost_usd_per_mtok(_price(sc, name, chips))
    except Exception as exc:  # noqa: BLE001 (a failing point is recorded; the others go on)
        record_failure(row, exc)
    finally:
        if before is None:
            os.environ.pop(WORKERS_ENV, None)
        else:
            os.environ[WORKERS_ENV] = before
    row["wall_s"] = time.perf_counter() - t0
    row["cpu_s"] = time.process_time() - c0
    return row


# -- the parent: plan, run, assemble -----------------------------------------------------------

def _key(scenario, tag: str) -> str:
    import hashlib

    from fleetsim.sweep.store import content_key

    return hashlib.sha256(f"{content_key(scenario)}:{tag}:{FRONTIER_VERSION}".encode()).hexdigest()[:24]


@dataclass
class PointPlan:
    """Every point of a frontier (and tornado) resolved to its scenario, before anything runs."""

    points: list[dict[str, Any]]          # axis values (+ label/side for tornado points)
    scenarios: list[Any]
    keys: list[str]
    capacity_tasks: list[dict[str, Any]]


def plan_points(scenario, grid: FrontierGrid, specs: list[dict[str, Any]]) -> PointPlan:
    """Scenarios, store keys and capacity tasks for `specs` (dicts with perf, price, ban, crash and
    optional `sets`: extra overrides); every point is validated here, before any run."""
    from fleetsim.sweep.economics import _pool_of

    ref_price = reference_price(scenario, grid.reference)
    hazard = base_hazard(scenario, grid.chip) if any(s["crash"] != 1.0 for s in specs) else None
    chip_pools = [n for n, p in scenario.serving.pools.items() if p.chip == grid.chip]
    _pool_of(scenario, grid.chip, "decide --chip")
    _pool_of(scenario, grid.versus, "decide --versus")
    scenarios, keys, cap_tasks, seen = [], [], [], set()
    for i, s in enumerate(specs):
        sets = point_overrides(scenario, grid, s["perf"], s["price"], s["ban"], s["crash"], ref_price, hazard)
        sets += list(s.get("sets", ()))
        try:
            sc = scenario.with_overrides(sets)
            if s.get("role") == "without":
                sc = without_chip(sc, grid.chip)
        except FleetsimError as exc:
            raise type(exc)(f"decide point {s}: {exc.message}", file=exc.file, field=exc.field) from None
        scenarios.append(sc)
        keys.append(_key(sc, f"frontier:{grid.chip}"))
        cap_sets = tuple(x for x in s.get("sets", ()) if _touches_capacity([x]))
        cap_id = (s["perf"], s["crash"], cap_sets)
        if not cap_tasks or cap_sets:  # every replica type, one task each (in parallel)
            if cap_id not in seen:
                cap_tasks += [{"scenario": sc, "pools": [p]} for p in sc.serving.pools]
        elif cap_id not in seen:  # only the chip's replica types differ from the first point's
            cap_tasks.append({"scenario": sc, "pools": chip_pools})
        seen.add(cap_id)
    return PointPlan(specs, scenarios, keys, cap_tasks)


def _touches_capacity(sets) -> bool:
    return any(s.startswith(("serving.", "catalog.", "reliability.")) for s in sets)


def run_points(plan: PointPlan, grid: FrontierGrid, out_dir: Path | None, executor,
               log: Callable[[str], None] | None = None) -> tuple[list[dict], dict[str, float]]:
    """Run the plan's capacity tasks, then its points not yet in the store; rows in plan order
    and the time each phase took (wall; CPU summed over workers)."""
    from fleetsim.sweep.store import PointStore

    store = PointStore(out_dir) if out_dir is not None else None
    rows: dict[str, dict] = {}
    todo, seen = [], set()
    for k, sc in zip(plan.keys, plan.scenarios):
        if k in seen:
            continue
        seen.add(k)
        got = store.get(k) if store is not None else None
        if got is not None and got.get("status") == "ok":
            rows[k] = got
        else:
            todo.append({"key": k, "scenario": sc, "chip": grid.chip, "versus": grid.versus})
    times = {"capacity_wall_s": 0.0, "capacity_cpu_s": 0.0, "points_wall_s": 0.0, "points_cpu_s": 0.0,
             "points_run": float(len(todo)), "points_from_store": float(len(seen) - len(todo))}
    if log:
        log(f"{len(plan.points)} points ({len(seen)} distinct), {len(seen) - len(todo)} in the store, "
            f"{len(todo)} to run, {grid.futures} futures each")
    if not todo:
        return [rows[k] for k in plan.keys], times
    t0 = time.perf_counter()
    for r in executor.map_unordered(run_capacity, plan.capacity_tasks):
        times["capacity_cpu_s"] += r["cpu_s"]
    times["capacity_wall_s"] = time.perf_counter() - t0
    if log:
        log(f"capacity: {len(plan.capacity_tasks)} replica-type searches in {times['capacity_wall_s']:.1f} s")
    t1 = time.perf_counter()
    done = 0
    for r in executor.map_unordered(run_frontier_point, todo):
        if store is not None:
            store.put(r)
        rows[r["key"]] = r
        times["points_cpu_s"] += r["cpu_s"]
        done += 1
        if log and (done % max(1, len(todo) // 10) == 0 or done == len(todo)):
            log(f"points {done}/{len(todo)} ({time.perf_counter() - t1:.0f} s)")
    times["points_wall_s"] = time.perf_counter() - t1
    failed = [r for r in rows.values() if r["status"] != "ok"]
    if failed:
        raise FleetsimError(f"{len(failed)} decide point(s) failed; first: {failed[0]['error']}")
    return [rows[k] for k in plan.keys], times


def _futures(row: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in json.loads(row["futures_json"]).items()}


def _proportion(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval of k successes in n."""
    if n == 0:
        return math.nan, math.nan
    z, p = 1.959964, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def point_table(plan: PointPlan, rows: list[dict], baselines: dict[Any, dict] | None = None) -> pd.DataFrame:
    """One row per point: the chip's shares (mean and 95% interval over futures), entry
    probability, fleet cost per Mtok and, against the same futures without the chip, the paired
    differences in fleet cost per Mtok and in unmet demand (what the chip buys)."""
    from fleetsim.stats import t_interval

    out = []
    for spec, row in zip(plan.points, rows):
        fu = _futures(row)
        r = {k: v for k, v in spec.items() if k != "sets"}
        r["futures"] = len(fu["seed"])
        for k in ("chip_capex_share", "chip_capacity_share_end", "chip_served_share", "cost_usd_per_mtok",
                  "unmet_demand_share", "chip_installed_end"):
            m, lo, hi = t_interval(fu[k])
            r[k], r[f"{k}_lo"], r[f"{k}_hi"] = m, lo, hi
        k_in = int(np.nansum(fu["chip_entered"]))
        r["chip_entered_share"] = k_in / len(fu["seed"])
        r["chip_entered_share_lo"], r["chip_entered_share_hi"] = _proportion(k_in, len(fu["seed"]))
        for c in ("chip_goodput_tokens_per_s", "versus_goodput_tokens_per_s", "chip_cost_usd_per_mtok_at_slo",
                  "versus_cost_usd_per_mtok_at_slo"):
            r[c] = float(row.get(c, math.nan))
        r["cost_difference_usd_per_mtok_at_slo"] = r["chip_cost_usd_per_mtok_at_slo"] - r["versus_cost_usd_per_mtok_at_slo"]
        base = (baselines or {}).get(spec.get("ban"))
        if base is not None:
            b = _futures(base)
            same = np.array_equal(b["seed"], fu["seed"])
            d = fu["cost_usd_per_mtok"] - b["cost_usd_per_mtok"] if same else np.array([math.nan])
            r["fleet_cost_change_usd_per_mtok"], r["fleet_cost_change_lo"], r["fleet_cost_change_hi"] = t_interval(d)
            u = fu["unmet_demand_share"] - b["unmet_demand_share"] if same else np.array([math.nan])
            r["unmet_demand_change"], r["unmet_demand_change_lo"], r["unmet_demand_change_hi"] = t_interval(u)
        out.append(r)
    return pd.DataFrame(out)


def entry_price(prices: np.ndarray, share: np.ndarray, threshold: float) -> float:
    """The highest price fraction at which the share is still >= threshold, interpolated linearly
    between grid prices where it crosses (NaN: below the threshold at every price; the top of the
    grid: above it at every price, said by `entry_censored`)."""
    order = np.argsort(prices)
    q, s = np.asarray(prices, float)[order], np.asarray(share, float)[order]
    above = s >= threshold
    if not above.any():
        return math.nan
    if above.all():
        return float(q[-1])
    j = int(np.nonzero(above)[0].max())
    if j == len(q) - 1:
        return float(q[-1])
    s0, s1 = s[j], s[j + 1]
    t = (s0 - threshold) / (s0 - s1) if s0 != s1 else 0.0
    return float(q[j] + t * (q[j + 1] - q[j]))


def entry_bracket(prices, share, threshold: float) -> tuple[float, float]:
    """(the highest grid price at which the share is >= threshold, the next grid price above it):
    the entry line lies between them. NaN for a side the grid does not reach."""
    order = np.argsort(prices)
    q, s = np.asarray(prices, float)[order], np.asarray(share, float)[order]
    above = np.nonzero(s >= threshold)[0]
    if not len(above):
        return math.nan, float(q[0])
    j = int(above.max())
    return float(q[j]), (float(q[j + 1]) if j + 1 < len(q) else math.nan)


def frontier_lines(points: pd.DataFrame, threshold: float, metric: str = ENTRY_METRIC) -> pd.DataFrame:
    """Per perf x ban x crash: the entry price fraction (where the chip's mean share, `metric`,
    falls to `threshold`) with a band from the share's interval bounds."""
    rows = []
    keys = ["perf", "ban", "crash"]
    pts = points.assign(ban=points["ban"].astype(float))
    for (perf, ban, crash), g in pts.groupby(keys, dropna=False, sort=True):
        q = g["price"].to_numpy()
        e = entry_price(q, g[metric].to_numpy(), threshold)
        last_in, first_out = entry_bracket(q, g[metric].to_numpy(), threshold)
        rows.append({"perf_fraction": perf, "ban_probability_per_year": ban, "crash_scale": crash,
                     "entry_price_fraction": e, "entry_last_price_in": last_in, "entry_first_price_out": first_out,
                     "entry_price_fraction_lo": entry_price(q, g[f"{metric}_lo"].to_numpy(), threshold),
                     "entry_price_fraction_hi": entry_price(q, g[f"{metric}_hi"].to_numpy(), threshold),
                     "entry_censored": bool(math.isfinite(e) and e >= q.max()),
                     "chip_capacity_share_at_lowest_price": float(g.sort_values("price")[metric].iloc[0]),
                     "chip_capacity_share_at_highest_price": float(g.sort_values("price")[metric].iloc[-1]),
                     "chip_capex_share_at_lowest_price": float(g.sort_values("price").chip_capex_share.iloc[0])})
    return pd.DataFrame(rows)


# -- the whole analysis ------------------------------------------------------------------------

NAMES = {"perf": "perf_fraction", "price": "price_fraction", "ban": "ban_probability_per_year",
         "crash": "crash_scale"}


def _own_fractions(scenario, chip: str) -> tuple[float, float]:
    rel = (scenario.catalog.chips.get(chip) or {}).get("relative_to") if scenario.catalog.chips else None
    if isinstance(rel, dict):
        return float(rel.get("perf_fraction", 1.0)), float(rel.get("price_fraction", 1.0))
    return 1.0, 1.0


def tornado_inputs(scenario, grid: FrontierGrid) -> list[dict[str, Any]]:
    """The default inputs of the tornado, each with a low and a high side (point specs) around the
    base point (the chip's own relative_to, the scenario's own regime, catalog crash rate)."""
    perf0, price0 = _own_fractions(scenario, grid.chip)
    f = scenario.fleet
    base = {"perf": perf0, "price": price0, "ban": None, "crash": 1.0}
    out = [
        {"input": f"performance (x {grid.reference})", "low": perf0 - 0.1, "high": perf0 + 0.1,
         "low_spec": base | {"perf": round(max(0.05, perf0 - 0.1), 6)}, "high_spec": base | {"perf": round(perf0 + 0.1, 6)}},
        {"input": f"price (x {grid.reference}'s)", "low": price0 * 0.8, "high": price0 * 1.2,
         "low_spec": base | {"price": price0 * 0.8}, "high_spec": base | {"price": price0 * 1.2}},
        {"input": f"{grid.versus} ban probability per year" if grid.ban_on is None else
                  f"{grid.versus} probability of a ban on {grid.ban_on}", "low": 0.0, "high": 0.5,
         "low_spec": base | {"ban": 0.0}, "high_spec": base | {"ban": 0.5}},
        {"input": f"{grid.chip} crash rate (x catalog)", "low": 0.5, "high": 2.0,
         "low_spec": base | {"crash": 0.5}, "high_spec": base | {"crash": 2.0}},
    ]
    growth = {c: d.growth_per_year for c, d in f.demand.items() if getattr(d, "growth_per_year", None) is not None}
    if growth:
        g0 = next(iter(growth.values()))
        out.append({"input": "demand growth per year (x)", "low": 0.5, "high": 1.5,
                    "low_spec": base | {"sets": [f"fleet.demand.{c}.growth_per_year={g * 0.5!r}" for c, g in growth.items()]},
                    "high_spec": base | {"sets": [f"fleet.demand.{c}.growth_per_year={g * 1.5!r}" for c, g in growth.items()]},
                    "note": f"base {g0:g}"})
    budget = f.budget.total_usd
    out.append({"input": "budget (x)", "low": 0.8, "high": 1.2,
                "low_spec": base | {"sets": [f"fleet.budget.total_usd={budget * 0.8!r}"]},
                "high_spec": base | {"sets": [f"fleet.budget.total_usd={budget * 1.2!r}"]}})
    kwh = f.finance.power_usd_per_kwh
    out.append({"input": "power price (x)", "low": 0.75, "high": 1.25,
                "low_spec": base | {"sets": [f"fleet.finance.power_usd_per_kwh={kwh * 0.75!r}"]},
                "high_spec": base | {"sets": [f"fleet.finance.power_usd_per_kwh={kwh * 1.25!r}"]}})
    for name in _channels_offering(scenario, grid.chip):
        fab = f.channels[name].fab
        if fab is not None and getattr(fab, "dies_per_quarter", None):
            dies = dict(fab.dies_per_quarter)
            sides = {}
            for side, x in (("low", 0.5), ("high", 2.0)):
                sides[side] = [f"fleet.channels.{name}.fab.dies_per_quarter="
                               f"{json.dumps({str(k): float(v) * x for k, v in dies.items()})}"]
            out.append({"input": f"{grid.chip} fab output (x)", "low": 0.5, "high": 2.0,
                        "low_spec": base | {"sets": sides["low"]}, "high_spec": base | {"sets": sides["high"]}})
            break
    return out


def _specs(grid: FrontierGrid, scenario, tornado: bool):
    import itertools

    specs = [{"perf": p, "price": q, "ban": b, "crash": c, "role": "grid"}
             for b, c, p, q in itertools.product(grid.bans, grid.crashes, grid.perfs, grid.prices)]
    # the same futures without the chip (not offered), once per ban probability: the chip's value
    for b in grid.bans:
        specs.append({"perf": grid.perfs[0], "price": 1.0, "ban": b, "crash": 1.0, "role": "without"})
    inputs = []
    if tornado:
        inputs = tornado_inputs(scenario, grid)
        if not isinstance(tornado, bool):  # a list of words: only the inputs whose name has one
            inputs = [i for i in inputs if any(w in i["input"] for w in tornado)]
        perf0, price0 = _own_fractions(scenario, grid.chip)
        specs.append({"perf": perf0, "price": price0, "ban": None, "crash": 1.0, "role": "tornado_base"})
        for i, inp in enumerate(inputs):
            for side in ("low", "high"):
                specs.append(dict(inp[f"{side}_spec"]) | {"role": "tornado", "input_index": i, "side": side})
    return specs, inputs


def _paired(a: dict, b: dict, key: str) -> tuple[float, float, float]:
    from fleetsim.stats import t_interval

    fa, fb = _futures(a), _futures(b)
    if not np.array_equal(fa["seed"], fb["seed"]):
        return math.nan, math.nan, math.nan
    return t_interval(fb[key] - fa[key])


def tornado_table(inputs, specs, rows) -> pd.DataFrame:
    """Per input and side: the change from the base point in the chip's share of installed
    capacity at the end and of capex, in the
    fleet's cost per Mtok (paired on the futures, 95% intervals) and in the capacity-only cost
    difference (chip minus alternative at the SLO); sorted by the swing in the chip's share."""
    base = next(r for s, r in zip(specs, rows) if s["role"] == "tornado_base")
    out = []
    for i, inp in enumerate(inputs):
        rec = {"input": inp["input"], "low": inp["low"], "high": inp["high"]}
        for side in ("low", "high"):
            r = next(r for s, r in zip(specs, rows) if s["role"] == "tornado" and s["input_index"] == i
                     and s["side"] == side)
            for key, name in ((ENTRY_METRIC, "share"), ("chip_capex_share", "capex_share"),
                              ("cost_usd_per_mtok", "fleet_cost")):
                m, lo, hi = _paired(base, r, key)
                rec[f"{side}_{name}_change"], rec[f"{side}_{name}_change_lo"], rec[f"{side}_{name}_change_hi"] = m, lo, hi
            diff = lambda x: float(x["chip_cost_usd_per_mtok_at_slo"]) - float(x["versus_cost_usd_per_mtok_at_slo"])
            rec[f"{side}_cost_difference_change_usd_per_mtok"] = diff(r) - diff(base)
        rec["share_swing"] = abs(rec["high_share_change"] - rec["low_share_change"])
        out.append(rec)
    fb = _futures(base)
    t = pd.DataFrame(out).sort_values("share_swing", ascending=False, kind="stable").reset_index(drop=True)
    t.attrs["base_chip_capacity_share"] = float(np.nanmean(fb[ENTRY_METRIC]))
    t.attrs["base_chip_capex_share"] = float(np.nanmean(fb["chip_capex_share"]))
    t.attrs["base_cost_usd_per_mtok"] = float(np.nanmean(fb["cost_usd_per_mtok"]))
    return t


def break_even_from_points(points: pd.DataFrame) -> pd.DataFrame:
    """Per perf x crash, the price fraction where the chip's capacity-only cost per Mtok at the
    SLO equals the alternative's: the chip's cost is linear in its price, so two grid prices fix
    it exactly."""
    rows = []
    for (perf, crash), g in points.groupby(["perf", "crash"], sort=True):
        g = g.drop_duplicates("price").sort_values("price")
        q, c = g["price"].to_numpy(float), g["chip_cost_usd_per_mtok_at_slo"].to_numpy(float)
        v = float(g["versus_cost_usd_per_mtok_at_slo"].iloc[0])
        qs = math.nan
        if len(q) >= 2 and np.isfinite(c[:2]).all() and c[1] != c[0]:
            slope = (c[-1] - c[0]) / (q[-1] - q[0])
            qs = (v - (c[0] - slope * q[0])) / slope
        rows.append({"perf": perf, "crash": crash, "break_even_price_fraction": qs,
                     "chip_goodput_tokens_per_s": float(g["chip_goodput_tokens_per_s"].iloc[0]),
                     "versus_goodput_tokens_per_s": float(g["versus_goodput_tokens_per_s"].iloc[0]),
                     "versus_cost_usd_per_mtok_at_slo": v})
    return pd.DataFrame(rows)


def fleet_frontier(scenario, grid: FrontierGrid, out_dir: Path | None = None, *, tornado: bool | list[str] = False,
                   executor=None, workers: int | None = None, scheduler: str | None = None,
                   dask_local: int | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The fleet-level frontier (and optionally the tornado) of `grid` on `scenario`: tables,
    plots and decide.html in `out_dir`. `tornado`: True for every input of `tornado_inputs`, or
    words naming some of them ("price", "ban")."""
    from fleetsim.sweep.runner import _make_executor

    if scenario.fleet is None:
        raise ScenarioError("decide needs a fleet scenario (its finance prices the chips)", field="fleet")
    if grid.futures < 2:
        raise ScenarioError(f"--futures {grid.futures}: give at least 2 (an interval needs two futures)",
                            field="decide --futures")
    t0 = time.perf_counter()
    specs, inputs = _specs(grid, scenario, tornado)
    plan = plan_points(scenario, grid, specs)
    if executor is None and workers == 1 and scheduler is None and dask_local is None:
        from fleetsim.sweep.executors import SerialExecutor

        executor = SerialExecutor()  # one worker: this process (no pool to start)
    ex = executor or _make_executor(workers, scheduler, dask_local, True)
    try:
        rows, times = run_points(plan, grid, out_dir, ex, log)
    finally:
        if executor is None:
            ex.close()
    is_grid = [s["role"] == "grid" for s in specs]
    gplan = PointPlan([s for s, g in zip(specs, is_grid) if g], [], [], [])
    grows = [r for r, g in zip(rows, is_grid) if g]
    baselines = {s["ban"]: r for s, r in zip(specs, rows) if s["role"] == "without"}
    points = point_table(gplan, grows, baselines)
    lines = frontier_lines(points, grid.entry_share)
    be = break_even_from_points(points)
    front = lines.merge(be.rename(columns={"perf": "perf_fraction", "crash": "crash_scale"}),
                        on=["perf_fraction", "crash_scale"], how="left")
    front = front[["perf_fraction", "ban_probability_per_year", "crash_scale", "break_even_price_fraction",
                   "entry_price_fraction", "entry_price_fraction_lo", "entry_price_fraction_hi", "entry_censored",
                   "entry_last_price_in", "entry_first_price_out",
                   "chip_capacity_share_at_lowest_price", "chip_capacity_share_at_highest_price",
                   "chip_capex_share_at_lowest_price", "chip_goodput_tokens_per_s", "versus_goodput_tokens_per_s",
                   "versus_cost_usd_per_mtok_at_slo"]]
    points = points.drop(columns=["role"]).rename(columns=NAMES)
    futures = _future_rows([s for s in specs], rows)
    out: dict[str, Any] = {"points": points, "frontier": front, "futures": futures, "times": times,
                           "grid": grid}
    if tornado:
        out["tornado"] = tornado_table(inputs, specs, rows)
    out["times"]["total_wall_s"] = time.perf_counter() - t0
    out["text"] = fleet_text(out)
    if out_dir is not None:
        write_outputs(out, Path(out_dir))
    return out


def _future_rows(specs, rows) -> pd.DataFrame:
    recs = []
    for i, (s, r) in enumerate(zip(specs, rows)):
        fu = json.loads(r["futures_json"])
        for j in range(len(fu["seed"])):
            rec = {"point": i, "role": s["role"], **{NAMES[k]: s[k] for k in NAMES}, "future": j}
            if s["role"] == "without":
                rec["price_fraction"] = math.nan  # not offered
            rec["ban_probability_per_year"] = math.nan if s["ban"] is None else float(s["ban"])
            rec["tornado_input"] = s.get("input_index", -1)
            rec["tornado_side"] = s.get("side", "")
            rec |= {k: fu[k][j] for k in fu}
            recs.append(rec)
    return pd.DataFrame(recs)


def _fmt_ban(b) -> str:
    return "scenario's own regime" if b is None or (isinstance(b, float) and math.isnan(b)) else f"{b:g}/yr"


def _combo_lines(g: FrontierGrid, f: pd.DataFrame, ban, crash) -> list[str]:
    lines = []
    what = (f"probability of a ban on {g.ban_on}: {ban:g}" if g.ban_on is not None and math.isfinite(ban)
            else f"ban probability: {_fmt_ban(ban)}")
    lines.append(f"  {g.versus} {what}, {g.chip} crash rate x{crash:g}")
    lines.append(f"    {'perf':>6}  {'break-even price':>16}  {'enters up to price':>24}  "
                 f"{'capacity share at lowest / highest price':>40}")
    for r in f.itertuples():
        be = r.break_even_price_fraction
        be_t = "never" if not math.isfinite(be) or be <= 0 else f"{be:.2f}"
        last_in, first_out = r.entry_last_price_in, r.entry_first_price_out
        if not math.isfinite(last_in):
            e_t = f"not even at {first_out:.2f}"
        elif not math.isfinite(first_out):
            e_t = f"at every price to {last_in:.2f}"
        else:
            e_t = f"{last_in:.2f}, not {first_out:.2f}"
        sh = f"{r.chip_capacity_share_at_lowest_price:.1%} / {r.chip_capacity_share_at_highest_price:.1%}"
        lines.append(f"    {r.perf_fraction:>6.2f}  {be_t:>16}  {e_t:>24}  {sh:>40}")
    return lines


def fleet_text(out: dict[str, Any]) -> str:
    from fleetsim.results.rounding import format_interval

    g: FrontierGrid = out["grid"]
    front = out["frontier"]
    lines = [f"fleet-level frontier of {g.chip} against {g.versus} ({g.futures} futures a point, the same "
             f"futures at every point; prices as a fraction of the {g.reference}'s):",
             f"  the chip enters where its mean share of the fleet's installed capacity at the end is >= "
             f"{g.entry_share:.0%}; 'break-even' is where its cost per Mtok at the SLO equals the alternative's "
             "(capacity only, no supply risk)"]
    for b in g.bans:  # in the order given
        for crash in g.crashes:
            ban = math.nan if b is None else float(b)
            f = _select(front, ban, crash).sort_values("perf_fraction")
            lines += _combo_lines(g, f, ban, crash)
    if "tornado" in out:
        t = out["tornado"]
        lines.append(f"what moves the decision (base: {g.chip}'s own relative_to; change from the base "
                     f"share {t.attrs['base_chip_capacity_share']:.1%} of installed capacity at the end, paired on the futures):")
        for r in t.itertuples():
            lo = format_interval(r.low_share_change, r.low_share_change_lo, r.low_share_change_hi, "share")
            hi = format_interval(r.high_share_change, r.high_share_change_lo, r.high_share_change_hi, "share")
            lines.append(f"  {r.input:<40} low {r.low:g}: {lo:>18}   high {r.high:g}: {hi:>18}")
            lo = format_interval(r.low_fleet_cost_change, r.low_fleet_cost_change_lo, r.low_fleet_cost_change_hi)
            hi = format_interval(r.high_fleet_cost_change, r.high_fleet_cost_change_lo, r.high_fleet_cost_change_hi)
            lines.append(f"  {'  fleet cost, USD/Mtok':<40} low: {lo:>22}   high: {hi:>22}")
    tm = out["times"]
    lines.append(f"time: capacity {tm['capacity_wall_s']:.0f} s wall ({tm['capacity_cpu_s']:.0f} s CPU), "
                 f"points {tm['points_wall_s']:.0f} s wall ({tm['points_cpu_s']:.0f} s CPU in workers), "
                 f"{int(tm['points_run'])} run, {int(tm['points_from_store'])} from the store")
    return "\n".join(lines)


# -- outputs -----------------------------------------------------------------------------------

def write_outputs(out: dict[str, Any], out_dir: Path) -> list[Path]:
    """decide.parquet (a row per point), frontier.parquet (a row per perf x ban x crash),
    decide_futures.parquet (a row per point x future), tornado.parquet, the plots and decide.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, key in (("decide", "points"), ("frontier", "frontier"), ("decide_futures", "futures"),
                      ("tornado", "tornado")):
        if key in out:
            df = out[key].copy()
            df.attrs = {}
            for c in df.columns:
                if df[c].dtype == object:
                    df[c] = df[c].map(lambda x: math.nan if x is None else x)
            path = out_dir / f"{name}.parquet"
            df.to_parquet(path, index=False)
            files.append(path)
    pngs = [plot_frontier(out, out_dir / "frontier.png")]
    if len(out["frontier"].groupby(["ban_probability_per_year", "crash_scale"], dropna=False)) > 1:
        pngs.append(plot_risk(out, out_dir / "frontier_risk.png"))
    if "tornado" in out:
        pngs.append(plot_tornado(out, out_dir / "tornado.png"))
    out["plots"] = pngs
    page = out_dir / "decide.html"
    page.write_text(html_page(out, pngs))
    return files + pngs + [page]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _first_combo(out: dict[str, Any]):
    """The first --ban and --crash values (the plot of the plane shows that combination)."""
    g: FrontierGrid = out["grid"]
    ban = g.bans[0]
    return (math.nan if ban is None else float(ban)), float(g.crashes[0])


def _select(df: pd.DataFrame, ban, crash, ban_col="ban_probability_per_year", crash_col="crash_scale"):
    b = df[ban_col].astype(float)
    m = (b.isna() if (ban is None or (isinstance(ban, float) and math.isnan(ban))) else np.isclose(b, float(ban)))
    return df[m & np.isclose(df[crash_col].astype(float), float(crash))]


def plot_frontier(out: dict[str, Any], path: Path) -> Path:
    """The chip's mean share of installed capacity over perf x price (first ban and crash values), the entry
    line with its band and the capacity-only break-even line."""
    plt = _plt()
    g: FrontierGrid = out["grid"]
    ban, crash = _first_combo(out)
    pts = _select(out["points"], ban, crash)
    front = _select(out["frontier"], ban, crash)
    if pts.perf_fraction.nunique() < 2 or pts.price_fraction.nunique() < 2:
        return _plot_line(out, pts, front, ban, crash, path)
    grid = pts.pivot_table(index="price_fraction", columns="perf_fraction", values=ENTRY_METRIC)
    fig, ax = plt.subplots(figsize=(7.8, 5.4))
    mesh = ax.pcolormesh(grid.columns, grid.index, grid.to_numpy() * 100, cmap="Blues", vmin=0,
                         vmax=max(1.0, float(np.nanmax(grid.to_numpy())) * 100), shading="nearest")
    fig.colorbar(mesh, ax=ax, label=f"{g.chip} share of installed capacity at the end, % (mean of {g.futures} futures)")
    f = front.sort_values("perf_fraction")
    ok = np.isfinite(f.entry_price_fraction)
    ax.fill_between(f.perf_fraction[ok], f.entry_price_fraction_lo[ok].fillna(f.entry_price_fraction[ok]),
                    f.entry_price_fraction_hi[ok].fillna(f.entry_price_fraction[ok]), color="tab:orange", alpha=0.3,
                    label="95% band of the entry line")
    ax.plot(f.perf_fraction[ok], f.entry_price_fraction[ok], "o-", color="tab:orange", lw=2,
            label=f"enters the fleet (share >= {g.entry_share:.0%}) below this price")
    top = f.entry_censored.astype(bool)
    if top.any():
        ax.plot(f.perf_fraction[top], f.entry_price_fraction[top], "^", color="tab:red", ms=11, clip_on=False,
                label="enters at every price on the grid (the line is at least this high)")
    be = np.isfinite(f.break_even_price_fraction) & (f.break_even_price_fraction > 0)
    ax.plot(f.perf_fraction[be], f.break_even_price_fraction[be], "ks--", lw=2,
            label=f"break-even: cost per Mtok at SLO = {g.versus}'s")
    prices = sorted(pts.price_fraction.unique())
    ax.set_ylim(min(prices), max(prices))
    ax.set_xlabel(f"{g.chip} performance as a fraction of the {g.reference}")
    ax.set_ylabel(f"{g.chip} price as a fraction of the {g.reference}'s")
    ax.set_title(f"Does the {g.chip} enter the fleet?\n({g.versus} ban risk: {_fmt_ban(ban)}, crash rate x{crash:g})",
                 fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_line(out, pts, front, ban, crash, path: Path) -> Path:
    """One performance fraction (or one price): the chip's share against the other axis, with
    its interval, the entry threshold and the break-even price."""
    plt = _plt()
    g: FrontierGrid = out["grid"]
    by_price = pts.price_fraction.nunique() >= 2
    x = "price_fraction" if by_price else "perf_fraction"
    p = pts.sort_values(x)
    fig, ax = plt.subplots(figsize=(7.8, 5.0))
    for perf, q in p.groupby("perf_fraction" if by_price else "price_fraction"):
        ax.plot(q[x], q[ENTRY_METRIC] * 100, "o-", label=f"{'perf' if by_price else 'price'} {perf:g}")
        ax.fill_between(q[x], q[f"{ENTRY_METRIC}_lo"] * 100, q[f"{ENTRY_METRIC}_hi"] * 100, alpha=0.2)
    ax.axhline(g.entry_share * 100, color="tab:orange", lw=1.5, label=f"entry threshold ({g.entry_share:.0%})")
    if by_price:
        for r in front.itertuples():
            if math.isfinite(r.break_even_price_fraction) and r.break_even_price_fraction > 0:
                ax.axvline(r.break_even_price_fraction, color="k", ls="--",
                           label=f"break-even price (cost per Mtok at SLO = {g.versus}'s)")
    ax.set_xlabel(f"{g.chip} {'price as a fraction of the ' + g.reference + chr(39) + 's' if by_price else 'performance as a fraction of the ' + g.reference}")
    ax.set_ylabel(f"{g.chip} share of installed capacity at the end, %")
    ax.set_title(f"Does the {g.chip} enter the fleet?\n({g.versus} ban risk: {_fmt_ban(ban)}, crash rate x{crash:g}; "
                 f"mean of {g.futures} futures, 95% band)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_risk(out: dict[str, Any], path: Path) -> Path:
    """Entry lines (with bands) across the alternative's ban probability and the chip's crash rate."""
    plt = _plt()
    g: FrontierGrid = out["grid"]
    front = out["frontier"]
    fig, ax = plt.subplots(figsize=(7.8, 5.0))
    styles = ["-", "--", ":", "-."]
    crashes = sorted(front.crash_scale.unique())
    bans = list(dict.fromkeys(front.ban_probability_per_year.tolist()))
    cmap = plt.get_cmap("viridis")
    for i, ban in enumerate(bans):
        for j, crash in enumerate(crashes):
            f = _select(front, ban, crash).sort_values("perf_fraction")
            ok = np.isfinite(f.entry_price_fraction)
            color = cmap(i / max(1, len(bans) - 1) * 0.85)
            ax.plot(f.perf_fraction[ok], f.entry_price_fraction[ok], styles[j % 4], marker="o", color=color,
                    label=f"{g.versus} ban {_fmt_ban(ban)}, crash x{crash:g}")
            ax.fill_between(f.perf_fraction[ok], f.entry_price_fraction_lo[ok].fillna(f.entry_price_fraction[ok]),
                            f.entry_price_fraction_hi[ok].fillna(f.entry_price_fraction[ok]), color=color, alpha=0.15)
    f = front.drop_duplicates("perf_fraction").sort_values("perf_fraction")
    be = np.isfinite(f.break_even_price_fraction) & (f.break_even_price_fraction > 0)
    ax.plot(f.perf_fraction[be], f.break_even_price_fraction[be], "ks--", lw=1.5,
            label=f"cost break-even (crash x{f.crash_scale.iloc[0]:g})")
    ax.set_xlabel(f"{g.chip} performance as a fraction of the {g.reference}")
    ax.set_ylabel(f"highest price (x {g.reference}'s) at which it enters")
    ax.set_title(f"Where the {g.chip} enters, by {g.versus} ban risk and {g.chip} crash rate", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tornado(out: dict[str, Any], path: Path) -> Path:
    """Change of the chip's share of installed capacity (left) and the fleet's cost per Mtok (right) from the
    base, each input at its low and high value, with paired 95% intervals."""
    plt = _plt()
    t = out["tornado"].iloc[::-1]
    g: FrontierGrid = out["grid"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(t) + 1.8), sharey=True)
    y = np.arange(len(t))
    for ax, key, scale, label in ((axes[0], "share", 100.0, f"change in {g.chip} share of installed capacity, points"),
                                  (axes[1], "fleet_cost", 1.0, "change in fleet cost per Mtok, USD")):
        for side, color, dy in (("low", "tab:blue", -0.18), ("high", "tab:red", 0.18)):
            m = t[f"{side}_{key}_change"].to_numpy() * scale
            lo = t[f"{side}_{key}_change_lo"].to_numpy() * scale
            hi = t[f"{side}_{key}_change_hi"].to_numpy() * scale
            ax.barh(y + dy, m, height=0.34, color=color, alpha=0.8, label=f"input at its {side} value")
            err = np.vstack([np.nan_to_num(m - lo), np.nan_to_num(hi - m)])
            ax.errorbar(m, y + dy, xerr=np.abs(err), fmt="none", ecolor="k", lw=1, capsize=2)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel(label)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([f"{r.input} ({r.low:g} / {r.high:g})" for r in t.itertuples()], fontsize=8)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"What moves the {g.chip} decision (base: {t.attrs.get('base_chip_capacity_share', math.nan):.1%}"
                 f" of installed capacity at the end; {g.futures} paired futures)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def html_page(out: dict[str, Any], pngs: list[Path]) -> str:
    """decide.html: the console text, the plots and the frontier table."""
    import html

    g: FrontierGrid = out["grid"]
    front = out["frontier"].copy()
    imgs = "\n".join(f'<figure><img src="{p.name}" alt="{p.stem}" style="max-width:100%"></figure>' for p in pngs)
    table = front.to_html(index=False, float_format=lambda x: f"{x:.3g}", na_rep="-")
    tor = out["tornado"].to_html(index=False, float_format=lambda x: f"{x:.3g}", na_rep="-") if "tornado" in out else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>decide: {html.escape(g.chip)} against "
            f"{html.escape(g.versus)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}"
            f"table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}</style>"
            f"</head><body><h1>Should the fleet buy the {html.escape(g.chip)}? Against the {html.escape(g.versus)}</h1>"
            f"<pre>{html.escape(out['text'])}</pre>{imgs}<h2>Frontier</h2>{table}"
            + (f"<h2>What moves the decision</h2>{tor}" if tor else "")
            + "<p>Tables: decide.parquet (a row per point), frontier.parquet, decide_futures.parquet (a row per "
              "point and future), tornado.parquet.</p></body></html>\n")
