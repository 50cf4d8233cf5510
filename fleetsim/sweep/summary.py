"""The sweep's tables and plots.

- results.parquet / results.csv: a row per point and replicate (parameters, seed, status,
  error, headline metrics), in point order whatever order the runs finished in.
- aggregate.parquet / aggregate.csv: a row per point: mean and 95% t-interval of each metric over
  the replicates that succeeded (NaN bounds with one replicate).
- plots/: tornado (main effect of each parameter on `metric`), heatmap (two parameters), Pareto
  front (cost against SLO attainment or unmet demand). matplotlib Agg, PNG.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fleetsim.sweep.spec import SweepError, SweepSpec
from fleetsim.sweep.store import PointStore

HIGHER_IS_BETTER = ("slo_attainment", "throughput", "goodput", "output_tokens")
STORE_ONLY = ("key", "wall_s", "cpu_s", "traceback", "seed", "status", "error", "futures_json")


def build_table(tasks: list[dict], points: list[dict], spec: SweepSpec, store: PointStore) -> pd.DataFrame:
    """A row per point and replicate from the store (timings left out: the table is reproducible)."""
    rows = []
    for t in tasks:
        stored = store.get(t["key"]) or {"status": "missing", "error": "not run"}
        row = {"point": t["point"], "replicate": t["replicate"]}
        row |= {p: points[t["point"]][p] for p in spec.paths}
        row |= {"seed": t["seed"], "status": stored.get("status"), "error": stored.get("error") or ""}
        row |= {k: v for k, v in stored.items() if k not in STORE_ONLY}
        rows.append(row)
    df = pd.DataFrame(rows)
    fixed = ["point", "replicate", *spec.paths, "seed", "status", "error"]
    metrics = sorted(c for c in df.columns if c not in fixed)
    df = df[fixed + metrics]
    df["seed"] = df["seed"].astype("int64")
    for c in metrics:
        df[c] = df[c].astype("float64")
    return df.sort_values(["point", "replicate"], kind="stable").reset_index(drop=True)


def metric_columns(table: pd.DataFrame, paths: list[str]) -> list[str]:
    fixed = {"point", "replicate", "seed", "status", "error", *paths}
    return [c for c in table.columns if c not in fixed]


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of the mean (NaN bounds for fewer than two values)."""
    from fleetsim.stats import t_interval as ti

    return ti(x)


def future_table(tasks: list[dict], points: list[dict], spec: SweepSpec, store: PointStore,
                 table: pd.DataFrame) -> pd.DataFrame:
    """A row per point, replicate and future (a fleet run's futures; one row per replicate for
    other runs), with the seed the future ran on: the units paired differences match."""
    import json

    rows = []
    metrics = metric_columns(table, spec.paths)
    for t in tasks:
        stored = store.get(t["key"]) or {}
        if stored.get("status") != "ok":
            continue
        base = {"point": t["point"], "replicate": t["replicate"], **{p: points[t["point"]][p] for p in spec.paths}}
        fut = json.loads(stored["futures_json"]) if stored.get("futures_json") else None
        if fut:
            for i, s in enumerate(fut["seeds"]):
                rows.append(base | {"future": i, "seed": int(s)}
                            | {m: fut[m][i] for m in metrics if m in fut})
        else:
            rows.append(base | {"future": 0, "seed": int(t["seed"])}
                        | {m: stored.get(m) for m in metrics})
    df = pd.DataFrame(rows)
    for c in metrics:
        if c in df:
            df[c] = df[c].astype("float64")
    return df


