"""MLPerf server/interactive rows: the p99 TTFT bound under Poisson load (throughput.ttft_p99_s,
an M/D/1 prefill queue), docs/kernel.md "Known limits" and docs/validation.md round 11."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel.measurements import _kernel, compare, load_measurements, ttft_limit
from fleetsim.kernel.throughput import md1_decay, server_throughput

POINTS = {m.key: m for m in load_measurements()}


def _md1_p99_sojourn(rho: float, n: int = 200_000, seed: int = 7) -> float:
    """p99 of wait + service of a simulated M/D/1 queue (service 1), Lindley's recursion."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rho, n)
    w = np.empty(n)
    w[0] = 0.0
    prev = 0.0
    for i in range(1, n):
        prev = max(0.0, prev + 1.0 - gaps[i])
        w[i] = prev
    return float(np.quantile(w, 0.99)) + 1.0


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_tail_matches_a_simulated_queue(rho):
    """theta S solves rho (e^x - 1) = x, and S + ln(100 rho) / theta is within 6% of the simulated
    p99 (the heavy-traffic decay 2 (1 - rho) / S would be 13% high at rho 0.5)."""
    x = float(md1_decay(rho))
    assert rho * np.expm1(x) == pytest.approx(x, rel=1e-9)
    formula = 1.0 + np.log(100.0 * rho) / x
    assert formula == pytest.approx(_md1_p99_sojourn(rho), rel=0.06)


def test_md1_decay_has_no_overflow_at_the_edges():
    x = md1_decay(np.array([1e-12, 1e-3, 0.999999, 1.0, 1.5]))
    assert np.all(np.isfinite(x)) and np.all(x > 0)


def test_ttft_limit_read_from_the_metric_definition():
    assert ttft_limit(POINTS["mlperf-v5.1-h200-405b-server"]) == pytest.approx(6.0)
    assert ttft_limit(POINTS["mlperf-v5.0-b200x8-interactive"]) == pytest.approx(0.45)
    assert ttft_limit(POINTS["sglang-a3-qwen3-32b-2c-2k2k"]) is None  # fixed concurrency, no bound
    m = POINTS["mlperf-v5.1-h200-405b-server"]
    for text, want in (("meeting TTFT p99 < 2000 ms", 2.0), ("p99 TTFT \u2264 0.5 s", 0.5), ("p99 TPOT <= 40 ms", None)):
        assert ttft_limit(replace(m, metric_definition=text)) == (pytest.approx(want) if want else None)


def test_ttft_bound_binds_for_405b_server_not_for_llama2():
    """Llama-3.1-405B's 9.4k-token prompts: the p99 TTFT of 6 s, not the TPOT limit, sets the
    server rate (published 295 tok/s on 8 x H200; the mean-TPOT model alone gives 436, +48%);
    Llama-2-70B's 222-token prompts: the bound does not bind."""
    rows = {r["key"]: r for r in compare([POINTS["mlperf-v5.1-h200-405b-server"],
                                          POINTS["mlperf-v5.1-b200x8-405b-server"],
                                          POINTS["mlperf-v5.1-h200-server"]])}
    assert abs(rows["mlperf-v5.1-h200-405b-server"]["rel_error"]) < 0.25
    assert abs(rows["mlperf-v5.1-b200x8-405b-server"]["rel_error"]) < 0.10
    m = POINTS["mlperf-v5.1-h200-server"]
    k = _kernel(m, load_chips(), load_models(), load_engines())
    a = server_throughput(k, m.input_tokens, m.output_tokens, m.tpot_limit_s, m.concurrency,
                          ttft_p99_limit_s=ttft_limit(m))
    b = server_throughput(k, m.input_tokens, m.output_tokens, m.tpot_limit_s, m.concurrency)
    assert a == b
