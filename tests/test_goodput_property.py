"""The goodput search never raises on a valid scenario, and says so when it misses its precision
(issue 24: a nearly flat fit once overflowed `math.exp` in the interval and ended
`fleetsim goodput` in a traceback). Two property tests: the fits over arbitrary window counts
(fast, many examples), and whole searches over random pools, SLO percentiles and precisions
(short windows and budgets, a few examples)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsim.catalog import load_chips, load_models
from fleetsim.scenario.serving import GoodputConfig, ServingConfig
from fleetsim.serving.goodput import fit_glm, fit_linear, search_goodput

CHIPS, MODELS = load_chips(), load_models()
# Derandomised like the other property tests: a red run names a real bug, not a lucky draw.
FAST = settings(max_examples=300, deadline=None, derandomize=True, database=None)
SEARCH = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])


def _check_fit(fit: dict) -> None:
    if math.isfinite(fit["rate"]):
        lo, hi = fit["ci"]
        assert 0 < lo <= fit["rate"] <= hi < math.inf
    else:
        assert all(math.isnan(v) for v in fit["ci"])


@FAST
@given(m=st.integers(3, 12), log_lo=st.floats(-12, 12), log_span=st.floats(1e-9, 3.0),
       n=st.integers(1, 5000), data=st.data(),
       percentile=st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999]))
def test_fits_never_raise(m, log_lo, log_span, n, data, percentile):
    """Any window counts, including nearly flat attainment (the overflow case): a finite
    estimate inside a finite interval, or NaNs."""
    rates = np.exp(log_lo + log_span * np.sort(np.array(data.draw(
        st.lists(st.floats(0, 1), min_size=m, max_size=m)))))
    judged = np.full(m, n)
    met = np.array(data.draw(st.lists(st.integers(0, n), min_size=m, max_size=m)))
    for fit in (fit_glm(rates, met, judged, percentile), fit_glm(rates, met, judged, percentile, robust=True),
                fit_linear(rates, met, judged, percentile)):
        _check_fit(fit)


def test_nearly_flat_fit_is_unbounded_not_an_overflow():
    """The shape behind the issue's traceback: attainment far below the target at every rate,
    falling by a hair, so the crossing (and its interval) lies beyond any float rate."""
    rates = np.array([1.0, 1.1, 1.2, 1.3, 1.4])
    judged = np.full(5, 100_000)
    met = np.array([50_000, 50_010, 49_990, 50_000, 49_995])
    fit = fit_glm(rates, met, judged, 0.99, robust=True)
    assert math.isnan(fit["rate"]) and fit.get("unbounded")


POOLS = [  # (chip, model, tp): replica types that hold their weights
    ("h100", "qwen2.5-7b", 1), ("h20", "qwen2.5-72b", 4), ("h100", "llama-2-70b", 2),
    ("ascend-910b", "qwen2.5-72b", 4), ("a100", "llama-3.1-8b", 1),
]


@SEARCH
@given(pool=st.sampled_from(POOLS), max_batch=st.sampled_from([1, 8, 64, 256]),
       chunked=st.booleans(), percentile=st.sampled_from([50, 90, 95, 99, 99.9]),
       ttft_s=st.sampled_from([0.5, 2.0, 10.0]), tpot_s=st.sampled_from([0.05, 0.2]),
       precision=st.sampled_from([0.01, 0.05, 0.2]), router=st.sampled_from(["jsq", "least_tokens"]),
       seed=st.integers(0, 2**31 - 1))
def test_search_never_raises_and_says_when_it_misses(pool, max_batch, chunked, percentile, ttft_s,
                                                     tpot_s, precision, router, seed):
    chip, model, tp = pool
    cfg = ServingConfig.model_validate({
        "duration_s": 60, "warmup_s": 5,
        "workloads": {"w": {"model": model, "arrival": {"kind": "poisson", "rate_per_s": 1.0},
                            "prompt_tokens": {"kind": "lognormal", "median": 500, "sigma": 0.7, "max": 3000},
                            "output_tokens": {"kind": "lognormal", "median": 100, "sigma": 0.8, "max": 500},
                            "slo": {"ttft_s": ttft_s, "tpot_s": tpot_s, "percentile": percentile}}},
        "pools": {"p": {"chip": chip, "model": model, "tp": tp, "replicas": 1,
                        "batching": {"max_batch": max_batch, "max_tokens_per_iter": 4096,
                                     "chunked_prefill": chunked}}},
    })
    gcfg = GoodputConfig(enabled=True, cell_replicas=2, duration_s=60, warmup_s=5, precision=precision,
                         requests_per_window=200, min_windows=5, max_windows=15)
    g = search_goodput(cfg.pools["p"], cfg.workloads["w"], gcfg, CHIPS, MODELS, seed, router=router)
    rate = g["goodput_req_per_s_per_replica"]
    lo, hi = g["goodput_ci95_req_per_s_per_replica"]
    assert g["windows"] <= gcfg.max_windows
    if math.isfinite(rate):
        assert 0 <= lo <= rate <= hi < math.inf
    if not g["precision_met"]:
        assert g.get("note"), g
    else:
        assert rate == 0.0 or g["half_width_rel"] <= precision + 1e-12


MLPERF_LIKE = """
name: mlperf-like
seed: 41
serving:
  duration_s: 300
  warmup_s: 30
  workloads:
    orca:
      model: llama-2-70b
      arrival: {kind: poisson, rate_per_s: 40}
      prompt_tokens: {kind: lognormal, median: 539.84, sigma: 0.7, max: 3072}
      output_tokens: {kind: lognormal, median: 218.95, sigma: 0.8, max: 1024}
      slo: {ttft_s: 2.0, tpot_s: 0.2, percentile: 99}
  pools:
    h100: {chip: h100, model: llama-2-70b, tp: 2, replicas: 4, precision: fp8,
           batching: {max_batch: 1024, max_tokens_per_iter: 8192, chunked_prefill: true}}
  router: {kind: least_tokens}
  goodput: {cell_replicas: 4, precision: 0.05, duration_s: 300, warmup_s: 30, min_windows: 8,
            max_windows: 60}
"""


@pytest.mark.slow
def test_issue_scenario_that_overflowed_gives_an_answer(tmp_path):
    """Issue 24's scenario, as filed, that once ended `fleetsim goodput` in an OverflowError:
    no exception, and either a finite goodput inside a finite interval or no estimate with a note
    saying why. (Its attainment falls off a cliff, 100% at 9.05 req/s per replica, 8% at 12.3:
    search version 2 ends with "the 95% interval is unbounded" after its 60 windows; a variant
    that moved the design after every window found 8.81 [8.41, 9.22] but under-covered M/M/1.)"""
    import fleetsim
    from fleetsim.serving.capacity import capacity

    path = tmp_path / "mlperf.yaml"
    path.write_text(MLPERF_LIKE)
    c = capacity(fleetsim.load_scenario(path), "h100", "orca")
    lo, hi = c.goodput_ci95_rps
    if math.isfinite(c.goodput_rps):
        assert 0 < lo <= c.goodput_rps <= hi < math.inf
        assert c.precision_met or c.note
    else:
        assert not c.precision_met and "unbounded" in c.note
