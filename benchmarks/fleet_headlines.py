"""Headline results of the reference case and the H20 ban, side by side, over fleet seeds.

    python benchmarks/fleet_headlines.py [N_SEEDS]      # default 5

Each scenario runs with fleet.seed = 1..N (demand surprise, fab yields, lead times, failures;
the capacity cache stays warm). Prints mean and a 95% Student-t half-width across seeds, and the
difference alibaba_2025 - h20_ban paired seed by seed (the same futures in both). The
numbers rest on the scenarios' ASSUMPTION figures (demand level above all): they are what
those assumptions imply, not forecasts. (One future per seed; `fleetsim run` itself now runs
fleet.replications futures and prints their intervals: docs/fleet.md "Futures".)
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import sys
from pathlib import Path

import numpy as np
from scipy import stats

import fleetsim

ROOT = Path(__file__).resolve().parents[1]
CASES = pick(("alibaba_2025", "h20_ban"), ("fleet_small", "fleet_small"))


def collect(name: str, seeds: int) -> list[dict]:
    out = []
    for k in range(1, seeds + 1):
        sc = fleetsim.load_scenario(ROOT / "scenarios" / f"{name}.yaml",
                                    [f"fleet.seed={k}", "fleet.replications=1", *pick([], ["fleet.years=1"])])
        out.append(fleetsim.run(sc).summary["fleet"])
    return out


def ci(values) -> str:
    """Mean ± 95% half-width, the mean printed to the half-width's second significant digit
    (no more digits than the interval supports)."""
    v = np.asarray(values, dtype=float)
    m = v.mean()
    if len(v) < 2:
        return f"{m:.3g} (one seed)"
    h = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    if not np.isfinite(h) or h == 0:
        return f"{m:.3g} ± 0"
    decimals = max(0, 1 - int(np.floor(np.log10(h))))
    return f"{m:.{decimals}f} ± {h:.{decimals}f}"


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else pick(5, 2)
    runs = {c: collect(c, seeds) for c in CASES}
    rows = [("capex USD bn, total", lambda s: s["capex_usd_total"] / 1e9)]
    for y in runs[CASES[0]][0]["capex_usd_by_year"]:
        rows.append((f"capex USD bn, {y}", lambda s, y=y: s["capex_usd_by_year"][y] / 1e9))
    chips = sorted({c for r in runs.values() for s in r for c in s["fleet_mix_end"]})
    for c in chips:
        rows.append((f"installed at end, {c} (k)", lambda s, c=c: s["fleet_mix_end"].get(c, 0) / 1e3))
    rows += [
        ("unmet demand share", lambda s: s["unmet_demand_share"]),
        ("peak unmet share (a day)", lambda s: s["peak_unmet_share"]),
        ("cost USD per Mtok", lambda s: s["cost_usd_per_mtok"]),
        ("all-in cost USD per Mtok", lambda s: s["all_in_cost_usd_per_mtok"]),
        ("cash cost USD per Mtok", lambda s: s["cash_cost_usd_per_mtok"]),
        ("impaired USD bn", lambda s: s["impairment_usd"] / 1e9),
        ("at risk USD bn (held at end)", lambda s: s["at_risk_usd"] / 1e9),
        ("H20 at risk USD bn", lambda s: s["channels"]["nvidia-h20"]["at_risk_usd"] / 1e9),
        ("H200 ordered (k)", lambda s: s["channels"].get("nvidia-h200", {}).get("chips_ordered", 0.0) / 1e3),
        ("H200 delivered (k)", lambda s: s["channels"].get("nvidia-h200", {}).get("chips_delivered", 0.0) / 1e3),
        ("H200 at risk USD bn", lambda s: s["channels"].get("nvidia-h200", {}).get("at_risk_usd", 0.0) / 1e9),
        ("energy kWh per Mtok", lambda s: s["energy_kwh_per_mtok"]),
        ("US dependence at end", lambda s: s["us_dependence_share_end"]),
        ("US dependence, mean", lambda s: s["us_dependence_share_mean"]),
        ("chips stranded (k)", lambda s: s["chips_by_fate"]["stranded"] / 1e3),
        ("chips held in transit at end (k)", lambda s: s["chips_by_fate"]["in_transit"] / 1e3),
        ("window SLO attainment, mean", lambda s: s.get("window_attainment_mean") or float("nan")),
    ]
    for c in CASES:  # the sides of every Nvidia channel at the end (the same in every seed)
        for n, ch in runs[c][0]["channels"].items():
            if n.startswith("nvidia"):
                print(f"{c} {n}: exporter {ch['exporter_state']} (levy {ch['levy']:g}), importer "
                      f"{ch['importer_state']}")
    print(f"{seeds} fleet seeds; mean ± 95% half-width across seeds; the last column pairs the two "
          "cases seed by seed (common random numbers)")
    print(f"{'':36s}" + "".join(f"{c:>24s}" for c in CASES) + f"{'difference, paired':>24s}")
    for label, fn in rows:
        vals = [np.array([fn(s) for s in runs[c]], dtype=float) for c in CASES]
        print(f"{label:36s}" + "".join(f"{ci(v):>24s}" for v in vals) + f"{ci(vals[0] - vals[1]):>24s}")


if __name__ == "__main__":
    main()
