"""Headline metrics of one run, as a flat dict of floats (one row of the sweep table).

Serving windows: SLO attainment, throughput and p95 TTFT per class, the worst class's
attainment, goodput per (pool, workload) when the scenario's goodput search is on, and the chips'
purchase cost (catalog price x chips; NaN when a chip has no price), which the Pareto plot uses.
Fleet runs: the `fleet` keys of summary.json listed in docs/tables.md.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

FLEET_KEYS = ("capex_usd_total", "unmet_demand_share", "peak_unmet_share", "cost_usd_per_mtok",
              "all_in_cost_usd_per_mtok", "impairment_usd", "at_risk_usd", "cash_cost_usd_per_mtok", "energy_kwh_per_mtok", "us_dependence_share_end",
              "window_attainment_mean")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _f(x: Any) -> float:
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def headline_metrics(result: Any) -> dict[str, float]:
    """Metrics of a finished `fleetsim.api.run` result (a RunResult); a fleet's are the means over
    its futures."""
    s = result.summary
    out: dict[str, float] = {}
    if isinstance(s.get("fleet"), dict):
        heads = (s.get("futures") or {}).get("headlines") or {}
        for key in FLEET_KEYS:
            if key in heads:
                out[key] = _f(heads[key]["mean"])
            elif key in s["fleet"]:
                out[key] = _f(s["fleet"][key])
    if "classes" in s:
        out |= _serving_metrics(result)
    if not out and "fleet" not in s and "classes" not in s:  # a reliability run: its scalar figures
        for key, value in sorted(s.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "seed":
                out[_safe(key)] = _f(value)
    return out


def future_metrics(result: Any) -> dict[str, Any]:
    """A fleet run's headline metrics future by future: {"seeds": [...], metric: [...]} (empty
    for other runs), so a sweep can pair point against point on the same futures."""
    rep = getattr(result, "replicates", None)
    if rep is None or not len(rep):
        return {}
    out: dict[str, Any] = {"seeds": [int(x) for x in rep["seed"]]}
    for key in FLEET_KEYS:
        if key in rep:
            out[key] = [None if math.isnan(v) else float(v) for v in rep[key].astype(float)]
    return out


def _serving_metrics(result: Any) -> dict[str, float]:
    s = result.summary
    out: dict[str, float] = {}
    attain = []
    thr = tok = 0.0
    req = result.requests
    warmup = float(s.get("warmup_s", 0.0))
    for cname, c in s["classes"].items():
        a = _f(c.get("slo_attainment"))
        out[f"slo_attainment_{_safe(cname)}"] = a
        attain.append(a)
        out[f"throughput_req_per_s_{_safe(cname)}"] = _f(c.get("throughput_req_per_s"))
        thr += _f(c.get("throughput_req_per_s"))
        tok += _f(c.get("output_tokens_per_s"))
        if req is not None and len(req):
            m = (req["class"] == cname).to_numpy() & (req["arrival_s"] >= warmup).to_numpy()
            ttft = req["ttft_s"].to_numpy()[m]
            ttft = ttft[~np.isnan(ttft)]
            out[f"ttft_p95_s_{_safe(cname)}"] = float(np.percentile(ttft, 95)) if len(ttft) else math.nan
    out["slo_attainment_min"] = min(attain) if attain and not any(math.isnan(a) for a in attain) else math.nan
    out["throughput_req_per_s"] = thr
    out["output_tokens_per_s"] = tok
    if req is not None and len(req):
        ttft = req["ttft_s"].to_numpy()[(req["arrival_s"] >= warmup).to_numpy()]
        ttft = ttft[~np.isnan(ttft)]
        out["ttft_p95_s"] = float(np.percentile(ttft, 95)) if len(ttft) else math.nan
    for row in s.get("goodput_search") or []:
        out[f"goodput_req_per_s_per_replica_{_safe(row['pool'])}_{_safe(row['workload'])}"] = _f(
            row.get("goodput_req_per_s_per_replica"))
    out["chip_capex_usd"] = _chip_capex(result.scenario)
    return out


def _chip_capex(scenario: Any) -> float:
    """Purchase cost of the window's chips at catalog prices (replicas x tp x price_usd)."""
    from fleetsim.api import resolve_catalogs

    chips, _ = resolve_catalogs(scenario)
    total = 0.0
    for pool in scenario.serving.pools.values():
        price = getattr(chips[pool.chip], "price_usd", None)
        if price is None:
            return math.nan
        total += pool.replicas * pool.tp * float(price)
    return total
