"""docs/planner.md's figures that take minutes: the reference case's value of hedging measured
honestly (whole rolling runs, the planner without foresight against the oracle) and `fleetsim
decide`'s ban, crash and tornado axes.

    python benchmarks/planner_doc.py --write [hedge] [decide] [dated]   # run (minutes, see below), keep every
                                                                # future's figures in docs/planner_runs.json,
                                                                # rewrite the page's blocks
    python benchmarks/planner_doc.py --render                   # rewrite the blocks from the JSON alone
    python benchmarks/planner_doc.py --check                    # exit 1 if a block differs from the JSON
    python benchmarks/planner_doc.py --smoke                    # = --check (tests/test_benchmarks.py)

The blocks (`planner-hedge`, `planner-decide`) are ordinary generated blocks of
benchmarks/doc_tables.py, rendered from docs/planner_runs.json alone (so tests/test_docs.py and
tests/test_planner_doc.py check them in milliseconds); the slow test in tests/test_planner_doc.py
reruns future 0 of two hedge policies and of decide's base point and compares them with the JSON,
so the file cannot silently go stale when the code changes: rerun `--write` then.

Time on the 2-core machine (warm capacity cache; 2026-12-07; the JSON records each run's own):
hedge 8.9 CPU minutes (6 minutes wall on two quiet cores, 18 with the machine loaded), decide 4.8
CPU minutes (7 wall; a cold capacity cache adds about a minute), dated 0.4; all three in about 15
minutes wall on two quiet cores: `python benchmarks/planner_doc.py --write`. Any change to the
capacity search or the planners moves the figures: rerun that command, then read the diff of
docs/planner.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _smoke, also when a test imports this file
from _smoke import SMOKE  # noqa: E402,I001 (takes --smoke out of sys.argv; smoke mode = --check)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "planner_runs.json"
SCENARIO = ROOT / "scenarios" / "alibaba_2025.yaml"

# The honest value of hedging: every policy re-plans every period through the same N fleet
# futures (the world's own cycles, scripted events and demand; the optimiser knows only its
# regime model); K sampled futures per plan, a horizon of T planning periods.
HEDGE = {"futures": 20, "holdout": 30, "horizon_periods": 24}
# decide: the PPU against the H20 on a 5 x 4 grid, the scenario's own regime and a 0.5-a-year
# exporter ban risk, the catalog crash rate and twice it, with the tornado; F futures a point.
DECIDE = {"chip": "t-head-ppu", "versus": "h20", "perfs": [0.2, 0.3, 0.4, 0.5, 0.6],
          "prices": [0.2, 0.8, 1.4, 2.0], "bans": [None, 0.5], "crashes": [1.0, 2.0], "futures": 4}
# decide's ban axis as a dated event: one exporter ban of the H20 channel on DATED["on"] with
# probability P (drawn in each future), at the story's performance, a low and a high price.
DATED = {"on": "2026-01-01", "bans": [0.0, 0.5, 1.0], "perfs": [0.4], "prices": [0.2, 2.0], "futures": 4}
POLICY_ORDER = ("stochastic", "expected_value", "oracle", "cheapest", "security_weighted", "domestic_share")


def _cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _clean(x):
    """NaN -> None (strict JSON), recursively; numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _arr(v) -> np.ndarray:
    return np.array([math.nan if x is None else x for x in v], float)


def hedge_scenario():
    import fleetsim

    return fleetsim.load_scenario(SCENARIO)


def run_hedge(log=print) -> dict:
    """The rolling hedge on the reference case (what `fleetsim hedge --rolling` runs: the same
    policies, fleet runs and costs, fleetsim.fleet.optimal.hedge), every future's figures,
    the cost's two parts (ledger USD, unmet Mtok) kept apart."""
    from fleetsim import api
    from fleetsim.fleet.capacity import replica_capacities, seasonal_capacities
    from fleetsim.fleet.futures import future_seeds, run_futures
    from fleetsim.fleet.optimal import hedge as hg
    from fleetsim.results.cache import ResultCache

    sc = hedge_scenario()
    t0, c0 = time.perf_counter(), _cpu()
    chips, models = api.resolve_catalogs(sc)
    cache = ResultCache()
    caps = replica_capacities(sc, chips, models, cache=cache)
    grid = seasonal_capacities(sc, chips, models, cache=cache)
    policies, pen = hg.rolling_policies(sc, HEDGE["futures"], (), HEDGE["horizon_periods"])
    pol, times = {}, {}
    for name, (cfg, _w) in policies.items():
        log(f"hedge --rolling: {name}, {HEDGE['holdout']} futures")
        t1, c1 = time.perf_counter(), _cpu()
        fut = run_futures(hg.rolling_scenario(sc, cfg, HEDGE["holdout"]), chips, models, caps, None, caps_grid=grid)
        pol[name] = {k: v.tolist() for k, v in hg.rolling_costs(fut.replicates, pen).items()}
        times[name] = {"cpu_s": _cpu() - c1, "wall_s": time.perf_counter() - t1}
    root = sc.fleet.seed if sc.fleet.seed is not None else sc.seed
    return _clean({"settings": HEDGE, "period_days": cfg.period_days, "penalty_usd_per_mtok": pen,
                   "seeds": future_seeds(root, HEDGE["holdout"]), "policies": pol,
                   "time": {"cpu_s": _cpu() - c0, "wall_s": time.perf_counter() - t0, "per_policy": times,
                            "date": dt.date.today().isoformat(), "cores": os.cpu_count()}})


