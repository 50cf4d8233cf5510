"""Small fleet scenarios built in Python for the fleet tests (capacity given by hand: fast)."""

from __future__ import annotations

import copy

from fleetsim.scenario.model import Scenario

SERVING = {
    "duration_s": 60, "warmup_s": 10,
    "workloads": {"chat": {
        "model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 5},
        "prompt_tokens": {"kind": "lognormal", "median": 500, "sigma": 0.6, "max": 4096},
        "output_tokens": {"kind": "lognormal", "median": 150, "sigma": 0.6, "max": 1024},
        "slo": {"ttft_s": 2.0, "tpot_s": 0.1, "percentile": 95}}},
    "pools": {
        "nv": {"chip": "h20", "model": "qwen2.5-7b", "tp": 1, "replicas": 1},
        "dom": {"chip": "ascend-910b", "model": "qwen2.5-7b", "tp": 1, "replicas": 1},
    },
}

FLEET = {
    "start": "2025-01-01", "years": 1,
    "demand": {"chat": {"tokens_per_s": 2.0e5, "growth_per_year": 1.0, "peak_to_mean": 1.3}},
    "channels": {
        "nvidia": {"us_controlled": True, "offers": [{"chip": "h20", "price_usd": 10000}],
                   "lead_time_days": {"kind": "fixed", "value": 30}},
        "huawei": {"offers": [{"chip": "ascend-910b", "price_usd": 16000}],
                   "lead_time_days": {"kind": "fixed", "value": 45}},
    },
    "planner": {"kind": "cheapest", "period_days": 30, "horizon_days": 90, "headroom": 0.1},
    "budget": {"total_usd": 1.0e9},
    "finance": {"server_overhead_usd_per_node": 8000},
    "commissioning_days": 7,
    "capacity": {
        "nv": {"chat": {"goodput_rps": 4.0, "output_tokens_per_request": 200, "power_w_per_replica": 350}},
        "dom": {"chat": {"goodput_rps": 3.0, "output_tokens_per_request": 200, "power_w_per_replica": 330}},
    },
    "windows": {"enabled": False},
    "replications": 1,  # one future: these tests check one simulation; tests/test_futures.py runs many
}


def scenario(fleet_changes: dict | None = None, seed: int = 0, reliability: dict | None = None,
             serving: dict | None = None) -> Scenario:
    fleet = copy.deepcopy(FLEET)
    for k, v in (fleet_changes or {}).items():
        fleet[k] = v
    data = {"name": "t", "seed": seed, "serving": copy.deepcopy(serving or SERVING), "fleet": fleet}
    if reliability is not None:
        data["reliability"] = reliability
    return Scenario.model_validate(data)
