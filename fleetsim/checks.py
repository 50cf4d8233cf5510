"""Checks a scenario must pass before it runs, beyond what pydantic checks alone: names that
refer to the catalogs and to other sections (chips, models, halls, pools, workloads), physics no
hardware could run (a replica wider than a node, a model that fits no tp, prompts past the
context), and memory limits of windows and cohort runs.

Below `fleetsim.api`, which calls `check_references` on every scenario it loads or runs; kept
apart so the API stays the thin surface (DESIGN.md Layout).
"""

from __future__ import annotations

import difflib
from typing import Sequence

from fleetsim.catalog import load_chips, load_models
from fleetsim.errors import FleetsimError, ScenarioError
from fleetsim.scenario.model import Scenario


# A window holds every request in memory (about 100 bytes each); past this, split the window.
MAX_REQUESTS_PER_WINDOW = 20_000_000


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
            if pool.role != "decode":
                served.add(pool.model)
        _check_handoffs(serving.pools)
        for name, wl in serving.workloads.items():
            if wl.model not in models:
                raise _unknown("model", wl.model, models, f"serving.workloads.{name}.model", "catalog.models")
            if wl.model not in served:
                raise ScenarioError(
                    f"no pool serves model '{wl.model}'; pools serve: {', '.join(sorted(served))}",
                    field=f"serving.workloads.{name}.model",
                )
        from fleetsim.serving.window import built_parts

        _check_physics(scenario, chips, models)  # (report) tp in a node, a tp that fits, not all zero
        if _is_fleet(scenario):
            _check_fleet_windows(scenario, chips, models)  # (report) memory limit before the start
        # kernels refuse a model that does not fit its chips; compiling checks files and columns.
        # Built once per scenario content and reused by the run (not rebuilt per stage).
        _, _, _, workloads = built_parts(scenario)
        _check_context(serving, workloads, models)  # (report) prompts within the model's context
        expected = sum(w.mean_rate_per_s for w in workloads.values()) * serving.duration_s
        if expected > MAX_REQUESTS_PER_WINDOW:
            raise ScenarioError(
                f"this window would simulate about {expected:.3g} requests; the limit is "
                f"{MAX_REQUESTS_PER_WINDOW:,} per window: shorten duration_s or lower the rates",
                field="serving.duration_s",
            )
    if scenario.fleet is not None:
        check_fleet_references(scenario, chips)
        from fleetsim.fleet.futures import check_limits

        check_limits(scenario)  # (futures) replications within time and memory, before the start
    input_warnings(scenario)  # raises the first impossible input (fleetsim.fleet.inputs)
    if scenario.reliability is not None and scenario.reliability.cohort_run is not None:
        for i, cohort in enumerate(scenario.reliability.cohort_run.cohorts):
            if cohort.chip not in chips:
                raise _unknown("chip", cohort.chip, chips, f"reliability.cohort_run.cohorts.{i}.chip",
                               "catalog.chips")
        _check_cohort_size(scenario.reliability.cohort_run)  # (report) memory limit before the start
    from fleetsim import sizing

    sizing.check(scenario, chips, models)  # time and memory before the start, every kind of run


def _check_handoffs(pools: dict) -> None:
    """A prefill pool hands off to a decode pool of the same model; a decode pool is fed by one."""
    fed = set()
    for name, pool in pools.items():
        if pool.role != "prefill":
            continue
        target = pool.handoff.decode_pool
        field_path = f"serving.pools.{name}.handoff.decode_pool"
        if target not in pools:
            raise _unknown("pool", target, pools, field_path, "serving.pools")
        dec = pools[target]
        if dec.role != "decode":
            raise ScenarioError(f"pool '{target}' has role {dec.role}: a handoff goes to a role: decode pool",
                                field=field_path)
        if dec.model != pool.model:
            raise ScenarioError(f"pool '{target}' serves {dec.model}, not {pool.model}", field=field_path)
        fed.add(target)
    for name, pool in pools.items():
        if pool.role == "decode" and name not in fed:
            raise ScenarioError(
                f"decode pool '{name}' gets requests only from a prefill pool, and none hands off to it: "
                f"add a pool with role: prefill and handoff: {{decode_pool: {name}, link_gbps: ...}}",
                field=f"serving.pools.{name}.role")


def input_warnings(scenario: Scenario) -> list[str]:
    """Implausible inputs as one line each; an impossible one raises ScenarioError."""
    from fleetsim.fleet.inputs import check_inputs

    return check_inputs(scenario, resolve_catalogs(scenario)[0])


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
            if ch.kind == "buy" and off.price_usd is None and not off.price_table and getattr(chips[off.chip], "price_usd", None) is None:
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


MAX_COHORT_CHIPS = 10_000_000
MAX_CHIP_DAYS = 2_000_000_000
# Share of prompts allowed above the model's context before validation refuses the workload.
MAX_OVER_CONTEXT_SHARE = 1e-6


def _is_fleet(scenario: Scenario) -> bool:
    return getattr(scenario, "fleet", None) is not None


def _working_tp(chip, model, precision: str) -> int | None:
    """Smallest tp within the chip's scale-up domain that both shards the model and fits it."""
    from fleetsim.kernel.latency import ReplicaKernel, allowed_tp

    allowed = allowed_tp(model)
    for tp in range(1, chip.scaleup_domain_chips + 1):
        if allowed is not None and tp not in allowed:
            continue
        try:
            ReplicaKernel(chip, model, tp, precision)
        except FleetsimError:
            continue
        return tp
    return None


