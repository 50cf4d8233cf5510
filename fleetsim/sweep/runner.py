"""Run a sweep: validate every point up front, skip what the store holds, run the rest on an
executor, write each finished run at once, then the summary table and plots.

A point runs through `fleetsim.api.run(scenario)` without a run folder of its own (a sweep of
hundreds of points would write hundreds of request tables nobody reads); its headline metrics
go to the store. Rerun one point with `fleetsim run SCENARIO --set ... --seed SEED` for its tables.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fleetsim.errors import FleetsimError
from fleetsim.sweep.spec import (
    SweepError,
    SweepSpec,
    override_strings,
    replicate_seed,
    settle_integer_axes,
)
from fleetsim.sweep.store import PointStore, content_key


@dataclass
class SweepResult:
    """What a finished (or resumed) sweep produced."""

    out_dir: Path
    table: pd.DataFrame
    aggregate: pd.DataFrame
    points: int
    runs: int
    from_store: int
    ran: int
    failed: int
    executor: str
    wall_s: float
    plots: list[Path] = field(default_factory=list)
    metric: str | None = None  # the tornado/heatmap metric
    paired: pd.DataFrame | None = None  # differences against the baseline point, paired by future


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """One run (in a worker): metrics on success, the error on failure; never raises."""
    from fleetsim import api
    from fleetsim.sweep.metrics import future_metrics, headline_metrics

    t0, c0 = time.perf_counter(), time.process_time()
    row: dict[str, Any] = {"key": task["key"], "seed": task["seed"], "status": "ok", "error": ""}
    from fleetsim.fleet.futures import WORKERS_ENV

    before = os.environ.get(WORKERS_ENV)
    os.environ[WORKERS_ENV] = "1"  # parallel across points: a point's futures stay in its process
    try:
        result = api.run(task["scenario"])
        row |= headline_metrics(result)
        per_future = future_metrics(result)
        if per_future:  # a fleet's futures, for differences paired future by future
            row["futures_json"] = json.dumps(per_future, sort_keys=True)
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


def record_failure(row: dict, exc: Exception) -> None:
    """A failing point is a row with status 'failed' and its error's first line (and, for an error
    that is not the project's own, the traceback), so the other points go on."""
    row["status"] = "failed"
    msg = str(exc) if isinstance(exc, FleetsimError) else f"{type(exc).__name__}: {exc}"
    row["error"] = msg.splitlines()[0][:500] if msg else type(exc).__name__
    if not isinstance(exc, FleetsimError):
        row["traceback"] = traceback.format_exc()[-4000:]


def resolve_points(scenario_path: str | Path, spec: SweepSpec) -> tuple[int, list[dict], list[dict]]:
    """Every point's scenario, loaded and checked before anything runs.

    Returns (root seed, points, tasks); a bad path or value raises the loader's ScenarioError,
    naming the axis value that caused it.
    """
    from fleetsim import api

    base = api.load_scenario(scenario_path, spec.base_overrides)
    settle_integer_axes(spec, base.model_dump(mode="json", by_alias=True))
    root = spec.seed if spec.seed is not None else base.seed
    for path in spec.paths:
        if path in ("seed", "fleet.seed"):
            raise SweepError(f"'{path}' is set by the sweep for each replicate: use --seeds K (and --seed ROOT)")
    refuse_fleet_overridden(spec.paths, base, str(scenario_path))
    points = spec.points(root)
    if spec.baseline >= len(points):
        raise SweepError(f"baseline point {spec.baseline} does not exist: the sweep has {len(points)} points "
                         f"(0 to {len(points) - 1})")
    tasks = []
    for i, point in enumerate(points):
        sets = override_strings(point)
        try:
            scen = api.load_scenario(scenario_path, [*spec.base_overrides, *sets])
        except FleetsimError as exc:
            raise type(exc)(f"sweep point {', '.join(sets)}: {exc.message}", file=exc.file or str(scenario_path),
                            field=exc.field, line=exc.line) from None
        points[i] = point = typed_point(point, scen)
        for r in range(spec.seeds):
            seed = replicate_seed(root, point, r, spec.paired)
            sc = _with_seed(scen, seed)
            tasks.append({"point": i, "replicate": r, "seed": seed, "key": content_key(sc), "scenario": sc})
    return root, points, tasks


def typed_point(point: dict[str, Any], scen: Any) -> dict[str, Any]:
    """The point's values as the schema typed them (`0.9e9` written on the command line or in a
    sweep file is the number 9e8 in the table, so plots and aggregates see numbers)."""
    from fleetsim.scenario.loader import child, split_set_path

    data = scen.model_dump(mode="json", by_alias=True)
    out = {}
    for path, value in point.items():
        node: Any = data
        for key in split_set_path(path, data):
            node = child(node, key)
        out[path] = node if node is not None else value
    return out


# Fields of `serving:` that a fleet scenario sets itself in every window and capacity search: a
# sweep over them would change nothing. (path pattern with * for a pool or workload name, why)
FLEET_OVERRIDDEN = (
    ("serving.pools.*.replicas", "the fleet sizes each pool by its planner, from fleet.initial_fleet and "
     "its purchases", "fleet.budget.total_usd or fleet.initial_fleet.N.count"),
    ("serving.workloads.*.arrival.rate_per_s", "the fleet sets each class's rate from fleet.demand",
     "fleet.demand.CLASS.tokens_per_s"),
    ("serving.duration_s", "fleet windows last fleet.windows.duration_s", "fleet.windows.duration_s"),
    ("serving.warmup_s", "fleet windows warm up for fleet.windows.warmup_s", "fleet.windows.warmup_s"),
)