def decide_grid():
    from fleetsim.sweep.frontier import ENTRY_SHARE, FrontierGrid

    d = DECIDE
    return FrontierGrid(d["chip"], d["versus"], "h100", list(d["perfs"]), list(d["prices"]), list(d["bans"]),
                        list(d["crashes"]), int(d["futures"]), False, 365.0, ENTRY_SHARE)


def decide_base(sc) -> tuple[float, float]:
    """The tornado's base point: the chip's own relative_to (performance, price fractions)."""
    from fleetsim.sweep.frontier import _own_fractions

    return _own_fractions(sc, DECIDE["chip"])


def run_decide(log=print) -> dict:
    """decide's fleet-level frontier with the ban, crash and tornado axes (resumes from
    outputs/planner_doc/decide: finished points are kept there)."""
    from fleetsim.sweep.frontier import fleet_frontier

    sc = hedge_scenario()
    t0, c0 = time.perf_counter(), _cpu()
    out = fleet_frontier(sc, decide_grid(), ROOT / "outputs" / "planner_doc" / "decide", tornado=True, log=log)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    fu = out["futures"]
    base = fu[(fu["role"] == "tornado_base")].sort_values("future")
    tor = out["tornado"]
    return _clean({
        "settings": {k: v for k, v in DECIDE.items()},
        "frontier": out["frontier"].to_dict(orient="list"),
        "tornado": tor.to_dict(orient="list"),
        "tornado_base": {"chip_capacity_share": tor.attrs["base_chip_capacity_share"],
                         "cost_usd_per_mtok": tor.attrs["base_cost_usd_per_mtok"]},
        "base_futures": {k: base[k].tolist() for k in ("seed", "chip_capacity_share_end", "cost_usd_per_mtok",
                                                       "chip_capex_share")},
        "points": int(len(out["points"]) + (fu["point"].nunique() - len(out["points"]))),
        "futures_run": int(len(fu)),
        "time": {"cpu_s": cpu, "wall_s": wall, **{k: float(v) for k, v in out["times"].items()},
                 "date": dt.date.today().isoformat(), "cores": os.cpu_count()}})


def dated_grid():
    from fleetsim.sweep.frontier import ENTRY_SHARE, FrontierGrid

    d = DATED
    return FrontierGrid(DECIDE["chip"], DECIDE["versus"], "h100", list(d["perfs"]), list(d["prices"]),
                        list(d["bans"]), [1.0], int(d["futures"]), False, 365.0, ENTRY_SHARE,
                        dt.date.fromisoformat(d["on"]))


def run_dated(log=print) -> dict:
    """decide with the ban axis as one dated H20 ban of probability P (`--ban-on`)."""
    from fleetsim.sweep.frontier import fleet_frontier

    sc = hedge_scenario()
    t0, c0 = time.perf_counter(), _cpu()
    out = fleet_frontier(sc, dated_grid(), ROOT / "outputs" / "planner_doc" / "dated", log=log)
    pts = out["points"]
    keep = [c for c in pts.columns if c.startswith(("perf_fraction", "price_fraction", "ban_probability",
                                                    "chip_capacity_share_end", "chip_entered_share",
                                                    "unmet_demand", "fleet_cost_change", "cost_usd_per_mtok"))]
    return _clean({"settings": DATED, "frontier": out["frontier"].to_dict(orient="list"),
                   "points": pts[keep].to_dict(orient="list"), "futures_run": int(len(out["futures"])),
                   "time": {"cpu_s": _cpu() - c0, "wall_s": time.perf_counter() - t0,
                            "date": dt.date.today().isoformat(), "cores": os.cpu_count()}})