def paired_differences(units: pd.DataFrame, paths: list[str], baseline: int = 0) -> pd.DataFrame:
    """Each point minus the baseline point, per metric: the mean difference with its 95% paired
    interval over futures run on the same seeds (common random numbers), beside the interval the
    two would have as independent samples. NaN paired bounds when no future is shared."""
    from fleetsim.stats import unpaired_interval

    if units is None or not len(units) or baseline not in set(units["point"]):
        return pd.DataFrame()
    metrics = [c for c in units.columns if c not in {"point", "replicate", "future", "seed", *paths}]
    base = units[units["point"] == baseline]
    rows = []
    for point, g in units.groupby("point", sort=True):
        if point == baseline:
            continue
        j = g.merge(base, on=["replicate", "future", "seed"], suffixes=("", "_base"))
        for m in metrics:
            d = (j[m] - j[f"{m}_base"]).to_numpy(dtype=float) if len(j) else np.array([])
            mean, lo, hi = t_interval(d) if len(d) else (math.nan, math.nan, math.nan)
            um, ulo, uhi = unpaired_interval(base[m].to_numpy(float), g[m].to_numpy(float))
            rows.append({"point": point, **{p: g[p].iloc[0] for p in paths}, "baseline": baseline,
                         "metric": m, "pairs": int(np.count_nonzero(~np.isnan(d))),
                         "diff_mean": mean if len(d) else um, "diff_ci95_lo": lo, "diff_ci95_hi": hi,
                         "unpaired_ci95_lo": ulo, "unpaired_ci95_hi": uhi})
    return pd.DataFrame(rows)


def aggregate(table: pd.DataFrame, paths: list[str], units: pd.DataFrame | None = None) -> pd.DataFrame:
    """A row per point: parameters, runs ok/failed, mean and 95% CI of each metric (over the
    replicates, or over every future of every replicate when `units` holds a fleet's futures)."""
    metrics = metric_columns(table, paths)
    rows = []
    by_unit = ({p: g for p, g in units.groupby("point")} if units is not None and len(units)
               and len(units) > int((table["status"] == "ok").sum()) else {})
    for point, g in table.groupby("point", sort=True):
        ok = g[g["status"] == "ok"]
        src = by_unit.get(point, ok)
        row: dict[str, Any] = {"point": point, **{p: g[p].iloc[0] for p in paths},
                               "runs_ok": len(ok), "runs_failed": int((g["status"] == "failed").sum())}
        for m in metrics:
            mean, lo, hi = t_interval((src[m] if m in src else ok[m]).to_numpy(dtype=float))
            row[m] = mean
            row[f"{m}_ci95_lo"] = lo
            row[f"{m}_ci95_hi"] = hi
        rows.append(row)
    return pd.DataFrame(rows)


def write_tables(out: Path, table: pd.DataFrame, agg: pd.DataFrame, units: pd.DataFrame | None = None,
                 paired: pd.DataFrame | None = None) -> None:
    from fleetsim.results import runfolder

    for name, df in (("results", table), ("aggregate", agg), ("futures", units), ("paired", paired)):
        if df is None or (name in ("futures", "paired") and not len(df)):
            continue
        runfolder.write_table(out / f"{name}.parquet", df)
        df.to_csv(out / f"{name}.csv", index=False)


def unit_of(metric: str) -> str:
    if metric.endswith("_usd") or "_usd_" in metric:
        return "USD" if "per_mtok" not in metric else "USD per million tokens"
    if "_s_" in metric or metric.endswith("_s"):
        if "per_s" in metric:
            return "per second"
        return "s"
    if "attainment" in metric or "share" in metric:
        return "share, 0 to 1"
    return ""


def label(metric: str) -> str:
    u = unit_of(metric)
    return f"{metric} ({u})" if u else metric


def default_metric(metrics: list[str]) -> str | None:
    for pref in ("unmet_demand_share", "slo_attainment_min", "cost_usd_per_mtok", "throughput_req_per_s"):
        if pref in metrics:
            return pref
    return metrics[0] if metrics else None


