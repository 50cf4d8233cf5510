"""Goodput at SLO: the highest arrival rate per replica at which a workload's SLO still holds.

Bisection on the arrival rate of a small cell of identical replicas, with common random numbers
(the same seed at every rate: arrivals are one unit-rate stream rescaled), so the SLO verdict is
close to monotone in rate. `cache_key` is a content hash of everything that can change the
answer; the caller passes a cache (results.cache.ResultCache on disk), so the fleet layer and
sweeps pay for each replica type once. Simulation code writes no files itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fleetsim import __version__
from fleetsim.scenario.serving import GoodputConfig, PoolConfig, ServingConfig, WorkloadConfig
from fleetsim.serving.metrics import latencies, slo_met
from fleetsim.serving.window import build_kernels, compile_workloads, generate_requests, run_window



def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def cache_key(pool: PoolConfig, workload: WorkloadConfig, gcfg: GoodputConfig, router: str,
              chip: Any, model: Any, seed: int, base_dir: Path) -> str:
    """Content hash: versions, chip and model specs, replica type, workload, search settings, seed."""
    files = {}
    for dist in (workload.arrival, workload.prompt_tokens, workload.output_tokens):
        path = getattr(dist, "path", None)
        if path:
            files[str(path)] = _file_digest((base_dir / path) if not Path(path).is_absolute() else Path(path))
    payload = {
        "fleetsim": __version__,
        "chip": chip.model_dump(mode="json"),
        "model": model.model_dump(mode="json"),
        "pool": pool.model_dump(mode="json", exclude={"replicas", "hall"}),
        "workload": workload.model_dump(mode="json"),
        "search": gcfg.model_dump(mode="json", exclude={"enabled"}),
        "router": router,
        "seed": seed,
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _cell(pool: PoolConfig, workload: WorkloadConfig, gcfg: GoodputConfig, wname: str,
          pname: str, router: str) -> ServingConfig:
    return ServingConfig(
        duration_s=gcfg.duration_s, warmup_s=gcfg.warmup_s,
        workloads={wname: workload},
        pools={pname: pool.model_copy(update={"replicas": gcfg.cell_replicas, "model": workload.model})},
        router={"kind": router},
    )


def search_goodput(
    pool: PoolConfig, workload: WorkloadConfig, gcfg: GoodputConfig, chips: dict, models: dict,
    seed: int, base_dir: Path = Path("."), router: str = "jsq", wname: str = "w", pname: str = "p",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Bisection on per-replica rate; returns the rate, its tokens/s and how many windows it took."""
    cell = _cell(pool, workload, gcfg, wname, pname, router)
    kernels = build_kernels(cell, chips, models)
    workloads = compile_workloads(cell, base_dir)
    req, _, _ = generate_requests(cell, seed, base_dir, 1.0, workloads=workloads)
    base_rate = max(len(req), 1) / cell.duration_s  # the workload's own mean rate at scale 1
    mean_output = float(req.output_tokens.mean()) if len(req) else 0.0
    percentile = workload.slo.percentile / 100.0
    evaluations = []
    floor = zero_load_attainment(kernels[pname], req.prompt_tokens, req.output_tokens, workload)
    if floor < percentile:
        # Even a replica serving one request at a time misses the SLO: no rate meets it.
        return {
            "goodput_req_per_s_per_replica": 0.0, "goodput_tokens_per_s_per_replica": 0.0,
            "upper_bound_req_per_s_per_replica": 0.0, "evaluations": 0, "trace": [],
            "zero_load_attainment": floor,
            "note": f"SLO unreachable: only {floor:.1%} of requests meet it on an idle replica",
        }

    def holds(rate_per_replica: float) -> bool:
        scale = rate_per_replica * gcfg.cell_replicas / base_rate
        res = run_window(cell, chips, models, seed, base_dir, rate_scale=scale, kernels=kernels,
                         workloads=workloads)
        met, judged = slo_met(res, latencies(res))
        measured = res.requests.arrival_s >= cell.warmup_s
        n = np.count_nonzero(judged & measured)
        k = np.count_nonzero(met & measured)
        att = k / n if n else 0.0
        evaluations.append({"rate_per_replica_per_s": rate_per_replica, "attainment": float(att),
                            "met": int(k), "judged": int(n)})
        if progress:
            progress(f"  {pname}/{wname}: {rate_per_replica:.4g} req/s/replica -> SLO attainment {att:.2%}")
        return att >= percentile

    lo, hi = 0.0, None
    rate = _capacity_guess(kernels[pname], req, pool)
    for _ in range(40):  # bracket: double or halve until the verdict changes
        if holds(rate):
            lo = rate
            if hi is not None:
                break
            rate *= 2.0
        else:
            hi = rate
            if lo > 0:
                break
            rate /= 2.0
            if rate < 1e-4:
                break
    if hi is not None and lo > 0:
        while (hi - lo) / hi > gcfg.rel_tol:
            mid = 0.5 * (lo + hi)
            if holds(mid):
                lo = mid
            else:
                hi = mid
    at_lo = next((e for e in reversed(evaluations) if e["rate_per_replica_per_s"] == lo), None)
    ci = _wilson(at_lo["met"], at_lo["judged"]) if at_lo and at_lo["judged"] else (None, None)
    return {
        "goodput_req_per_s_per_replica": lo,
        "goodput_tokens_per_s_per_replica": lo * mean_output,
        "upper_bound_req_per_s_per_replica": hi,
        # How sure the verdict at the goodput is: SLO attainment there, with its 95% interval
        # (requests in one window are correlated, so read it as a lower bound on the doubt).
        "attainment_at_goodput": at_lo["attainment"] if at_lo else None,
        "attainment_ci95": list(ci),
        "judged_requests_at_goodput": at_lo["judged"] if at_lo else 0,
        "evaluations": len(evaluations),
        "trace": evaluations,
        "zero_load_attainment": floor,
    }


