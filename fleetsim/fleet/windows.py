"""Serving windows at chosen dates on a scaled cell of the fleet as it then stands.

The cell holds `windows.cell_replicas` replicas split over the pools in proportion to the fleet's
replicas up that day (largest remainder); each class's arrival rate is the fleet's demand at the
window's hour, in requests/s, times the cell's share of its model's replicas (a diurnal class
gets its daily mean and its own profile). The window runs through
fleetsim.serving.window.run_fleet_window with the scenario's reliability section:
the hall's ambient at that hour, chips starting at the equilibrium temperature of the day's
load, throttling and crashes inside the window. Attainment per class and pool comes with a 95% Wilson
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


_Z95 = 1.959963984540054  # standard normal 97.5% quantile


def _wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """Wilson's 95% score interval (Newcombe 1998, method 3), written out as
    scipy.stats.binomtest(k, n).proportion_ci(method="wilson") computes it, to the same bits:
    importing scipy.stats on every fleet run cost more than all its windows' statistics."""
    if n == 0:
        return None, None
    p = k / n
    z2 = _Z95 ** 2
    denom = 2 * (n + z2)
    center = (2 * n * p + z2) / denom
    delta = _Z95 / denom * math.sqrt(4 * n * p * (1 - p) + z2)
    lo = 0.0 if k == 0 else center - delta
    hi = 1.0 if k == n else center + delta
    return float(lo), float(hi)


def window_runner(chips: dict, models: dict):
    """A callable(sim, snapshot) -> rows, closed over the catalogs."""

    def run(sim, snap) -> list[dict]:
        return fleet_window(sim, snap, chips, models)

    return run


def _check_window_size(rates: dict, wcfg, snap) -> None:
    """The estimate before the run (fleetsim.sizing) bounds the fleet's capacity from above; a
    fleet that turned out smaller (a ban, a cap) sends its cells more requests than estimated.
    Stop before a window that would not fit in memory, rather than swap for an hour."""
    from fleetsim import sizing
    from fleetsim.errors import ScenarioError

    n = sum(rates.values()) * wcfg.duration_s
    need = sizing.BASE_BYTES + n * sizing.BYTES_PER_REQUEST
    if need > sizing.memory_limit_bytes():
        raise ScenarioError(
            f"fleet serving window {snap['window']} would simulate about {n:.3g} requests "
            f"({need / 1e9:.3g} GB; limit {sizing.memory_limit_bytes() / 1e9:.3g} GB, FLEETSIM_MAX_MEMORY_GB): "
            "the fleet is that far short of demand by then; lower fleet.demand, raise "
            "fleet.budget.total_usd, or shorten fleet.windows.duration_s", field="fleet.windows.duration_s")


def fleet_window(sim, snap, chips, models) -> list[dict]:
    from fleetsim.reliability.thermal import ambient_c, equilibrium
    from fleetsim.serving.metrics import latencies, slo_met
    from fleetsim.serving.window import run_fleet_window

    serving, wcfg = sim.serving, sim.fleet.windows
    up = snap["replicas_up"]
    cell = _largest_remainder(np.floor(up), wcfg.cell_replicas)
    rates, per_replica = {}, {}
    for ci, cn in enumerate(sim.classes):
        m = sim.class_model[cn]
        pls = [pi for pi, p in enumerate(sim.pools) if p.model == m]
        fleet_up = float(np.floor(up[pls]).sum())
        if fleet_up <= 0 or cell[pls].sum() == 0:
            continue
        otpr = next((sim.caps[(sim.pool_names[pi], cn)].output_tokens_per_request for pi in pls
                     if (sim.pool_names[pi], cn) in sim.caps), None)
        if otpr is None:
            continue
        share = cell[pls].sum() / fleet_up
        hour_rate = snap["tokens_per_s"][ci] / otpr * share
        per_replica[cn] = hour_rate / cell[pls].sum()
        diurnal = serving.workloads[cn].arrival.kind == "diurnal"  # shaped by its own profile
        rates[cn] = float(snap["mean_tokens_per_s"][ci] / otpr * share if diurnal else hour_rate)
    if not any(r > 0 for r in rates.values()):
        return []
    _check_window_size(rates, wcfg, snap)
    hour = float(snap["hour_of_day"])
    # the chips start at the temperature of the fleet's load that day in their hall at that hour
    temps = {}
    for pi, pn in enumerate(sim.pool_names):
        hall = sim.rel.halls.get(sim.pools[pi].hall, sim.rel.halls["default"])
        amb = float(ambient_c(hall, np.array([hour]))[0])
        u = float(np.clip(snap["utilisation"][pi], 0, 1) * sim.u_g[pi])
        temps[pn] = float(equilibrium(sim.params[pi], u, amb, hall.cooling_factor)[0])
    sc = sim.sc.model_copy(update={"serving": serving.model_copy(update={
        "duration_s": wcfg.duration_s, "warmup_s": min(wcfg.warmup_s, 0.5 * wcfg.duration_s)})})
    sc._source_path = sim.sc.source_path
    seed = int(stream(sim.seed, "fleet", "window", snap["window"]).integers(2**31))
    res = run_fleet_window(sc, replicas_up={pn: int(cell[pi]) for pi, pn in enumerate(sim.pool_names)},
                           rate_per_s=rates, hour_of_day=hour, seed=seed, window=snap["window"],
                           start_temp_c=temps)
    lat = latencies(res)
    met, judged = slo_met(res, lat)
    r = res.requests
    measured = r.arrival_s >= res.warmup_s
    date = np.datetime64(sim.start + dt.timedelta(days=snap["day"]), "D")
    rows = []
    pool_list = list(res.config.pools)
    for ci, cname in enumerate(r.class_names):
        wname = r.class_workloads[ci]
        for pj, pn in enumerate(pool_list):
            pi = sim.pool_ix[pn]
            role = sim.pools[pi].role
            if cell[pi] == 0 or role == "prefill":  # a pair's requests end on its decode pool: one row
                continue
            m = measured & (r.class_idx == ci) & (r.pool_idx == pj)
            if role == "decode":  # and those still on the prefill side (queued, rejected) count too
                m = m | (measured & (r.class_idx == ci) & (r.pool_idx == pool_list.index(sim._partner[pn])))
            n = int(np.count_nonzero(judged & m))
            k = int(np.count_nonzero(met & m))
            lo, hi = _wilson(k, n)
            cap = sim.caps.get((pn, wname))
            ttft, tpot = lat["ttft_s"][m], lat["tpot_s"][m]
            rows.append({
                "window": snap["window"], "date": date, "hour_of_day": hour,
                "workload": wname, "pool": pn, "chip": sim.pools[pi].chip,
                "replicas_up": int(cell[pi]), "rate_per_s": float(rates.get(wname, 0.0)),
                "attainment": k / n if n else None, "attainment_ci95_lo": lo, "attainment_ci95_hi": hi,
                "predicted_attainment_ok": bool(cap is not None and per_replica.get(wname, 0.0) <= cap.goodput_rps),
                "p95_ttft_s": float(np.nanpercentile(ttft, 95)) if np.isfinite(ttft).any() else None,
                "p95_tpot_s": float(np.nanpercentile(tpot, 95)) if np.isfinite(tpot).any() else None,
            })
    return rows
