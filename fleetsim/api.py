"""The Python surface: what `cli.py` and notebooks call.

    scenario = fleetsim.load_scenario("scenarios/serving_quickstart.yaml", overrides=["seed=3"])
    result = fleetsim.run(scenario, out_dir="outputs/try")
    result.requests.groupby("class").ttft_s.describe()
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from fleetsim import __version__
from fleetsim.catalog import load_chips, load_models
from fleetsim.errors import FleetsimError, ScenarioError
from fleetsim.forked import Helper, fork_workers
from fleetsim.scenario import overrides as _overrides
from fleetsim.scenario.loader import load_scenario as _load_file
from fleetsim.scenario.model import Scenario
from fleetsim.checks import (  # noqa: F401 (re-exported: the API's names since its first release)
    MAX_CHIP_DAYS,
    MAX_COHORT_CHIPS,
    MAX_OVER_CONTEXT_SHARE,
    MAX_REQUESTS_PER_WINDOW,
    _is_fleet,
    _working_tp,
    check_fleet_references,
    check_references,
    input_warnings,
    resolve_catalogs,
)

# --set paths may name built-in chips and models the file does not list (catalog.chips.h20...)
_overrides.CATALOG_NAMES = lambda kind: set(load_chips() if kind == "chips" else load_models())


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
    replicates: pd.DataFrame | None = None   # fleet: a row per future (fleetsim.fleet.futures)
    quantiles: pd.DataFrame | None = None    # fleet: per day and chip kind, quantiles over futures
    binding: pd.DataFrame | None = None
    run_dir: Path | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. plots that could not be drawn


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


def load_file(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read and validate a scenario file's schema only (for commands that use just its catalog)."""
    return _load_file(path, overrides)


def _expand_roadmaps(scenario: Scenario) -> Scenario:
    """Roadmap generations become catalog chips, pools and dated offers (fleetsim.fleet.roadmap)."""
    if scenario.fleet is None or scenario.serving is None:
        return scenario
    from fleetsim.fleet.roadmap import expand

    return expand(scenario, resolve_catalogs(scenario)[0])


def run(
    scenario: Scenario,
    out_dir: str | Path | None = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = True,
    plots: bool = False,
) -> RunResult:
    """Run a scenario; with `out_dir`, write the run folder (manifest last, error.json on failure).

    `out_dir` may be new, empty, or an earlier fleetsim run (replaced only with `overwrite`; the
    CLI passes False unless --overwrite); a folder holding other files is always refused. With
    `plots`, plots/ and report.html are drawn before the manifest, which lists them: a run
    interrupted while plotting leaves error.json (stage plot or report), never a manifest.
    """
    from fleetsim.results import runfolder

    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    scenario = _expand_roadmaps(scenario)
    check_references(scenario)  # a Scenario built in Python gets the same checks as a file
    run_dir = runfolder.prepare_run_dir(Path(out_dir), overwrite=overwrite) if out_dir is not None else None
    stage = "resolve"
    t0 = time.perf_counter()
    helper = None
    if plots and run_dir is not None and fork_workers() > 1:
        # a forked helper imports matplotlib while this process simulates, then draws the
        # plots (itself sharing them with a child) and the report from the tables written
        helper = Helper(_import_report)
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
        result.summary["assumptions"] = assumptions(scenario)  # (report) placeholders the result rests on
        if scenario.fleet is not None or scenario.serving is not None:  # what sizes and prices the chips
            result.summary["estimates"] = estimates(scenario)  # (report) estimated or scenario-set figures
        warnings = input_warnings(scenario)
        if warnings:
            result.summary["warnings"] = warnings
        if run_dir is not None:
            stage = "write"
            manifest = _write(result, run_dir)
            result.run_dir = run_dir
            if plots:
                stage = "plot"
                if progress is not None:
                    progress("plots and report")
                done = helper.call(_plots_and_report, run_dir) if helper is not None else None
                if done is None:  # no helper, or it failed: here, raising what it met
                    done = _plots_and_report(run_dir, lambda s: None)
                    drawn, warning = done[0], done[2]
                    stage = "report"
                    page = report(run_dir)
                else:
                    drawn, page, warning = done
                if warning:  # the run is complete: warn, and still write the report
                    result.warnings.append(warning)
                manifest["files"] += [p.relative_to(run_dir).as_posix() for p in drawn] + [page.name]
            stage = "write"
            runfolder.commit_manifest(run_dir, manifest)
        return result
    except BaseException as exc:
        if run_dir is not None:
            runfolder.write_error(run_dir, exc, stage)
        raise
    finally:
        if helper is not None:
            helper.close()


