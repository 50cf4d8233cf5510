"""The Python surface: what `cli.py` and notebooks call.

    scenario = fleetsim.load_scenario("scenarios/quickstart.yaml", overrides=["seed=3"])
    result = fleetsim.run(scenario, out_dir="outputs/try")
    result.requests.groupby("class").ttft_s.describe()
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from fleetsim import __version__
from fleetsim.catalog import load_chips, load_models
from fleetsim.errors import FleetsimError, ScenarioError
from fleetsim.scenario.loader import load_scenario as _load_file
from fleetsim.scenario.model import Scenario


@dataclass
class RunResult:
    """Tables and summary of a finished run (also written to `run_dir` when one was given)."""

    scenario: Scenario
    summary: dict[str, Any]
    requests: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    timeline: pd.DataFrame | None = None
    hourly: pd.DataFrame | None = None
    ledger: pd.DataFrame | None = None
    orders: pd.DataFrame | None = None
    windows: pd.DataFrame | None = None
    capacity: pd.DataFrame | None = None
    run_dir: Path | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read and validate a scenario file, including its references to chips, models and halls."""
    scenario = _load_file(path, overrides)
    try:
        scenario = _expand_roadmaps(scenario)
        check_references(scenario)
    except FleetsimError as exc:
        from fleetsim.scenario.loader import line_of

        line = exc.line or line_of(path, exc.field)
        raise type(exc)(exc.message, file=str(path), field=exc.field, line=line) from None
    return scenario


# A window holds every request in memory (about 100 bytes each); past this, split the window.
MAX_REQUESTS_PER_WINDOW = 20_000_000


