"""Replicated futures: a fleet run is R simulations of the same scenario from one root seed.

Future r runs the fleet on its own root, `child_seed(root, "future", r)` (a SeedSequence child),
so everything random differs between futures: demand surprise, regime cycles, lead times, fab
yields, crashes and the serving windows' arrivals. The scenario, the forecast and the planner's
own sampling (seeded by the scenario seed) do not. The capacity table is computed once by the
caller and shared; short runs simulate the futures one after another in this process, long ones
(estimated >= POOL_MIN_S) on a pool of forked processes that inherit it, collected in future
order (the same bytes). benchmarks/bench_futures.py measures time against R.

Outputs (fleetsim.api makes the tables):
- a row per future of every numeric figure of its summary (`replicates`), nested figures flattened
  with dots (`capex_usd_by_year.2026`), so any figure a future's summary gains gets an interval;
- per day and chip kind, quantiles over the futures of demand, capacity, unmet, installed and
  capex (`quantiles`);
- the `futures` block of summary.json: each figure's mean with its 95% Student-t interval over the
  futures and P5/P50/P95, the representative future and why it was chosen, and which headlines'
  intervals are wide, with the replication count that would narrow them;
- the full tables of one representative future: the one whose unmet demand share is closest to
  the median over the futures (ties: cost per Mtok closest to its median, then the lowest index),
  so its tables tell a typical story, not the luckiest or the worst.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from fleetsim.errors import ScenarioError
from fleetsim.rng import child_seed
from fleetsim.stats import quantiles as _quantiles
from fleetsim.stats import t_interval

# Headline figures, how they read, and the least half-width worth acting on (a share's interval of
# +-0.5 points is narrow enough whatever its relative size).
HEADLINES = {
    "unmet_demand_share": ("share", 0.005),
    "peak_unmet_share": ("share", 0.01),
    "capex_usd_total": ("usd", 0.0),
    "cost_usd_per_mtok": ("plain", 0.0),
    "cash_cost_usd_per_mtok": ("plain", 0.0),
    "energy_kwh_per_mtok": ("plain", 0.0),
    "us_dependence_share_end": ("share", 0.01),
    "window_attainment_mean": ("share", 0.005),
}
# A headline's interval is wide when its half-width exceeds this share of its mean (and the floor).
WIDE_RELATIVE = 0.10
# Per-day quantiles over the futures, by chip kind (timeline columns) and the capex run to date.
QUANTILE_COLUMNS = ("demand_tokens_per_s", "capacity_tokens_per_s", "unmet_tokens_per_s", "installed",
                    "capex_usd")
QUANTILES = (5, 50, 95)
# Limits checked before the start: memory held by the futures' tables, and estimated wall time.
MAX_FUTURES_BYTES = 4e9
MAX_FUTURES_WALL_S = 6 * 3600.0
# Cost model of the estimate (fitted to the quickstart, 0.53 s, and the reference case, 1.5 s of CPU
# a future on the 2-core machine; benchmarks/bench_futures.py):
# seconds per simulated day and replica type, and per serving-window request.
S_PER_POOL_DAY = 0.6e-4
S_PER_WINDOW_REQUEST = 1.25e-5


def future_seeds(root: int, replications: int) -> list[int]:
    """The root of each future's streams: SeedSequence children of the fleet seed, by number."""
    return [child_seed(root, "future", r) for r in range(replications)]


