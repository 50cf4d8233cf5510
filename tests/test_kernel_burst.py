"""The finite-run throughput (burst_throughput): a run of N requests issued at once pays its ramp
and drain, so it is below the best steady batch, approaches it as N grows with fixed lengths,
and falls further below it with ShareGPT's heavy-tailed outputs."""

from __future__ import annotations

import pytest

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel.latency import ReplicaKernel
from fleetsim.kernel.throughput import (
    SHAREGPT_MAX_SEQ_TOKENS,
    burst_output_lengths,
    burst_throughput,
    offline_throughput,
)


@pytest.fixture(scope="module")
def kernel():
    return ReplicaKernel(load_chips()["h100"], load_models()["qwen3-8b"], 1, "bf16",
                         engine=load_engines()["vllm"], engine_release="2025-10-31")


def test_sharegpt_lengths_keep_the_mean_and_the_filter():
    x = burst_output_lengths(1000, 200.0, 217.0, "sharegpt")
    assert abs(x.mean() / 200.0 - 1) < 0.01 and x.max() <= SHAREGPT_MAX_SEQ_TOKENS - 217
    assert x.max() > 4 * 200  # heavy tail: the drain is long
    assert set(burst_output_lengths(10, 100.0, 2000.0, "fixed")) == {100.0}


def test_burst_is_below_steady(kernel):
    """Fixed lengths under a batch cap run in synchronised waves (each wave's prompts prefilled,
    then decoded together), so a finite run stays below the steady mixed batch at any N."""
    steady = offline_throughput(kernel, 200.0, 200.0, 64).output_tokens_per_s
    small = burst_throughput(kernel, 128, 200.0, 200.0, 64)
    big = burst_throughput(kernel, 8192, 200.0, 200.0, 64)
    assert small <= big <= steady * 1.001
    assert big > 0.8 * steady


def test_heavy_tail_costs_more_than_fixed_lengths(kernel):
    fixed = burst_throughput(kernel, 1000, 217.0, 200.0, None, "fixed")
    tail = burst_throughput(kernel, 1000, 217.0, 200.0, None, "sharegpt")
    assert tail < 0.8 * fixed


def test_a_stated_generation_cap_shortens_the_drain(kernel):
    """A run that caps generation (max_tokens, e.g. AccelMark's 512) has no output past the cap:
    the lengths keep the mean under the cut, and the shorter drain lifts the finite-run rate."""
    x = burst_output_lengths(100, 346.0, 245.0, "sharegpt", max_output=512)
    assert x.max() <= 512 and abs(x.mean() / 346.0 - 1) < 0.02
    free = burst_throughput(kernel, 100, 245.0, 346.0, None, "sharegpt")
    capped = burst_throughput(kernel, 100, 245.0, 346.0, None, "sharegpt", max_output_tokens=512)
    assert capped > 1.5 * free


def test_burst_setup_reads_the_cap_from_the_setup():
    from fleetsim.kernel.measurements import burst_setup, load_holdout4

    rows = {m.key: m for m in load_holdout4()}
    assert burst_setup(rows["hold4-accelmark-h200x1-suiteA-offline"])[2] == 512.0
    assert all(b is None or b[2] in (None, 256.0, 512.0) for b in map(burst_setup, rows.values()))
