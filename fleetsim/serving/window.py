"""One serving window: arrivals -> router -> replicas, for `duration_s` of simulated time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from fleetsim.errors import FleetsimError
from fleetsim.kernel import ReplicaKernel
from fleetsim.scenario.serving import ServingConfig
from fleetsim.serving.replica import Replica
from fleetsim.serving.requests import UNFINISHED, RequestArrays
from fleetsim.rng import stream
from fleetsim.serving.router import Router
from fleetsim.serving.workload import Workload, compile_workload


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


def build_kernels(cfg: ServingConfig, chips: dict, models: dict) -> dict[str, ReplicaKernel]:
    """One kernel per pool; a model that does not fit its chips is refused here, with the pool named."""
    kernels = {}
    for name, pool in cfg.pools.items():
        try:
            kernels[name] = ReplicaKernel(chips[pool.chip], models[pool.model], pool.tp, pool.precision)
        except FleetsimError as exc:  # CapacityError, bad tp...: name the pool (and its field)
            field = f"serving.pools.{name}.{exc.field}" if exc.field else f"serving.pools.{name}"
            raise type(exc)(exc.message, field=field) from None
    return kernels


def compile_workloads(cfg: ServingConfig, base_dir: Path) -> dict[str, Workload]:
    """Runtime workload objects (trace and empirical CSVs read once); file errors surface here."""
    return {
        name: compile_workload(wl, base_dir=base_dir, field_prefix=f"serving.workloads.{name}")
        for name, wl in cfg.workloads.items()
    }


def generate_requests(
    cfg: ServingConfig, seed: int, base_dir: Path, rate_scale: float = 1.0, window: int = 0,
    workloads: dict[str, Workload] | None = None,
) -> tuple[RequestArrays, np.ndarray, list[str]]:
    """All arrivals of the window, every class merged in time order."""
    workloads = workloads or compile_workloads(cfg, base_dir)
    class_names: list[str] = []
    class_workloads: list[str] = []
    model_names = sorted({w.model for w in cfg.workloads.values()})
    blocks = []
    for cname, wl in cfg.workloads.items():
        rng = stream(seed, "workload", cname, window)
        block = workloads[cname].requests(rng, cfg.duration_s, rate_scale=rate_scale)
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
        blocks.append((block, codes, np.full(n, model_names.index(wl.model), dtype=np.int16)))
    arrival = np.concatenate([b[0].arrival_s for b in blocks])
    order = np.argsort(arrival, kind="stable")
    req = RequestArrays(
        arrival_s=arrival[order],
        prompt_tokens=np.concatenate([b[0].prompt_tokens for b in blocks])[order].astype(np.int64),
        output_tokens=np.concatenate([b[0].output_tokens for b in blocks])[order].astype(np.int64),
        class_idx=np.concatenate([b[1] for b in blocks])[order],
        class_names=class_names,
        class_workloads=class_workloads,
    )
    request_model = np.concatenate([b[2] for b in blocks])[order]
    return req, request_model, model_names


def run_window(
    cfg: ServingConfig,
    chips: dict,
    models: dict,
    seed: int,
    base_dir: Path = Path("."),
    rate_scale: float = 1.0,
    window: int = 0,
    kernels: dict[str, ReplicaKernel] | None = None,
    reliability: Any = None,
    workloads: dict[str, Workload] | None = None,
    start_temp_c: dict[str, float] | None = None,
    spares: dict[str, int] | None = None,
) -> WindowResult:
    """Simulate one window and return its raw records."""
    kernels = kernels or build_kernels(cfg, chips, models)
    req, request_model, model_names = generate_requests(cfg, seed, base_dir, rate_scale, window, workloads)
    env = simpy.Environment()

    replicas_by_model: dict[int, list[Replica]] = {}
    pool_replicas: list[list[Replica]] = []
    index = 0
    def on_done(rid: int) -> None:
        router.on_done(rid)  # `router` is bound below, before the simulation runs

    for pi, (pname, pool) in enumerate(cfg.pools.items()):
        reps = []
        for i in range(pool.replicas):
            reps.append(Replica(env, index, pi, kernels[pname], pool.batching, pool.queue_limit, req,
                                on_done, index_in_pool=i))
            index += 1
        pool_replicas.append(reps)
        if pool.model in model_names:
            replicas_by_model.setdefault(model_names.index(pool.model), []).extend(reps)

    router = Router(
        cfg.router.kind, replicas_by_model, req, request_model.tolist(),
        stream(seed, "router", window), lambda: env.now,
    )

    env.process(_arrivals(env, req.arrival_s.tolist(), router))

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

    env.run(until=cfg.duration_s)
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
        ))
    assert np.all(req.status[np.isnan(req.finish_s)] == UNFINISHED)
    return WindowResult(
        requests=req, request_model=request_model, pools=pools, duration_s=cfg.duration_s,
        warmup_s=cfg.warmup_s, config=cfg, window=window, events=events,
        sim_events=next(env._eid),  # SimPy's event counter
        reliability=monitor.summary(cfg.duration_s) if monitor is not None else None,
    )


def _arrivals(env: simpy.Environment, times: list[float], router: Router):
    """One process for all arrivals: one timeout per request, no per-request process."""
    route = router.route
    timeout = env.timeout
    now = 0.0
    for rid, t in enumerate(times):
        if t > now:
            yield timeout(t - now)
            now = t
        route(rid)