def write_plots(out: Path, table: pd.DataFrame, agg: pd.DataFrame, spec: SweepSpec) -> list[Path]:
    """Tornado, heatmap and Pareto PNGs under out/plots (those the sweep's axes allow)."""
    import matplotlib

    matplotlib.use("Agg")
    metrics = metric_columns(table, spec.paths)
    metric = spec.metric or default_metric(metrics)
    if spec.metric is not None and spec.metric not in metrics:
        raise SweepError(f"--metric '{spec.metric}' is not a metric of this sweep; metrics: {', '.join(metrics)}")
    ok = table[table["status"] == "ok"]
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    written = []
    if metric is not None and len(ok) and ok[metric].notna().any():
        written.append(tornado(ok, spec.paths, metric, plots / f"tornado_{metric}.png"))
        pair = spec.heatmap or [p for p in spec.paths if ok[p].nunique() > 1][:2]
        if len(pair) == 2 and ok[pair[0]].nunique() > 1 and ok[pair[1]].nunique() > 1:
            written.append(heatmap(ok, pair[0], pair[1], metric, plots / f"heatmap_{metric}.png"))
    p = pareto(agg, plots, list(spec.paths))
    if p is not None:
        written.append(p)
    return written


def _levels(x: pd.Series) -> pd.Series:
    """Group labels for a parameter: its values, or three quantile bins when it has many."""
    if x.nunique() <= 10:
        return x
    return pd.qcut(x.rank(method="first"), 3, labels=False)


