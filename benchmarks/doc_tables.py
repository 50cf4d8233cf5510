"""Figures quoted in docs/, generated: every table between the markers

    <!-- generated: NAME (python benchmarks/doc_tables.py --write NAME); edit the script, not the table -->
    ...
    <!-- end generated: NAME -->

comes from the function NAME below, and tests/test_docs.py fails when a page's block differs
from what the function gives today (so a docs figure cannot drift from the code).

    python benchmarks/doc_tables.py                  # print every table
    python benchmarks/doc_tables.py --write [NAME]   # rewrite the blocks in docs/
    python benchmarks/doc_tables.py --check          # exit 1 if a block differs
    python benchmarks/doc_tables.py --smoke          # list the blocks and their generators only
                                                     # (tests/test_docs.py runs every generator)

Only deterministic figures (same code, scenario and seed: same digits); wall times are not here
(they belong to benchmarks that print them, quoted with their date).
"""

from __future__ import annotations

from _smoke import SMOKE  # noqa: I001 (first: takes --smoke out of sys.argv)
import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

import fleetsim

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) [^\n]*-->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
                   re.S)

# Whole runs of the reference case for docs/planner.md. One future (fleet.replications=1, the root
# future): every planner meets the same draws (paired on common random numbers) and a row costs
# one run, not sixteen. Windows off (they do not touch the planner, as bench_planner); the optimal
# planner with explain off (naming the binding constraint changes no order, only the report).
RUN_BASE = ["fleet.windows.enabled=false", "fleet.replications=1"]
RULES = {
    "cheapest": ["fleet.planner={kind: cheapest, period_days: 30, horizon_days: 180, headroom: 0.1}"],
    "security_weighted (shipped)": [],
    "domestic_share 0.7": ["fleet.planner={kind: domestic_share, period_days: 30, horizon_days: 180, "
                           "headroom: 0.1, target_share: 0.7}"],
}


def _optimal(**kw) -> list[str]:
    return ["fleet.planner=" + json.dumps({"kind": "optimal", "explain": False, **kw})]


OPTIMAL = {
    "optimal K=1 (naive)": _optimal(futures=1),
    "optimal K=10": _optimal(futures=10),
    "optimal K=20": _optimal(futures=20),
}
# Not here: CVaR runs (a CVaR plan solves 5-8 times slower: 26 CPU s a run, too much for a test)
# and K = 50 (the K = 10 and 20 fleets already agree); bench_planner.py --only runs prints them.
_RUNS: dict[tuple[str, tuple[str, ...]], dict] = {}


def fleet_summary(scenario: str, overrides: list[str]) -> dict:
    """The fleet summary of one run (kept for the process: two tables share the shipped rule's run)."""
    key = (scenario, tuple(overrides))
    if key not in _RUNS:
        sc = fleetsim.load_scenario(ROOT / "scenarios" / scenario, [*RUN_BASE, *overrides])
        _RUNS[key] = fleetsim.run(sc).summary["fleet"]
    return _RUNS[key]


def _row(label: str, s: dict, peak: bool = False) -> str:
    mid = f"{s['peak_unmet_share']:.2g} | " if peak else ""
    return (f"| {label} | {s['capex_usd_total'] / 1e9:.1f} | {s['unmet_demand_share']:.2g} | {mid}"
            f"{s['us_dependence_share_mean']:.3f} | {s['us_dependence_share_end']:.3f} | "
            f"{s['cost_usd_per_mtok']:.2f} |")


HEAD = "| planner | capex USD B | unmet share | US dependence mean | US dependence end | cost USD/Mtok |"


