"""Engine profiles: each profile's worked example (engines.yaml `worked_example`, docs/kernel.md)
recomputed here by hand from catalog figures, independently of the kernel's code paths, and the
engine-level behaviours (KV policy, overlap, platforms, speculative decoding)."""

from __future__ import annotations

import pytest

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.errors import ScenarioError
from fleetsim.kernel import ReplicaKernel

CHIPS, MODELS, ENGINES = load_chips(), load_models(), load_engines()
HOST = {"trtllm": "h100", "vllm": "h100", "sglang": "h100", "deepseek": "h100",
        "vllm-ascend": "ascend-910b", "mindie": "ascend-910b", "cloudmatrix-infer": "ascend-910b"}


def by_hand(engine: str) -> float:
    """One decode iteration of Llama-3.1-8B, bf16, tp 1, one sequence holding 1,000 tokens:
    weights stream once (memory-bound: the GEMM compute at 1 row is ~3% of it), the KV cache
    of 1,001 tokens streams at the batch-1 attention efficiency, no collectives, plus the
    engine's per-step overhead for the chip's platform."""
    chip = CHIPS[HOST[engine]]
    eff = chip.efficiency
    plat = "cuda" if chip.family.startswith("nvidia") else "ascend"
    emb = 128256 * 4096
    params = 8_029_995_008  # Llama-3.1-8B: 32 x (attention 41.9M + MLP 176.2M) + 2 x 525.3M embeddings (norms left out)
    bw = chip.hbm_tbps * 1e12 * eff.hbm_efficiency
    weights_s = (params - emb) * 2 / bw  # input embedding is a lookup, not a read
    gemm_s = 2 * (params - emb) / (chip.bf16_tflops * 1e12 * 0.10 * eff.mfu_scale * 14336 / (14336 + 256))
    kv_s = (2 * 32 * 8 * 128 * 2) * 1001 / (bw * 0.7)
    attn_flops_s = 4 * 32 * 128 * 32 * 1000 / 0.5 / (chip.bf16_tflops * 1e12)
    return max(weights_s, gemm_s) + max(kv_s, attn_flops_s) + ENGINES[engine].overhead_s[plat]


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_worked_example(engine):
    k = ReplicaKernel(CHIPS[HOST[engine]], MODELS["llama-3.1-8b"], 1, engine=engine)
    assert k.step_time_s(0, 1, 1000) == pytest.approx(by_hand(engine), rel=1e-9)
    assert ENGINES[engine].worked_example.strip()
    assert MODELS["llama-3.1-8b"].total_params == 8_029_995_008


def test_worked_example_numbers_in_the_profiles():
    """The figure each profile's worked_example states is the hand computation (to 0.01 ms)."""
    for name, prof in ENGINES.items():
        assert f"{by_hand(name) * 1e3:.2f} ms" in prof.worked_example, name


def test_engines_differ_where_their_profiles_do():
    h100, m = CHIPS["h100"], MODELS["llama-3.1-70b"]
    trt = ReplicaKernel(h100, m, 4, engine="trtllm")
    vll = ReplicaKernel(h100, m, 4, engine="vllm")
    # TensorRT-LLM gives 90% of the memory left after weights; vLLM 90% of all memory
    assert trt.kv_capacity_tokens > vll.kv_capacity_tokens
    # two-batch overlap hides the all-to-alls of DP-attention + EP serving
    ds = MODELS["deepseek-v3"]
    sg = ReplicaKernel(h100, ds, 16, "fp8", engine="sglang")
    tr = ReplicaKernel(h100, ds, 16, "fp8", engine="trtllm")
    assert sg.comm_overlapped and not tr.comm_overlapped


def test_engine_platforms_are_enforced():
    with pytest.raises(ScenarioError, match="does not run on") as e:
        ReplicaKernel(CHIPS["ascend-910b"], MODELS["qwen2.5-7b"], 1, engine="trtllm")
    assert e.value.field == "engine"
    with pytest.raises(ScenarioError, match="does not run on"):
        ReplicaKernel(CHIPS["h100"], MODELS["qwen2.5-7b"], 1, engine="mindie")
    with pytest.raises(ScenarioError, match="unknown engine"):
        ReplicaKernel(CHIPS["h100"], MODELS["qwen2.5-7b"], 1, engine="tgi")
    assert ReplicaKernel(CHIPS["ascend-910b"], MODELS["qwen2.5-7b"], 1).engine.name.startswith("vLLM Ascend")


def test_speculative_decoding_divides_tpot_by_accepted_tokens():
    """An MTP step verifies 1 + draft tokens per sequence; the serving layer's iteration is
    1 / tokens_per_step of it. Batch-1 decode is memory-bound, so verifying 2 tokens costs
    about one step (plus the one-layer draft) and TPOT falls by nearly the acceptance length."""
    chip, m = CHIPS["h100"], MODELS["deepseek-v3"]
    base = ReplicaKernel(chip, m, 16, "fp8", engine="sglang")
    mtp = ReplicaKernel(chip, m, 16, "fp8", engine="sglang", speculative=(1, 1.8))
    t0, t1 = base.step_time_s(0, 1, 2000), mtp.step_time_s(0, 1, 2000)
    assert 1.0 / 1.8 < t1 / t0 < 1.1 / 1.8
    with pytest.raises(ScenarioError, match="tokens_per_step"):
        ReplicaKernel(chip, m, 16, "fp8", engine="sglang", speculative=(1, 2.5))


def test_unmeasured_chip_band_spread_and_refusal_on_measured_chips():
    m = MODELS["qwen2.5-7b"]
    t = {b: ReplicaKernel(CHIPS["t-head-ppu"], m, 1, band=b).step_time_s(2048, 16, 16 * 1500)
         for b in ("low", "mid", "high")}
    assert t["low"] > t["mid"] > t["high"]
    k = ReplicaKernel(CHIPS["t-head-ppu"], m, 1)
    assert k.band == "mid" and any("ASSUMED 'mid' band" in a for a in k.assumptions)
    with pytest.raises(ScenarioError, match="band applies only") as e:
        ReplicaKernel(CHIPS["h100"], m, 1, band="low")
    assert e.value.field == "band"
