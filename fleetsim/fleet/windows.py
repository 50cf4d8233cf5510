"""Serving windows at chosen dates on a scaled cell of the fleet as it then stands.

The cell holds `windows.cell_replicas` replicas split over the pools in proportion to the fleet's
replicas up that day (largest remainder); each class's arrival rate is the fleet's demand at the
window's hour, in requests/s, times the cell's share of its model's replicas, as a Poisson
stream (a short window at one hour). Attainment per class and pool comes with a 95% Wilson
interval (requests in a window are correlated: read it as a lower bound on the doubt), beside
what the capacity function predicted (load per replica <= goodput).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from fleetsim.rng import stream


def _largest_remainder(weights: np.ndarray, n: int) -> np.ndarray:
    if weights.sum() <= 0:
        return np.zeros(len(weights), dtype=int)
    q = weights / weights.sum() * n
    out = np.floor(q).astype(int)
    rest = n - out.sum()
    order = np.argsort(-(q - out), kind="stable")
    out[order[:rest]] += 1
    return out


def _wilson(k: int, n: int) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def window_runner(chips: dict, models: dict):
    """A callable(sim, snapshot) -> rows, closed over the catalogs."""

    def run(sim, snap) -> list[dict]:
        return fleet_window(sim, snap, chips, models)

    return run


def fleet_window(sim, snap, chips, models) -> list[dict]:
    from fleetsim.serving.metrics import latencies, slo_met
    from fleetsim.serving.window import run_window

    serving, wcfg = sim.serving, sim.fleet.windows
    up = snap["replicas_up"]
    cell = _largest_remainder(np.floor(up), wcfg.cell_replicas)
    pools, workloads, rates = {}, {}, {}
    for pi, pn in enumerate(sim.pool_names):
        pools[pn] = serving.pools[pn].model_copy(update={"replicas": int(cell[pi])})
    for ci, cn in enumerate(sim.classes):
        m = sim.class_model[cn]
        pls = [pi for pi, p in enumerate(sim.pools) if p.model == m]
        fleet_up = float(np.floor(up[pls]).sum())
        if fleet_up <= 0 or cell[pls].sum() == 0:
            continue
        otpr = next((sim.caps[(sim.pool_names[pi], cn)].output_tokens_per_request for pi in pls
                     if (sim.pool_names[pi], cn) in sim.caps), None)
        wl = serving.workloads[cn]
        if otpr is None or wl.prompt_tokens is None:
            continue
        rate = snap["tokens_per_s"][ci] / otpr * cell[pls].sum() / fleet_up
        rates[cn] = rate
        if rate > 0:
            workloads[cn] = type(wl).model_validate(
                {**wl.model_dump(), "arrival": {"kind": "poisson", "rate_per_s": float(rate)}})
    if not workloads:
        return []
    cfg = type(serving).model_validate({
        **serving.model_dump(), "duration_s": wcfg.duration_s,
        "warmup_s": min(wcfg.warmup_s, 0.5 * wcfg.duration_s), "start_hour": float(snap["hour_of_day"]),
        "workloads": {k: v.model_dump() for k, v in workloads.items()},
        "pools": {k: v.model_dump() for k, v in pools.items() if v.replicas > 0}})
    seed = int(stream(sim.seed, "fleet", "window", snap["window"]).integers(2**31))
    res = run_window(cfg, chips, models, seed, sim.sc.base_dir, window=snap["window"])
    lat = latencies(res)
    met, judged = slo_met(res, lat)
    r = res.requests
    measured = r.arrival_s >= res.warmup_s
    date = np.datetime64(sim.start + dt.timedelta(days=snap["day"]), "D")
    rows = []
    pool_list = list(cfg.pools)
    for ci, cname in enumerate(r.class_names):
        wname = r.class_workloads[ci]
        for pj, pn in enumerate(pool_list):
            m = measured & (r.class_idx == ci) & (r.pool_idx == pj)
            n = int(np.count_nonzero(judged & m))
            k = int(np.count_nonzero(met & m))
            lo, hi = _wilson(k, n)
            pi = sim.pool_ix[pn]
            cap = sim.caps.get((pn, wname))
            per_replica = rates.get(wname, 0.0) / max(1, cell[[q for q, p in enumerate(sim.pools) if p.model == sim.pools[pi].model]].sum())
            ttft, tpot = lat["ttft_s"][m], lat["tpot_s"][m]
            rows.append({
                "window": snap["window"], "date": date, "hour_of_day": float(snap["hour_of_day"]),
                "workload": wname, "pool": pn, "chip": sim.pools[pi].chip,
                "replicas_up": int(cell[pi]), "rate_per_s": float(rates.get(wname, 0.0)),
                "attainment": k / n if n else None, "attainment_ci95_lo": lo, "attainment_ci95_hi": hi,
                "predicted_attainment_ok": bool(cap is not None and per_replica <= cap.goodput_rps),
                "p95_ttft_s": float(np.nanpercentile(ttft, 95)) if np.isfinite(ttft).any() else None,
                "p95_tpot_s": float(np.nanpercentile(tpot, 95)) if np.isfinite(tpot).any() else None,
            })
    return rows
