"""Scenario loader: YAML alias bombs, --set paths through names with dots, catalog figures > 0."""

from __future__ import annotations

import copy

import pytest
import yaml

import fleetsim
from fleetsim.cli import main
from fleetsim.errors import ScenarioError
from fleetsim.scenario.loader import (
    MAX_EXPANDED_NODES,
    apply_overrides,
    read_scenario_data,
    split_set_path,
)

LAUGHS = "name: t\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefg", "bcdefgh")
)


# ---- 1. YAML aliases ----------------------------------------------------------------------


def test_billion_laughs_is_refused_with_one_line(write_scenario, runner, user_error):
    """9 aliases per level over 8 levels expand to 9^8 = 43 million values. Counting each
    shared node once, the walk is linear in the file; level f (line 7) is the first to pass
    100,000 expanded values: 1 + 9 * 66,430 = 597,871 (a = 10, b = 91, ... e = 66,430)."""
    path = write_scenario(LAUGHS)
    result = runner.invoke(main, ["validate", str(path)])
    msg = user_error(result, file=path, line=7, contains=["597,871", "aliases"])
    assert f"{MAX_EXPANDED_NODES:,}" in msg


def test_small_aliases_still_work(write_scenario, quickstart_data):
    """A shared batching section through an anchor validates; a --set on one pool changes that
    pool only (the alias gives both pools one object; --set copies the path it walks)."""
    data = copy.deepcopy(quickstart_data)
    pools = data["serving"]["pools"]
    pools["domestic"]["batching"] = pools["h20"]["batching"]  # shared object -> YAML alias
    text = yaml.safe_dump(data, sort_keys=False)
    assert "&id" in text and "*id" in text
    path = write_scenario(text)
    sc = fleetsim.load_scenario(path, overrides=["serving.pools.h20.batching.max_batch=3"])
    assert sc.serving.pools["h20"].batching.max_batch == 3
    assert sc.serving.pools["domestic"].batching.max_batch == 128


def test_alias_inside_its_own_anchor_is_refused(write_scenario):
    path = write_scenario("name: t\na: &a [1, *a]\n")
    with pytest.raises(ScenarioError, match="refers to its own anchor") as info:
        read_scenario_data(path)
    assert info.value.line == 2