def _import_report() -> None:
    """The plot helper's preparation, while the run simulates: matplotlib, the plots, the page;
    the run's staged manifest is read as its own."""
    import os

    import fleetsim.report.html  # noqa: F401
    from fleetsim.results.runfolder import adopt_staged

    adopt_staged(os.getppid())


def _plots_and_report(run_dir: Path, page=None) -> tuple[list[Path], Path | None, str | None]:
    """Plots, then report.html (`page(run_dir)`), of a written run folder: (plots drawn, page,
    warning). Plots that fail leave a warning (the run is complete) and still a report."""
    warning = None
    try:
        drawn = plot(run_dir)
    except FleetsimError as exc:
        warning = str(exc)
        drawn = sorted((run_dir / "plots").glob("*.*")) if (run_dir / "plots").is_dir() else []
    return drawn, (page or report)(run_dir), warning


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
    from fleetsim.serving.window import built_parts

    _, _, kernels, workloads = built_parts(scenario)
    res = run_window(scenario.serving, chips, models, scenario.seed, scenario.base_dir, reliability=health,
                     kernels=kernels, workloads=workloads, progress=progress)
    sim_s = time.perf_counter() - t0
    summary = summarise(res)
    requests = requests_table(res)
    summary["at_slo"] = _at_slo(scenario, requests, res, chips, models, summary)  # (report) honest summary
    summary["scenario"] = scenario.name
    summary["seed"] = scenario.seed
    if res.reliability is not None:
        summary["reliability"] = res.reliability
    timings: dict[str, Any] = {"simulate": sim_s, "requests": len(res.requests),
                               "requests_per_wall_s": len(res.requests) / sim_s if sim_s > 0 else None,
                               "sim_events": res.sim_events}
    from fleetsim.kernel.provenance import provenance

    summary["kernel_provenance"] = {p: provenance(k).line() for p, k in kernels.items()}
    notes = {p: k.assumptions for p, k in kernels.items() if k.assumptions}
    if notes:  # e.g. an unmeasured chip's assumed efficiency band: the result rests on it
        summary["kernel_assumptions"] = notes
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
        scenario=scenario, summary=summary, requests=requests, events=events_table(res.events),
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
            "goodput_req_per_s_per_replica": row["goodput_rps"],
            "goodput_ci95_req_per_s_per_replica": row["goodput_ci95_rps"],
            "goodput_tokens_per_s_per_replica": (c.goodput_rps * c.output_tokens_per_request
                                                 if row["goodput_rps"] is not None else None),
            "effective_goodput_req_per_s_per_replica": row["effective_goodput_rps"],
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
    res = run_reliability(scenario.reliability, chips, stream(scenario.seed, "reliability"), progress=progress)
    sim_s = time.perf_counter() - t0
    summary = dict(res.summary) | {"scenario": scenario.name, "seed": scenario.seed}
    return RunResult(
        scenario=scenario, summary=summary, events=events_table(res.events),
        timeline=columns_table(res.timeline), hourly=columns_table(res.hourly),
        timings_s={"simulate": sim_s},
    )


