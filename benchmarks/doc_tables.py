"""Figures quoted in docs/, generated: every table between the markers

    <!-- generated: NAME (python benchmarks/doc_tables.py --write NAME); edit the script, not the table -->
    ...
    <!-- end generated: NAME -->

comes from the function NAME below, and tests/test_docs.py fails when a page's block differs
from what the function gives today (so a docs figure cannot drift from the code).

    python benchmarks/doc_tables.py                  # print every table
    python benchmarks/doc_tables.py --write [NAME]   # rewrite the blocks in docs/
    python benchmarks/doc_tables.py --check          # exit 1 if a block differs

Only deterministic figures (same code, scenario and seed: same digits); wall times are not here
(they belong to benchmarks that print them, quoted with their date).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

import fleetsim

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) [^\n]*-->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
                   re.S)

RULE_PLANNERS = (
    ("cheapest", ["fleet.planner={kind: cheapest, period_days: 30, horizon_days: 180, headroom: 0.1}"]),
    ("security_weighted (shipped)", []),
    ("domestic_share 0.7", ["fleet.planner={kind: domestic_share, period_days: 30, horizon_days: 180, "
                            "headroom: 0.1, target_share: 0.7}"]),
)


def planner_rules() -> str:
    """docs/planner.md: the rule planners on the reference case (windows off, as bench_planner)."""
    rows = ["| planner | capex USD B | unmet share | US dependence mean | US dependence end | cost USD/Mtok |",
            "|---|---|---|---|---|---|"]
    for label, ov in RULE_PLANNERS:
        sc = fleetsim.load_scenario(ROOT / "scenarios" / "alibaba_2025.yaml",
                                    ["fleet.windows.enabled=false", *ov])
        s = fleetsim.run(sc).summary["fleet"]
        rows.append(f"| {label} | {s['capex_usd_total'] / 1e9:.1f} | {s['unmet_demand_share']:.2g} | "
                    f"{s['us_dependence_share_mean']:.3f} | {s['us_dependence_share_end']:.3f} | "
                    f"{s['cost_usd_per_mtok']:.2f} |")
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


TABLES: dict[str, Callable[[], str]] = {"planner-rules": planner_rules, "validation-goodput": validation_goodput}


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