def _check_physics(scenario: Scenario, chips: dict, models: dict) -> None:
    """Inputs no hardware could run: a replica wider than a scale-up domain, a model that does
    not fit (with a tp that does), a window with no replica at all."""
    from fleetsim.errors import CapacityError
    from fleetsim.serving.window import given_pools, pool_kernel

    serving = scenario.serving
    given = given_pools(scenario)  # capacity given by hand: no kernel needed unless windows run
    if not _is_fleet(scenario) and serving.pools and all(p.replicas == 0 for p in serving.pools.values()):
        raise ScenarioError(
            "every pool has replicas: 0, so nothing can serve the workloads: give at least one "
            "pool replicas >= 1", field="serving.pools",
        )
    windows = _is_fleet(scenario) and scenario.fleet.windows.enabled
    for name, pool in serving.pools.items():
        chip, model = chips[pool.chip], models[pool.model]
        field_path = f"serving.pools.{name}.tp"
        if name in given:
            try:
                pool_kernel(pool, chips, models, tp=min(pool.tp, chip.scaleup_domain_chips))
            except FleetsimError as exc:
                if windows:
                    raise ScenarioError(
                        f"pool '{name}' has its capacity given by hand, but its serving windows need "
                        f"a kernel: {exc.message.split('; ')[0]}; set fleet.windows.enabled: false",
                        field="fleet.windows.enabled") from None
            if not windows:
                continue
        if pool.tp > chip.scaleup_domain_chips:
            good = _working_tp(chip, model, pool.precision)
            hint = f"; tp={good} fits {model.name} in {pool.precision}" if good else ""
            raise CapacityError(
                f"tp={pool.tp} needs {pool.tp} {pool.chip} chips joined by the chip interconnect, but "
                f"one {pool.chip} scale-up domain (node) has {chip.scaleup_domain_chips}: use tp <= "
                f"{chip.scaleup_domain_chips}{hint}", field=field_path,
            )
        try:
            pool_kernel(pool, chips, models)
        except ScenarioError:
            continue  # a bad engine, band or layout: build_kernels names the pool and field
        except CapacityError as exc:
            if "does not shard" in exc.message:
                continue  # build_kernels reports it with the allowed tp list
            good = _working_tp(chip, model, pool.precision)
            head = exc.message.split("; ")[0]
            fix = (f"tp={good} fits and shards it" if good else
                   f"no tp up to one node ({chip.scaleup_domain_chips} chips) fits it in "
                   f"{pool.precision}: use a smaller precision or a chip with more memory")
            raise CapacityError(f"{head}; {fix}", field=field_path) from None


def _check_context(serving, workloads: dict, models: dict) -> None:
    """Prompts longer than the model's context window would be refused by any engine."""
    import numpy as np

    for name, wl in workloads.items():
        model = models[serving.workloads[name].model]
        ctx = model.max_context_tokens
        field_path = f"serving.workloads.{name}.prompt_tokens"
        trace_prompts = getattr(wl.arrival, "prompt_tokens", None)
        if wl.prompt_tokens is not None:
            over = float(1.0 - np.asarray(wl.prompt_tokens.cdf(ctx)))
        elif trace_prompts is not None and len(trace_prompts):
            over = float(np.mean(np.asarray(trace_prompts) > ctx))
        else:
            continue
        if over > MAX_OVER_CONTEXT_SHARE:
            raise ScenarioError(
                f"{over:.2g} of prompts are longer than {model.name}'s context of {ctx:,} tokens: "
                f"clip them (prompt_tokens max: {ctx}) or serve a longer-context model",
                field=field_path,
            )


def _check_fleet_windows(scenario: Scenario, chips: dict, models: dict) -> None:
    """A fleet's serving window holds every request of its cell in memory: bound it before the
    start by the cell's saturation rate (twice it, for a fleet short of capacity)."""
    from fleetsim.serving.window import pool_kernel
    from fleetsim.kernel.throughput import offline_throughput

    win = scenario.fleet.windows
    if win is None or not getattr(win, "enabled", True):
        return
    serving = scenario.serving
    worst = 0.0
    for name, pool in serving.pools.items():
        try:
            k = pool_kernel(pool, chips, models)
        except FleetsimError:
            continue
        for wname, wl in serving.workloads.items():
            if wl.model != pool.model:
                continue
            prompt = getattr(wl.prompt_tokens, "median", None) or 512
            output = getattr(wl.output_tokens, "median", None) or 128
            ss = offline_throughput(k, float(prompt), float(output), pool.batching.max_batch)
            worst = max(worst, ss.output_tokens_per_s / float(output))
    expected = 2.0 * worst * win.cell_replicas * win.duration_s
    if expected > MAX_REQUESTS_PER_WINDOW:
        raise ScenarioError(
            f"a fleet serving window could simulate about {expected:.3g} requests ({win.cell_replicas} "
            f"replicas for {win.duration_s:g} s); the limit is {MAX_REQUESTS_PER_WINDOW:,} per window: "
            "shorten fleet.windows.duration_s or lower cell_replicas",
            field="fleet.windows.duration_s",
        )


def _check_cohort_size(fleet) -> None:
    chips = sum(c.count for c in fleet.cohorts)
    chip_days = sum(c.count * (fleet.days - c.start_day) for c in fleet.cohorts)
    if chips > MAX_COHORT_CHIPS:
        raise ScenarioError(
            f"this reliability run tracks {chips:,} chips; the limit is {MAX_COHORT_CHIPS:,} "
            "(memory): model a representative sample and scale the counts",
            field="reliability.cohort_run.cohorts",
        )
    if chip_days > MAX_CHIP_DAYS:
        raise ScenarioError(
            f"this reliability run covers {chip_days:.3g} chip-days; the limit is {MAX_CHIP_DAYS:.3g} "
            "(memory and time): shorten days or lower the cohort counts",
            field="reliability.cohort_run.days",
        )