def _run_fleet(scenario: Scenario, chips: dict, models: dict, progress) -> RunResult:
    """Years of the fleet: capacity per replica type (cached, once), then the daily simulation
    of each future (fleetsim.fleet.futures); the tables are the representative future's."""
    from fleetsim.fleet.capacity import replica_capacities, seasonal_capacities
    from fleetsim.fleet.futures import run_futures
    from fleetsim.fleet.windows import window_runner
    from fleetsim.results.cache import ResultCache
    from fleetsim.results.tables import fleet_table

    t0 = time.perf_counter()
    if progress:
        progress("capacity per replica type and workload (cached)")
    cache = ResultCache()
    caps = replica_capacities(scenario, chips, models, cache=cache, progress=progress)
    grid = seasonal_capacities(scenario, chips, models, cache=cache, progress=progress)
    t1 = time.perf_counter()
    fut = run_futures(scenario, chips, models, caps, progress, window_runner=window_runner(chips, models),
                      caps_grid=grid)
    res = fut.result
    t2 = time.perf_counter()
    summary = {"scenario": scenario.name, "seed": scenario.seed, "kind": "fleet", "fleet": res.summary,
               "futures": fut.block}
    return RunResult(
        scenario=scenario, summary=summary, events=fleet_table(res.events),
        timeline=fleet_table(res.timeline), ledger=fleet_table(res.ledger),
        orders=fleet_table(res.orders), windows=fleet_table(res.windows),
        hourly=fleet_table(res.hourly) if res.hourly else None,
        binding=fleet_table(res.binding) if res.binding else None,
        capacity=fleet_table({k: [r[k] if not isinstance(r[k], tuple) else list(r[k]) for r in res.capacity]
                              for k in res.capacity[0]}) if res.capacity else None,
        replicates=fleet_table(fut.replicates), quantiles=fleet_table(fut.quantiles),
        timings_s={"capacity": t1 - t0, "simulate": t2 - t1, "futures": len(fut.seeds)},
    )


def _write(result: RunResult, run_dir: Path) -> dict[str, Any]:
    """Tables, summary and resolved scenario; the manifest is staged (readable by this process's
    plots and report only) and returned, for `runfolder.commit_manifest` once all is written."""
    from fleetsim.results import runfolder

    files = []
    for name in ("requests", "events", "timeline", "hourly", "ledger", "orders", "windows", "capacity",
                 "replicates", "quantiles", "binding"):
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
    return runfolder.stage_manifest(
        run_dir, scenario=scenario_dump, seed=result.scenario.seed, timings=result.timings_s,
        files=files, version=__version__, kind=kind,
    )


# ---------------------------------------------------------------------------------------------
# (branch report) physics in validation, derived facts, assumptions, the honest summary, and the
# doors to plots, reports and comparisons. The CLI reaches results and run folders only here.

# A reliability run keeps per-node state and per-hour series; past these it would not fit in a
# laptop's memory (100M chips x 36,500 days took 4.7 GB in 2 minutes before being stopped).
def support(chip: str, model: str, engine: str | None = None, tp: int | None = None,
            precision: str = "bf16") -> str:
    """What the kernel's figures for CHIP x MODEL [x ENGINE] rest on: measured-near, transferred
    (rule and source of each transfer) or roofline-only, with the fit points behind it."""
    from fleetsim.catalog import load_engines
    from fleetsim.catalog.loader import _suggest
    from fleetsim.kernel.latency import ReplicaKernel
    from fleetsim.kernel.provenance import provenance

    chips, models = load_chips(), load_models()
    if chip not in chips:
        raise ScenarioError(f"unknown chip '{chip}'" + _suggest(chip, list(chips)), field="chip")
    if model not in models:
        raise ScenarioError(f"unknown model '{model}'" + _suggest(model, list(models)), field="model")
    c, m = chips[chip], models[model]
    if tp is None:
        tp = _working_tp(c, m, precision)
        if tp is None:
            raise ScenarioError(f"{model} does not fit one {chip} node in {precision}; give --tp",
                                field="tp")
    k = ReplicaKernel(c, m, tp, precision, engine=engine)
    p = provenance(k)
    name = next((n for n, e in load_engines().items() if e.name == k.engine.name), k.engine.name)
    lines = [f"{chip} x {model} x {name}, tp {tp}, {precision}: {p.kind}",
             f"  fit-split points on this chip, engine and model kind: {p.fit_points}"]
    lines += [f"  - {r}" for r in p.reasons]
    lines += [f"  assumption: {a}" for a in k.assumptions]
    return "\n".join(lines)