# -- rendering: from the JSON alone ------------------------------------------------------------

def load() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def _iv(x, kind="usd") -> str:
    from fleetsim.results.rounding import format_interval
    from fleetsim.stats import t_interval

    return format_interval(*t_interval(x), kind=kind)


def _paired(a, b, kind="usd") -> str:
    from fleetsim.fleet.optimal.hedge import paired
    from fleetsim.results.rounding import format_interval

    return format_interval(*paired(a, b), kind=kind)


def hedge_numbers(h: dict) -> dict:
    """VSS and EVPI (mean, lo, hi) from the per-future costs, paired on the futures, and what the
    stochastic plan's extra spending buys against the expected-value plan: USD of ledger per Mtok
    of unmet demand avoided (ratio of paired means, 95% paired bootstrap interval, own stream)."""
    from fleetsim.fleet.optimal.hedge import paired
    from fleetsim.rng import stream

    P = {n: {k: _arr(v) for k, v in p.items()} for n, p in h["policies"].items()}
    sp, ev = P["stochastic"], P["expected_value"]
    dl = sp["ledger_usd"] - ev["ledger_usd"]          # extra spent by hedging
    du = ev["unmet_mtok"] - sp["unmet_mtok"]          # unmet Mtok it avoids
    n = len(dl)
    idx = stream(int(h["seeds"][0]) % 2**32, "planner_doc", "bootstrap").integers(0, n, (4000, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = dl[idx].mean(axis=1) / du[idx].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"vss": paired(ev["cost_usd"], sp["cost_usd"]), "evpi": paired(sp["cost_usd"], P["oracle"]["cost_usd"]),
            "extra_ledger": paired(sp["ledger_usd"], ev["ledger_usd"]),
            "unmet_avoided": paired(ev["unmet_mtok"], sp["unmet_mtok"]),
            "usd_per_unmet_mtok": (float(dl.mean() / du.mean()), float(lo), float(hi)), "P": P}


def render_hedge(data: dict | None = None) -> str:
    """docs/planner.md block planner-hedge: the rolling value of hedging on the reference case."""
    from fleetsim.results.rounding import format_interval

    h = (data or load())["hedge"]
    s, tm = h["settings"], h["time"]
    nums = hedge_numbers(h)
    P = nums["P"]
    sp = P["stochastic"]
    per = tm["per_policy"]
    pen = h["penalty_usd_per_mtok"]
    rows = [f"`fleetsim hedge {SCENARIO.relative_to(ROOT)} --rolling -k {s['futures']} -n {s['holdout']} "
            f"--horizon {s['horizon_periods']} --risk-aversion 0` (run by `python benchmarks/planner_doc.py "
            f"--write hedge` on {tm['date']}: {tm['cpu_s'] / 60:.1f} CPU minutes, {tm['wall_s'] / 60:.1f} minutes "
            f"wall on {tm['cores']} cores; the stochastic plan {per['stochastic']['cpu_s'] / s['holdout']:.1f} CPU s "
            f"a future, the oracle {per['oracle']['cpu_s'] / s['holdout']:.1f}). Every policy re-plans every "
            f"{h['period_days']} days for three years through the same {s['holdout']} fleet futures (the world's "
            f"random cycles, its scripted 2025 events and its demand); the optimiser plans on {s['futures']} futures "
            f"of its regime model (`knows: model`: the scripted events are a surprise to it) over {s['horizon_periods']} "
            f"periods; the oracle (`knows: oracle`) plans on the realised future. Cost of a future: the run's "
            f"all-in ledger (depreciation, impairments, power, opex, rentals) + USD {pen:g} per unmet Mtok (the "
            "optimiser's own penalty). 95% intervals over the futures; the last two columns pair each policy "
            "with the stochastic plan future by future.",
            "",
            "| policy | expected cost | unmet share | stranded | cost minus the stochastic plan's | "
            "unmet share minus the stochastic plan's |",
            "|---|---|---|---|---|---|"]
    for name in [n for n in POLICY_ORDER if n in P] + [n for n in P if n not in POLICY_ORDER]:
        p = P[name]
        d = "-" if name == "stochastic" else _paired(p["cost_usd"], sp["cost_usd"])
        du = "-" if name == "stochastic" else _paired(p["unmet_share"], sp["unmet_share"], "share")
        rows.append(f"| {name} | {_iv(p['cost_usd'])} | {_iv(p['unmet_share'], 'share')} | "
                    f"{_iv(p['stranded_usd'])} | {d} | {du} |")
    vss, evpi = nums["vss"], nums["evpi"]
    rows += ["", f"**VSS** (expected-value plan minus stochastic plan) = {format_interval(*vss, kind='usd')}; "
                 f"**EVPI** (stochastic plan minus oracle) = {format_interval(*evpi, kind='usd')} "
                 f"(95% intervals, paired over the {s['holdout']} futures)."]
    if vss[1] <= 0 <= vss[2]:
        rows.append(f"VSS is indistinguishable from 0: planning on {s['futures']} sampled futures buys nothing "
                    "measurable over planning on their mean, so no hedging premium can be defended from this run.")
    else:
        rows.append(f"VSS is {'positive' if vss[1] > 0 else 'negative'} beyond its interval: on the run's own "
                    f"costs, planning on {s['futures']} sampled futures {'saves' if vss[1] > 0 else 'costs'} money "
                    "against planning on their mean.")
    r = nums["usd_per_unmet_mtok"]
    xl, ua = nums["extra_ledger"], nums["unmet_avoided"]
    if ua[1] > 0:
        rows.append(f"What the stochastic plan buys: it spends {format_interval(*xl, kind='usd')} more (ledger) "
                    f"and leaves {format_interval(*(x / 1e6 for x in ua))} million Mtok less demand unmet than the "
                    "expected-value plan, "
                    f"USD {r[0]:.0f} per Mtok avoided (95% bootstrap interval {r[1]:.0f} to {r[2]:.0f}). "
                    f"Hedging pays for a planner who values an unmet Mtok above that; at the optimiser's own "
                    f"USD {pen:g} it {'does not' if r[1] > pen else 'may'}.")
    else:
        rows.append(f"The stochastic plan spends {format_interval(*xl, kind='usd')} more (ledger) than the "
                    f"expected-value plan and leaves {format_interval(*(x / 1e6 for x in ua))} million Mtok less "
                    "unmet, an interval "
                    "that holds 0: no unmet-demand value makes it pay on this sample.")
    if evpi[1] <= 0 <= evpi[2]:
        rows.append(f"EVPI is indistinguishable from 0: perfect foresight of the regime and of demand changes the "
                    f"optimiser's cost by {format_interval(*evpi, kind='usd')} over the three years (against its "
                    "own sampled futures), an interval that holds 0, so no value of foresight can be claimed "
                    "from this run.")
    else:
        rows.append(f"EVPI: perfect foresight of the regime and of demand would save the optimiser "
                    f"{format_interval(*evpi, kind='usd')} over the three years (against its own sampled futures).")
    return "\n".join(rows) + "\n"


def render_decide(data: dict | None = None) -> str:
    """docs/planner.md block planner-decide: decide's frontier over ban x crash, and the tornado."""
    import pandas as pd

    from fleetsim.results.rounding import format_interval
    from fleetsim.sweep.frontier import _combo_lines, _select

    d = (data or load())["decide"]
    s, tm = d["settings"], d["time"]
    g = decide_grid()
    front = pd.DataFrame({k: _arr(v) if k != "entry_censored" else v for k, v in d["frontier"].items()})
    fmt = lambda v: ",".join("own" if x is None else f"{x:g}" for x in v)
    rows = [f"`fleetsim decide {SCENARIO.relative_to(ROOT)} --chip {s['chip']} --versus {s['versus']} --futures "
            f"{s['futures']} --perf {fmt(s['perfs'])} --price {fmt(s['prices'])} --ban {fmt(s['bans'])} "
            f"--crash {fmt(s['crashes'])} --tornado` (run by `python benchmarks/planner_doc.py --write decide` on "
            f"{tm['date']}: {d['points']} points, {d['futures_run']} futures, {tm['cpu_s'] / 60:.0f} CPU minutes, "
            f"{tm['wall_s'] / 60:.0f} minutes wall on {tm['cores']} cores):", "", "```"]
    for b in g.bans:
        for c in g.crashes:
            ban = math.nan if b is None else float(b)
            rows += _combo_lines(g, _select(front, ban, c).sort_values("perf_fraction"), ban, c)
    rows += ["```", "", f"What moves the decision (base: the PPU's own `relative_to`, the scenario's regime, "
             f"catalog crash rate: {d['tornado_base']['chip_capacity_share']:.1%} of installed capacity at the "
             f"end, USD {d['tornado_base']['cost_usd_per_mtok']:.2f} per Mtok; each change paired on the "
             f"{s['futures']} futures, 95% intervals):", "",
             "| input | low | high | capacity share change, low / high | fleet cost change USD/Mtok, low / high |",
             "|---|---|---|---|---|"]
    t = d["tornado"]
    v = lambda k, i: math.nan if t[k][i] is None else t[k][i]
    for i, name in enumerate(t["input"]):
        sh = " / ".join(format_interval(v(f"{side}_share_change", i), v(f"{side}_share_change_lo", i),
                                        v(f"{side}_share_change_hi", i), "share") for side in ("low", "high"))
        co = " / ".join(format_interval(v(f"{side}_fleet_cost_change", i), v(f"{side}_fleet_cost_change_lo", i),
                                        v(f"{side}_fleet_cost_change_hi", i)) for side in ("low", "high"))
        rows.append(f"| {name} | {v('low', i):g} | {v('high', i):g} | {sh} | {co} |")
    if "dated" in (data or load()):
        rows += [""] + _render_dated((data or load())["dated"])
    return "\n".join(rows) + "\n"


def _render_dated(d: dict) -> list[str]:
    from fleetsim.results.rounding import format_interval

    s, tm = d["settings"], d["time"]
    p = d["points"]
    v = lambda k, i: math.nan if p[k][i] is None else p[k][i]
    rows = [f"The ban axis as one dated event (`--ban-on {s['on']} --ban {','.join(f'{b:g}' for b in s['bans'])} "
            f"--perf {','.join(f'{x:g}' for x in s['perfs'])} --price {','.join(f'{x:g}' for x in s['prices'])} "
            f"--futures {s['futures']}`: an exporter ban of the H20 channel on {s['on']} with probability P, drawn "
            f"in each future and held with probability P in the optimiser's futures; {d['futures_run']} futures, "
            f"{tm['cpu_s'] / 60:.1f} CPU minutes). Against the same futures without the PPU (paired, 95% intervals):",
            "", "| P | perf | price | PPU capacity share at the end | futures it enters | fleet cost change "
            "USD/Mtok | unmet share change |", "|---|---|---|---|---|---|---|"]
    for i in range(len(p["ban_probability_per_year"])):
        rows.append(f"| {v('ban_probability_per_year', i):g} | {v('perf_fraction', i):g} | {v('price_fraction', i):g} | "
                    f"{format_interval(v('chip_capacity_share_end', i), v('chip_capacity_share_end_lo', i), v('chip_capacity_share_end_hi', i), 'share')} | "
                    f"{v('chip_entered_share', i):.0%} | "
                    f"{format_interval(v('fleet_cost_change_usd_per_mtok', i), v('fleet_cost_change_lo', i), v('fleet_cost_change_hi', i))} | "
                    f"{format_interval(v('unmet_demand_change', i), v('unmet_demand_change_lo', i), v('unmet_demand_change_hi', i), 'share')} |")
    return rows


BLOCKS = {"planner-hedge": render_hedge, "planner-decide": render_decide}


def _doc_tables():
    import importlib.util

    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "benchmarks" / "doc_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("stages", nargs="*", help="with --write: hedge, decide (default both)")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    if set(a.stages) - {"hedge", "decide", "dated"}:
        ap.error(f"stages are hedge, decide and dated, not {sorted(set(a.stages) - {'hedge', 'decide', 'dated'})}")
    dtab = _doc_tables()
    if a.write:
        data = load() if DATA.exists() else {}
        for stage in a.stages or ("hedge", "decide", "dated"):
            t0 = time.perf_counter()
            data[stage] = {"hedge": run_hedge, "decide": run_decide, "dated": run_dated}[stage]()
            DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(f"{stage}: {time.perf_counter() - t0:.0f} s wall; wrote {DATA.relative_to(ROOT)}", flush=True)
    if a.write or a.render:
        dtab.write(set(BLOCKS))
        return 0
    data = load()
    bad = [(p, n) for p, bs in dtab.pages().items() for n, body in bs if n in BLOCKS and BLOCKS[n](data) != body]
    for p, n in bad:
        print(f"{p.relative_to(ROOT)}: block {n} differs from {DATA.relative_to(ROOT)}")
    if not a.check and not SMOKE:
        for n, fn in BLOCKS.items():
            print(f"## {n}\n{fn(data)}")
    else:
        print(f"{len(BLOCKS)} blocks checked against {DATA.relative_to(ROOT)}: {len(bad)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
