"""One serving window: arrivals -> router -> replicas, for `duration_s` of simulated time."""

from __future__ import annotations

import heapq
import math

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from fleetsim.errors import FleetsimError
from fleetsim.kernel import ReplicaKernel
from fleetsim.progress import update
from fleetsim.scenario.serving import ServingConfig
from fleetsim.serving.replica import Deferral, Replica
from fleetsim.serving.disagg import DecodeReplica, Handoff, PrefillReplica
from fleetsim.serving.requests import (COMPLETED, REJECTED, UNFINISHED, RequestArrays,
                                       cached_prefix_tokens)
from fleetsim.rng import stream
from fleetsim.serving.router import Router
from fleetsim.serving.workload import RequestBlock, Workload, compile_workload


@dataclass
class PoolStats:
    name: str
    chip: str
    model: str
    tp: int
    replicas: int
    kv_capacity_tokens: int
    busy_s: np.ndarray  # per replica, over the measured interval
    batch_area: np.ndarray
    preemptions: int
    up_s: np.ndarray  # time each replica was up during the measured interval
    role: str = "both"
    handed_off: int = 0  # prefill pools: requests prefilled and sent on during the measured interval


@dataclass
class WindowResult:
    """Everything a window produced; `results` turns it into tables."""

    requests: RequestArrays
    request_model: np.ndarray
    pools: list[PoolStats]
    duration_s: float
    warmup_s: float
    config: ServingConfig
    window: int = 0
    events: dict[str, Any] = field(default_factory=dict)
    reliability: dict[str, Any] | None = None  # per-pool thermal and crash figures
    sim_events: int = 0  # SimPy events scheduled (benchmarks report events per request)
    places: dict[str, int] = field(default_factory=dict)  # where every request ended (conservation)


def pool_kernel(pool, chips: dict, models: dict, tp: int | None = None) -> ReplicaKernel:
    """The kernel of one replica of a pool: every pool input the kernel reads (engine and its
    release, layout and pipeline stages, memory fraction, precisions, band, speculative decoding)."""
    spec = pool.speculative
    return ReplicaKernel(
        chips[pool.chip], models[pool.model], pool.tp if tp is None else tp, pool.precision,
        kv_precision=pool.kv_precision, engine=pool.engine, band=pool.band,
        speculative=None if spec is None else (spec.draft_tokens, spec.tokens_per_step),
        engine_release=pool.engine_release, attention=pool.attention,
        expert_parallel=pool.expert_parallel, memory_fraction=pool.memory_fraction,
        graph_capture=pool.graph_capture,
        pipeline_stages=pool.pipeline_stages if tp is None else None,
    )


def build_kernels(cfg: ServingConfig, chips: dict, models: dict,
                  given: frozenset[str] = frozenset()) -> dict[str, ReplicaKernel]:
    """One kernel per pool; a model that does not fit its chips is refused here, with the pool named.

    Pools in `given` have their capacity given by hand (a fleet's `capacity`, e.g. measured on a
    multi-node deployment the kernel cannot represent): one that cannot be built is left out."""
    kernels = {}
    for name, pool in cfg.pools.items():
        try:
            kernels[name] = pool_kernel(pool, chips, models)
        except FleetsimError as exc:  # CapacityError, bad tp...: name the pool (and its field)
            if name in given:
                continue
            field = f"serving.pools.{name}.{exc.field}" if exc.field else f"serving.pools.{name}"
            raise type(exc)(exc.message, field=field) from None
    return kernels


def compile_workloads(cfg: ServingConfig, base_dir: Path) -> dict[str, Workload]:
    """Runtime workload objects (trace and empirical CSVs read once); file errors surface here."""
    return {
        name: compile_workload(wl, base_dir=base_dir, field_prefix=f"serving.workloads.{name}",
                               start_hour=cfg.start_hour)
        for name, wl in cfg.workloads.items()
    }