def _chips_named(obj: Any) -> set[str]:
    """Every value of a `chip` key anywhere in a scenario dump (pools, cohorts, fleet channels)."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "chip" and isinstance(v, str):
                found.add(v)
            else:
                found |= _chips_named(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= _chips_named(v)
    return found


def assumptions(scenario: Scenario) -> list[dict[str, str]]:
    """The placeholder (ASSUMED) catalog figures this scenario's result rests on."""
    chips, models = resolve_catalogs(scenario)
    dump = scenario.model_dump(mode="json")
    used = sorted(_chips_named(dump) | set(getattr(scenario.reliability, "chips", {}) or {}))
    out = []
    for name in used:
        spec = chips.get(name)
        if spec is None:
            continue
        for f in spec.assumed:
            if f in spec.overridden:
                continue
            out.append({"catalog": "chips", "chip": name, "field": f,
                        "value": str(getattr(spec, f, "")), "note": " ".join(spec.notes.split())[:400]})
    if scenario.reliability is not None or _is_fleet(scenario):  # a fleet's chips crash by these too
        from fleetsim.catalog.reliability import chip_reliability

        rel_chips = (scenario.reliability.chips or {}) if scenario.reliability is not None else {}
        for name in used:
            spec = chips.get(name)
            override = rel_chips.get(name)
            rel = chip_reliability(name, getattr(spec, "tdp_w", None), override)
            for f, basis in rel.basis.items():
                if basis.startswith("ASSUMPTION"):
                    # rise_at_tdp_c is not kept (r_th_c_per_w is derived from it): show it back
                    value = (f"{rel.r_th_c_per_w * rel.tdp_w:g}" if f == "rise_at_tdp_c"
                             else str(getattr(rel, f, "")))
                    out.append({"catalog": "reliability", "chip": name, "field": f,
                                "value": value, "note": basis})
    return out


# The chip figures that size a fleet (capacity from the kernel) and price it (capex, power).
PERF_PRICE_FIELDS = ("bf16_tflops", "fp8_tflops", "int8_tops", "fp4_tflops", "hbm_gb", "hbm_tbps",
                     "interconnect_gbps", "tdp_w", "price_usd")


def estimates(scenario: Scenario) -> list[dict[str, str]]:
    """The performance and price figures of the chips used that are not published values:
    published estimates (catalog `estimated`: press, price midpoints) with their source, and
    figures the scenario sets (`catalog:` entries, `relative_to`), price first. Placeholders with
    no published figure are in `assumptions`; together they are what capacity and capex rest on."""
    chips, _ = resolve_catalogs(scenario)
    dump = scenario.model_dump(mode="json")
    given = (dump.get("catalog") or {}).get("chips") or {}
    out = []
    for name in sorted(_chips_named(dump)):
        spec = chips.get(name)
        if spec is None:
            continue
        rel = (given.get(name) or {}).get("relative_to")
        how = (f"set by the scenario: relative_to {rel.get('chip')} (perf_fraction {rel.get('perf_fraction')}, "
               f"price_fraction {rel.get('price_fraction')})" if isinstance(rel, dict) else "set by the scenario")
        for f in sorted(PERF_PRICE_FIELDS, key=lambda f: f != "price_usd"):
            value = getattr(spec, f, None)
            if value is None or f in spec.assumed:
                continue
            if f in spec.overridden:
                basis = how
            elif f in spec.estimated:
                basis = "EST (published estimate): " + str(spec.sources.get(f) or spec.sources.get("*", ""))[:300]
            else:
                continue
            out.append({"catalog": "chips", "chip": name, "field": f, "value": f"{value:g}", "note": basis})
    return out


def size_estimate(scenario: Scenario):
    """Estimated wall time and peak memory of the run (fleetsim.sizing), before it starts."""
    from fleetsim import sizing

    return sizing.estimate(scenario, *resolve_catalogs(scenario))


def size_warnings(scenario: Scenario) -> list[str]:
    """What to print before a run that may take long (and what to change)."""
    from fleetsim import sizing

    return sizing.warnings(size_estimate(scenario))


