"""Prefix caching in the serving window (issue 22): a class's `prefix_cache_hit_share` of each
prompt is already in the KV cache, so prefill computes only the rest while attending to all of
it, and the cached prefix still occupies KV memory.

Worked case: an idle replica, prompts of 4,000 tokens, half of them cached: the first token comes
after one prefill iteration of 2,000 tokens attending 2,000 x (2,000 + 2,000 / 2) = 6 M token
pairs (kernel.iteration_time_s(2000, 0, 0, 6e6)), against 4,000 tokens and 8 M pairs uncached.
"""

from __future__ import annotations

import numpy as np
import pytest

import fleetsim
from fleetsim.scenario.model import Scenario
from fleetsim.serving.requests import cached_prefix_tokens
from fleetsim.serving.window import built_parts


def window(hit: float, rate: float = 0.05, duration_s: float = 2000.0) -> Scenario:
    return Scenario.model_validate({
        "name": "prefix", "seed": 3,
        "serving": {
            "duration_s": duration_s, "warmup_s": 0,
            "workloads": {"chat": {
                "model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": rate},
                "prompt_tokens": {"kind": "fixed", "value": 4000},
                "output_tokens": {"kind": "fixed", "value": 2},
                "prefix_cache_hit_share": hit,
                "slo": {"ttft_s": 5.0, "tpot_s": 0.5, "percentile": 90}}},
            "pools": {"gpu": {"chip": "h100", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}}}})


def test_cached_tokens_rule():
    p = np.array([1, 2, 10, 4000])
    assert cached_prefix_tokens(p, 0.5).tolist() == [0, 1, 5, 2000]
    assert cached_prefix_tokens(p, 1.0).tolist() == [0, 1, 9, 3999]  # the last token is computed
    assert cached_prefix_tokens(p, 0.0).tolist() == [0, 0, 0, 0]


def test_cached_prefix_skips_prefill_work_by_hand():
    sc = window(0.5)
    res = fleetsim.run(sc)
    r = res.requests
    idle = r[(r.queue_s < 1e-9) & r.ttft_s.notna()]
    assert len(idle) >= 20  # most arrivals find the replica idle at 0.05 req/s
    kernel = built_parts(sc)[2]["gpu"]
    service = r.ttft_s - r.queue_s
    fresh = float(kernel.iteration_time_s(2000, 0, 0.0, 2000 * (2000 + 1000.0)))
    whole = float(kernel.iteration_time_s(4000, 0, 0.0, 4000 * 2000.0))
    assert fresh < 0.8 * whole
    # TTFT on an idle replica: that one iteration (plus the engine's per-request cost, if any)
    extra = float(np.median(service[idle.index])) - fresh
    base = fleetsim.run(window(0.0)).requests
    extra0 = float(np.median((base.ttft_s - base.queue_s)[(base.queue_s < 1e-9) & base.ttft_s.notna()])) - whole
    assert extra == pytest.approx(extra0, abs=1e-9)
    assert (r.cached_tokens == 2000).all()


def test_no_hits_reproduce_the_uncached_window_to_the_byte():
    a = fleetsim.run(window(0.0, rate=2.0, duration_s=120)).requests
    data = window(0.0, rate=2.0, duration_s=120).model_dump(mode="json")
    del data["serving"]["workloads"]["chat"]["prefix_cache_hit_share"]
    b = fleetsim.run(Scenario.model_validate(data)).requests
    assert "cached_tokens" not in a.columns
    assert a.equals(b)


def test_hits_relieve_a_prefill_bound_replica():
    """12 req/s of 4,000-token prompts need 12 x 0.102 s = 1.2 s of prefill a second: the queue
    grows without bound. With 75% cached, prefill needs about 12 x 0.03 s = 0.36 s a second."""
    ttft = lambda hit: fleetsim.run(window(hit, rate=12.0, duration_s=120)).requests.ttft_s.quantile(0.9)
    assert ttft(0.0) > 5.0 > 0.5 > ttft(0.75)


def _kv_bound(hit: float, prompt: int, rate: float) -> Scenario:
    """A 70B model on 2 H100s: about 5,800 tokens of KV room (kernel.kv_capacity_tokens)."""
    data = window(hit, rate=rate, duration_s=60).model_dump(mode="json", exclude_none=True)
    data["serving"]["pools"]["gpu"].update(model="llama-3.1-70b", tp=2)
    wl = data["serving"]["workloads"]["chat"]
    wl.update(model="llama-3.1-70b", prompt_tokens={"kind": "fixed", "value": prompt},
              output_tokens={"kind": "fixed", "value": 50})
    return Scenario.model_validate(data)


def test_a_cached_prefix_still_takes_its_kv_memory():
    """99% of each prompt hits the cache, yet the cached prefix is held in KV like a computed
    one: a 6,000-token prompt never fits the replica (rejected, as uncached), and 2,000-token
    prompts decode at most two at a time (2 x 2,050 tokens fit, 3 do not), as uncached."""
    sc = _kv_bound(0.99, 6000, 0.5)
    cap = built_parts(sc)[2]["gpu"].kv_capacity_tokens
    assert 2 * 2050 < cap < min(3 * 2050, 6000)
    r = fleetsim.run(sc).requests
    assert (r.cached_tokens == 5940).all() and (r.reject_reason == "exceeds_kv").all()
    for hit in (0.0, 0.99):
        r = fleetsim.run(_kv_bound(hit, 2000, 5.0)).requests
        r = r[r.first_token_s.notna() & r.finish_s.notna()]
        assert len(r) > 20
        t = np.concatenate([r.first_token_s, r.finish_s])  # decoding: prompt + generated in KV
        step = np.concatenate([np.ones(len(r)), -np.ones(len(r))])
        order = np.lexsort((step, t))  # at a tie the finish comes first
        assert np.cumsum(step[order]).max() == 2, hit