def tornado(ok: pd.DataFrame, paths: list[str], metric: str, path: Path) -> Path:
    """For each parameter, the mean metric at its lowest and highest level (main effect, averaged
    over the other parameters and the seeds), as a bar around the overall mean; widest on top.
    Shares in %, fields in words, as on the heatmap."""
    import matplotlib.pyplot as plt

    share = is_share(metric)
    k = 100.0 if share else 1.0
    overall = float(ok[metric].mean()) * k
    bars = []
    for p in paths:
        means = ok.groupby(_levels(ok[p]), sort=True)[metric].mean()
        if len(means) < 2:
            continue
        lo_v, hi_v = float(means.iloc[0]) * k, float(means.iloc[-1]) * k
        vals = ok[p]
        bars.append((p, lo_v, hi_v, vals.min(), vals.max()))
    bars.sort(key=lambda b: abs(b[2] - b[1]))
    fig, ax = plt.subplots(figsize=(8, 2.2 + 0.6 * max(1, len(bars))))
    for i, (p, lo_v, hi_v, vmin, vmax) in enumerate(bars):
        ax.barh(i, lo_v - overall, left=overall, color="tab:blue", label="parameter at its lowest value" if i == 0 else None)
        ax.barh(i, hi_v - overall, left=overall, color="tab:orange", label="parameter at its highest value" if i == 0 else None)
    ax.set_yticks(range(len(bars)), [f"{path_label(b[0])}\n[{_tick(b[3])} .. {_tick(b[4])}]" for b in bars], fontsize=8)
    words = metric.replace("_", " ")
    ax.axvline(overall, color="black", lw=0.8,
               label=f"mean over the sweep ({overall:.3g}{'%' if share else ''})")
    ax.set_xlabel(f"{words} (%)" if share else (f"{words} ({unit_of(metric)})" if unit_of(metric) else words))
    ax.set_title(f"Sensitivity of {words}: main effect of each parameter\n(mean over other parameters and seeds)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def is_share(metric: str) -> bool:
    """A metric that is a fraction of a whole (shown as a percentage)."""
    return metric.endswith("_share") or "_share_" in metric or metric.startswith(("slo_attainment", "availability"))


def path_label(path: str) -> str:
    """A swept field as words: `fleet.demand.chat.growth_per_year` -> `demand chat: growth per year`
    (the scenario section dropped, the field last), for axis labels a reader takes in."""
    parts = path.split(".")
    if parts[0] in ("fleet", "serving", "reliability") and len(parts) > 1:
        parts = parts[1:]
    field = parts[-1].replace("_", " ")
    where = " ".join(parts[:-1])
    return f"{where}: {field}" if where else field


def heatmap(ok: pd.DataFrame, a: str, b: str, metric: str, path: Path) -> Path:
    """Mean metric over a grid of two parameters (others and seeds averaged); shares in %."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    from fleetsim.results.display import pct

    grid = ok.assign(_a=_levels(ok[a]), _b=_levels(ok[b])).pivot_table(
        index="_b", columns="_a", values=metric, aggfunc="mean")
    share = is_share(metric)
    if share:
        grid = grid * 100
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    im = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [_tick(v) for v in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [_tick(v) for v in grid.index])
    arr = grid.to_numpy()
    mid = np.nanmean([np.nanmin(arr), np.nanmax(arr)])
    for (i, j), v in np.ndenumerate(arr):
        if not np.isnan(v):  # two digits: the seeds' spread rarely supports more
            ax.text(j, i, pct(v / 100) if share else f"{v:.2g}", ha="center", va="center", fontsize=9,
                    color="black" if v > mid else "white")
    ax.set_xlabel(path_label(a) + (" (tertile)" if ok[a].nunique() > 10 else ""))
    ax.set_ylabel(path_label(b) + (" (tertile)" if ok[b].nunique() > 10 else ""))
    bar = fig.colorbar(im, ax=ax, label=metric.replace("_", " ") + (" (%)" if share else f" ({unit_of(metric)})"
                                                                      if unit_of(metric) else ""))
    if share:
        bar.ax.yaxis.set_major_formatter(PercentFormatter(decimals=None))
    ax.set_title(f"{metric.replace('_', ' ')}: mean over seeds and other parameters", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _tick(v: Any) -> str:
    import numbers

    return f"{v:.4g}" if isinstance(v, numbers.Real) else str(v)


def pareto_front(cost: np.ndarray, quality: np.ndarray, higher_better: bool) -> np.ndarray:
    """Indices of points no other point beats on both cost (lower) and quality."""
    q = quality if higher_better else -quality
    order = np.lexsort((-q, cost))  # by cost, then best quality first
    front, best = [], -np.inf
    for i in order:
        if q[i] > best:
            front.append(i)
            best = q[i]
    return np.array(front, dtype=int)


# Swept fields a planner chooses (a front joins points that differ only in these); any other swept
# field is an assumption about the world (demand growth, prices, failure rates): one front each.
DECISION_PARTS = {"budget", "planner", "pools", "policy", "router", "tp", "batching", "rental", "rentals",
                  "mix", "kind", "roadmap"}
DECISION_WORDS = ("budget", "replicas", "headroom", "target_share", "total_usd")


def is_decision(path: str) -> bool:
    parts = path.split(".")
    return bool(DECISION_PARTS & set(parts)) or any(w in parts[-1] for w in DECISION_WORDS)


def fronts(d: pd.DataFrame, cost: str, quality: str, assume: list[str], higher: bool):
    """(assumption label, its points, their Pareto front's row positions) per combination of the
    assumption fields' values: a front never joins points that assume different worlds."""
    groups = d.groupby(assume, sort=True) if assume else [((), d)]
    out = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{path_label(p)} {_tick(v)}" for p, v in zip(assume, key)) or "sweep points"
        out.append((name, g, pareto_front(g[cost].to_numpy(), g[quality].to_numpy(), higher)))
    return out


def pareto(agg: pd.DataFrame, plots: Path, paths: list[str] | None = None) -> Path | None:
    """Cost against SLO attainment (serving) or unmet demand (fleet), per point (mean over seeds).
    Points that differ in an assumption (a swept field that is not a decision) are never joined:
    each assumption's values get their own front and colour; every point is labelled with its
    decision values."""
    import matplotlib.pyplot as plt

    cost = next((c for c in ("cost_usd_per_mtok", "capex_usd_total", "chip_capex_usd") if c in agg), None)
    quality = next((c for c in ("unmet_demand_share", "slo_attainment_min") if c in agg), None)
    if cost is None or quality is None:
        return None
    paths = [p for p in (paths or []) if p in agg]
    d = agg[[cost, quality, *paths]].dropna(subset=[cost, quality])
    if len(d) < 2:
        return None
    higher = quality.startswith("slo_attainment")
    assume = [p for p in paths if not is_decision(p) and d[p].nunique() > 1]
    decide = [p for p in paths if p not in assume and d[p].nunique() > 1]
    share = is_share(quality)
    scale = 100 if share else 1
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = plt.get_cmap("tab10").colors
    for k, (name, g, front) in enumerate(fronts(d, cost, quality, assume, higher)):
        col = colours[k % len(colours)]
        c, q = g[cost].to_numpy(), g[quality].to_numpy()
        ax.scatter(c, q * scale, color=col, s=22, alpha=0.5)
        ax.plot(c[front], q[front] * scale, "o-", color=col, label=f"front: {name}")
        at: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label
        for (_, row) in g.iterrows():
            if decide:
                at.setdefault((row[cost], row[quality] * scale), []).append(", ".join(_tick(row[p]) for p in decide))
        for xy, names in at.items():
            ax.annotate("; ".join(names), xy, textcoords="offset points", xytext=(4, 4), fontsize=7, color="#333333")
    ax.set_xlabel(label(cost))
    ax.set_ylabel(quality.replace("_", " ") + (" (%)" if share else ""))
    what = f"; points labelled {', '.join(path_label(p) for p in decide)}" if decide else ""
    ax.set_title(f"Cost against {quality.replace('_', ' ')} ({'higher' if higher else 'lower'} is better)\n"
                 f"one front per assumption{what}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = plots / f"pareto_{cost}_{quality}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_ci(mean: float, lo: float, hi: float) -> str:
    """Mean with its interval, rounded to the digits the interval supports (fleetsim.results.rounding)."""
    from fleetsim.results.rounding import format_interval

    if math.isnan(mean):
        return "n/a"
    return format_interval(mean, lo, hi)


def summary_text(res: Any, metric: str | None = None) -> str:
    """A short table for the terminal: counts, then each point's metric with its CI."""
    agg, paths = res.aggregate, list(res.table.columns[2:res.table.columns.get_loc("seed")])
    lines = [(f"sweep: {res.points} points x {res.runs // max(res.points, 1)} seeds = {res.runs} runs; "
              f"{res.from_store} from the store, {res.ran} run, {res.failed} failed ({res.executor}, {res.wall_s:.1f} s)")]
    metrics = metric_columns(res.table, paths)
    metric = metric or res.metric or default_metric(metrics)
    if metric is not None and metric in agg:
        lines.append(f"{'  '.join(paths)}  ->  {metric} (mean ± 95% CI half-width)")
        for row in agg.head(40).to_dict("records"):
            vals = "  ".join(_tick(row[p]) if isinstance(row[p], float) else f"{row[p]}" for p in paths)
            lines.append(f"  {vals}  ->  {format_ci(row[metric], row[f'{metric}_ci95_lo'], row[f'{metric}_ci95_hi'])}"
                         + (f"  [{int(row['runs_failed'])} failed]" if row["runs_failed"] else ""))
        if len(agg) > 40:
            lines.append(f"  ... {len(agg) - 40} more in aggregate.csv")
        pd_ = getattr(res, "paired", None)
        if pd_ is not None and len(pd_) and metric in set(pd_["metric"]):
            sub = pd_[pd_["metric"] == metric]
            base = int(sub["baseline"].iloc[0])
            lines.append(f"difference from point {base} in {metric}: paired on the same futures "
                         "(95% interval) | as if independent")
            for row in sub.head(40).to_dict("records"):
                vals = "  ".join(_tick(row[p]) if isinstance(row[p], float) else f"{row[p]}" for p in paths)
                paired_txt = (format_ci(row["diff_mean"], row["diff_ci95_lo"], row["diff_ci95_hi"])
                              if row["pairs"] else "no shared futures")
                lines.append(f"  {vals}  ->  {paired_txt} ({row['pairs']} pairs) | "
                             f"{format_ci(row['diff_mean'], row['unpaired_ci95_lo'], row['unpaired_ci95_hi'])}")
    lines.append(f"outputs: {res.out_dir}")
    return "\n".join(lines)
