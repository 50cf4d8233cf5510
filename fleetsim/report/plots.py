"""Plots of a run folder, drawn from its tables alone (never from live simulation objects), so
`fleetsim plot RUN_DIR` redraws exactly what `fleetsim run` drew.

One colour per chip kind on every plot (`chip_colour`); titles carry units; supply and regime
events are marked on every time axis. Each plot is drawn once and written as PNG (for the report)
into RUN_DIR/plots/; `fleetsim plot --svg` also writes SVG (for slides) from the same figure. A plot whose data the run did not produce is skipped, never faked.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; never a window (CI and servers have no display)

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fleetsim.errors import FleetsimError  # noqa: E402
from fleetsim.forked import fork_map  # noqa: E402

# Fixed colours: Nvidia parts in blues/greens/purples, domestic parts in reds/oranges/browns, so a
# reader sees "imported vs domestic" at a glance and the same chip looks the same everywhere.
PALETTE = {
    "h20": "#4daf4a", "h100": "#377eb8", "h100-pcie": "#6baed6", "h800": "#984ea3", "h200": "#1b9e77",
    "a100": "#08519c", "a800": "#7570b3", "l20": "#66a61e", "b200": "#17becf",
    "t-head-ppu": "#ff7f00", "hanguang-800": "#fdbf6f", "ascend-910b": "#e41a1c",
    "ascend-910c": "#99000d", "mlu370": "#a65628", "mlu590": "#f781bf",
}
_SPARE = plt.get_cmap("tab20").colors
DPI = 110
SIZE = (11.5, 5.4)
CDF_POINTS = 200  # a CDF is drawn through this many quantiles, whatever the request count
FORMATS: tuple[str, ...] = ("png",)  # draw_all(svg=True) adds "svg"
COMPACT = False  # set by draw_compare: half-width figures, legends under the plot
_YLIM: dict[str, tuple[float, float]] = {}  # draw_compare: each plot's y range, to share across runs
_YLIM_SET: dict[str, tuple[float, float]] = {}
# Roadmap generations of one chip share its hue and differ by lightness and by a hatch pattern.
GEN_HATCH = ("", "//", "..", "xx", "\\\\", "++", "oo")


def chip_colour(chip: str) -> str | tuple:
    """The chip's fixed colour; chips outside the palette get a stable colour from their name."""
    if chip in PALETTE:
        return PALETTE[chip]
    # Roadmap generations (fleet roadmaps name them <base>-genN): the base chip's hue, lighter
    # for each generation, so a family reads as one.
    base = max((k for k in PALETTE if chip.startswith(k + "-")), key=len, default=None)
    if base is not None:
        tail = chip[len(base) + 1:]
        n = int(tail[3:]) if tail.startswith("gen") and tail[3:].isdigit() else 1
        rgb = np.array(matplotlib.colors.to_rgb(PALETTE[base]))
        # alternate lighter / darker so neighbouring generations never sit side by side in shade
        step = (n + 1) // 2 * 0.28
        out = rgb + (1 - rgb) * min(step, 0.75) if n % 2 else rgb * max(1 - step, 0.3)
        return matplotlib.colors.to_hex(np.clip(out, 0, 1))
    return _SPARE[zlib.crc32(chip.encode()) % len(_SPARE)]


def chip_hatch(chip: str) -> str:
    """Hatch pattern of a roadmap generation (<base>-genN); none for a catalog chip."""
    tail = chip.rsplit("-", 1)[-1]
    if tail.startswith("gen") and tail[3:].isdigit():
        return GEN_HATCH[int(tail[3:]) % len(GEN_HATCH)] or "--"
    return ""


def _stack(ax, x, table: pd.DataFrame, chips: list[str], label=lambda c: c, alpha=0.8) -> None:
    """A stackplot with each chip's colour and its generation's hatch."""
    polys = ax.stackplot(x, [table[c].to_numpy() for c in chips], labels=[label(c) for c in chips],
                         colors=[chip_colour(c) for c in chips], alpha=alpha)
    for poly, c in zip(polys, chips):
        if chip_hatch(c):
            poly.set_hatch(chip_hatch(c))
            poly.set_edgecolor("white")
            poly.set_linewidth(0.0)


def cdf_points(values, n: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, share) of an empirical CDF at no more than `n` evenly spaced quantiles: what a plot
    needs to show the curve, at a fixed cost whatever the number of requests."""
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    if len(x) <= n:
        return x, np.arange(1, len(x) + 1) / max(len(x), 1)
    idx = np.unique(np.linspace(0, len(x) - 1, n).round().astype(int))
    return x[idx], (idx + 1) / len(x)


_TABLES: dict[tuple, pd.DataFrame] = {}  # RunFolder.table: (file, mtime, size, inode) -> its table


@dataclass
class RunFolder:
    """A finished run folder's files, read lazily."""

    path: Path
    manifest: dict
    summary: dict

    @property
    def kind(self) -> str:
        return self.manifest.get("kind", "serving")

    def table(self, name: str) -> pd.DataFrame | None:
        """The table as a DataFrame of its own (the caller may change it): each file is read once
        per process (the plots and the report read the same tables about 30 times)."""
        f = self.path / f"{name}.parquet"
        try:
            st = f.stat()
        except OSError:
            return None
        key = (str(f.resolve()), st.st_mtime_ns, st.st_size, st.st_ino)
        if key not in _TABLES:
            if len(_TABLES) >= 64:
                _TABLES.clear()
            _TABLES[key] = pd.read_parquet(f)
        return _TABLES[key].copy()

    @property
    def scenario(self) -> dict:
        f = self.path / "scenario.resolved.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else self.manifest.get("scenario", {})