def _wilson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def zero_load_attainment(kernel, prompt: np.ndarray, output: np.ndarray, workload: WorkloadConfig) -> float:
    """Share of requests meeting the SLO on an otherwise idle replica (the best any load can do)."""
    if len(prompt) == 0:
        return 1.0
    ttft = kernel.iteration_time_s(prompt, 0, 0.0)
    # Step time is affine in context, so the mean step equals the step at the mean context.
    tpot = kernel.iteration_time_s(0, 1, prompt + output / 2.0)
    ok = (ttft <= workload.slo.ttft_s) & ((output <= 1) | (tpot <= workload.slo.tpot_s))
    return float(np.mean(ok))


def _capacity_guess(kernel, req, pool: PoolConfig) -> float:
    """A first rate to try: the replica's full-batch token throughput over mean request size."""
    if len(req) == 0:
        return 1.0
    b = pool.batching.max_batch
    mean_p, mean_o = float(req.prompt_tokens.mean()), float(req.output_tokens.mean())
    step = float(kernel.iteration_time_s(0, b, b * (mean_p + mean_o / 2.0)))
    prefill = float(kernel.iteration_time_s(mean_p, 0, 0.0))
    per_request_s = prefill + mean_o * step / b
    return max(0.5 / per_request_s, 1e-3)


def cached_goodput(
    pool: PoolConfig, workload: WorkloadConfig, gcfg: GoodputConfig, chips: dict, models: dict,
    seed: int, base_dir: Path = Path("."), router: str = "jsq", wname: str = "w", pname: str = "p",
    progress: Callable[[str], None] | None = None, cache: Any = None,
) -> dict[str, Any]:
    """`search_goodput` through a cache: any object with `get(key) -> dict | None` and
    `put(key, dict)` (fleetsim.results.cache.ResultCache keeps them on disk); None: no cache."""
    key = cache_key(pool, workload, gcfg, router, chips[pool.chip], models[workload.model], seed, base_dir)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit | {"cached": True, "key": key}
    result = search_goodput(pool, workload, gcfg, chips, models, seed, base_dir, router, wname, pname, progress)
    if cache is not None:
        cache.put(key, result)
    return result | {"cached": False, "key": key}


def goodput_table(scenario, chips: dict, models: dict, progress=None, cache: Any = None) -> list[dict[str, Any]]:
    """Goodput of every (pool, workload) pair whose models match, as rows."""
    cfg = scenario.serving
    rows = []
    for pname, pool in cfg.pools.items():
        for wname, wl in cfg.workloads.items():
            if wl.model != pool.model:
                continue
            res = cached_goodput(pool, wl, cfg.goodput, chips, models, scenario.seed, scenario.base_dir,
                                 cfg.router.kind, wname, pname, progress, cache)
            rows.append({"pool": pname, "workload": wname, "chip": pool.chip, "model": pool.model,
                         "tp": pool.tp, **{k: v for k, v in res.items() if k != "trace"}})
    return rows
