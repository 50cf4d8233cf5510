"""Latency kernel: physical sanity, scalar/vector agreement, closed-form decode runs, memory model.

No statistical tolerances here: the checks are exact identities (to float rounding, 1e-9
relative) or orderings that the roofline physics implies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.catalog import load_chips, load_models
from fleetsim.errors import CapacityError, ScenarioError
from fleetsim.kernel import ReplicaKernel

CHIPS = load_chips()
MODELS = load_models()


def kern(chip="h100", model="qwen2.5-72b", tp=4, precision="bf16", **kw):
    return ReplicaKernel(CHIPS[chip], MODELS[model], tp, precision, **kw)


# ---------- physical sanity (issue 3) ----------

def test_batch1_decode_is_memory_bound_h20_beats_h100():
    """H20 has 4.0 TB/s against the H100's 3.35: at batch 1 decode it must be faster."""
    for model, tp in (("qwen2.5-72b", 4), ("llama-3.1-8b", 1), ("llama-2-70b", 4)):
        h20 = kern("h20", model, tp).step_time_s(0, 1, 1000)
        h100 = kern("h100", model, tp).step_time_s(0, 1, 1000)
        assert h20 < h100, (model, h20, h100)


def test_prefill_is_compute_bound_h100_several_times_faster():
    """4k-token prompt: H100 (989 TFLOPS) vs H20 (148) must differ by several times."""
    for model, tp in (("qwen2.5-72b", 4), ("llama-3.1-8b", 1)):
        h20 = kern("h20", model, tp).step_time_s(4096, 0, 0)
        h100 = kern("h100", model, tp).step_time_s(4096, 0, 0)
        assert h20 / h100 > 3.0, (model, h20 / h100)


def test_monotone_in_context_batch_and_prefill():
    k = kern()
    ctx = np.linspace(0, 400_000, 50)
    t = k.iteration_time_s(0, 64, ctx)
    assert np.all(np.diff(t) >= 0) and t[-1] > t[0]
    b = np.arange(1, 400)
    t = k.iteration_time_s(0, b, b * 1000.0)
    assert np.all(np.diff(t) >= 0) and t[-1] > t[0]
    p = np.arange(1, 8192, 37)
    t = k.iteration_time_s(p, 0, 0)
    assert np.all(np.diff(t) > 0)


def test_throttle_slows_compute_bound_work_only():
    k = kern()
    pre = k.iteration_time_s(4096, 0, 0, throttle=np.array([1.0, 0.5]))
    assert pre[1] > 1.8 * (pre[0] - k._overhead - k._comm0 - k._comm1 * 4096)
    dec = k.iteration_time_s(0, 1, 100, throttle=np.array([1.0, 0.5]))
    assert dec[1] == pytest.approx(dec[0], rel=1e-12)  # memory-bound step ignores clock


def test_model_too_big_is_refused_with_clear_message():
    with pytest.raises(CapacityError) as e:
        kern("h100", "llama-2-70b", 1, "bf16")
    msg = str(e.value)
    assert "GB" in msg and "tp" in msg
    with pytest.raises(CapacityError):
        kern("hanguang-800", "llama-3.1-8b", 1, "int8")
    with pytest.raises(CapacityError):
        kern("h100", "deepseek-v3", 8, "bf16")


def test_bad_precision_and_tp():
    with pytest.raises(ScenarioError, match="allowed: bf16"):
        kern(precision="fp16")
    with pytest.raises(ScenarioError, match="tp"):
        kern(tp=0)


def test_precision_the_chip_lacks_is_an_error_not_a_fallback():
    """A100 has no FP8, H100 no FP4, Ascend no FP8 KV cache: each is refused, naming what the
    chip supports; B200 FP4 weights and H100 FP8 KV build."""
    for chip, prec, kvp, field in (("a100", "fp8", "bf16", "precision"), ("h100", "fp4", "bf16", "precision"),
                                   ("ascend-910b", "int8", "fp8", "kv_precision")):
        with pytest.raises(ScenarioError, match="does not support") as e:
            kern(chip, "llama-3.1-8b", 1, prec, kv_precision=kvp)
        assert e.value.field == field and "supported: bf16" in str(e.value)
    b = kern("b200", "llama-3.1-70b", 1, "fp4", kv_precision="fp8")
    assert b.weight_bytes == pytest.approx(MODELS["llama-3.1-70b"].total_params * 0.5)
    assert b.peak_flops == CHIPS["b200"].fp4_tflops * 1e12
    assert kern("h100", "llama-3.1-8b", 1, "fp8", kv_precision="fp8").kv_bytes_per_token == 32 * 8 * 128 * 2