def planner_rules() -> str:
    """docs/planner.md: rule and optimal planners on the reference case, one shared future."""
    runs = {label: fleet_summary("alibaba_2025.yaml", ov) for label, ov in {**RULES, **OPTIMAL}.items()}
    rows = [HEAD, "|---|---|---|---|---|---|"] + [_row(label, s) for label, s in runs.items()]
    rule, naive, hedged = runs["security_weighted (shipped)"], runs["optimal K=1 (naive)"], runs["optimal K=20"]
    opt = [s["capex_usd_total"] / 1e9 for k, s in runs.items() if k.startswith("optimal")]
    ref = rule["capex_usd_total"] / 1e9

    def span(lo: str, hi: str) -> str:
        return lo if lo == hi else f"{lo}-{hi}"

    rows += ["", (
        f"The optimiser buys {span(f'{min(opt) / ref:.0%}', f'{max(opt) / ref:.0%}')} of the shipped "
        f"rule's capex (USD {span(f'{min(opt):.1f}', f'{max(opt):.1f}')} B against {ref:.1f} B) "
        f"and leaves unmet {hedged['unmet_demand_share']:.2g} of tokens against the rule's "
        f"{rule['unmet_demand_share']:.2g}; cost per million tokens USD {rule['cost_usd_per_mtok']:.2f} -> "
        f"{hedged['cost_usd_per_mtok']:.2f} (K = 20). **Value of hedging** (K = 20 futures against K = 1): "
        f"US dependence {naive['us_dependence_share_mean']:.3f} -> "
        f"{hedged['us_dependence_share_mean']:.3f}, unmet {naive['unmet_demand_share']:.2g} -> "
        f"{hedged['unmet_demand_share']:.2g}, cost USD {naive['cost_usd_per_mtok']:.2f} -> "
        f"{hedged['cost_usd_per_mtok']:.2f}/Mtok.")]
    return "\n".join(rows) + "\n"


def planner_shock() -> str:
    """docs/planner.md: scenarios/h20_ban.yaml (H20 banned for good), naive against hedged."""
    labels = ("security_weighted (shipped)", "optimal K=1 (naive)", "optimal K=20")
    rows = ["| planner | capex USD B | unmet share | peak unmet share | US dependence mean | US dependence end "
            "| cost USD/Mtok |", "|---|---|---|---|---|---|---|"]
    for label in labels:
        rows.append(_row(label, fleet_summary("h20_ban.yaml", {**RULES, **OPTIMAL}[label]), peak=True))
    return "\n".join(rows) + "\n"


def validation_goodput() -> str:
    """docs/validation.md: goodput per replica of the serving quickstart's pools, seeds 1-3."""
    from fleetsim.serving import capacity as cap

    base = fleetsim.load_scenario(ROOT / "scenarios" / "serving_quickstart.yaml")
    rows = ["| pool / class | seed | goodput req/s a replica (95% interval) | windows |", "|---|---|---|---|"]
    for seed in (1, 2, 3):
        scen = base.with_overrides([f"seed={seed}"])
        for pool, pcfg in scen.serving.pools.items():
            for wname, wl in scen.serving.workloads.items():
                if wl.model != pcfg.model:
                    continue
                c = cap.capacity(scen, pool, wname)
                txt = (f"{c.goodput_rps:.3f} ({c.goodput_ci95_rps[0]:.3f}-{c.goodput_ci95_rps[1]:.3f})"
                       if c.goodput_rps > 0 else f"0 ({c.note})")
                rows.append(f"| {pool} / {wname} | {seed} | {txt} | {c.windows} |")
    return "\n".join(rows) + "\n"


def _planner_doc():
    """benchmarks/planner_doc.py: figures that take minutes, rendered from docs/planner_runs.json."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("planner_doc", ROOT / "benchmarks" / "planner_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def planner_hedge() -> str:
    """docs/planner.md: the reference case's rolling VSS and EVPI (python benchmarks/planner_doc.py --write hedge)."""
    return _planner_doc().render_hedge()


def planner_decide() -> str:
    """docs/planner.md: decide's ban, crash and tornado axes (python benchmarks/planner_doc.py --write decide)."""
    return _planner_doc().render_decide()


# ---- prefill/decode figures (issue 22): rendered from benchmarks/bench_disagg.py --write's file --------
# (its runs take about 17 minutes, too long for a test: the file keeps every future's figures)
PD_RUNS = DOCS / "disagg_runs.json"
PD_BASELINE = "colocated H20 only"  # as bench_disagg.BASELINE
PD_ORDER = ("all types (planner picks)", "PD only (910B prefill + H20 decode)", "colocated H20 only",
            "colocated 910B only")  # bench_disagg.VARIANTS' order (the file's keys are sorted)


def _ordered(rows: dict) -> list[tuple[str, dict]]:
    return sorted(rows.items(), key=lambda kv: (PD_ORDER.index(kv[0]) if kv[0] in PD_ORDER else len(PD_ORDER), kv[0]))


def _pd_runs() -> dict:
    return json.loads(PD_RUNS.read_text())