def open_run(path: Path) -> RunFolder:
    """Read a finished run folder, or say plainly why it cannot be used."""
    path = Path(path)
    if not path.is_dir():
        raise FleetsimError(f"no run folder at {path}")
    from fleetsim.results.runfolder import read_manifest

    try:
        manifest = read_manifest(path)  # a finished run's, or the staged one of the run drawing now
    except (OSError, ValueError) as exc:
        raise FleetsimError(f"cannot read {path}: {exc}") from None
    if manifest is None:
        err = path / "error.json"
        why = ""
        if err.is_file():
            try:
                why = f" (it failed: {json.loads(err.read_text())['error']})"
            except (ValueError, KeyError, OSError):
                why = " (it failed)"
        raise FleetsimError(f"{path} is not a finished fleetsim run: no manifest.json{why}")
    try:
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FleetsimError(f"cannot read {path}: {exc}") from None
    return RunFolder(path, manifest, summary)


# ---------------------------------------------------------------------------------------------
# helpers


def _layout(fig, strip_in: float) -> None:
    """Margins from what the figure holds, in inches (title, tick labels, an outside legend's
    longest label, the event caption strip): no layout pass, so each figure is drawn once, at
    savefig (tight_layout draws every text to measure it, which cost as much as the drawing)."""
    w, h = fig.get_size_inches()
    axes = fig.axes
    rows = len({round(a.get_position().y0, 3) for a in axes}) or 1
    cols = len({round(a.get_position().x0, 3) for a in axes}) or 1
    right = 0.25
    below = 0.0
    for ax in axes:
        leg = ax.get_legend()
        if leg is None or leg.get_bbox_to_anchor() is None:
            continue
        anchor = getattr(leg, "_fleetsim_outside", None)
        labels = [t.get_text() for t in leg.get_texts()]
        if anchor == "right":
            right = max(right, 0.55 + 0.072 * max((len(t) for t in labels), default=0))
        elif anchor == "below":
            below = max(below, 0.35 + 0.19 * getattr(leg, "_fleetsim_rows", (len(labels) + 1) // 2))
    if below:  # the figure grows by a legend under it: the axes keep one height whatever it lists,
        h += below  # so a compare row's panels draw equal values at equal heights
        fig.set_size_inches(w, h)
    top = 0.45 + (0.3 if fig._suptitle is not None else 0.0)
    left, bottom = 0.85, 0.5 + strip_in + below
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=min(bottom / h, 0.6),
                        hspace=0.55 if rows > 1 else 0.2, wspace=0.28 if cols > 1 else 0.2)


def _save(fig, out: Path, name: str, written: list[Path]) -> None:
    first = fig.axes[0] if fig.axes else None
    if first is not None:
        if name in _YLIM_SET:
            first.set_ylim(*_YLIM_SET[name])
        _YLIM[name] = first.get_ylim()
    key = getattr(fig, "_fleetsim_events", None)
    if key:
        lines, line = [], "Events:"
        width = 95 if COMPACT else 150
        for i, k in enumerate(key, 1):
            item = f"  ({i}) {k}"
            if len(line) + len(item) > width:
                lines.append(line)
                line = "       "
            line += item
        lines.append(line)
        # the caption gets its own strip: the figure grows by the caption's height (8 pt lines)
        w, h = fig.get_size_inches()
        strip = 0.135 * len(lines) + 0.12
        fig.set_size_inches(w, h + strip)
        fig.text(0.01, 0.04 / (h + strip), "\n".join(lines), fontsize=8, va="bottom", ha="left",
                 color="#222222", family="monospace")
        _layout(fig, strip)
    else:
        _layout(fig, 0.0)
    for ext in FORMATS:
        p = out / f"{name}.{ext}"
        # Fixed metadata: the same run draws byte-identical SVGs (no creation date).
        meta = {"Date": None} if ext == "svg" else {"Software": None}
        fig.savefig(p, dpi=DPI, metadata=meta)
        written.append(p)
    plt.close(fig)


def _legend(ax, outside: bool = True, **kw) -> None:
    """Legend beside the plot (never over the data) unless `outside` is False."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ncol = 1
        if outside and COMPACT:  # half width: the legend goes under the plot, in two columns if they fit
            ncol = 2 if _legend_width_in(labels, 2) <= ax.figure.get_size_inches()[0] - 0.2 else 1
            kw = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.1), "ncol": ncol, "borderaxespad": 0.0}
        elif outside:
            kw = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}
        leg = ax.legend(handles, labels, frameon=True, framealpha=0.95, fontsize=9, **kw)
        leg._fleetsim_outside = ("below" if COMPACT else "right") if outside else None
        leg._fleetsim_rows = -(-len(labels) // ncol)


def _legend_width_in(labels: list[str], ncol: int) -> float:
    """Width of a 9 pt legend in inches, columns filled top to bottom as matplotlib fills them:
    per column its handle and gaps (0.6 in) and its longest label (0.072 in a character, as
    _layout reckons), plus the frame. Estimated, not measured: measuring means drawing."""
    rows = -(-len(labels) // ncol)
    cols = [labels[i:i + rows] for i in range(0, len(labels), rows)]
    return 0.2 + sum(0.6 + 0.072 * max(len(t) for t in c) for c in cols)


def _date_axis(ax) -> None:
    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(True, alpha=0.3)


def supply_events(run: RunFolder) -> pd.DataFrame:
    """Regime changes and removals, as (x, label): what every fleet time axis marks (not the
    timeline's notes, which change no state)."""
    ev = run.table("events")
    if ev is None or "date" not in ev or not len(ev):
        return pd.DataFrame(columns=["x", "label"])
    keep = ev[ev["kind"].astype(str).isin(["regime_change", "removal", "cancel"])]
    rows = []
    for _, e in keep.iterrows():
        detail = str(e.get("detail", "") or "")
        state = detail.split(";")[0].strip() if e["kind"] == "regime_change" else str(e["kind"])
        if state == "note":  # a dated reference that changes no state: a marker would say only "note"
            continue
        who = str(e.get("channel", "") or e.get("chip", "") or "")
        rows.append({"x": pd.Timestamp(e["date"]), "label": f"{who}: {state}" if who else state})
    out = pd.DataFrame(rows, columns=["x", "label"])
    return out.drop_duplicates()


def _mark_events(ax, events: pd.DataFrame, numeric: bool = False) -> None:
    """Dashed vertical lines, numbered at the top of the axis; the numbers are keyed in a caption
    under the figure (labels written along the lines collide when events are close)."""
    if events is None or not len(events):
        return
    fig = ax.figure
    key = getattr(fig, "_fleetsim_events", None)
    if key is None:
        key = fig._fleetsim_events = []
    trans = ax.get_xaxis_transform()
    last_x, level = None, 0
    lo, hi = ax.get_xlim()
    if not numeric:
        xs = mdates.date2num(pd.to_datetime(events["x"]))
        lo, hi = min(lo, xs.min()), max(hi, xs.max())
    gap = (hi - lo) * 0.02  # markers closer than 2% of the axis (about a marker's width) step down
    for _, e in events.sort_values("x").iterrows():
        x = e["x"]
        text = (f"{x:%Y-%m-%d}" if not numeric else f"t={x:.0f} s") + f" {e['label']}"
        if text not in key:
            key.append(text)
        n = key.index(text) + 1
        ax.axvline(x, color="#555555", ls="--", lw=0.9, alpha=0.8, zorder=1)
        span = pd.Timedelta(days=gap) if not numeric else gap
        level = (level + 1) % 6 if last_x is not None and (x - last_x) < span else 0
        ax.text(x, 0.985 - 0.065 * level, str(n), transform=trans, ha="center", va="top", fontsize=8,
                color="#222222", zorder=6, bbox=dict(boxstyle="circle,pad=0.2", fc="white", ec="#555555", lw=0.7))
        last_x = x


def _per_chip(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """date x chip table of `col`."""
    return df.pivot_table(index="date", columns="chip", values=col, aggfunc="sum", observed=True).fillna(0.0)


def _chips_order(chips) -> list[str]:
    return sorted(map(str, chips))


def _nonzero(table: pd.DataFrame) -> list[str]:
    """Chip columns with any non-zero value: a kind with zero capacity all run has no legend entry."""
    return [c for c in _chips_order(table.columns) if float(table[c].abs().sum()) > 0]


def peak_factor(run) -> float:
    """Peak-hour demand over the daily mean, from the scenario's diurnal profiles (the classes'
    profiles weighted by their starting demand): the hour the planner sizes the fleet for."""
    dem = ((run.scenario.get("fleet") or {}).get("demand")) or {}
    prof, w = np.zeros(24), 0.0
    for c in dem.values():
        ptm = float(c.get("peak_to_mean") or 1.0)
        wt = float(c.get("tokens_per_s") or 1.0)
        h = np.arange(24) + 0.5
        m = np.clip(1.0 + (ptm - 1.0) * np.cos(2 * np.pi * (h - float(c.get("peak_hour") or 14.0)) / 24.0), 0, None)
        prof += wt * m / m.mean()
        w += wt
    return float(prof.max() / w) if w > 0 else 1.0


# ---------------------------------------------------------------------------------------------
# fleet runs (the tables of docs/tables.md)


def _fan(run, col: str, scale: float):
    """P5/P95 over the futures of a fleet total (quantiles.parquet, chip "all"), or None when the
    run has one future."""
    q = run.table("quantiles")
    if q is None or (run.summary.get("futures") or {}).get("replications", 1) < 2:
        return None
    a = q[q["chip"].astype(str) == "all"].set_index("date")
    return a[f"{col}_p5"] / scale, a[f"{col}_p95"] / scale


def _draw_fan(ax, fan, colour: str, label: str) -> None:
    """P5 and P95 as two thin lines: a translucent band over a stack of chip colours tinted
    them into new colours (green under grey read as another chip kind)."""
    if fan is not None:
        lo, hi = fan
        ax.plot(lo.index, lo.to_numpy(), color=colour, ls="-.", lw=0.8, alpha=0.8, label=label, zorder=3)
        ax.plot(hi.index, hi.to_numpy(), color=colour, ls="-.", lw=0.8, alpha=0.8, zorder=3)


def _fan_note(run) -> str:
    fut = run.summary.get("futures") or {}
    R = fut.get("replications", 1)
    if R < 2:
        return ""
    return (f"\nfuture {(fut.get('representative') or {}).get('future')} drawn; thin broken lines: P5 and P95 "
            f"of {R} futures")


def fleet_demand_capacity(run, out, written):
    tl = run.table("timeline")
    cap = _per_chip(tl, "capacity_tokens_per_s") / 1e6
    chips = _nonzero(cap)
    day = tl.groupby("date", observed=True).agg(demand=("demand_tokens_per_s", "first"),
                                                unmet=("unmet_tokens_per_s", "first")) / 1e6
    fig, ax = plt.subplots(figsize=SIZE)
    _stack(ax, cap.index, cap, chips, label=lambda c: f"capacity: {c}", alpha=0.75)
    factor = peak_factor(run)
    peak = day["demand"] * factor
    ax.plot(day.index, peak, color="black", lw=1.8, label=f"peak-hour demand ({factor:.2g} x daily mean)")
    ax.plot(day.index, day["demand"], color="black", lw=1.0, ls="--", label="daily mean demand")
    total = cap.sum(axis=1).reindex(day.index).fillna(0.0)
    # The planner sizes for the peak hour: capacity under the peak line is the peak-hour shortfall.
    short = np.maximum(peak - total, 0.0)
    ax.fill_between(day.index, peak - short, peak, where=short > 0, facecolor="white", edgecolor="#b2182b",
                    hatch="////", lw=0.0, alpha=0.9, label="peak-hour shortfall", zorder=4)
    fan_d, fan_c = _fan(run, "demand_tokens_per_s", 1e6), _fan(run, "capacity_tokens_per_s", 1e6)
    _draw_fan(ax, fan_d, "black", "daily mean demand, P5 and P95 over the futures")
    if fan_c is not None:
        ax.plot(fan_c[0].index, fan_c[0], color="tab:blue", ls="--", lw=0.9, label="capacity, P5 and P95 over the futures")
        ax.plot(fan_c[1].index, fan_c[1], color="tab:blue", ls="--", lw=0.9)
    top = max(float(peak.max()), float(total.max()),
              float(fan_d[1].max()) if fan_d is not None else 0.0, float(fan_c[1].max()) if fan_c is not None else 0.0)
    ax.set_ylim(0, top * 1.15)
    ax.set_title("Peak-hour demand against capacity, stacked by chip kind (million output tokens/s)"
                 + _fan_note(run))
    ax.set_ylabel("million output tokens/s")
    _date_axis(ax)
    _mark_events(ax, supply_events(run))
    _legend(ax, loc="upper left")
    _save(fig, out, "demand_vs_capacity", written)


def fleet_mix(run, out, written):
    tl = run.table("timeline")
    inst = _per_chip(tl, "installed") / 1e3
    chips = _nonzero(inst)
    fig, ax = plt.subplots(figsize=SIZE)
    _stack(ax, inst.index, inst, chips, alpha=0.85)
    if "on_order" in tl:
        oo = tl.groupby("date", observed=True)["on_order"].sum() / 1e3
        ax.plot(oo.index, oo, color="#444444", ls=":", lw=1.5, label="on order (all chips)")
    fan = _fan(run, "installed", 1e3)
    _draw_fan(ax, fan, "black", "installed, P5 and P95 over the futures")
    ax.set_ylim(0, max(float(inst.sum(axis=1).max()), float(fan[1].max()) if fan is not None else 0.0, 1e-9) * 1.2)
    ax.set_title("Fleet mix: installed chips by kind (thousands of chips)" + _fan_note(run))
    ax.set_ylabel("thousand chips")
    _date_axis(ax)
    _mark_events(ax, supply_events(run))
    _legend(ax, loc="upper left")
    _save(fig, out, "fleet_mix", written)


def _budget_schedule(run) -> pd.Series | None:
    """Cumulative budget by date from the scenario's fleet.budget (total x yearly shares)."""
    fleet = run.scenario.get("fleet") or {}
    budget = fleet.get("budget") or {}
    total = budget.get("total_usd") or run.summary.get("fleet", {}).get("budget_usd")
    if not total:
        return None
    start = pd.Timestamp(fleet.get("start") or run.table("timeline")["date"].min())
    years = int(fleet.get("years") or 1)
    shares = budget.get("schedule")
    if not isinstance(shares, list) or not shares:  # "even" (or absent): equal shares per year
        shares = [1.0 / years] * years
    shares = np.asarray(shares, float)
    shares = shares / shares.sum() if shares.sum() > 0 else shares
    dates = [start + pd.DateOffset(years=i) for i in range(len(shares))]
    cum = np.cumsum(shares) * float(total)
    end = start + pd.DateOffset(years=max(years, len(shares)))
    return pd.Series(list(cum) + [cum[-1]], index=dates + [end])


def fleet_capex(run, out, written):
    tl = run.table("timeline")
    capex = _per_chip(tl, "capex_usd").cumsum() / 1e6
    chips = _nonzero(capex)
    fig, ax = plt.subplots(figsize=SIZE)
    _stack(ax, capex.index, capex, chips, label=lambda c: f"capex: {c}")
    sched = _budget_schedule(run)
    if sched is not None:
        ax.step(sched.index, sched.to_numpy() / 1e6, where="post", color="black", lw=1.8,
                label="budget released (cumulative)")
    fan = _fan(run, "capex_cum_usd", 1e6)
    _draw_fan(ax, fan, "black", "capex to date, P5 and P95 over the futures")
    top = max(float(capex.sum(axis=1).max()), float(sched.max() / 1e6) if sched is not None else 0.0,
              float(fan[1].max()) if fan is not None else 0.0)
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set_title("Cumulative capex against the budget schedule (million USD)" + _fan_note(run))
    ax.set_ylabel("million USD")
    _date_axis(ax)
    _mark_events(ax, supply_events(run))
    _legend(ax, loc="upper left")
    _save(fig, out, "capex_vs_budget", written)


def monthly_cost_per_mtok(tl: pd.DataFrame) -> pd.DataFrame:
    """Per month: (depreciation + opex + power) USD over served million tokens."""
    served_col = "served_tokens_per_s" if "served_tokens_per_s" in tl else None
    day = tl.groupby("date", observed=True)
    # opex_usd already holds power_usd (fleet/records.py: opex = power + other opex)
    cost_cols = [c for c in ("depreciation_usd", "opex_usd") if c in tl]
    cost = day[cost_cols].sum().sum(axis=1)
    if served_col:
        served = day[served_col].sum()
    else:
        served = day["demand_tokens_per_s"].first() - day["unmet_tokens_per_s"].first()
    m = pd.DataFrame({"cost_usd": cost, "mtok": served * 86400 / 1e6})
    m = m.resample("MS").sum()
    m["usd_per_mtok"] = np.where(m["mtok"] > 0, m["cost_usd"] / m["mtok"].where(m["mtok"] > 0), np.nan)
    return m


def fleet_cost(run, out, written):
    m = monthly_cost_per_mtok(run.table("timeline"))
    fig, ax = plt.subplots(figsize=SIZE)
    ax.bar(m.index, m["usd_per_mtok"], width=20, color="#6a51a3", alpha=0.85,
           label="depreciation + operating cost / tokens served")
    avg = run.summary.get("fleet", {}).get("cost_usd_per_mtok")
    if avg is not None:
        ax.axhline(avg, color="black", lw=1.2, ls="-.", label=f"whole run: {avg:.3g} USD per million tokens")
    ax.set_ylim(0, float(np.nanmax(m["usd_per_mtok"].to_numpy(), initial=0)) * 1.25 or 1)
    ax.set_title("Cost per million output tokens served, by month (USD)")
    ax.set_ylabel("USD per million tokens")
    _date_axis(ax)
    _mark_events(ax, supply_events(run))
    _legend(ax, loc="upper right")
    _save(fig, out, "cost_per_mtok", written)


def fleet_slo(run, out, written):
    w = run.table("windows")
    if w is None or not len(w):
        return
    fig, ax = plt.subplots(figsize=SIZE)
    for (chip, wl), g in w.groupby(["chip", "workload"], observed=True):
        g = g.sort_values("date")
        col = chip_colour(str(chip))
        ax.plot(g["date"], g["attainment"] * 100, marker="o", color=col, label=f"{chip} / {wl}")
        if "attainment_ci95_lo" in g:
            ax.fill_between(g["date"], g["attainment_ci95_lo"] * 100, g["attainment_ci95_hi"] * 100,
                            color=col, alpha=0.2)
    targets = _slo_percentiles(run)
    for p in sorted(set(targets.values())):
        ax.axhline(p, color="black", ls=":", lw=1.2, label=f"SLO target: {p:g}% of requests")
    ax.set_ylim(max(0, float(np.nanmin(w["attainment"])) * 100 - 10), 102)
    ax.set_title("SLO attainment in the serving windows, per chip kind (% of requests meeting the SLO, 95% CI)")
    ax.set_ylabel("% of requests meeting SLO")
    _date_axis(ax)
    _mark_events(ax, supply_events(run))
    _legend(ax, loc="lower left")
    _save(fig, out, "slo_attainment", written)


def _slo_percentiles(run) -> dict[str, float]:
    wls = (run.scenario.get("serving") or {}).get("workloads") or {}
    return {k: float(v.get("slo", {}).get("percentile", 95)) for k, v in wls.items()}


def fleet_latency_cdf(run, out, written):
    w = run.table("windows")
    if w is None or not len(w) or "p95_ttft_s" not in w:
        return
    fig, axes = plt.subplots(1, 2, figsize=SIZE)
    for ax, col, what in ((axes[0], "p95_ttft_s", "TTFT"), (axes[1], "p95_tpot_s", "TPOT")):
        for chip, g in w.groupby("chip", observed=True):
            x, y = cdf_points(g[col].dropna().to_numpy())
            if len(x):
                ax.step(x, y, where="post", color=chip_colour(str(chip)), lw=2, label=str(chip),
                        ls="--" if chip_hatch(str(chip)) else "-")
        tgt = [v.get("slo", {}).get(f"{what.lower()}_s") for v in
               ((run.scenario.get("serving") or {}).get("workloads") or {}).values()]
        for t in sorted({t for t in tgt if t}):
            ax.axvline(t, color="black", ls=":", label=f"target {t:g} s")
        ax.set_title(f"p95 {what} per window (s)")
        ax.set_xlabel("seconds")
        ax.set_ylabel("share of windows")
        ax.grid(True, alpha=0.3)
        _legend(ax, outside=False, loc="lower right")
    fig.suptitle("Latency across serving windows, per chip kind (CDF of each window's p95)")
    _save(fig, out, "latency_cdf", written)


def fleet_health(run, out, written):
    tl = run.table("timeline")
    panels = []
    if "mean_temp_c" in tl:
        panels.append("temp")
    if "throttled_share" in tl:
        panels.append("throttle")
    if "crashes" in tl:
        panels.append("crashes")
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(SIZE[0], 2.6 * len(panels) + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, what in zip(axes, panels):
        if what == "crashes":
            # per 1,000 chips installed (the month's mean), so kinds of any fleet size compare
            crashes = tl.pivot_table(index="date", columns="chip", values="crashes", aggfunc="sum",
                                     observed=True).fillna(0).resample("MS").sum()
            inst = tl.pivot_table(index="date", columns="chip", values="installed", aggfunc="sum",
                                  observed=True).fillna(0).resample("MS").mean()
            rate = crashes / inst.where(inst > 0) * 1000  # no line before a kind is installed
            chips = [c for c in _chips_order(rate.columns) if rate[c].notna().any()]
            for c in chips:
                ax.plot(rate.index, rate[c], color=chip_colour(c), lw=2, marker="o", ms=3, label=c,
                        ls="--" if chip_hatch(c) else "-")
            top = float(np.nanmax(rate[chips].to_numpy())) if chips else 0.0
            ax.set_ylim(0, max(top, 1e-9) * 1.3)
            ax.set_title("Crashes per 1,000 installed chips, by month and chip kind")
            ax.set_ylabel("crashes per 1,000 chips")
        else:
            col = "mean_temp_c" if what == "temp" else "throttled_share"
            scale = 1 if what == "temp" else 100
            per = tl.pivot_table(index="date", columns="chip", values=col, aggfunc="mean",
                                 observed=True).resample("MS").mean()
            for c in [c for c in _chips_order(per.columns) if per[c].notna().any()]:
                ax.plot(per.index, per[c] * scale, color=chip_colour(c), lw=2, label=c)
            ax.set_title("Mean chip temperature by month (deg C)" if what == "temp"
                         else "Share of chip time throttled, by month (%)")
            ax.set_ylabel("deg C" if what == "temp" else "%")
        _date_axis(ax)
        _mark_events(ax, supply_events(run))
        _legend(ax, loc="upper left")
    _save(fig, out, "health", written)


def fleet_us_dependence(run, out, written):
    tl = run.table("timeline")
    if "us_dependence_share" not in tl:
        return
    s = tl.groupby("date", observed=True)["us_dependence_share"].first() * 100
    fig, ax = plt.subplots(figsize=SIZE)
    ax.fill_between(s.index, 0, s, color=PALETTE["h20"], alpha=0.35)
    ax.plot(s.index, s, color="#1a6b1a", lw=2, label="capacity on US-controlled chips")
    ax.set_ylim(0, 105)
    ax.set_title("US dependence: share of installed capacity on US export-controlled chips (%)")
    ax.set_ylabel("% of capacity")
    _date_axis(ax)
    _mark_events(ax, supply_events(run))
    _legend(ax, loc="upper right")
    _save(fig, out, "us_dependence", written)


FLEET_PLOTS: list[Callable] = [fleet_demand_capacity, fleet_mix, fleet_capex, fleet_cost, fleet_slo,
                               fleet_latency_cdf, fleet_health, fleet_us_dependence]


# ---------------------------------------------------------------------------------------------
# serving windows


def _pool_chip(run) -> dict[str, str]:
    return {k: v["chip"] for k, v in run.summary.get("pools", {}).items()}


def serving_latency_cdf(run, out, written):
    rq = run.table("requests")
    warm = float(run.summary.get("warmup_s", 0))
    m = rq[rq.arrival_s >= warm]
    fig, axes = plt.subplots(1, 2, figsize=SIZE)
    wls = (run.scenario.get("serving") or {}).get("workloads") or {}
    for ax, col, what in ((axes[0], "ttft_s", "TTFT"), (axes[1], "tpot_s", "TPOT")):
        for chip, g in m.groupby("chip", observed=True):
            n = int(g[col].notna().sum())
            x, y = cdf_points(g[col].dropna().to_numpy())
            if len(x):
                ax.step(x, y, where="post", color=chip_colour(str(chip)), lw=2, label=f"{chip} ({n:,} requests)")
        for t in sorted({v.get("slo", {}).get(col) for v in wls.values()} - {None}):
            ax.axvline(t, color="black", ls=":", label=f"SLO target {t:g} s")
        for p in sorted({v.get("slo", {}).get("percentile") for v in wls.values()} - {None}):
            ax.axhline(p / 100, color="#888888", ls="--", lw=0.8, label=f"p{p:g}")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels collide
        ax.set_title(f"{what} per request (s, log scale)")
        ax.set_xlabel("seconds")
        ax.set_ylabel("share of requests")
        ax.grid(True, alpha=0.3, which="both")
        _legend(ax, outside=False, loc="lower right")
    fig.suptitle("Latency distribution by chip kind (requests after warm-up)")
    _save(fig, out, "latency_cdf", written)


def _bins(run) -> tuple[np.ndarray, float]:
    dur = float(run.summary.get("duration_s", 0))
    width = max(1.0, dur / 60)
    return np.arange(0, dur + width, width), width


def _serving_events(run) -> pd.DataFrame:
    ev = run.table("events")
    if ev is None or not len(ev) or "time_s" not in ev:
        return pd.DataFrame(columns=["x", "label"])
    crash = ev[ev["kind"].astype(str) == "crash"]
    rows = [{"x": float(t), "label": f"crash {p}"} for t, p in zip(crash.time_s, crash["pool"].astype(str))]
    return pd.DataFrame(rows[:30], columns=["x", "label"])


def serving_over_time(run, out, written):
    rq = run.table("requests")
    edges, width = _bins(run)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(SIZE[0], 7), sharex=True)
    done = rq[rq.status.astype(str) == "completed"]
    for (pool, chip), g in done.groupby(["pool", "chip"], observed=True):
        tok, _ = np.histogram(g.finish_s, bins=edges, weights=g.output_tokens)
        a1.plot(edges[:-1] + width / 2, tok / width, color=chip_colour(str(chip)), lw=1.8,
                label=f"{pool} ({chip})")
        idx = np.digitize(g.arrival_s, edges) - 1
        p95 = pd.Series(g.ttft_s.to_numpy()).groupby(idx).quantile(0.95)
        a2.plot(edges[p95.index.to_numpy()] + width / 2, p95.to_numpy(), color=chip_colour(str(chip)), lw=1.8,
                label=f"{pool} ({chip})")
    wls = (run.scenario.get("serving") or {}).get("workloads") or {}
    for t in sorted({v.get("slo", {}).get("ttft_s") for v in wls.values()} - {None}):
        a2.axhline(t, color="black", ls=":", label=f"TTFT target {t:g} s")
    warm = float(run.summary.get("warmup_s", 0))
    for ax in (a1, a2):
        ax.axvspan(0, warm, color="#cccccc", alpha=0.4, label="warm-up (not measured)")
        ax.grid(True, alpha=0.3)
    a1.set_title(f"Output throughput per pool ({width:g} s bins, tokens/s)")
    a1.set_ylabel("output tokens/s")
    a2.set_title("p95 time to first token by arrival time (s)")
    a2.set_ylabel("seconds")
    a2.set_xlabel("simulated time (s)")
    for ax in (a1, a2):
        _mark_events(ax, _serving_events(run), numeric=True)
        _legend(ax, loc="upper right")
    _save(fig, out, "throughput_latency", written)


def serving_batch_queue(run, out, written):
    """Running (admitted, not finished) and waiting (arrived, not admitted) requests per replica,
    derived from the request timings: the tables hold no sampled batch or queue series."""
    rq = run.table("requests")
    dur = float(run.summary.get("duration_s", 0))
    grid = np.linspace(0, dur, 400)
    reps = {k: max(1, v.get("replicas", 1)) for k, v in run.summary.get("pools", {}).items()}
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(SIZE[0], 7), sharex=True)
    for (pool, chip), g in rq.groupby(["pool", "chip"], observed=True):
        adm = np.sort(g.admitted_s.dropna().to_numpy())
        fin = np.sort(g.finish_s.dropna().to_numpy())
        arr = np.sort(g.arrival_s.to_numpy())
        running = np.searchsorted(adm, grid, side="right") - np.searchsorted(fin, grid, side="right")
        rejected_or_done = np.searchsorted(adm, grid, side="right")
        rej = np.sort(g.finish_s[g.admitted_s.isna() & g.finish_s.notna()].to_numpy()) \
            if "finish_s" in g else np.array([])
        waiting = np.searchsorted(arr, grid, side="right") - rejected_or_done - np.searchsorted(rej, grid, side="right")
        n = reps.get(str(pool), 1)
        col = chip_colour(str(chip))
        a1.plot(grid, running / n, color=col, lw=1.6, label=f"{pool} ({chip}), {n} replicas")
        a2.plot(grid, np.maximum(waiting, 0) / n, color=col, lw=1.6, label=f"{pool} ({chip})")
    a1.set_title("Batch size: requests running per replica (derived from request timings)")
    a1.set_ylabel("requests per replica")
    a2.set_title("Queue length: requests waiting per replica (derived from request timings)")
    a2.set_ylabel("requests per replica")
    a2.set_xlabel("simulated time (s)")
    for ax in (a1, a2):
        ax.grid(True, alpha=0.3)
        _mark_events(ax, _serving_events(run), numeric=True)
        _legend(ax, loc="upper right")
    _save(fig, out, "batch_queue", written)


SERVING_PLOTS: list[Callable] = [serving_latency_cdf, serving_over_time, serving_batch_queue]


# ---------------------------------------------------------------------------------------------
# reliability runs (timeline: day x cohort; hourly; events with time_s)


def reliability_health(run, out, written):
    tl = run.table("timeline")
    ev = run.table("events")
    days = tl["day"].to_numpy()
    fig, axes = plt.subplots(3, 1, figsize=(SIZE[0], 8.5), sharex=True)
    for chip, g in tl.groupby("chip", observed=True):
        col = chip_colour(str(chip))
        d = g.groupby("day").agg(t=("mean_temp_c", "mean"), th=("throttled_share", "mean"))
        axes[0].plot(d.index / 30.4, d["t"], color=col, lw=2, label=str(chip))
        axes[1].plot(d.index / 30.4, d["th"] * 100, color=col, lw=2, label=str(chip))
    n_days = int(days.max()) + 1
    span_m = n_days / 30.4
    edges = np.append(np.arange(0, np.ceil(span_m)), span_m)  # the last month may be partial
    if ev is not None and len(ev):
        crash = ev[ev["kind"].astype(str) == "crash"]
        bottom = np.zeros(len(edges) - 1)
        for chip, g in crash.groupby("chip", observed=True):
            h, _ = np.histogram(g.time_s / 86400 / 30.4, bins=edges)
            axes[2].bar(edges[:-1], h, width=np.diff(edges) * 0.9, align="edge", bottom=bottom,
                        color=chip_colour(str(chip)), label=str(chip))
            bottom += h
    lo, hi = axes[0].get_ylim()
    mid = (lo + hi) / 2
    axes[0].set_ylim(min(lo, mid - 2), max(hi, mid + 2))  # at least a 4 C span: no false drama
    axes[0].ticklabel_format(axis="y", useOffset=False)
    axes[1].set_ylim(0, max(1.0, axes[1].get_ylim()[1]))
    axes[0].set_title("Mean chip temperature (deg C)")
    axes[0].set_ylabel("deg C")
    axes[1].set_title("Share of chip time throttled (%)")
    axes[1].set_ylabel("%")
    partial = " (last bar: a partial month)" if span_m % 1 > 0.05 else ""
    axes[2].set_title(f"Crashes per month (count; months of 30.4 days){partial}")
    axes[2].set_ylabel("crashes")
    axes[2].set_xlabel("months since start")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        _legend(ax, loc="upper left")
    _save(fig, out, "health", written)


def reliability_availability(run, out, written):
    tl = run.table("timeline")
    fig, ax = plt.subplots(figsize=SIZE)
    for cohort, g in tl.groupby("cohort", observed=True):
        chip = str(g["chip"].iloc[0])
        ax.plot(g["day"], g["availability"] * 100, color=chip_colour(chip), lw=1.8, label=f"{cohort} ({chip})")
    ax.set_title("Daily availability per cohort (% of chip time up)")
    ax.set_ylabel("% up")
    ax.set_xlabel("day")
    ax.grid(True, alpha=0.3)
    _legend(ax, loc="lower left")
    _save(fig, out, "availability", written)


RELIABILITY_PLOTS: list[Callable] = [reliability_health, reliability_availability]


def draw_all(run_dir: Path, svg: bool = False) -> list[Path]:
    """Every plot this run's tables support, into RUN_DIR/plots (PNG, and SVG if `svg`: each
    figure drawn once and saved in each format); returns the files written."""
    global FORMATS
    FORMATS = ("png", "svg") if svg else ("png",)
    run = open_run(run_dir)
    if run.kind == "hedge":  # `fleetsim hedge` folders: their one figure (fleetsim.report.hedge)
        from fleetsim.report.hedge import plot as plot_hedge

        return [plot_hedge(run.path, svg=s) for s in ((False, True) if svg else (False,))]
    out = run.path / "plots"
    out.mkdir(exist_ok=True)
    plots = {"fleet": FLEET_PLOTS, "serving": SERVING_PLOTS, "reliability": RELIABILITY_PLOTS}.get(run.kind, [])
    with plt.rc_context({"font.size": 10, "axes.titlesize": 11, "svg.hashsalt": "fleetsim"}):
        # figures are independent (a chip's colour comes from its name, never from drawing
        # order): a forked child draws every other one, each drawn and saved once, same bytes
        results = fork_map(lambda fn: _draw_one(fn, run, out), plots)
    written = [p for files, _ in results for p in files]
    failed = [f for _, f in results if f]
    if failed:
        raise PlotError(f"could not draw {'; '.join(failed)} (the other plots are in {out}; the run "
                        "itself is complete): please report this")
    return written


def _draw_one(fn: Callable, run: RunFolder, out: Path) -> tuple[list[Path], str | None]:
    """One plot function's files, or the reason it failed (one plot's bug must not cost the others
    or the report)."""
    files: list[Path] = []
    try:
        fn(run, out, files)
    except Exception as exc:
        plt.close("all")
        return files, f"{fn.__name__}: {type(exc).__name__}: {exc}"
    return files, None


PLOT_STEM = {"fleet_demand_capacity": "demand_vs_capacity", "fleet_mix": "fleet_mix",
             "fleet_capex": "capex_vs_budget", "fleet_cost": "cost_per_mtok", "fleet_slo": "slo_attainment",
             "fleet_latency_cdf": "latency_cdf", "fleet_health": "health", "fleet_us_dependence": "us_dependence",
             "serving_latency_cdf": "latency_cdf", "serving_over_time": "throughput_latency",
             "serving_batch_queue": "batch_queue", "reliability_health": "health",
             "reliability_availability": "availability"}


def draw_compare(run_dirs: list[Path], stems: list[str], out: Path) -> list[dict[str, Path]]:
    """The key plots of several runs for a side-by-side page: half-width figures with legends
    under them, and one y range per plot shared by every run (drawn once to find each run's
    range, then again at the widest), so equal heights mean equal values. Returns, per run,
    {plot name: PNG}."""
    global COMPACT, SIZE, FORMATS
    runs = [open_run(d) for d in run_dirs]
    fns = {"fleet": FLEET_PLOTS, "serving": SERVING_PLOTS, "reliability": RELIABILITY_PLOTS}
    saved = (COMPACT, SIZE, FORMATS)
    COMPACT, SIZE, FORMATS = True, (6.4, 5.4), ("png",)
    result: list[dict[str, Path]] = []
    try:
        with plt.rc_context({"font.size": 10, "axes.titlesize": 10}):
            for attempt in ("measure", "draw"):
                ranges: dict[str, list[tuple[float, float]]] = {}
                result = []
                for i, run in enumerate(runs):
                    folder = out / f"run{i}"
                    folder.mkdir(parents=True, exist_ok=True)
                    written: list[Path] = []
                    for fn in fns.get(run.kind, []):
                        if PLOT_STEM.get(fn.__name__) not in stems:
                            continue
                        _YLIM.clear()
                        try:
                            fn(run, folder, written)
                        except Exception:  # noqa: BLE001 - the run's own report shows the failure
                            plt.close("all")
                            continue
                        for k, v in _YLIM.items():
                            ranges.setdefault(f"{run.kind}:{k}", []).append(v)
                    result.append({p.stem: p for p in written if p.stem in stems})
                if attempt == "measure":
                    if len(runs) < 2:
                        break
                    _YLIM_SET.clear()
                    for key, rs in ranges.items():
                        _YLIM_SET[key.split(":", 1)[1]] = (min(r[0] for r in rs), max(r[1] for r in rs))
    finally:
        COMPACT, SIZE, FORMATS = saved
        _YLIM_SET.clear()
    return result


class PlotError(FleetsimError):
    """Some plots could not be drawn from a complete run folder."""