# ---------- memory model ----------

def test_kv_capacity_and_max_batch():
    k = kern("h100", "llama-3.1-70b", 4)
    m = MODELS["llama-3.1-70b"]
    assert k.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2  # K,V x layers x kv heads x dim x bf16
    # vLLM's policy: gpu_memory_utilization 0.9 of all memory, minus weights and its reserve
    usable = 0.9 * 80e9 * 4 - m.total_params * 2 - 0.5e9 * 4
    assert k.kv_capacity_tokens == int(usable // k.kv_bytes_per_token)
    # TensorRT-LLM's policy: 0.9 of what is left after the weights (and a 2 GB reserve)
    t = kern("h100", "llama-3.1-70b", 4, engine="trtllm")
    assert t.kv_capacity_tokens == int(0.9 * (80e9 * 4 - m.total_params * 2 - 2e9 * 4) // t.kv_bytes_per_token)
    assert k.max_batch_for(4000) == k.kv_capacity_tokens // 4000
    assert list(k.max_batch_for(np.array([1000, 4000]))) == [
        k.kv_capacity_tokens // 1000, k.kv_capacity_tokens // 4000]
    # more precision bytes -> fewer KV tokens
    assert kern("h100", "llama-3.1-70b", 4, "fp8").kv_capacity_tokens > k.kv_capacity_tokens


def test_gqa_kv_replicated_beyond_kv_heads_and_mla_compressed():
    k4 = kern("h100", "qwen2.5-7b", 4)  # 4 KV heads: no replication at tp=4
    k28 = kern("h100", "qwen2.5-7b", 28)  # replicated 7 times at tp=28 (28 heads)
    assert k28.kv_bytes_per_token == 7 * k4.kv_bytes_per_token
    k8 = kern("h100", "llama-3.1-8b", 8)  # 8 KV heads: none replicated at tp=8
    k16 = kern("h100", "llama-3.1-8b", 16)  # replicated twice at tp=16
    assert k16.kv_bytes_per_token == 2 * k8.kv_bytes_per_token
    ds = kern("h100", "deepseek-v3", 16, "fp8")
    assert ds.kv_bytes_per_token == 61 * (512 + 64) * 2


def test_moe_reads_more_experts_as_batch_grows():
    """Weights read: dense + E(1 - (1 - k/E)^tokens) experts per layer, saturating at all E."""
    k = kern("h100", "qwen3-235b-a22b", 8, "fp8")
    m = MODELS["qwen3-235b-a22b"]
    one = k._weights_read(1)
    assert one == pytest.approx(m.active_params - m.embedding_params, rel=1e-12)
    assert k._weights_read(64) > one
    assert k._weights_read(1e6) == pytest.approx(m.total_params - m.embedding_params, rel=1e-9)
    expected = 128 * (1 - (1 - 8 / 128) ** 10)
    got = (k._weights_read(10) - k._w_dense) / k._w_expert_layer
    assert got == pytest.approx(expected, rel=1e-12)


# ---------- scalar vs vector vs closed form ----------

KERNELS = [
    ("h100", "qwen2.5-72b", 4, "bf16", {}),
    ("h20", "qwen3-235b-a22b", 8, "fp8", {"engine": "trtllm", "kv_precision": "fp8"}),
    ("h100", "deepseek-v3", 16, "fp8", {}),
    ("h100", "deepseek-v3", 16, "fp8", {"engine": "sglang", "speculative": (3, 2.6)}),
    ("ascend-910c", "deepseek-v3", 8, "int8", {"engine": "sglang", "speculative": (1, 1.7)}),
    ("ascend-910b", "llama-3.1-8b", 1, "int8", {}),
    ("b200", "llama-2-70b", 1, "fp4", {"kv_precision": "fp8"}),
    ("t-head-ppu", "qwen2.5-7b", 1, "bf16", {"band": "low"}),
]


def kspec(spec):
    chip, model, tp, prec, kw = spec
    return kern(chip, model, tp, prec, **kw)


@pytest.mark.parametrize("spec", KERNELS)
def test_step_time_equals_iteration_time(spec):
    k = kspec(spec)
    rng = np.random.default_rng(3)
    n = 300
    p = rng.integers(0, 3000, n).astype(float)
    d = rng.integers(0, 300, n).astype(float)
    c = d * rng.uniform(0, 8000, n)
    a = p * rng.uniform(0, 4000, n)
    th = rng.uniform(0.3, 1.0, n)
    for att in (None, a):
        vec = k.iteration_time_s(p, d, c, att, th)
        sca = np.array([
            k.step_time_s(p[i], d[i], c[i], None if att is None else att[i], th[i])
            for i in range(n)
        ])
        np.testing.assert_allclose(vec, sca, rtol=1e-9, atol=0)
    assert k.iteration_time_s(0, 0, 0) == 0.0
    assert float(k.iteration_time_s(100, 3, 900)) == pytest.approx(k.step_time_s(100, 3, 900), rel=1e-12)


def test_broadcasting_shapes():
    k = kern()
    out = k.iteration_time_s(np.zeros((3, 1)), np.arange(1, 5)[None, :], 1000.0)
    assert out.shape == (3, 4)


@settings(max_examples=150, deadline=None)
@given(
    spec=st.sampled_from(KERNELS),
    n=st.integers(1, 2000),
    ctx_per_seq=st.floats(0, 20_000),
    k_steps=st.integers(0, 400),
    throttle=st.floats(0.2, 1.0),
)
def test_decode_run_matches_cumulative_sum(spec, n, ctx_per_seq, k_steps, throttle):
    """time_for_steps(k) == sum of iteration_time_s over steps 0..k-1 (context += n a step);
    steps_within(t) is the exact inverse (largest k with time <= t)."""
    kr = kspec(spec)
    c0 = n * ctx_per_seq
    run = kr.decode_run(n, c0, throttle)
    steps = np.arange(k_steps + 1)
    per = kr.iteration_time_s(0, n, c0 + n * steps, None, throttle)
    cum = np.concatenate([[0.0], np.cumsum(per)])
    for kk in {0, 1, k_steps // 2, k_steps}:
        assert run.time_for_steps(kk) == pytest.approx(cum[kk], rel=1e-9, abs=1e-15)
    for kk in {x for x in (1, k_steps // 3 + 1, k_steps) if x >= 1}:
        t = run.time_for_steps(kk)
        got = run.steps_within(t)
        assert got >= kk and run.time_for_steps(got) <= t < run.time_for_steps(got + 1)
        mid = t - 0.5 * per[kk - 1]
        assert run.steps_within(mid) == kk - 1
    assert run.steps_within(0.0) == 0
    assert run.steps_within(math.inf) == 2**62


def test_decode_run_crossing_lines():
    """A run that starts memory-bound and turns compute-bound (H20, long growing context)."""
    kr = kern("h20", "llama-3.1-8b", 1)
    run = kr.decode_run(256, 256 * 100.0)
    k = 5000
    per = kr.iteration_time_s(0, 256, 256 * 100.0 + 256 * np.arange(k))
    assert run.time_for_steps(k) == pytest.approx(per.sum(), rel=1e-9)
    t = 0.37 * per.sum()
    kk = run.steps_within(t)
    cum = np.cumsum(per)
    assert cum[kk - 1] <= t * (1 + 1e-12) and cum[kk] > t * (1 - 1e-12)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.floats(1e-4, 1.0), st.floats(0.0, 1e-2)), min_size=1, max_size=3
    ),
    c=st.floats(0.0, 0.01),
    k=st.integers(0, 3000),
)
def test_decode_run_envelope_against_brute_force(lines, c, k):
    """Any 1-3 lines: the closed-form sum equals the brute-force sum of max-of-lines + c."""
    from fleetsim.kernel import DecodeRun

    run = DecodeRun(lines, c)
    j = np.arange(k)
    per = np.max([a + b * j for a, b in lines], axis=0) + c if k else np.zeros(0)
    assert run.time_for_steps(k) == pytest.approx(per.sum(), rel=1e-9, abs=1e-12)
    if k:
        t = per.sum() * 0.6180339
        got = run.steps_within(t)
        cum = np.concatenate([[0.0], np.cumsum(per)])
        assert cum[min(got, k)] <= t * (1 + 1e-12)
        if got < k:
            assert cum[got + 1] > t * (1 - 1e-12)


def test_ep_mode_overlaps_communication():
    """DeepSeek-V3 beyond one 8-GPU board: all-to-alls over the NIC, overlapped with compute."""
    k = kern("h100", "deepseek-v3", 32, "fp8", engine="sglang")
    assert k.parallelism == "dp-attention+ep-alltoall" and k.comm_overlapped and k.scaled_out
    run = k.decode_run(4000, 4000 * 2000.0)
    assert len(run.lines) == 4  # attention compute / KV-read lines, each plain and overlapped
    assert not kern("h100", "deepseek-v3", 32, "fp8", engine="trtllm").comm_overlapped
    t = kern("h100", "llama-2-70b", 8)
    assert t.parallelism == "tp-allreduce" and not t.comm_overlapped and not t.scaled_out
