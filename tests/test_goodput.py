"""Goodput at SLO: the on-disk cache, the zero-load floor, ordering of chips (M/M/1 theory and
coverage of the interval: test_goodput_coverage.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fleetsim.catalog import load_chips, load_models
from fleetsim.scenario.serving import GoodputConfig, ServingConfig
from fleetsim.results.cache import ResultCache
from fleetsim.serving.goodput import cached_goodput, search_goodput

CHIPS, MODELS = load_chips(), load_models()


def _cfg(ttft_s=30.0, percentile=90.0, model="qwen2.5-7b", chip="h100", prompt=None, output=None,
         max_batch=1):
    return ServingConfig.model_validate({
        "duration_s": 100, "warmup_s": 0,
        "workloads": {"w": {
            "model": model, "arrival": {"kind": "poisson", "rate_per_s": 0.1},
            "prompt_tokens": prompt or {"kind": "fixed", "value": 1},
            "output_tokens": output or {"kind": "geometric", "mean": 500},
            "slo": {"ttft_s": ttft_s, "tpot_s": 1.0, "percentile": percentile}}},
        "pools": {"p": {"chip": chip, "model": model, "replicas": 1,
                        "batching": {"max_batch": max_batch}}},
    })


def test_cache_reuses_and_keys_on_content():
    """The second call reads the cache; a changed chip spec is a different key."""
    cfg = _cfg(ttft_s=20.0)
    gcfg = GoodputConfig(enabled=True, cell_replicas=1, duration_s=5_000, warmup_s=200, precision=0.1,
                         min_windows=5, max_windows=30, requests_per_window=0)
    cache = ResultCache()  # $FLEETSIM_CACHE_DIR, a tmp folder in tests (conftest)
    first = cached_goodput(cfg.pools["p"], cfg.workloads["w"], gcfg, CHIPS, MODELS, 1, cache=cache)
    second = cached_goodput(cfg.pools["p"], cfg.workloads["w"], gcfg, CHIPS, MODELS, 1, cache=cache)
    assert not first["cached"] and second["cached"]
    assert second["goodput_req_per_s_per_replica"] == first["goodput_req_per_s_per_replica"]
    assert cache.path(first["key"]).exists()
    lo, hi = first["goodput_ci95_req_per_s_per_replica"]
    assert 0 < lo <= first["goodput_req_per_s_per_replica"] <= hi
    slower = load_chips({"h100": {"hbm_tbps": 1.0}})
    third = cached_goodput(cfg.pools["p"], cfg.workloads["w"], gcfg, slower, MODELS, 1, cache=cache)
    assert third["key"] != first["key"] and not third["cached"]
    assert third["goodput_req_per_s_per_replica"] < first["goodput_req_per_s_per_replica"]


def test_unreachable_slo_gives_zero_with_a_reason():
    """8k-token prompts cannot prefill within 0.2 s on an H20: goodput 0, and the result says so."""
    cfg = _cfg(ttft_s=0.2, percentile=99, model="qwen2.5-72b", chip="h20",
               prompt={"kind": "fixed", "value": 8000}, output={"kind": "fixed", "value": 50})
    cfg.pools["p"].tp = 4
    gcfg = GoodputConfig(enabled=True, cell_replicas=1, duration_s=600, warmup_s=60)
    got = search_goodput(cfg.pools["p"], cfg.workloads["w"], gcfg, CHIPS, MODELS, 1)
    assert got["goodput_req_per_s_per_replica"] == 0.0
    assert got["zero_load_attainment"] == 0.0 and "unreachable" in got["note"]


def test_faster_chip_has_higher_goodput():
    """Continuous batching, chat lengths: an H100 replica sustains more than a T-Head PPU one."""
    rows = {}
    for chip in ("h100", "t-head-ppu"):
        cfg = _cfg(ttft_s=5.0, percentile=90, model="llama-3.1-8b", chip=chip, max_batch=64,
                   prompt={"kind": "lognormal", "median": 800, "sigma": 0.8, "max": 4096},
                   output={"kind": "lognormal", "median": 150, "sigma": 0.8, "max": 1024})
        gcfg = GoodputConfig(enabled=True, cell_replicas=2, duration_s=300, warmup_s=30, precision=0.1,
                             min_windows=5, max_windows=30, requests_per_window=500)
        rows[chip] = search_goodput(cfg.pools["p"], cfg.workloads["w"], gcfg, CHIPS, MODELS, 2)
    assert rows["h100"]["goodput_req_per_s_per_replica"] > rows["t-head-ppu"]["goodput_req_per_s_per_replica"] > 0


def test_run_with_goodput_enabled_reports_it(quickstart_path):
    """`serving.goodput.enabled: true` adds a goodput row per pool to the run's summary."""
    import fleetsim

    scen = fleetsim.load_scenario(quickstart_path, [
        "serving.goodput.enabled=true", "serving.goodput.duration_s=120",
        "serving.goodput.warmup_s=20", "serving.goodput.precision=0.2", "serving.goodput.max_windows=20", "serving.goodput.min_windows=5",
        "serving.goodput.requests_per_window=300", "serving.duration_s=60",
        "serving.warmup_s=10"])
    rows = fleetsim.run(scen).summary["goodput_search"]
    assert {r["pool"] for r in rows} == {"h20", "domestic"}
    assert all(r["goodput_req_per_s_per_replica"] >= 0 for r in rows)


def test_t_quantile_is_scipy_stats_to_the_bit():
    """The search's Student t quantile (scipy.special, no scipy.stats import) equals
    scipy.stats.t.ppf exactly, so the intervals do not move."""
    from scipy.stats import t as student_t

    from fleetsim.serving.goodput import _t_quantile

    for df in range(1, 121):
        for p in (0.975, 0.95, 0.995, 0.9):
            assert _t_quantile(p, df) == float(student_t.ppf(p, df))
    # the generated table behind 0.975 (no scipy import in a search), every entry and past its end
    dfs = np.arange(1, 1003)
    assert [_t_quantile(0.975, int(d)) for d in dfs] == student_t.ppf(0.975, dfs).tolist()