def generate_requests(
    cfg: ServingConfig, seed: int, base_dir: Path, rate_scale: float | dict[str, float] = 1.0,
    window: int = 0, workloads: dict[str, Workload] | None = None,
) -> tuple[RequestArrays, np.ndarray, list[str]]:
    """All arrivals of the window, every class merged in time order. `rate_scale` is one factor
    for every workload, or one per workload (a workload missing or at 0 sends nothing)."""
    workloads = workloads or compile_workloads(cfg, base_dir)
    class_names: list[str] = []
    class_workloads: list[str] = []
    model_names = sorted({w.model for w in cfg.workloads.values()})
    blocks = []
    for cname, wl in cfg.workloads.items():
        rng = stream(seed, "workload", cname, window)
        scale = rate_scale.get(cname, 0.0) if isinstance(rate_scale, dict) else rate_scale
        if scale > 0:
            block = workloads[cname].requests(rng, cfg.duration_s, rate_scale=scale)
        else:
            empty = np.zeros(0, dtype=np.int64)
            block = RequestBlock(np.zeros(0), empty, empty.copy())
        n = len(block.arrival_s)
        if block.request_class is None:
            codes = np.full(n, len(class_names), dtype=np.int16)
            class_names.append(cname)
            class_workloads.append(cname)
        else:  # a trace's class column: one class per value, named workload.value, same SLO
            values, inverse = np.unique(block.request_class.astype(str), return_inverse=True)
            codes = (len(class_names) + inverse).astype(np.int16)
            class_names.extend(f"{cname}.{v}" for v in values)
            class_workloads.extend([cname] * len(values))
        blocks.append((block, codes, np.full(n, model_names.index(wl.model), dtype=np.int16),
                       cached_prefix_tokens(block.prompt_tokens, wl.prefix_cache_hit_share)))
    arrival = np.concatenate([b[0].arrival_s for b in blocks])
    order = np.argsort(arrival, kind="stable")
    req = RequestArrays(
        arrival_s=arrival[order],
        prompt_tokens=np.concatenate([b[0].prompt_tokens for b in blocks])[order].astype(np.int64),
        output_tokens=np.concatenate([b[0].output_tokens for b in blocks])[order].astype(np.int64),
        class_idx=np.concatenate([b[1] for b in blocks])[order],
        class_names=class_names,
        class_workloads=class_workloads,
        cached_tokens=np.concatenate([b[3] for b in blocks])[order].astype(np.int64),
    )
    request_model = np.concatenate([b[2] for b in blocks])[order]
    return req, request_model, model_names