def _ci(x, fmt="{:.3f}", scale=1.0) -> str:
    from fleetsim.stats import t_interval

    m, lo, hi = (v * scale for v in t_interval([v for v in x]))
    return f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def serving_pd() -> str:
    """docs/serving.md: each type's goodput at the SLO and cost per Mtok (bench_disagg.py 3.)."""
    d = _pd_runs()
    out = [f"Measured by `python benchmarks/bench_disagg.py --write` on {d['scenario']} ({d['date']}; "
           f"kept in docs/disagg_runs.json). Cost per Mtok at SLO = chips at catalog price over "
           f"{d['amortise_years']:g} years plus power at USD {d['power_usd_per_kwh']:g}/kWh x PUE {d['pue']:g}, "
           "over the output tokens of the derated goodput:", "",
           "| type | chips per replica (unit) | goodput req/s per replica (unit), 95% CI | windows | "
           "USD/Mtok at SLO, 95% CI |", "|---|---|---|---|---|"]
    for t in d["types"]:
        g, (lo, hi), usd = t["goodput_rps"], t["goodput_ci95_rps"], t["usd_per_mtok"]
        # the cost per token goes as 1 / goodput (the same chips and power): its interval is the goodput's
        out.append(f"| {t['name']} | {t['chips']} | {g:.3f} [{lo:.3f}, {hi:.3f}] | {t['windows']} | "
                   f"{usd:.3f} [{usd * g / hi:.3f}, {usd * g / lo:.3f}] |")
    return "\n".join(out) + "\n"


def fleet_pd() -> str:
    """docs/fleet.md: the fleet with each set of types on offer, paired on the same futures
    (bench_disagg.py 4.): cost per Mtok at SLO and unmet share, with 95% intervals."""
    d = _pd_runs()
    f = d["fleet"]
    cap, unc = f["capped"], f.get("uncapped", {})
    n = len(cap[PD_BASELINE]["seed"])
    out = [f"Measured by `python benchmarks/bench_disagg.py --write` ({d['date']}; every future's figures "
           f"in docs/disagg_runs.json): {n} futures on the same seeds, cost per Mtok at SLO (depreciation + "
           "power + opex per million output tokens served at SLO, rounded to 3 digits per future as in "
           "summary.json) with 95% intervals; the chips ordered per pool include the 720 installed H20s.", "",
           "| offered | H20 capped: USD/Mtok | unmet | chips ordered (pool) | H20 uncapped: USD/Mtok | unmet |",
           "|---|---|---|---|---|---|"]
    for name, v in _ordered(cap):
        bought = ", ".join(f"{p} {c:,}" for p, c in sorted(v["chips_bought"].items()))
        u = unc.get(name)
        tail = (f"{_ci(u['cost_usd_per_mtok'])} | {_ci(u['unmet_demand_share'], '{:.2f}%', 100)}"
                if u else "| ")
        out.append(f"| {name} | {_ci(v['cost_usd_per_mtok'])} | {_ci(v['unmet_demand_share'], '{:.2f}%', 100)} | "
                   f"{bought} | {tail} |")
    out.append("")
    for label, rows in (("H20 capped", cap), ("H20 uncapped", unc)):
        base = rows.get(PD_BASELINE)
        if base is None:
            continue
        parts = []
        for name, v in _ordered(rows):
            if name == PD_BASELINE:
                continue
            assert v["seed"] == base["seed"], "the variants ran on different futures"
            dc = [a - b for a, b in zip(v["cost_usd_per_mtok"], base["cost_usd_per_mtok"])]
            du = [a - b for a, b in zip(v["unmet_demand_share"], base["unmet_demand_share"])]
            parts.append(f"{name} {_ci(dc, '{:+.3f}')} USD/Mtok, unmet {_ci(du, '{:+.2f}', 100)} points")
        out.append(f"Paired against {PD_BASELINE}, {label}: " + "; ".join(parts) + ".")
        out.append("")
    return "\n".join(out)


# ---- published PD and prefix-cache comparisons: rendered from validate_pd_prefix.py --write's file ----
PD_PREFIX_RUNS = DOCS / "pd_prefix_runs.json"


