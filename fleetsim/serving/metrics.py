"""SLO metrics of a window: per-request latencies, then per class and per pool summaries.

A rejected request counts against the pool that turned it away (its queue was full), or, when no
pool could take it, under `no_pool`; so a class's judged requests are its pools' plus no_pool's.

Only requests that arrived after warm-up count. SLO attainment's denominator is every measured
request whose fate is known: completed, rejected, or still unfinished but already past its TTFT
target (it fails whatever happens next); unfinished requests still inside their TTFT target at the
end of the window are left out rather than counted as failures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fleetsim.serving.requests import COMPLETED, REJECTED, UNFINISHED
from fleetsim.serving.window import WindowResult

PERCENTILES = (50, 90, 99)


def latencies(res: WindowResult) -> dict[str, np.ndarray]:
    """Per-request derived columns (NaN where undefined)."""
    r = res.requests
    with np.errstate(invalid="ignore", divide="ignore"):
        ttft = r.first_token_s - r.arrival_s
        decode_tokens = r.output_tokens - 1
        tpot = np.where(decode_tokens > 0, (r.finish_s - r.first_token_s) / decode_tokens, np.nan)
        tpot = np.where(r.status == COMPLETED, tpot, np.nan)
        e2e = np.where(r.status == COMPLETED, r.finish_s - r.arrival_s, np.nan)
        queue = r.admitted_s - r.arrival_s
    return {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e, "queue_s": queue}


def slo_met(res: WindowResult, lat: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(met, judged) boolean arrays per request, per its class's SLO."""
    r = res.requests
    slos = [res.config.workloads[w].slo for w in r.class_workloads]
    ttft_lim = np.array([s.ttft_s for s in slos])[r.class_idx]
    tpot_lim = np.array([s.tpot_s for s in slos])[r.class_idx]
    ttft, tpot = lat["ttft_s"], lat["tpot_s"]
    completed = r.status == COMPLETED
    met = completed & (ttft <= ttft_lim) & (np.isnan(tpot) | (tpot <= tpot_lim))
    age = res.duration_s - r.arrival_s
    late_unfinished = (r.status == UNFINISHED) & (
        (np.isnan(r.first_token_s) & (age > ttft_lim)) | (ttft > ttft_lim)
    )
    judged = completed | (r.status == REJECTED) | late_unfinished
    return met, judged


def _pcts(x: np.ndarray, prefix: str) -> dict[str, float | None]:
    x = x[~np.isnan(x)]
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        out[f"{prefix}_p{p}_s"] = float(np.percentile(x, p)) if len(x) else None
    out[f"{prefix}_mean_s"] = float(x.mean()) if len(x) else None
    return out


def summarise(res: WindowResult) -> dict[str, Any]:
    """JSON-able summary: totals, per class, per pool."""
    r = res.requests
    lat = latencies(res)
    met, judged = slo_met(res, lat)
    measured = r.arrival_s >= res.warmup_s
    # Throughput counts what finished inside the measured interval, whenever it arrived, so an
    # overloaded window is not under-counted by requests that arrived during warm-up.
    finished_in = (r.status == COMPLETED) & (r.finish_s >= res.warmup_s)
    span = res.duration_s - res.warmup_s
    out: dict[str, Any] = {"window": res.window, "duration_s": res.duration_s, "warmup_s": res.warmup_s}
    out["requests"] = r.counts()
    classes = {}
    for ci, cname in enumerate(r.class_names):
        wl = res.config.workloads[r.class_workloads[ci]]
        m = measured & (r.class_idx == ci)
        done = finished_in & (r.class_idx == ci)
        classes[cname] = _group_summary(res, m, done, lat, met, judged, span) | {
            "model": wl.model, "workload": r.class_workloads[ci], "slo": wl.slo.model_dump(),
            "slo_met": bool(_attainment(met, judged, m) >= wl.slo.percentile / 100.0)
            if judged[m].any() else None,
        }
    out["classes"] = classes
    pools = {}
    for pi, ps in enumerate(res.pools):
        m = measured & (r.pool_idx == pi)
        done = finished_in & (r.pool_idx == pi)
        busy = float(ps.busy_s.sum())
        pools[ps.name] = _group_summary(res, m, done, lat, met, judged, span) | {
            "chip": ps.chip, "model": ps.model, "tp": ps.tp, "replicas": ps.replicas,
            "kv_capacity_tokens": ps.kv_capacity_tokens,
            "utilisation": float(busy / (span * ps.replicas)) if ps.replicas else None,
            "mean_batch_size": float(ps.batch_area.sum() / busy) if busy > 0 else None,
            "preemptions": int(ps.preemptions),
            "availability": float(ps.up_s.sum() / (span * ps.replicas)) if ps.replicas else None,
        }
        if ps.role == "prefill":  # its requests complete on the decode pool: what it prefilled
            done_here = int(done.sum())  # one-token requests finish where they were prefilled
            pools[ps.name] |= {"role": "prefill",
                               "prefilled_req_per_s": float((ps.handed_off + done_here) / span)}
    out["pools"] = pools
    # Requests no pool could take (rejected before reaching one): with the pools, they make up
    # each class, so per-pool and per-class attainment agree.
    m = measured & (r.pool_idx < 0)
    out["no_pool"] = {
        "arrived": int(m.sum()), "rejected": int((m & (r.status == REJECTED)).sum()),
        "judged": int((m & judged).sum()),
        "rejected_by_reason": _reasons(res, r.pool_idx < 0),
    }
    out["rejected_by_reason"] = _reasons(res)
    if res.places:
        out["places"] = dict(res.places)
    return out


def _attainment(met: np.ndarray, judged: np.ndarray, m: np.ndarray) -> float:
    n = np.count_nonzero(judged & m)
    return float(np.count_nonzero(met & m) / n) if n else float("nan")


def _group_summary(res, m, done, lat, met, judged, span) -> dict[str, Any]:
    """m: the group's requests that arrived after warm-up (latency, SLO); done: the group's
    requests that completed inside the measured interval (throughput)."""
    r = res.requests
    att = _attainment(met, judged, m)
    out: dict[str, Any] = {
        "arrived": int(m.sum()),
        "completed": int((m & (r.status == COMPLETED)).sum()),
        "rejected": int((m & (r.status == REJECTED)).sum()),
        "unfinished": int((m & (r.status == UNFINISHED)).sum()),
        "throughput_req_per_s": float(done.sum() / span),
        "output_tokens_per_s": float(r.output_tokens[done].sum() / span),
        "slo_attainment": None if np.isnan(att) else att,
        "judged": int(np.count_nonzero(judged & m)),
        "met": int(np.count_nonzero(met & m)),
        "goodput_req_per_s": float(np.count_nonzero(met & m) / span),
        "goodput_tokens_per_s": float(r.output_tokens[met & m].sum() / span),
        "mean_attempts": float(r.attempts[m].mean()) if m.any() else None,
    }
    for key in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        out |= _pcts(lat[key][m], key[:-2])
    return out


def _reasons(res: WindowResult, where: np.ndarray | None = None) -> dict[str, int]:
    from fleetsim.serving.requests import REJECT_REASONS

    sel = res.requests.status == REJECTED
    if where is not None:
        sel &= where
    codes, counts = np.unique(res.requests.reject_reason[sel], return_counts=True)
    return {REJECT_REASONS[c]: int(n) for c, n in zip(codes, counts)}
