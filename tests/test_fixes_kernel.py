"""Kernel: tp must shard the model's heads as serving engines require; no division by zero."""

from __future__ import annotations

import pytest

import fleetsim
from fleetsim.catalog import load_chips, load_models
from fleetsim.cli import main
from fleetsim.errors import CapacityError, ScenarioError
from fleetsim.kernel import ReplicaKernel
from fleetsim.kernel.latency import allowed_tp

CHIPS = load_chips()
MODELS = load_models()


def test_allowed_tp_follows_vllm_rules():
    """qwen2.5-7b: 28 heads, 4 KV heads. Divisors of 28: 1, 2, 4, 7, 14, 28; 7 and 14 neither
    divide 4 nor are multiples of it; 28 is a multiple (KV heads replicated 7 times)."""
    assert allowed_tp(MODELS["qwen2.5-7b"]) == [1, 2, 4, 28]
    assert allowed_tp(MODELS["llama-3.1-70b"]) == [1, 2, 4, 8, 16, 32, 64]
    assert allowed_tp(MODELS["llama-3.1-8b"]) == [1, 2, 4, 8, 16, 32]
    # MLA + MoE: data-parallel attention with expert parallelism, any chip count
    assert allowed_tp(MODELS["deepseek-v3"]) is None


def test_dense_mla_model_needs_heads_divisible_by_tp():
    """A dense MLA model (no experts) runs tensor-parallel attention: heads % tp == 0 only,
    whatever num_kv_heads says (MLA caches one latent, not KV heads)."""
    base = MODELS["deepseek-v3"].model_dump()
    dense = {**base, "num_experts": 0, "experts_per_token": 0, "moe_intermediate_size": 0,
             "first_dense_layers": 0, "num_kv_heads": 128, "expert_groups_per_token": None}
    m = type(MODELS["deepseek-v3"]).model_validate(dense)
    assert allowed_tp(m) == [1, 2, 4, 8, 16, 32, 64, 128]
    with pytest.raises(CapacityError, match=r"heads % tp == 0\), as"):
        ReplicaKernel(CHIPS["h100"], m, 24, "fp8")


@pytest.mark.parametrize("tp", [3, 7, 14])
def test_bad_tp_is_a_capacity_error_listing_allowed_values(tp):
    with pytest.raises(CapacityError) as info:
        ReplicaKernel(CHIPS["h100"], MODELS["qwen2.5-7b"], tp)
    assert info.value.field == "tp"
    assert f"tp={tp}" in info.value.message and "allowed tp: 1, 2, 4, 28" in info.value.message


def test_good_tp_values_build():
    for tp in (1, 2, 4, 28):
        assert ReplicaKernel(CHIPS["h100"], MODELS["qwen2.5-7b"], tp).tp == tp
    assert ReplicaKernel(CHIPS["ascend-910c"], MODELS["deepseek-v3"], 160, "int8").tp == 160


def test_bad_tp_in_a_scenario_names_the_pool(quickstart_path, runner, user_error):
    result = runner.invoke(
        main, ["validate", str(quickstart_path), "--set", "serving.pools.h20.tp=6"]
    )
    user_error(
        result, file=quickstart_path,
        contains=["serving.pools.h20", "tp=6", "allowed tp: 1, 2, 4, 8"],
    )
    with pytest.raises(CapacityError):
        fleetsim.load_scenario(quickstart_path, overrides=["serving.pools.domestic.tp=12"])


def test_unvalidated_zero_bandwidth_is_refused_not_divided():
    """The schema refuses hbm_tbps 0 on a chip with memory; a ChipSpec copied without
    validation must still end in a ScenarioError, not ZeroDivisionError."""
    chip = CHIPS["h100"].model_copy(update={"hbm_tbps": 0.0})
    with pytest.raises(ScenarioError, match="hbm_tbps"):
        ReplicaKernel(chip, MODELS["llama-3.1-8b"], 1)