def run_window(
    cfg: ServingConfig,
    chips: dict,
    models: dict,
    seed: int,
    base_dir: Path = Path("."),
    rate_scale: float | dict[str, float] = 1.0,
    window: int = 0,
    kernels: dict[str, ReplicaKernel] | None = None,
    reliability: Any = None,
    workloads: dict[str, Workload] | None = None,
    start_temp_c: dict[str, float] | None = None,
    spares: dict[str, int] | None = None,
    progress: Any = None,
) -> WindowResult:
    """Simulate one window and return its raw records (`progress`: fleetsim.progress hooks)."""
    kernels = kernels or build_kernels(cfg, chips, models)
    req, request_model, model_names = generate_requests(cfg, seed, base_dir, rate_scale, window, workloads)
    env = simpy.Environment()

    replicas_by_model: dict[int, list[Replica]] = {}
    pool_replicas: list[list[Replica]] = []
    index = 0
    def on_done(rid: int, replica: Replica | None = None) -> None:
        router.on_done(rid, replica)  # `router` is bound below, before the simulation runs

    kinds = {"both": Replica, "prefill": PrefillReplica, "decode": DecodeReplica}
    for pi, (pname, pool) in enumerate(cfg.pools.items()):
        reps = []
        memos = ({}, {})  # the pool's kernel memos (`Replica._memo`): one kernel, shared answers
        for i in range(pool.replicas):
            reps.append(kinds[pool.role](env, index, pi, kernels[pname], pool.batching, pool.queue_limit,
                                         req, on_done, index_in_pool=i, memos=memos))
            index += 1
        pool_replicas.append(reps)
        if pool.model in model_names and pool.role != "decode":  # arrivals go to prefill first
            replicas_by_model.setdefault(model_names.index(pool.model), []).extend(reps)
    names = list(cfg.pools)
    handoffs = []
    for pi, (pname, pool) in enumerate(cfg.pools.items()):
        if pool.role == "prefill":
            h = pool.handoff
            link = Handoff(env, req, kernels[pname].kv_bytes_per_token, h.link_gbps, h.link_latency_s,
                           pool_replicas[names.index(h.decode_pool)],
                           lambda rid, reason: router.reject(rid, reason),
                           host_s=kernels[pname].request_overhead_s)
            handoffs.append(link)
            for r in pool_replicas[pi]:
                r.handoff = link

    router = Router(
        cfg.router.kind, replicas_by_model, req, request_model.tolist(),
        stream(seed, "router", window), lambda: env.now,
    )

    def _unindexed(rid: int, replica: Replica | None = None) -> None:
        """A decode replica's completion: the router indexes only the replicas it routes to."""

    for reps, pool in zip(pool_replicas, cfg.pools.values()):  # straight to the router from now on
        for r in reps:  # (one call less a completion)
            r.on_done = _unindexed if pool.role == "decode" and not router.central else router.on_done
    deferral = Deferral(env, plan_cuts=reliability is None and not router.central,
                        until=cfg.duration_s, warmup=cfg.warmup_s)
    for reps, pool in zip(pool_replicas, cfg.pools.values()):
        if pool.role == "both":  # handoffs arrive between arrivals: no deferred run ends there
            for r in reps:
                r.deferral = deferral
        elif not router.central:  # a KV transfer may arrive at once, and the decode run it cuts
            for r in reps:  # end at once (`Deferral.clear_until`; a central queue's hand-out at a
                r.ahead = deferral  # completion could start an iteration after the hand-off)

    snapshot: dict[str, list[float]] = {}

    def warmup_snapshot():
        yield env.timeout(cfg.warmup_s)
        for reps in pool_replicas:
            for r in reps:
                snapshot[r.index] = r.busy_at(env.now)

    env.process(warmup_snapshot())
    monitor = None
    if reliability is not None:
        monitor = reliability.attach(env, cfg, pool_replicas, router, seed, window,
                                     start_temp_c=start_temp_c, spares=spares)

    routed = _simulate(env, cfg.duration_s, req.arrival_s.tolist(), router, deferral, progress)
    for reps in pool_replicas:
        for r in reps:
            r.settle(cfg.duration_s)
    events: dict[str, Any] = monitor.events() if monitor is not None else {}
    measured = cfg.duration_s - cfg.warmup_s

    pools = []
    for (pname, pool), reps in zip(cfg.pools.items(), pool_replicas):
        end = [r.busy_at(cfg.duration_s) for r in reps]
        busy = np.array([e[0] - snapshot.get(r.index, (0.0, 0.0, 0.0))[0] for e, r in zip(end, reps)])
        area = np.array([e[1] - snapshot.get(r.index, (0.0, 0.0, 0.0))[1] for e, r in zip(end, reps)])
        up_s = np.array([r.up_time_s(cfg.warmup_s, cfg.duration_s) for r in reps])
        pools.append(PoolStats(
            name=pname, chip=pool.chip, model=pool.model, tp=pool.tp, replicas=pool.replicas,
            kv_capacity_tokens=int(kernels[pname].kv_capacity_tokens),
            busy_s=busy, batch_area=area, preemptions=sum(r.preemptions for r in reps), up_s=up_s,
            role=pool.role, handed_off=sum(r.handed_off_since(cfg.warmup_s) for r in reps)
            if pool.role == "prefill" else 0,
        ))
    places = check_conservation(req, pool_replicas, router, handoffs)
    return WindowResult(
        requests=req, request_model=request_model, pools=pools, duration_s=cfg.duration_s,
        warmup_s=cfg.warmup_s, config=cfg, window=window, events=events,
        sim_events=next(env._eid) + routed,  # SimPy's events, and the arrivals merged into them
        reliability=monitor.summary(cfg.duration_s) if monitor is not None else None,
        places=places,
    )


class ConservationError(RuntimeError):
    """A request is in no place or in two: a simulator bug, never a user error."""