def derived_facts(scenario: Scenario) -> list[str]:
    """What `validate` prints: what the inputs imply before anything runs."""
    from fleetsim.serving.window import pool_kernel
    from fleetsim.kernel.throughput import offline_throughput

    chips, models = resolve_catalogs(scenario)
    lines = []
    serving = scenario.serving
    if serving is not None:
        from fleetsim.serving.window import compile_workloads

        workloads = compile_workloads(serving, scenario.base_dir)
        for name, wl in workloads.items():
            cfg = serving.workloads[name]
            lines.append(
                f"workload {name}: {cfg.model}, mean {wl.mean_rate_per_s:.3g} req/s, about "
                f"{wl.mean_rate_per_s * serving.duration_s:,.0f} requests in {serving.duration_s:g} s; "
                f"SLO p{cfg.slo.percentile:g} TTFT <= {cfg.slo.ttft_s:g} s, TPOT <= {cfg.slo.tpot_s:g} s"
            )
        from fleetsim.serving.window import given_pools

        given = given_pools(scenario)
        for name, pool in serving.pools.items():
            try:
                k = pool_kernel(pool, chips, models)
            except FleetsimError:
                if name not in given:
                    raise
                lines.append(f"replica type {name}: {pool.tp} {pool.chip} per replica, capacity given by "
                             f"hand in fleet.capacity ({pool.model} does not fit the kernel's one-node replica)")
                continue
            served = [w for n, w in workloads.items() if serving.workloads[n].model == pool.model]
            prompt = sum(_mean_tokens(w.prompt_tokens) for w in served) / max(1, len(served))
            output = sum(_mean_tokens(w.output_tokens) for w in served) / max(1, len(served))
            size = (f"replica type {name}: {pool.tp} {pool.chip} per replica (the fleet sets the count)"
                    if _is_fleet(scenario) else
                    f"pool {name}: {pool.replicas} x {pool.tp} {pool.chip} = {pool.replicas * pool.tp} chips")
            line = (
                f"{size}; "
                f"{pool.model} weights {k.weight_bytes / 1e9 / pool.tp:.1f} GB per chip ({pool.precision}); "
                f"KV cache {k.kv_capacity_tokens:,} tokens per replica"
            )
            if prompt > 0 and output > 0:
                ss = offline_throughput(k, prompt, output, pool.batching.max_batch)
                line += (f"; saturation about {ss.output_tokens_per_s:,.0f} output tok/s per replica "
                         f"(batch {ss.batch}, mean prompt {prompt:.0f}, output {output:.0f} tokens)")
            lines.append(line)
            lines.extend(f"pool {name}: {a}" for a in k.assumptions)
    fleet = getattr(scenario, "fleet", None)
    if fleet is not None:
        demand = ", ".join(
            f"{k} {d.tokens_per_s:.3g} output tok/s" if d.tokens_per_s is not None else
            f"{k} {d.requests_per_s:.3g} req/s" for k, d in fleet.demand.items())
        demand += " at the start, growing " + ", ".join(
            f"{d.growth_per_year:+.0%}/yr" if not d.table else "by its table" for d in fleet.demand.values())
        lines.append(f"fleet: {fleet.years:g} years from {fleet.start}; demand {demand}; channels "
                     f"{', '.join(fleet.channels)}; planner {fleet.planner.kind}")
        from fleetsim.fleet.futures import estimate

        secs, mem = estimate(scenario, fleet.replications)
        root = fleet.seed if fleet.seed is not None else scenario.seed
        lines.append(f"futures: {fleet.replications} from fleet seed {root} (fleet.replications), about "
                     f"{secs:.2g} s of simulation and {mem / 1e6:.3g} MB of tables estimated")
    rel = scenario.reliability
    if rel is not None and rel.cohort_run is not None:
        run = rel.cohort_run
        chip_days = sum(c.count * (run.days - c.start_day) for c in run.cohorts)
        lines.append(f"reliability run: {sum(c.count for c in run.cohorts):,} chips over "
                     f"{run.days} days = {chip_days:.3g} chip-days")
    placeholders = assumptions(scenario)
    if placeholders:
        by_chip: dict[str, list[str]] = {}
        for a in placeholders:
            by_chip.setdefault(f"{a['chip']} ({a['catalog']})", []).append(a["field"])
        lines.append("placeholders used (no published figure): " + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in by_chip.items()))
    else:
        lines.append("placeholders used: none")
    est = size_estimate(scenario)
    lines.append(est.text())
    from fleetsim import sizing

    lines.extend(f"warning: {w}" for w in sizing.warnings(est))
    return lines