def validation_pd() -> str:
    """docs/validation.md: DistServe's 2P1D and vLLM #1983's prefix cache against fleetsim
    (python benchmarks/validate_pd_prefix.py --write; published figures from tests/data/published_pd_prefix.yaml)."""
    import yaml

    d = json.loads(PD_PREFIX_RUNS.read_text())
    pub = yaml.safe_load((ROOT / "tests/data/published_pd_prefix.yaml").read_text())
    r, q = d["distserve"], d["prefix"]
    ds, vp = pub["distserve_2p1d"], pub["vllm_prefix_cache"]
    iv = lambda m, ci, f="{:.2f}": f"{f.format(m)} [{f.format(ci[0])}, {f.format(ci[1])}]"
    return "\n".join([
        f"Measured by `python benchmarks/validate_pd_prefix.py --write` ({d['date']}; kept in docs/pd_prefix_runs.json):",
        "",
        "| row | published | fleetsim | error | tolerance |", "|---|---|---|---|---|",
        "| DistServe 2P1D: goodput per GPU, 2 prefill + 1 decode over colocated (512 in / 64 out, Poisson, P90 "
        "TTFT 0.4 s, P90 TPOT 0.04 s; NVLink 300 GB/s between instances) | 3.3 / 1.6 = "
        f"{ds['published']:.2f} | {iv(r['pd_rps_per_gpu'], r['pd_ci'])} / "
        f"{iv(r['colocated_rps_per_gpu'], r['colocated_ci'])} = {iv(r['ratio'], r['ratio_ci'])} | "
        f"{r['ratio'] / ds['published'] - 1:+.0%} | {ds['tolerance_rel']:.0%} |".replace("+-", "-"),
        "| vLLM #1983: requests/s served at 25 QPS offered, prefix cache over none (200 shared + 30 fresh prompt "
        f"tokens, 50 out; hit share 200/230) | 19.81 / 14.08 = {vp['published']:.3f} | {q['cached_rps']:.2f} / "
        f"{q['base_rps']:.2f} = {iv(q['ratio'], q['ratio_ci'], '{:.3f}')} ({q['windows']} paired windows of "
        f"{q['duration_s']:.0f} s) | {q['ratio'] / vp['published'] - 1:+.0%} | {vp['tolerance_rel']:.0%} |",
        "",
        f"Absolute rates: colocated {r['colocated_rps_per_gpu']:.2f} against 1.6 req/s per GPU; prefill role "
        f"{r['prefill_role_rps']:.1f} against about 5.6, decode role {r['decode_role_rps']:.1f} against about 10 "
        f"req/s; with the cache the replica serves {q['cached_rps']:.2f} of the 25 QPS offered (published 19.81).",
    ]) + "\n"


PD_TABLES = ("serving-pd", "fleet-pd", "validation-pd")

TABLES: dict[str, Callable[[], str]] = {"serving-pd": serving_pd, "fleet-pd": fleet_pd, "planner-rules": planner_rules, "planner-shock": planner_shock,
                                        "planner-hedge": planner_hedge, "planner-decide": planner_decide,
                                        "validation-goodput": validation_goodput, "validation-pd": validation_pd}


def blocks(text: str) -> list[tuple[str, str]]:
    """(name, body) of every generated block in a page."""
    return [(m["name"], m["body"]) for m in BLOCK.finditer(text)]


def pages() -> dict[Path, list[tuple[str, str]]]:
    return {p: b for p in sorted(DOCS.glob("*.md")) if (b := blocks(p.read_text(encoding="utf-8")))}


def write(names: set[str] | None = None) -> None:
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new = BLOCK.sub(lambda m: m.group(1) + (TABLES[m["name"]]() if names is None or m["name"] in names
                                                else m["body"]) + m.group(4), text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"rewrote {page.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if SMOKE:  # every block names a generator, and every generator has a block
        found = [(p, n, body) for p, bs in pages().items() for n, body in bs]
        for p, n, body in found:
            print(f"{p.relative_to(ROOT)}: {n} ({len(body.splitlines())} lines) <- {TABLES[n].__name__}()")
        missing = set(TABLES) - {n for _, n, _ in found}
        if missing:
            sys.exit(f"generators without a block in docs/: {sorted(missing)}")
        return
    if a.write:
        write(set(a.names) or None)
        return
    if a.check:
        bad = [(p, n) for p, bs in pages().items() for n, body in bs if TABLES[n]() != body]
        for p, n in bad:
            print(f"{p.relative_to(ROOT)}: block {n} differs from benchmarks/doc_tables.py")
        sys.exit(1 if bad else 0)
    for n in a.names or TABLES:
        print(f"## {n}\n{TABLES[n]()}")


if __name__ == "__main__":
    main()