def refuse_fleet_overridden(paths: list[str], scen: Any, file: str) -> None:
    """Refuse an axis that a fleet scenario overrides, with the reason and what to sweep instead."""
    import fnmatch

    if getattr(scen, "fleet", None) is None:
        return
    for path in paths:
        for pattern, why, instead in FLEET_OVERRIDDEN:
            if fnmatch.fnmatchcase(path, pattern):
                raise SweepError(f"axis '{path}' changes nothing in a fleet scenario: {why}; sweep {instead}",
                                 file=file, field=path)


def _with_seed(scen: Any, seed: int) -> Any:
    """A replicate's scenario. Serving: the scenario seed. Fleet: `fleet.seed` (the fleet's own
    randomness), keeping the scenario seed, so the capacity (goodput) searches, seeded by the
    scenario seed, hit the shared on-disk cache across replicates and points."""
    if getattr(scen, "fleet", None) is not None and "seed" in type(scen.fleet).model_fields:
        return scen.model_copy(update={"fleet": scen.fleet.model_copy(update={"seed": seed})})
    return scen.model_copy(update={"seed": seed})


def run_sweep(
    scenario_path: str | Path,
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    dask_processes: bool = True,
    executor: Any = None,
    quiet: bool = False,
    retry_failed: bool = False,
    plots: bool = True,
    log: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run (or resume) a sweep into `out_dir` and write its summary table and plots."""
    from fleetsim.sweep import summary

    t0 = time.perf_counter()
    root, points, tasks = resolve_points(scenario_path, spec)
    _check_plot_options(spec, points)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = PointStore(out)
    (out / "sweep.json").write_text(json.dumps({
        "scenario": str(Path(scenario_path).resolve()), "root_seed": root, "seeds": spec.seeds,
        "params": spec.params, "ranges": {p: a.model_dump() for p, a in spec.ranges.items()},
        "sample": spec.sample, "set": spec.base_overrides, "points": points,
    }, indent=2, default=str) + "\n")

    todo, seen = [], set()
    for t in tasks:
        if t["key"] in seen:
            continue  # two points that resolve to the same scenario and seed run once
        seen.add(t["key"])
        row = store.get(t["key"])
        if row is None or (retry_failed and row.get("status") == "failed"):
            todo.append({k: t[k] for k in ("key", "seed", "scenario")})
    from_store = len(seen) - len(todo)
    if log:
        log(f"{len(points)} points x {spec.seeds} seeds = {len(tasks)} runs; {from_store} in the store, "
            f"{len(todo)} to run")
    name = "none"
    if todo:
        ex = executor or _make_executor(workers, scheduler, dask_local, dask_processes)
        name = f"{ex.name} ({ex.workers} workers)"
        bar = _progress(len(todo), quiet)
        failed = 0
        try:
            for row in ex.map_unordered(run_point, todo):
                store.put(row)  # written at once: a kill loses only the runs in flight
                failed += row["status"] == "failed"
                bar.advance(failed)
        except BaseException:
            bar.stop()
            if executor is None:
                ex.close(kill=True)
            raise
        bar.stop()
        if executor is None:
            ex.close()
    table = summary.build_table(tasks, points, spec, store)
    units = summary.future_table(tasks, points, spec, store, table)
    agg = summary.aggregate(table, spec.paths, units)
    paired = summary.paired_differences(units, spec.paths, spec.baseline)
    summary.write_tables(out, table, agg, units=units, paired=paired)
    pngs = summary.write_plots(out, table, agg, spec) if plots else []
    n_failed = int((table["status"] == "failed").sum())
    metric = spec.metric or summary.default_metric(summary.metric_columns(table, spec.paths))
    return SweepResult(out, table, agg, len(points), len(tasks), from_store, len(todo), n_failed, name,
                       time.perf_counter() - t0, pngs, metric, paired)


def _check_plot_options(spec: SweepSpec, points: list[dict]) -> None:
    if spec.heatmap is not None and (len(spec.heatmap) != 2 or any(p not in spec.paths for p in spec.heatmap)):
        raise SweepError(f"--heatmap takes two swept paths (A,B); swept: {', '.join(spec.paths)}")


def _make_executor(workers, scheduler, dask_local, dask_processes):
    from fleetsim.sweep.executors import DaskExecutor, ProcessPool

    if scheduler is not None and dask_local is not None:
        raise SweepError("give --scheduler or --dask-local, not both")
    if scheduler is not None:
        return DaskExecutor(address=scheduler)
    if dask_local is not None:
        return DaskExecutor(local_workers=dask_local, processes=dask_processes)
    return ProcessPool(workers)


class _progress:
    """rich progress bar on stderr: runs done, failed, time left. Silent with quiet or $CI."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.p = None
        if quiet or os.environ.get("CI"):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.p = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(),
                          TextColumn("left"), TimeRemainingColumn(),
                          console=Console(stderr=True), transient=False)
        self.task = self.p.add_task("sweep", total=total, failed=0)
        self.p.start()

    def advance(self, failed: int) -> None:
        if self.p is not None:
            self.p.update(self.task, advance=1, failed=failed)

    def stop(self) -> None:
        if self.p is not None:
            self.p.stop()
            self.p = None