def _mean_tokens(dist) -> float:
    try:
        return float(dist.mean) if dist is not None else 0.0
    except Exception:  # a distribution without a finite mean: leave saturation out
        return 0.0


def _at_slo(scenario: Scenario, requests: pd.DataFrame, res, chips: dict, models: dict,
            summary: dict[str, Any]) -> dict[str, Any]:
    """Figures a console summary should show: latency at each SLO's own percentile beside its
    target, batch and KV occupancy, and load against the replica's saturation throughput."""
    import numpy as np

    from fleetsim.serving.window import pool_kernel
    from fleetsim.kernel.throughput import offline_throughput, steady_state

    serving = scenario.serving
    measured = requests[requests.arrival_s >= serving.warmup_s]
    span = serving.duration_s - serving.warmup_s
    classes = {}
    for cname, grp in measured.groupby("class", observed=True):
        wname = summary["classes"].get(str(cname), {}).get("workload", cname)  # trace classes share a workload
        wl = serving.workloads.get(wname)
        if wl is None:
            continue
        p = wl.slo.percentile
        ttft = grp.ttft_s.dropna().to_numpy()
        tpot = grp.tpot_s.dropna().to_numpy()
        t1 = float(np.percentile(ttft, p)) if len(ttft) else None
        t2 = float(np.percentile(tpot, p)) if len(tpot) else None
        classes[str(cname)] = {
            "percentile": p, "ttft_s": t1, "ttft_target_s": wl.slo.ttft_s,
            "tpot_s": t2, "tpot_target_s": wl.slo.tpot_s,
            "ttft_ok": None if t1 is None else t1 <= wl.slo.ttft_s,
            "tpot_ok": None if t2 is None else t2 <= wl.slo.tpot_s,
        }
    pools = {}
    by_pool = {str(k): g for k, g in measured.groupby("pool", observed=True)}
    for ps in res.pools:
        pool = serving.pools[ps.name]
        g = by_pool.get(ps.name)
        busy = float(ps.busy_s.sum())
        mean_batch = float(ps.batch_area.sum() / busy) if busy > 0 else 0.0
        row: dict[str, Any] = {"chips": ps.replicas * ps.tp,
                               "batch_occupancy": mean_batch / pool.batching.max_batch if busy > 0 else None}
        if g is not None and len(g) and ps.replicas and pool.role != "prefill":  # a prefill
            # pool's requests finish on its decode pool (console: its prefilled req/s)
            # KV held by a request: its prompt while waiting for the first token, then prompt plus
            # half its output (linear growth) until it finishes; clipped to the measured interval.
            lo, hi = serving.warmup_s, serving.duration_s
            adm = np.clip(g.admitted_s.to_numpy(), lo, hi)
            first = np.clip(np.nan_to_num(g.first_token_s.to_numpy(), nan=hi), lo, hi)
            fin = np.clip(np.nan_to_num(g.finish_s.to_numpy(), nan=hi), lo, hi)
            adm = np.nan_to_num(adm, nan=hi)
            prompt = g.prompt_tokens.to_numpy(float)
            out = g.output_tokens.to_numpy(float)
            area = prompt * np.maximum(first - adm, 0) + (prompt + out / 2) * np.maximum(fin - first, 0)
            row["kv_occupancy_est"] = float(area.sum() / (span * ps.replicas * ps.kv_capacity_tokens))
            k = pool_kernel(pool, chips, models)
            if pool.role == "decode":  # prompts are prefilled elsewhere: a decode-only batch
                ss = steady_state(k, pool.batching.max_batch, float(prompt.mean()), float(out.mean()),
                                  decode_only=True)
            else:
                ss = offline_throughput(k, float(prompt.mean()), float(out.mean()), pool.batching.max_batch)
            done = g[(g.status == "completed")]
            tok_s = float(done.output_tokens.sum() / span)
            row["saturation_tokens_per_s_per_replica"] = ss.output_tokens_per_s
            row["load_vs_saturation"] = tok_s / (ss.output_tokens_per_s * ps.replicas)
        pools[ps.name] = row
    warm = int((requests.arrival_s < serving.warmup_s).sum())
    rej = measured[measured.status.astype(str) == "rejected"]
    reasons = {str(k): int(v) for k, v in rej.reject_reason.astype(str).value_counts().items() if v}
    return {"classes": classes, "pools": pools, "warmup_arrived": warm, "rejected_by_reason": reasons}