def check_conservation(req: RequestArrays, pool_replicas: list[list[Replica]], router: Router,
                       handoffs: list | None = None) -> dict[str, int]:
    """Every generated request is in exactly one place at the window's end, counted from the
    simulator's own structures (replica queues and batches, the central queue, the replicas'
    completion counters, the router's rejection and arrival counters), then checked against the
    status column. Returns the counts per place."""
    waiting: list[int] = [rid for q in router.held.values() for rid in q]
    batch: list[int] = []
    completed = 0
    for reps in pool_replicas:
        for r in reps:
            waiting.extend(r.waiting)
            batch.extend(item[0] for item in r.prefilling)
            batch.extend(r.decoding)
            completed += r.completed
    transit = [rid for h in handoffs or () for rid in h.in_transit]  # KV on a link
    batch.extend(transit)
    on_hand = waiting + batch
    n = len(req)
    not_arrived = n - router.first_routes
    places = {"generated": n, "not_arrived": not_arrived, "waiting": len(waiting),
              "in_batch": len(batch) - len(transit), "completed": completed, "rejected": router.rejected}
    if handoffs:
        places["in_transfer"] = len(transit)
    problems = []
    if len(set(on_hand)) != len(on_hand):
        problems.append("a request is queued or batched twice")
    if not_arrived + len(on_hand) + completed + router.rejected != n:
        problems.append("places do not add up to the requests generated")
    status = req.status
    if np.count_nonzero(status == COMPLETED) != completed:
        problems.append("completed status disagrees with the replicas' completion counts")
    if np.count_nonzero(status == REJECTED) != router.rejected:
        problems.append("rejected status disagrees with the router's rejection count")
    if on_hand and np.any(status[np.asarray(on_hand)] != UNFINISHED):
        problems.append("a queued or batched request is marked finished")
    if np.count_nonzero(status == UNFINISHED) != len(on_hand) + not_arrived:
        problems.append("unfinished status disagrees with queues + batches + not yet arrived")
    if np.any(np.isnan(req.finish_s[status != UNFINISHED])):
        problems.append("a finished request has no finish time")
    if problems:
        raise ConservationError("request conservation broken: " + "; ".join(problems) + f" ({places})")
    return places


def _simulate(env: simpy.Environment, until: float, times: list[float], router: Router,
              deferral: Deferral, progress: Any = None) -> int:
    """`env.run(until)` with the arrivals merged in: the arrival times are known in advance (a
    sorted list), so each is routed when it comes before SimPy's next event, at its own time,
    without a SimPy event of its own (what a timeout per arrival would cost). After each
    arrival the replicas' run ends due before the next one are scheduled (`Deferral`). Events at
    `until` are not run, as with `env.run(until)`; `progress` gets the simulated time in
    100 slices. Returns the arrivals routed."""
    queue = env._queue
    pop = heapq.heappop
    route = router.route
    flush = deferral.flush
    dheap = deferral.heap
    n = len(times)
    inf = math.inf
    i = 0
    stops = [until * j / 100 for j in range(1, 101)] if getattr(progress, "update", None) else [until]
    for stop in stops:
        t_arr = times[i] if i < n else inf
        while True:
            t_ev = queue[0][0] if queue else inf
            if t_arr < t_ev:  # (an arrival and an event at one instant: the event first)
                if not t_arr < stop:
                    break
                env._now = t_arr
                i += 1
                t_arr = times[i] if i < n else inf
                deferral.horizon = t_arr
                route(i - 1)
                if dheap and dheap[0][0] <= t_arr:
                    flush()
            else:
                if not t_ev < stop:
                    break
                # SimPy's `Environment.step`, inlined
                _t, _prio, _eid, event = pop(queue)
                env._now = t_ev
                callbacks, event.callbacks = event.callbacks, None
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    raise event._value
        env._now = max(env._now, stop)
        if progress is not None and len(stops) > 1:
            update(progress, "serving window (simulated s)", stop, until)
    return i


# Kernels and compiled workloads of recent scenarios, keyed by content: a fleet run calls
# `run_fleet_window` for thousands of windows of one scenario and builds them once.
_BUILT: dict[str, tuple] = {}
# The windows' ServingReliability by the reliability section it was made of (held, so its id is
# not reused) and the catalogs (the same `built_parts` object for one scenario content).
_HEALTH: dict[int, tuple] = {}


def given_pools(scenario) -> frozenset[str]:
    """Pools of a fleet whose capacity is given by hand for every workload of their model."""
    fleet = getattr(scenario, "fleet", None)
    if fleet is None or not fleet.capacity:
        return frozenset()
    sv = scenario.serving
    return frozenset(
        p for p, pool in sv.pools.items()
        if p in fleet.capacity and all(w in fleet.capacity[p] for w, wl in sv.workloads.items()
                                       if wl.model == pool.model))


def built_parts(scenario) -> tuple[dict, dict, dict, dict]:
    """(chips, models, kernels, compiled workloads) of a scenario, built once per content."""
    import hashlib

    from fleetsim.catalog import load_chips, load_models

    given = given_pools(scenario)
    key = hashlib.sha256((scenario.model_dump_json(include={"serving", "catalog"})
                          + str(scenario.base_dir) + ",".join(sorted(given))).encode()).hexdigest()
    hit = _BUILT.get(key)
    if hit is None:
        chips, models = load_chips(scenario.catalog.chips), load_models(scenario.catalog.models)
        hit = (chips, models, build_kernels(scenario.serving, chips, models, given),
               compile_workloads(scenario.serving, scenario.base_dir))
        if len(_BUILT) >= 8:
            _BUILT.pop(next(iter(_BUILT)))
        _BUILT[key] = hit
    return hit


