"""Headline results of the reference case and the H20 ban, side by side, over the runs' futures.

    python benchmarks/fleet_headlines.py [R]      # default: the scenarios' own fleet.replications (16)

Each scenario runs as `fleetsim run` runs it: R futures from the scenario's fleet seed (demand
surprise, fab yields, lead times, failures, regime cycles). h20_ban.yaml extends alibaba_2025.yaml,
so both runs simulate the same futures (SeedSequence children by number) and the last column is
the difference alibaba_2025 - h20_ban paired future by future (common random numbers), as
`fleetsim compare` pairs them. Prints mean and a 95% Student-t half-width over the futures. The
numbers rest on the scenarios' ASSUMPTION figures (demand level above all): they are what those
assumptions imply, not forecasts.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import fleetsim

ROOT = Path(__file__).resolve().parents[1]
CASES = pick(("alibaba_2025", "h20_ban"), ("fleet_small", "fleet_small"))


def collect(name: str, replications: int | None) -> tuple[pd.DataFrame, dict]:
    """One run of the scenario: its replicates table (a row per future) and the representative
    future's fleet summary."""
    sets = [f"fleet.replications={replications}"] if replications else []
    sc = fleetsim.load_scenario(ROOT / "scenarios" / f"{name}.yaml", [*sets, *pick([], ["fleet.years=1"])])
    res = fleetsim.run(sc)
    return res.replicates, res.summary["fleet"]


def ci(values) -> str:
    """Mean ± 95% half-width, the mean printed to the half-width's second significant digit
    (no more digits than the interval supports)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "-"
    m = v.mean()
    if len(v) < 2:
        return f"{m:.3g} (one future)"
    h = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    if not np.isfinite(h) or h == 0:
        return f"{m:.3g} ± 0"
    decimals = max(0, 1 - int(np.floor(np.log10(h))))
    return f"{m:.{decimals}f} ± {h:.{decimals}f}"


def col(name: str, scale: float = 1.0):
    return lambda r: (r[name] if name in r else pd.Series(0.0, index=r.index)).astype(float) / scale


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else pick(None, 2)
    runs = {c: collect(c, reps) for c in CASES}
    a, b = (runs[c][0] for c in CASES)
    j = a.merge(b, on="seed", suffixes=("", "_b"))  # the futures both runs simulated
    base = runs[CASES[0]][0]
    rows = [("capex USD bn, total", col("capex_usd_total", 1e9))]
    rows += [(f"capex USD bn, {k.split('.')[-1]}", col(k, 1e9)) for k in base if k.startswith("capex_usd_by_year.")]
    chips = sorted({k for r, _ in runs.values() for k in r if k.startswith("fleet_mix_end.")})
    rows += [(f"installed at end, {k.split('.', 1)[1]} (k)", col(k, 1e3)) for k in chips]
    rows += [
        ("unmet demand share", col("unmet_demand_share")),
        ("peak unmet share (a day)", col("peak_unmet_share")),
        ("cost USD per Mtok", col("cost_usd_per_mtok")),
        ("all-in cost USD per Mtok", col("all_in_cost_usd_per_mtok")),
        ("cash cost USD per Mtok", col("cash_cost_usd_per_mtok")),
        ("impaired USD bn", col("impairment_usd", 1e9)),
        ("at risk USD bn (held at end)", col("at_risk_usd", 1e9)),
        ("H20 at risk USD bn", col("channels.nvidia-h20.at_risk_usd", 1e9)),
        ("H20 impaired USD bn", col("channels.nvidia-h20.impairment_usd", 1e9)),
        ("H200 ordered (k)", col("channels.nvidia-h200.chips_ordered", 1e3)),
        ("H200 delivered (k)", col("channels.nvidia-h200.chips_delivered", 1e3)),
        ("H200 at risk USD bn", col("channels.nvidia-h200.at_risk_usd", 1e9)),
        ("energy kWh per Mtok", col("energy_kwh_per_mtok")),
        ("US dependence at end", col("us_dependence_share_end")),
        ("US dependence, mean", col("us_dependence_share_mean")),
        ("chips stranded (k)", col("chips_by_fate.stranded", 1e3)),
        ("chips held in transit at end (k)", col("chips_by_fate.in_transit", 1e3)),
        ("window SLO attainment, mean", col("window_attainment_mean")),
    ]
    for c in CASES:  # the sides of every Nvidia channel at the end (the representative future's)
        for n, ch in runs[c][1]["channels"].items():
            if n.startswith("nvidia"):
                print(f"{c} {n}: exporter {ch['exporter_state']} (levy {ch['levy']:g}), importer "
                      f"{ch['importer_state']}")
    print(f"{len(a)} and {len(b)} futures, {len(j)} in common; mean ± 95% half-width over the futures; "
          "the last column pairs the two cases future by future (common random numbers)")
    print(f"{'':36s}" + "".join(f"{c:>24s}" for c in CASES) + f"{'difference, paired':>24s}")
    jb = j[[k for k in j if k.endswith("_b")]].rename(columns=lambda k: k[:-2])
    for label, fn in rows:
        print(f"{label:36s}" + f"{ci(fn(a)):>24s}" + f"{ci(fn(b)):>24s}" + f"{ci(fn(j) - fn(jb)):>24s}")


if __name__ == "__main__":
    main()