def default_run_dir(name: str) -> Path:
    from fleetsim.results.runfolder import default_run_dir as pick

    return pick(name)


def summary_text(summary: dict[str, Any]) -> str:
    from fleetsim.results.display import summary_text as text

    return text(summary)


def goodput_text(rows: list[dict[str, Any]]) -> str:
    from fleetsim.results.display import goodput_text as text

    return text(rows)


def plot(run_dir: str | Path, svg: bool = False) -> list[Path]:
    """Draw every plot the run folder's tables support into RUN_DIR/plots (PNG; SVG too if `svg`)."""
    from fleetsim.report.plots import draw_all
    from fleetsim.results.runfolder import add_to_manifest

    drawn = draw_all(Path(run_dir), svg=svg)
    add_to_manifest(Path(run_dir), drawn)  # a finished run's manifest lists what is its own
    return drawn


def report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write RUN_DIR/report.html: one self-contained page (plots embedded)."""
    from fleetsim.report.html import write_report
    from fleetsim.results.runfolder import add_to_manifest

    page = write_report(Path(run_dir), Path(out) if out else None)
    add_to_manifest(Path(run_dir), [page])
    return page


def compare(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """One HTML page setting runs' headline metrics and key plots side by side."""
    from fleetsim.report.html import write_compare

    return write_compare([Path(d) for d in run_dirs], Path(out))


def write_calibration(result, out_file: str | Path) -> Path:
    """Write a calibration's fitted chip override (YAML) to `out_file`."""
    out_file = Path(out_file)
    try:
        out_file.write_text(result.to_override_yaml(), encoding="utf-8")
    except OSError as exc:
        raise FleetsimError(f"cannot write {out_file}: {exc.strerror or exc}") from None
    return out_file