def numeric_leaves(summary: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number of a summary (nested dicts flattened with dots; booleans, strings and lists
    left out): what a future contributes to replicates.parquet."""
    out: dict[str, float] = {}
    for k, v in summary.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            out[name] = float(v)
        elif isinstance(v, dict):
            out |= numeric_leaves(v, name + ".")
    return out


def estimate(scenario, replications: int) -> tuple[float, float]:
    """(wall seconds, bytes) R futures of this scenario would take: the fleet's days x replica
    types, plus its serving windows' requests; tables held for every future until the end."""
    f, serving = scenario.fleet, scenario.serving
    npl, days = len(serving.pools), f.days
    nch = len({p.chip for p in serving.pools.values()})
    w = f.windows
    n_win = 0
    if w.enabled:
        n_win = len(range(w.every_days - 1, days, w.every_days))
        if w.max_windows is not None:
            n_win = min(n_win, w.max_windows)
    rate = sum(getattr(wl.arrival, "rate_per_s", None) or getattr(wl.arrival, "mean_rate_per_s", None) or 10.0
               for wl in serving.workloads.values())
    reqs = n_win * w.cell_replicas * max(rate, 1.0) * w.duration_s / max(1, len(serving.workloads))
    secs = replications * (S_PER_POOL_DAY * days * npl * (1 + len(f.channels) / 4) + S_PER_WINDOW_REQUEST * reqs)
    per_future = 8.0 * days * (40 * nch + 40 * npl) + 400.0 * days * nch * 6
    return secs, replications * per_future


def check_limits(scenario) -> None:
    """Refuse, before the start, a replication count whose time or memory would exceed the limits."""
    R = scenario.fleet.replications
    secs, mem = estimate(scenario, R)
    if secs > MAX_FUTURES_WALL_S or mem > MAX_FUTURES_BYTES:
        per_s, per_b = secs / R, mem / R
        fit = int(max(1, min(MAX_FUTURES_WALL_S / per_s, MAX_FUTURES_BYTES / per_b)))
        raise ScenarioError(
            f"fleet.replications={R}: about {secs / 3600:.2g} h and {mem / 1e9:.2g} GB estimated "
            f"(limits {MAX_FUTURES_WALL_S / 3600:g} h, {MAX_FUTURES_BYTES / 1e9:g} GB); use at most "
            f"{fit} futures, or shorten the horizon or the serving windows", field="fleet.replications")


@dataclass
class Futures:
    """R futures of one fleet run: the representative's full result and every future's figures."""

    root_seed: int
    seeds: list[int]
    representative: int
    result: Any                        # FleetResult of the representative future
    replicates: dict[str, list]        # a row per future
    quantiles: dict[str, Any]          # a row per day and chip kind
    block: dict[str, Any]              # summary.json's `futures`
    all_results: list | None = None    # every future's FleetResult (keep_all=True: for tests)


def run_futures(scenario, chips: dict, models: dict, caps: dict,
                progress: Callable[[str], None] | None = None, window_runner=None,
                keep_all: bool = False, caps_grid: dict | None = None) -> Futures:
    """Simulate the fleet's R futures; every future's conservation checks run inside run_fleet
    (the cohort engine checks its chip accounting every day)."""
    from fleetsim.fleet.sim import run_fleet
    from fleetsim.progress import update

    f = scenario.fleet
    root = f.seed if f.seed is not None else scenario.seed
    R = f.replications
    seeds = future_seeds(root, R)
    results = []
    workers = future_workers(scenario)
    if workers > 1:  # forked workers, futures in order: the same bytes as one process
        if progress:
            progress(f"{R} futures on {workers} processes")
        for r, res in enumerate(_pool_map(scenario, chips, models, caps, caps_grid, seeds, workers)):
            results.append(res)
            update(progress, "futures", r + 1, R)
    for r, s in enumerate(seeds if workers == 1 else []):
        inner = progress if r == 0 else None  # one future's detail, then a count
        res = run_fleet(scenario, chips, models, caps, inner, window_runner=window_runner,
                        caps_grid=caps_grid, seed=s)
        if not keep_all:
            res.pool_daily = {}  # day x pool arrays for tests: not kept for R futures
        results.append(res)
        if R > 1:
            update(progress, "futures", r + 1, R)
    rows = [numeric_leaves(res.summary) for res in results]
    keys = sorted({k for row in rows for k in row})
    replicates: dict[str, list] = {"future": list(range(R)), "seed": seeds}
    for k in keys:
        replicates[k] = [row.get(k, math.nan) for row in rows]
    rep, why = pick_representative(replicates)
    block = _block(root, seeds, replicates, keys, rep, why)
    return Futures(root, seeds, rep, results[rep], replicates, _quantiles_table(results), block,
                   results if keep_all else None)


# Futures go to a pool of forked processes when one process would take at least this long
# (estimated) and the machine has more than one core; FLEETSIM_FUTURE_WORKERS=N sets the count
# (1: one process; a sweep's workers set it, so pools never nest).
POOL_MIN_S = 20.0
WORKERS_ENV = "FLEETSIM_FUTURE_WORKERS"


def future_workers(scenario) -> int:
    """Processes for this run's futures (1 unless they are long enough to pay for a pool)."""
    import multiprocessing
    import os

    R = scenario.fleet.replications
    env = os.environ.get(WORKERS_ENV)
    if env:
        try:
            return max(1, min(R, int(env)))
        except ValueError:
            return 1
    if R < 4 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if cores < 2 or estimate(scenario, R)[0] < POOL_MIN_S:
        return 1
    return min(cores, R, 8)


_WORKER: dict[str, Any] = {}
_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})  # the parent's to handle (_pool_map)