def test_very_deep_nesting_is_a_clean_error(write_scenario):
    path = write_scenario("name: t\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ScenarioError, match="nested too deeply"):
        read_scenario_data(path)


def test_duplicate_key_inside_shared_node_is_still_found(write_scenario):
    path = write_scenario("name: t\na: &a {k: 1, k: 2}\nb: [*a, *a]\n")
    with pytest.raises(ScenarioError, match="given twice") as info:
        read_scenario_data(path)
    assert info.value.field == "a.k" and info.value.line == 2


# ---- 2. --set paths through names with dots -------------------------------------------------


def test_split_keeps_builtin_catalog_names_whole():
    assert split_set_path("catalog.models.qwen2.5-7b.num_layers", {}) == [
        "catalog", "models", "qwen2.5-7b", "num_layers"
    ]
    assert split_set_path("catalog.chips.h100.hbm_tbps", {}) == [
        "catalog", "chips", "h100", "hbm_tbps"
    ]
    # no such built-in name: plain split
    assert split_set_path("catalog.models.qwen9.5.num_layers", {}) == [
        "catalog", "models", "qwen9", "5", "num_layers"
    ]


def test_split_keeps_names_present_in_the_data_whole():
    data = {"catalog": {"chips": {"my.chip": {"hbm_gb": 1}}},
            "serving": {"pools": {"a.b": {"tp": 1}, "a": {}}}}
    assert split_set_path("catalog.chips.my.chip.hbm_gb", data) == [
        "catalog", "chips", "my.chip", "hbm_gb"
    ]
    assert split_set_path("serving.pools.a.b.tp", data) == ["serving", "pools", "a.b", "tp"]
    assert split_set_path("serving.pools.a.tp", data) == ["serving", "pools", "a", "tp"]


def test_set_reaches_builtin_model_with_a_dot_in_its_name(quickstart_path):
    sc = fleetsim.load_scenario(
        quickstart_path, overrides=["catalog.models.qwen2.5-7b.num_layers=10"]
    )
    assert sc.catalog.models == {"qwen2.5-7b": {"num_layers": 10}}
    _, models = fleetsim.api.resolve_catalogs(sc)
    assert models["qwen2.5-7b"].num_layers == 10


def test_set_reaches_scenario_chip_with_dots_and_pool_with_dots(write_scenario, quickstart_data):
    data = quickstart_data
    data["catalog"] = {"chips": {"my.chip": {
        "name": "My Chip", "vendor": "me", "supply_channel": "t-head", "memory_type": "HBM3",
        "interconnect_gbps": 400, "tdp_w": 300, "hbm_gb": 96,
        "relative_to": {"chip": "h20", "perf_fraction": 0.5},
    }}}
    data["serving"]["pools"]["h20.v2"] = data["serving"]["pools"].pop("h20")
    path = write_scenario(data)
    sc = fleetsim.load_scenario(
        path, overrides=["catalog.chips.my.chip.hbm_gb=200", "serving.pools.h20.v2.replicas=2"]
    )
    assert sc.catalog.chips["my.chip"]["hbm_gb"] == 200
    assert sc.serving.pools["h20.v2"].replicas == 2
    chips, _ = fleetsim.api.resolve_catalogs(sc)
    assert chips["my.chip"].hbm_gb == 200


def test_set_with_dotted_name_still_checks_fields(quickstart_path, runner, user_error):
    """The field after the pool name is still checked against the schema."""
    data = {"serving": {"pools": {"a.b": {}}}}
    with pytest.raises(ScenarioError, match="no field 'tpp'"):
        apply_overrides(data, ["serving.pools.a.b.tpp=1"])
    result = runner.invoke(
        main, ["validate", str(quickstart_path), "--set", "catalog.models.qwen2.5-7b.layers=10"]
    )
    user_error(result, field="catalog.models.qwen2.5-7b.layers", contains=["num_layers"])


# ---- 3. catalog figures the kernel divides by ----------------------------------------------


@pytest.mark.parametrize(
    "setting, field, words",
    [
        ("catalog.chips.h100.hbm_tbps=0", "catalog.chips.h100.hbm_tbps", ["> 0"]),
        ("catalog.chips.h20.hbm_tbps=.nan", "catalog.chips.h20.hbm_tbps", ["finite"]),
        ("catalog.chips.h20.bf16_tflops=0", "catalog.chips.h20.bf16_tflops", ["greater than 0"]),
        ("catalog.chips.h20.int8_tops=.inf", "catalog.chips.h20.int8_tops", ["finite"]),
        ("catalog.chips.h20.interconnect_gbps=0", "catalog.chips.h20.interconnect_gbps",
         ["greater than 0"]),
        ("catalog.models.qwen2.5-72b.total_params_b=.inf",
         "catalog.models.qwen2.5-72b.total_params_b", ["finite"]),
    ],
)
def test_zero_or_infinite_figures_are_clean_errors(
    quickstart_path, runner, user_error, setting, field, words
):
    result = runner.invoke(main, ["validate", str(quickstart_path), "--set", setting])
    user_error(result, file=quickstart_path, field=field, contains=words)


def test_chip_without_device_memory_still_loads():
    """hanguang-800 has no DRAM (hbm_gb 0, hbm_tbps 0): allowed, and the kernel refuses it for
    lack of room for weights, not with a division by zero."""
    from fleetsim.catalog import load_chips, load_models
    from fleetsim.errors import CapacityError
    from fleetsim.kernel import ReplicaKernel

    chips = load_chips()
    assert chips["hanguang-800"].hbm_tbps == 0
    with pytest.raises(CapacityError, match="no device memory"):
        ReplicaKernel(chips["hanguang-800"], load_models()["llama-3.1-8b"], 1, "int8")