def hedge(scenario: Scenario, out_dir: str | Path | None = None, futures: int = 20, holdout: int = 100,
          risk_weights: Sequence[float] = (0.0, 0.5, 1.0), horizon_periods: int | None = None,
          world: str = "scripted", cvar_alpha: float | None = None, day: Any = None, rolling: bool = False,
          overwrite: bool = True,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Value of hedging out of sample on the fleet's first planning day (fleetsim.fleet.optimal.hedge):
    the stochastic, expected-value, mean-CVaR and rule plans and the oracle on the same held-out
    futures; with `out_dir`, hedge.parquet, summary.json, plots/hedge.png and the manifest."""
    import math as _math

    from fleetsim.fleet.capacity import replica_capacities, seasonal_capacities
    from fleetsim.fleet.optimal import hedge as hg
    from fleetsim.results import hedge as hres
    from fleetsim.results import runfolder
    from fleetsim.results.cache import ResultCache

    if scenario.fleet is None:
        raise ScenarioError("fleetsim hedge needs a fleet scenario (a `fleet:` section)", field="fleet")
    if futures < 2 or holdout < 2:
        raise ScenarioError("--futures and --holdout need at least 2 futures each", field="futures")
    if world not in ("model", "scripted"):
        raise ScenarioError(f"--world must be model or scripted, not {world!r}", field="world")
    import datetime as _dt

    if day is None:
        day_n = 0
    else:
        try:
            when = _dt.date.fromisoformat(str(day))
        except ValueError:
            raise ScenarioError(f"--day must be a date (YYYY-MM-DD), not {day!r}", field="day") from None
        day_n = (when - scenario.fleet.start).days
        if not 0 <= day_n < round(scenario.fleet.years * 365):
            raise ScenarioError(f"--day {when} is outside the fleet's horizon (from {scenario.fleet.start}, "
                                f"{scenario.fleet.years:g} years)", field="day")
    scenario = _expand_roadmaps(scenario)
    check_references(scenario)
    run_dir = runfolder.prepare_run_dir(Path(out_dir), overwrite=overwrite) if out_dir is not None else None
    t0 = time.perf_counter()
    stage = "resolve"
    try:
        chips, models = resolve_catalogs(scenario)
        if progress:
            progress("capacity per replica type and workload (cached)")
        cache = ResultCache()
        caps = replica_capacities(scenario, chips, models, cache=cache, progress=progress)
        grid = seasonal_capacities(scenario, chips, models, cache=cache, progress=progress)
        stage = "simulate"
        t1 = time.perf_counter()
        weights = [float(w) for w in risk_weights if w > 0]  # w = 0 is the stochastic (expectation) plan
        st = hg.setup(scenario, chips, models, caps, grid, futures=futures, holdout=holdout,
                      horizon_periods=horizon_periods, world=world, cvar_alpha=cvar_alpha, day=day_n)
        if progress:
            progress(f"hedge: {futures} sampled and {holdout} held-out futures, {len(risk_weights)} risk weights")
        if rolling:
            scores, penalty = hg.rolling(scenario, chips, models, caps, grid, futures=futures, holdout=holdout,
                                         risk_weights=weights, horizon_periods=horizon_periods,
                                         cvar_alpha=cvar_alpha, progress=progress)
        else:
            scores = hg.evaluate(st.sample.with_(cvar_weight=0.0), st.holdout, risk_weights=weights, rules=st.rules)
        t2 = time.perf_counter()
        seed = int(scenario.seed or 0)
        body = hg.summarise(scores, st.sample.cvar_alpha, seed)
        names = [o.name for o in st.sample.options]
        clean = lambda v: [None if not _math.isfinite(x) else float(x) for x in v] if isinstance(v, tuple) else v
        summary = {"scenario": scenario.name, "seed": seed, "kind": "hedge",
                   "planning_day": st.state.today.isoformat(), "futures": futures, "holdout": holdout,
                   "world": "the fleet's futures" if rolling else world, "horizon_periods": st.sample.T,
                   "mode": "rolling" if rolling else "first_stage",
                   "period_days": int(round(st.sample.hours_per_period / 24)),
                   "cvar_alpha": body["cvar_alpha"],
                   "policies": {n: {k: clean(v) for k, v in p.items()} for n, p in body["policies"].items()},
                   "vss_usd": clean(body["vss_usd"]), "evpi_usd": clean(body["evpi_usd"]),
                   "front": [{k: clean(v) for k, v in r.items()} for r in body["front"]],
                   "orders_now": {s.name: ({n: int(v) for n, v in zip(names, s.first_orders) if v > 0.5} or "none")
                                  for s in scores if s.name != "oracle" and len(s.first_orders)},
                   "costs": (f"the whole run's all-in cost (depreciation, impairments, power, opex, rentals) + "
                             f"USD {penalty:g} per unmet Mtok" if rolling else
                             "the programme's: capex for the share of a chip's life inside the horizon, "
                             "power and opex, the unmet-demand penalty; over the planning horizon")}
        out = {"summary": summary, "text": hres.text(summary), "table": hres.table(scores, names)}
        if run_dir is not None:
            stage = "write"
            runfolder.write_table(run_dir / "hedge.parquet", out["table"])
            runfolder.write_json(run_dir / "summary.json", summary)
            stage = "plot"
            from fleetsim.report.hedge import plot as plot_hedge

            png = plot_hedge(run_dir)
            stage = "write"
            runfolder.commit_manifest(run_dir, runfolder.manifest_data(
                scenario=scenario.model_dump(mode="json"), seed=seed,
                timings={"capacity": t1 - t0, "hedge": t2 - t1}, kind="hedge", version=__version__,
                files=["hedge.parquet", "summary.json", png.relative_to(run_dir).as_posix()]))
            out["run_dir"] = run_dir
        out["timings_s"] = {"capacity": t1 - t0, "hedge": t2 - t1}
        return out
    except BaseException as exc:
        if run_dir is not None:
            runfolder.write_error(run_dir, exc, stage)
        raise
