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
    of 1,001 tokens streams at the batch-1 attention efficiency, the family's non-GEMM activation
    passes over the token's hidden vector in every layer, no collectives, plus the engine's per-step overhead for the chip's platform and 32 layer launches (graph replay, or host dispatch where the engine's default is not whole-step graphs)."""
    chip = CHIPS[HOST[engine]]
    eff = chip.efficiency
    plat = "cuda" if chip.family.startswith("nvidia") else "ascend"
    emb = 128256 * 4096
    params = 8_029_995_008  # Llama-3.1-8B: 32 x (attention 41.9M + MLP 176.2M) + 2 x 525.3M embeddings (norms left out)
    bw = chip.hbm_tbps * 1e12 * eff.hbm_efficiency
    weights_s = (params - emb) * 2 / bw  # input embedding is a lookup, not a read
    gemm_s = 2 * (params - emb) / (chip.bf16_tflops * 1e12 * 0.10 * eff.mfu_scale
                                   * ENGINES[engine].gemm_efficiency * 14336 / (14336 + 256))
    kv_s = (2 * 32 * 8 * 128 * 2) * 1001 / (bw * 0.7)
    attn_flops_s = 4 * 32 * 128 * 32 * 1000 / 0.5 / (chip.bf16_tflops * 1e12)
    launch_s = 32 * ENGINES[engine].layer_launch_s["graph" if ENGINES[engine].graph_capture else "eager"]
    act_s = eff.activation_passes * 32 * 4096 * 2 / bw  # non-GEMM passes over one token's hidden vector
    return (max(weights_s, gemm_s) + act_s + max(kv_s, attn_flops_s) + ENGINES[engine].overhead_s[plat]
            + launch_s)


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


def test_older_engine_release_is_slower_by_the_fitted_speedup():
    """software maturity: an engine_release before the profile's reference_date multiplies every
    iteration by (1 + speedup_per_year) ** years; the reference and newer releases are today's
    software (no extrapolation); a scenario pool sets it; a malformed date is named."""
    from fleetsim.catalog.schema import EngineProfile

    eng = ENGINES["trtllm"].model_copy(update={"speedup_per_year": 0.2, "reference_date": "2025-08"})
    args = (CHIPS["h100"], MODELS["llama-3.1-8b"], 1, "bf16")
    today = ReplicaKernel(*args, engine=eng)
    year_old = ReplicaKernel(*args, engine=eng, engine_release="2024-08")
    newer = ReplicaKernel(*args, engine=eng, engine_release="2026-08")
    for call in (lambda k: k.step_time_s(512, 16, 16 * 1000),
                 lambda k: float(k.iteration_time_s([512] * 20, [16] * 20, [16000] * 20)[0]),
                 lambda k: k.decode_run(16, 16000).time_for_steps(50)):
        assert call(year_old) == pytest.approx(1.2 * call(today), rel=1e-9)
        assert call(newer) == call(today)
    assert ReplicaKernel(*args, engine=eng, engine_release="2010-01").software_factor == pytest.approx(1.2 ** 3)
    assert isinstance(eng, EngineProfile)
    with pytest.raises(ScenarioError, match="engine_release"):
        ReplicaKernel(*args, engine=eng, engine_release="last year")


def test_engine_release_is_checked_and_said_when_it_changes_nothing():
    """A month 13 is refused on every engine, fitted trend or not; on an engine with no fitted
    speedup a release is recorded as having no effect (the run's kernel assumptions say so)."""
    args = (CHIPS["h100"], MODELS["llama-3.1-8b"], 1, "bf16")
    for eng in ("trtllm", "vllm"):
        with pytest.raises(ScenarioError, match="month 1-12") as e:
            ReplicaKernel(*args, engine=eng, engine_release="2024-13")
        assert e.value.field == "engine_release"
    quiet = ReplicaKernel(*args, engine="vllm", engine_release="2024-08")
    assert quiet.software_factor == 1.0
    assert any("engine_release 2024-08 has no effect" in a for a in quiet.assumptions)
    assert not any("engine_release" in a for a in ReplicaKernel(*args, engine="trtllm",
                                                                engine_release="2024-08").assumptions)


def test_pool_engine_release_reaches_the_kernel(quickstart_path):
    import fleetsim
    from fleetsim.serving.window import build_kernels

    scen = fleetsim.load_scenario(quickstart_path)
    chips, models = fleetsim.api.resolve_catalogs(scen)
    eng = ENGINES["trtllm"]
    assert eng.speedup_per_year > 0 and eng.reference_date  # fitted on the dated fit-split rows
    base = scen.with_overrides(["serving.pools.h20.engine=trtllm"])
    old = scen.with_overrides(["serving.pools.h20.engine=trtllm", "serving.pools.h20.engine_release=2020-01"])
    k_base = build_kernels(base.serving, chips, models)["h20"]
    k_old = build_kernels(old.serving, chips, models)["h20"]
    assert k_old.software_factor == pytest.approx((1 + eng.speedup_per_year) ** 3)
    assert k_base.software_factor == 1.0
    assert k_old.step_time_s(256, 8, 8000) == pytest.approx(k_old.software_factor * k_base.step_time_s(256, 8, 8000))


def test_a_gemm_above_peak_is_refused():
    """An engine multiplier that pushes a GEMM past the chip's peak is an error naming the field."""
    eng = ENGINES["trtllm"].model_copy(update={"gemm_efficiency": 5.0})
    with pytest.raises(ScenarioError, match="above 1") as e:
        ReplicaKernel(CHIPS["h100"], MODELS["llama-3.1-8b"], 1, engine=eng)
    assert e.value.field == "gemm_efficiency"