def load_file(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read and validate a scenario file's schema only (for commands that use just its catalog)."""
    return _load_file(path, overrides)


def _unknown(kind: str, name: str, known: Sequence[str], field_path: str, where: str) -> ScenarioError:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ScenarioError(
        f"unknown {kind} '{name}'{hint}; known {kind}s: {', '.join(sorted(known))} "
        f"(add one under {where})", field=field_path,
    )


def resolve_catalogs(scenario: Scenario) -> tuple[dict, dict]:
    """Built-in chips and models merged with the scenario's `catalog:` section."""
    return load_chips(scenario.catalog.chips), load_models(scenario.catalog.models)


def check_references(scenario: Scenario) -> None:
    """Names that pydantic cannot check alone: chips, models, halls, served models, fit in HBM."""
    chips, models = resolve_catalogs(scenario)
    serving = scenario.serving
    cohort_run = scenario.reliability is not None and scenario.reliability.cohort_run is not None
    other = getattr(scenario, "fleet", None) is not None  # the fleet layer's section (its own checks)
    if serving is None and not cohort_run and not other:
        raise ScenarioError(
            "nothing to run: add a 'serving' section (a serving window) or "
            "'reliability.cohort_run' (a reliability run)", field="serving",
        )
    if scenario.fleet is not None and serving is None:
        raise ScenarioError(
            "a fleet run needs a 'serving' section: its workloads, pools (the replica types) and "
            "SLOs are the template of the fleet's capacity and windows", field="serving",
        )
    if scenario.reliability is not None:
        for name in scenario.reliability.chips:
            if name not in chips:
                raise _unknown("chip", name, chips, f"reliability.chips.{name}", "catalog.chips")
    if serving is not None:
        served = set()
        halls = set(scenario.reliability.halls) if scenario.reliability else {"default"}
        for name, pool in serving.pools.items():
            if pool.chip not in chips:
                raise _unknown("chip", pool.chip, chips, f"serving.pools.{name}.chip", "catalog.chips")
            if pool.model not in models:
                raise _unknown("model", pool.model, models, f"serving.pools.{name}.model", "catalog.models")
            if pool.hall not in halls and pool.hall != "default":
                raise _unknown("hall", pool.hall, halls, f"serving.pools.{name}.hall", "reliability.halls")
            served.add(pool.model)
        for name, wl in serving.workloads.items():
            if wl.model not in models:
                raise _unknown("model", wl.model, models, f"serving.workloads.{name}.model", "catalog.models")
            if wl.model not in served:
                raise ScenarioError(
                    f"no pool serves model '{wl.model}'; pools serve: {', '.join(sorted(served))}",
                    field=f"serving.workloads.{name}.model",
                )
        from fleetsim.serving.window import build_kernels, compile_workloads

        build_kernels(serving, chips, models)  # refuses a model that does not fit its chips
        workloads = compile_workloads(serving, scenario.base_dir)  # files exist, columns too
        expected = sum(w.mean_rate_per_s for w in workloads.values()) * serving.duration_s
        if expected > MAX_REQUESTS_PER_WINDOW:
            raise ScenarioError(
                f"this window would simulate about {expected:.3g} requests; the limit is "
                f"{MAX_REQUESTS_PER_WINDOW:,} per window: shorten duration_s or lower the rates",
                field="serving.duration_s",
            )
    if scenario.fleet is not None:
        check_fleet_references(scenario, chips)
    if scenario.reliability is not None and scenario.reliability.cohort_run is not None:
        for i, cohort in enumerate(scenario.reliability.cohort_run.cohorts):
            if cohort.chip not in chips:
                raise _unknown("chip", cohort.chip, chips, f"reliability.cohort_run.cohorts.{i}.chip",
                               "catalog.chips")


def _expand_roadmaps(scenario: Scenario) -> Scenario:
    """Roadmap generations become catalog chips, pools and dated offers (fleetsim.fleet.roadmap)."""
    if scenario.fleet is None or scenario.serving is None:
        return scenario
    from fleetsim.fleet.roadmap import expand

    return expand(scenario, resolve_catalogs(scenario)[0])


def check_fleet_references(scenario: Scenario, chips: dict) -> None:
    """Fleet names pydantic cannot check: chips, pools, workloads, the planner kind."""
    from fleetsim.scenario.fleet import fleet_problems

    fleet, serving = scenario.fleet, scenario.serving
    problems = fleet_problems(fleet)
    if problems:
        raise ScenarioError(problems[0][1], field=problems[0][0])
    pools = serving.pools
    used = {p.chip for p in pools.values()}
    for cls in fleet.demand:
        if cls not in serving.workloads:
            raise _unknown("workload", cls, serving.workloads, f"fleet.demand.{cls}", "serving.workloads")
    for name, ch in fleet.channels.items():
        for j, off in enumerate(ch.offers):
            where = f"fleet.channels.{name}.offers.{j}"
            if off.chip not in chips:
                raise _unknown("chip", off.chip, chips, f"{where}.chip", "catalog.chips")
            if off.chip not in used:
                raise ScenarioError(
                    f"chip '{off.chip}' is sold by channel '{name}' but no replica type uses it; "
                    f"add a serving pool with chip: {off.chip} (pools use: {', '.join(sorted(used))})",
                    field=f"{where}.chip")
            if off.pool is not None:
                if off.pool not in pools:
                    raise _unknown("pool", off.pool, pools, f"{where}.pool", "serving.pools")
                if pools[off.pool].chip != off.chip:
                    raise ScenarioError(
                        f"pool '{off.pool}' runs on {pools[off.pool].chip}, not {off.chip}",
                        field=f"{where}.pool")
            if off.price_usd is None and not off.price_table and getattr(chips[off.chip], "price_usd", None) is None:
                raise ScenarioError(f"chip '{off.chip}' has no catalog price: give price_usd",
                                    field=f"{where}.price_usd")
    for i, c in enumerate(fleet.initial_fleet):
        if c.chip not in used:
            raise ScenarioError(f"no replica type uses chip '{c.chip}'", field=f"fleet.initial_fleet.{i}.chip")
        if c.pool is not None and (c.pool not in pools or pools[c.pool].chip != c.chip):
            raise ScenarioError(f"pool '{c.pool}' is not a pool of chip '{c.chip}'",
                                field=f"fleet.initial_fleet.{i}.pool")
    for i, rm in enumerate(fleet.removals):
        for c in rm.chips or []:
            if c not in chips:
                raise _unknown("chip", c, chips, f"fleet.removals.{i}.chips", "catalog.chips")
    for i, sub in enumerate(fleet.finance.subsidies):
        for c in sub.chips:
            if c not in chips:
                raise _unknown("chip", c, chips, f"fleet.finance.subsidies.{i}.chips", "catalog.chips")
    for pname, per in (fleet.capacity or {}).items():
        if pname not in pools:
            raise _unknown("pool", pname, pools, f"fleet.capacity.{pname}", "serving.pools")
        for wname in per:
            if wname not in serving.workloads:
                raise _unknown("workload", wname, serving.workloads, f"fleet.capacity.{pname}.{wname}",
                               "serving.workloads")
    from fleetsim.fleet.planner import make_planner

    make_planner(fleet.planner)


def run(
    scenario: Scenario,
    out_dir: str | Path | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Run a scenario; with `out_dir`, write the run folder (manifest last, error.json on failure)."""
    from fleetsim.results import runfolder

    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    scenario = _expand_roadmaps(scenario)
    check_references(scenario)  # a Scenario built in Python gets the same checks as a file
    run_dir = runfolder.prepare_run_dir(Path(out_dir)) if out_dir is not None else None
    stage = "resolve"
    t0 = time.perf_counter()
    try:
        chips, models = resolve_catalogs(scenario)
        stage = "simulate"
        cohort_run = scenario.reliability is not None and scenario.reliability.cohort_run is not None
        if scenario.fleet is not None:
            result = _run_fleet(scenario, chips, models, progress)
        elif scenario.serving is not None:
            result = _run_serving(scenario, chips, models, progress)
            if cohort_run:  # both in one scenario: the serving window, then the cohort run
                rel = _run_reliability(scenario, chips, progress)
                result.summary["cohort_run"] = {k: v for k, v in rel.summary.items()
                                                if k not in ("scenario", "seed")}
                result.timeline, result.hourly = rel.timeline, rel.hourly
                if rel.events is not None and len(rel.events):
                    result.events = (rel.events if result.events is None or not len(result.events)
                                     else pd.concat([result.events, rel.events], ignore_index=True))
                result.timings_s["simulate_cohort_run"] = rel.timings_s["simulate"]
        else:
            result = _run_reliability(scenario, chips, progress)
        result.timings_s["total"] = time.perf_counter() - t0
        if run_dir is not None:
            stage = "write"
            _write(result, run_dir)
            result.run_dir = run_dir
        return result
    except BaseException as exc:
        if run_dir is not None:
            runfolder.write_error(run_dir, exc, stage)
        raise


def _run_serving(scenario: Scenario, chips: dict, models: dict, progress) -> RunResult:
    from fleetsim.results.tables import events_table, requests_table
    from fleetsim.serving.metrics import summarise
    from fleetsim.serving.window import run_window

    health = None
    if scenario.reliability is not None:  # throttling always; crashes unless serving_crashes: false
        from fleetsim.serving.health import ServingReliability

        health = ServingReliability(scenario.reliability, chips)
    if progress:
        progress(f"serving window: {scenario.serving.duration_s:g} s simulated")
    t0 = time.perf_counter()
    res = run_window(scenario.serving, chips, models, scenario.seed, scenario.base_dir, reliability=health)
    sim_s = time.perf_counter() - t0
    summary = summarise(res)
    summary["scenario"] = scenario.name
    summary["seed"] = scenario.seed
    if res.reliability is not None:
        summary["reliability"] = res.reliability
    timings: dict[str, Any] = {"simulate": sim_s, "requests": len(res.requests),
                               "requests_per_wall_s": len(res.requests) / sim_s if sim_s > 0 else None,
                               "sim_events": res.sim_events}
    if scenario.serving.goodput.enabled:
        from fleetsim.serving.capacity import CACHE_STATS

        if progress:
            progress("goodput search per pool and workload (cached)")
        before = dict(CACHE_STATS)
        t1 = time.perf_counter()
        summary["goodput_search"] = goodput_table(scenario, progress=progress)
        # Cache hits and misses are how the run went, not what it found: manifest only.
        timings["goodput"] = time.perf_counter() - t1
        timings |= {f"goodput_cache_{k}": CACHE_STATS[k] - before[k] for k in CACHE_STATS}
    return RunResult(
        scenario=scenario, summary=summary, requests=requests_table(res), events=events_table(res.events),
        timings_s=timings,
    )


def capacity_table(scenario: Scenario, progress: Callable[[str], None] | None = None,
                   use_cache: bool = True) -> list:
    """Capacity per (pool, workload) of a serving scenario (fleetsim.serving.capacity.Capacity:
    goodput with its 95% interval, availability, derated goodput, power, energy per Mtok), through
    the in-memory memo and the on-disk cache."""
    from fleetsim.results.cache import ResultCache
    from fleetsim.serving.capacity import capacity_table as table

    if scenario.serving is None:
        raise ScenarioError("goodput needs a 'serving' section", field="serving")
    return table(scenario, cache=ResultCache() if use_cache else None, progress=progress)


def goodput_table(scenario: Scenario, progress: Callable[[str], None] | None = None,
                  use_cache: bool = True) -> list[dict[str, Any]]:
    """`capacity_table` as JSON-able rows (summary.json's goodput_search); no cache flag in them."""
    rows = []
    for c in capacity_table(scenario, progress, use_cache):
        row = c.as_row()
        rows.append(row | {
            "goodput_req_per_s_per_replica": c.goodput_rps,
            "goodput_ci95_req_per_s_per_replica": list(c.goodput_ci95_rps),
            "goodput_tokens_per_s_per_replica": c.goodput_rps * c.output_tokens_per_request,
            "effective_goodput_req_per_s_per_replica": c.effective_goodput_rps,
        })
    return rows


def calibrate(chip: str, measurements: str | Path, scenario: Scenario | None = None):
    """Fit a chip's efficiency factors to measured points (`fleetsim calibrate`)."""
    from fleetsim.kernel.calibrate import calibrate as fit

    overrides = scenario.catalog.model_dump() if scenario is not None else None
    return fit(chip, measurements, overrides=overrides)


def catalog_table(kind: str, fmt: str = "table", scenario: Scenario | None = None) -> str:
    """The chip or model catalog (with a scenario's additions) as a table, CSV or JSON."""
    from fleetsim.catalog import catalog_table as table

    overrides = getattr(scenario.catalog, kind) if scenario is not None else None
    return table(kind, fmt, overrides)


def _run_reliability(scenario: Scenario, chips: dict, progress) -> RunResult:
    from fleetsim.reliability import run_reliability
    from fleetsim.results.tables import columns_table, events_table
    from fleetsim.rng import stream

    if progress:
        progress(f"reliability run: {scenario.reliability.cohort_run.days:g} days")
    t0 = time.perf_counter()
    res = run_reliability(scenario.reliability, chips, stream(scenario.seed, "reliability"))
    sim_s = time.perf_counter() - t0
    summary = dict(res.summary) | {"scenario": scenario.name, "seed": scenario.seed}
    return RunResult(
        scenario=scenario, summary=summary, events=events_table(res.events),
        timeline=columns_table(res.timeline), hourly=columns_table(res.hourly),
        timings_s={"simulate": sim_s},
    )


def _run_fleet(scenario: Scenario, chips: dict, models: dict, progress) -> RunResult:
    """Years of the fleet: capacity per replica type (cached), then the daily simulation."""
    from fleetsim.fleet.capacity import replica_capacities
    from fleetsim.fleet.sim import run_fleet
    from fleetsim.fleet.windows import window_runner
    from fleetsim.results.cache import ResultCache
    from fleetsim.results.tables import fleet_table

    t0 = time.perf_counter()
    if progress:
        progress("capacity per replica type and workload (cached)")
    caps = replica_capacities(scenario, chips, models, cache=ResultCache(), progress=progress)
    t1 = time.perf_counter()
    res = run_fleet(scenario, chips, models, caps, progress, window_runner=window_runner(chips, models))
    t2 = time.perf_counter()
    summary = {"scenario": scenario.name, "seed": scenario.seed, "kind": "fleet", "fleet": res.summary}
    return RunResult(
        scenario=scenario, summary=summary, events=fleet_table(res.events),
        timeline=fleet_table(res.timeline), ledger=fleet_table(res.ledger),
        orders=fleet_table(res.orders), windows=fleet_table(res.windows),
        capacity=fleet_table({k: [r[k] if not isinstance(r[k], tuple) else list(r[k]) for r in res.capacity]
                              for k in res.capacity[0]}) if res.capacity else None,
        timings_s={"capacity": t1 - t0, "simulate": t2 - t1},
    )


def _write(result: RunResult, run_dir: Path) -> None:
    from fleetsim.results import runfolder

    files = []
    for name in ("requests", "events", "timeline", "hourly", "ledger", "orders", "windows", "capacity"):
        df = getattr(result, name)
        if df is not None:
            runfolder.write_table(run_dir / f"{name}.parquet", df)
            files.append(f"{name}.parquet")
    runfolder.write_json(run_dir / "summary.json", result.summary)
    files.append("summary.json")
    scenario_dump = result.scenario.model_dump(mode="json")
    runfolder.write_json(run_dir / "scenario.resolved.json", scenario_dump)
    files.append("scenario.resolved.json")
    kind = ("fleet" if result.scenario.fleet is not None
            else "serving" if result.scenario.serving is not None else "reliability")
    runfolder.write_manifest(
        run_dir, scenario=scenario_dump, seed=result.scenario.seed, timings=result.timings_s,
        files=files, version=__version__, kind=kind,
    )


def sweep(
    scenario: str | Path,
    *,
    params: dict[str, list[Any]] | None = None,
    ranges: dict[str, str] | None = None,
    sample: int | None = None,
    seeds: int | None = None,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    sweep_file: str | Path | None = None,
    out_dir: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    metric: str | None = None,
    heatmap: Sequence[str] | None = None,
    quiet: bool = True,
    retry_failed: bool = False,
    log: Callable[[str], None] | None = None,
):
    """Sweep a scenario file over `--set` paths (`fleetsim sweep`); returns a SweepResult.

        api.sweep("scenarios/quickstart.yaml", params={"serving.pools.h20.replicas": [2, 4]},
                  ranges={"serving.workloads.chat.arrival.rate_per_s": "3:6:3"}, seeds=3)

    Lazy import: `sweep` sits above `api` (it runs scenarios through `api.run`).
    """
    from fleetsim.sweep import spec as sp
    from fleetsim.sweep.runner import run_sweep

    base = sp.load_sweep_file(sweep_file) if sweep_file is not None else sp.SweepSpec()
    rng = {p: sp._range_from_text(v, f"range '{p}'") if isinstance(v, str) else v
           for p, v in (ranges or {}).items()}
    spec = sp.merge(base, dict(params or {}), rng, sample=sample, seeds=seeds, seed=seed,
                    base_overrides=list(overrides), metric=metric,
                    heatmap=list(heatmap) if heatmap else None)
    if out_dir is None:  # a fixed folder per sweep file or scenario, so a rerun resumes there
        stem = Path(sweep_file).stem if sweep_file is not None else Path(scenario).stem
        out_dir = Path("outputs") / "sweeps" / stem
    return run_sweep(scenario, spec, out_dir, workers=workers, scheduler=scheduler,
                     dask_local=dask_local, quiet=quiet, retry_failed=retry_failed, log=log)