def run_fleet_window(scenario, *, replicas_up: dict[str, int], rate_per_s: dict[str, float],
                     hour_of_day: float, seed: int, window: int = 0,
                     start_temp_c: dict[str, float] | None = None,
                     spares: dict[str, int] | None = None, ambient_c: float | None = None) -> WindowResult:
    """One serving window of a fleet's state, on the scenario's `serving:` template.

    replicas_up: replicas in service per pool (a pool not named has none). rate_per_s: arrival
    rate per workload class, requests per second, for the whole window (a class not named sends
    nothing); for a diurnal class it is the daily mean, shaped by the profile at the window's
    hours. hour_of_day: the hour at t = 0, applied to diurnal arrivals and to the halls' ambient
    cycle alike. start_temp_c: the chips' die temperature per pool at t = 0 (default: the hall's
    idle equilibrium). spares: chips on the shelf per pool (default: repair.spare_fraction).
    ambient_c: the halls' inlet temperature now (replaces their daily cycle for this window).
    The reliability section (throttling, crashes, repair) applies when the scenario has one,
    or when temperatures are given. `fleetsim.serving.metrics.summarise(result)` gives per-class
    and per-pool attainment. Kernels and compiled workloads are built once per scenario content.
    """
    from fleetsim.errors import ScenarioError

    cfg = scenario.serving
    if cfg is None:
        raise ScenarioError("a fleet window needs the scenario's 'serving' section", field="serving")
    for names, given, what in ((cfg.pools, replicas_up, "pool"), (cfg.workloads, rate_per_s, "workload")):
        for name, value in given.items():
            if name not in names:
                import difflib

                close = difflib.get_close_matches(name, list(names), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ScenarioError(f"unknown {what} '{name}'{hint}; {what}s: {', '.join(names)}",
                                    field=f"serving.{what}s")
            if not (value >= 0 and np.isfinite(value)):
                raise ScenarioError(f"{what} '{name}': expected a finite value >= 0, got {value!r}",
                                    field=f"serving.{what}s.{name}")
    if not 0 <= hour_of_day < 24:
        hour_of_day = float(hour_of_day) % 24.0
    chips, models, kernels, workloads = built_parts(scenario)
    pools = {name: pool.model_copy(update={"replicas": int(replicas_up.get(name, 0))})
             for name, pool in cfg.pools.items()}
    win = cfg.model_copy(update={"pools": pools, "start_hour": float(hour_of_day)})
    if any(w.arrival.kind == "diurnal" for w in cfg.workloads.values()):
        # the diurnal phase follows the window's hour: recompile (cheap) with this start hour
        workloads = compile_workloads(win, scenario.base_dir)
    scales = {name: rate / workloads[name].mean_rate_per_s
              for name, rate in rate_per_s.items() if rate > 0 and workloads[name].mean_rate_per_s > 0}
    health = None
    if scenario.reliability is not None or ambient_c is not None or start_temp_c:
        from fleetsim.scenario.reliability import ReliabilityConfig
        from fleetsim.serving.health import ServingReliability

        rel = scenario.reliability
        if rel is not None and ambient_c is None:  # a fleet's windows: one, its chips resolved once
            hit = _HEALTH.get(id(rel))
            if hit is None or hit[0] is not rel or hit[1] is not chips:
                if len(_HEALTH) >= 8:
                    _HEALTH.pop(next(iter(_HEALTH)))
                hit = _HEALTH[id(rel)] = (rel, chips, ServingReliability(rel, chips))
            health = hit[2]
        else:
            rel = rel or ReliabilityConfig()
            if ambient_c is not None:
                rel = rel.model_copy(update={"halls": {
                    name: hall.model_copy(update={"ambient_c": float(ambient_c), "daily_swing_c": 0.0})
                    for name, hall in rel.halls.items()}})
            health = ServingReliability(rel, chips)
    return run_window(win, chips, models, seed, scenario.base_dir, rate_scale=scales, window=window,
                      kernels=kernels, reliability=health, workloads=workloads,
                      start_temp_c=start_temp_c, spares=spares)