def _worker_init(scenario, chips, models, caps, caps_grid) -> None:
    import os

    os.environ[WORKERS_ENV] = "1"
    # The parent stops the workers (fleetsim.pools.shutdown): Ctrl-C, sent to the whole process
    # group, is the parent's to handle, and SIGTERM ends a worker at once. The CLI's handlers,
    # inherited by fork, raised inside every worker and printed their tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # forked with both blocked (_pool_map): now safe to take
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _WORKER.update(scenario=scenario, chips=chips, models=models, caps=caps, caps_grid=caps_grid)


def _worker_run(seed: int):
    from fleetsim.fleet.sim import run_fleet
    from fleetsim.fleet.windows import window_runner

    w = _WORKER
    res = run_fleet(w["scenario"], w["chips"], w["models"], w["caps"], None,
                    window_runner=window_runner(w["chips"], w["models"]), caps_grid=w["caps_grid"],
                    seed=seed)
    res.pool_daily = {}
    return res


def _pool_map(scenario, chips, models, caps, caps_grid, seeds: list[int], workers: int):
    """Each future in a forked worker (it inherits the warm capacity table and catalogs; nothing
    re-imports the caller's script), results in future order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from fleetsim.pools import shutdown

    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(scenario, chips, models, caps, caps_grid))
    # submit, not pool.map: map's iterator cancels the queued futures from this thread when an
    # interrupt leaves it, and the pool's manager thread (Python 3.11) then fails setting the
    # broken pool's error on a cancelled future (InvalidStateError traceback after 'interrupted')
    # The first submit forks the workers. Ctrl-C in that instant found a worker still holding the
    # CLI's handlers (a traceback from it), or this process before the try below (no worker
    # stopped: the exit then waited for every future submitted). So SIGINT and SIGTERM are blocked
    # across the forks: the workers are born with them blocked (their initializer ignores SIGINT,
    # then unblocks), and this process takes a held-back one as the mask is restored, in the try.
    mask = (signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            if hasattr(signal, "pthread_sigmask") else None)
    try:
        try:
            todo = [pool.submit(_worker_run, s) for s in seeds]
        finally:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fut in todo:
            yield fut.result()
    except BaseException:  # Ctrl-C, SIGTERM, a failing future: stop the futures in flight now
        shutdown(pool, kill=True)
        raise
    shutdown(pool)


def pick_representative(rep: dict[str, list]) -> tuple[int, str]:
    """The future whose unmet demand share is closest to the median (ties: cost per Mtok closest
    to its median, then the lowest index)."""
    R = len(rep["future"])
    def dist(key: str) -> np.ndarray:
        x = np.asarray(rep.get(key, [math.nan] * R), dtype=float)
        if np.isnan(x).all():
            return np.zeros(R)
        return np.nan_to_num(np.abs(x - np.nanmedian(x)), nan=np.inf)
    order = np.lexsort((np.arange(R), dist("cost_usd_per_mtok"), dist("unmet_demand_share")))
    i = int(order[0])
    return i, ("the future whose unmet demand share is closest to the median over the futures "
               "(ties: cost per Mtok closest to its median)")


def _block(root: int, seeds: list[int], rep: dict[str, list], keys: list[str], i: int, why: str) -> dict:
    R = len(seeds)
    headlines = {}
    for k in keys:
        x = np.asarray(rep[k], dtype=float)
        mean, lo, hi = t_interval(x)
        p5, p50, p95 = _quantiles(x, QUANTILES)
        nan = lambda v: None if v is None or not math.isfinite(v) else float(v)
        headlines[k] = {"mean": nan(mean), "ci95_lo": nan(lo), "ci95_hi": nan(hi), "p5": nan(p5),
                        "p50": nan(p50), "p95": nan(p95),
                        "sd": nan(float(np.nanstd(x, ddof=1)) if R > 1 else None)}
    wide = []
    for k, (_, floor) in HEADLINES.items():
        h = headlines.get(k)
        if h is None or h["ci95_lo"] is None:
            continue
        half = (h["ci95_hi"] - h["ci95_lo"]) / 2
        target = max(WIDE_RELATIVE * abs(h["mean"]), floor)
        if half > target and target > 0:
            need = int(math.ceil(R * (half / target) ** 2))
            wide.append({"figure": k, "mean": h["mean"], "half_width": half, "target_half_width": target,
                         "replications_for_target": need})
    out: dict[str, Any] = {
        "replications": R, "root_seed": root, "seeds": seeds,
        "representative": {"future": i, "seed": seeds[i], "rule": why},
        "interval": "95% Student-t interval of the mean over the futures; p5/p50/p95 over the futures",
        "headlines": headlines, "wide": wide,
    }
    if R == 1:
        out["advice"] = ("one future: the headlines are one draw, with no interval; set "
                         "fleet.replications (5 or more) to see their spread")
    elif wide:
        need = max(w["replications_for_target"] for w in wide)
        names = ", ".join(w["figure"] for w in wide)
        out["advice"] = (f"wide interval ({names}): its half-width exceeds {WIDE_RELATIVE:.0%} of the mean; "
                         f"set fleet.replications to about {need} to bring it there ({4 * R} would halve "
                         "it: the interval narrows as 1/sqrt(R); P5-P95, the spread of the futures "
                         "themselves, does not)")
    return out


def _quantiles_table(results: list) -> dict[str, Any]:
    """Per day and chip kind, P5/P50/P95 and mean over the futures (demand and unmet are fleet
    totals, repeated on every chip's row as in the timeline); capex also run to date. Rows with
    chip "all" (after the per-chip rows) hold the quantiles of the fleet's totals."""
    tl0 = results[0].timeline
    chips = np.asarray(tl0["chip"])
    nch = len(np.unique(chips))
    D = len(chips) // nch
    dates = np.asarray(tl0["date"])
    out: dict[str, Any] = {"date": np.concatenate([dates, dates[::nch]]),
                           "chip": np.concatenate([chips, np.full(D, "all", dtype=object)])}
    for col in (*QUANTILE_COLUMNS, "capex_cum_usd"):
        src = "capex_usd" if col == "capex_cum_usd" else col
        per = np.stack([np.asarray(r.timeline[src], dtype=float).reshape(D, nch) for r in results])  # R x D x chip
        if col == "capex_cum_usd":
            per = np.cumsum(per, axis=1)
        total = per[:, :, 0] if col in ("demand_tokens_per_s", "unmet_tokens_per_s") else per.sum(axis=2)
        stack = np.concatenate([per.reshape(len(results), -1), total], axis=1)
        q = np.percentile(stack, QUANTILES, axis=0)
        for qi, qv in zip(QUANTILES, q):
            out[f"{col}_p{qi}"] = qv
        out[f"{col}_mean"] = stack.mean(axis=0)
    return out
