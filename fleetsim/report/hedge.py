"""The `fleetsim hedge` figure, drawn from the run folder's hedge.parquet and summary.json alone:
expected cost and CVaR per policy with 95% intervals, and the out-of-sample price-of-security front."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def plot(run_dir: str | Path, svg: bool = False) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    s = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    pol = s["policies"]
    names = [n for n in pol if pol[n]["expected_cost_usd"][0] is not None]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.6))
    for i, n in enumerate(names):
        for off, key, colour in ((-0.15, "expected_cost_usd", "tab:blue"), (0.15, "cvar_cost_usd", "tab:red")):
            m, lo, hi = pol[n][key]
            if m is None:
                continue
            err = [[(m - lo) / 1e9], [(hi - m) / 1e9]] if lo is not None and hi is not None else None
            ax.errorbar(i + off, m / 1e9, yerr=err, fmt="o", color=colour, capsize=3,
                        label=None if i else key.replace("_usd", ""))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("cost over the horizon, USD B")
    from fleetsim.results.rounding import format_interval

    ax.set_title(f"{s['holdout']} held-out futures: VSS {format_interval(*s['vss_usd'], kind='usd')}, "
                 f"EVPI {format_interval(*s['evpi_usd'], kind='usd')}", fontsize=10)
    ax.legend(fontsize=8)
    front = s["front"]
    if front:
        x = [r["cvar_cost_usd"][0] / 1e9 for r in front]
        y = [r["expected_cost_usd"][0] / 1e9 for r in front]
        bx.plot(x, y, "o-", color="tab:purple")
        labels: dict[tuple, list[str]] = {}
        for r, xi, yi in zip(front, x, y):  # weights landing on one point share one label
            labels.setdefault((round(xi, 9), round(yi, 9)), []).append(f"{r['risk_weight']:g}")
        for (xi, yi), ws in labels.items():
            bx.annotate("w=" + ", ".join(ws), (xi, yi), fontsize=8, xytext=(3, 3), textcoords="offset points")
    bx.set_xlabel(f"CVaR{int(round(s['cvar_alpha'] * 100))} cost, USD B")
    bx.set_ylabel("expected cost, USD B")
    bx.set_title("Price of security, out of sample")
    fig.tight_layout()
    path = run_dir / "plots" / ("hedge.svg" if svg else "hedge.png")
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def read(run_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(run_dir) / "hedge.parquet")
