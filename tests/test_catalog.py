"""Chip and model catalogs: coverage, sources, flagged assumptions, scenario overrides, errors."""

from __future__ import annotations

import csv
import io
import json

import pytest

from fleetsim.catalog import ChipSpec, ModelSpec, catalog_table, load_chips, load_models
from fleetsim.errors import ScenarioError

REQUIRED_CHIPS = [
    "h100", "h100-pcie", "h800", "h20", "a100", "a800", "h200", "l20", "b200", "t-head-ppu",
    "hanguang-800", "ascend-910b", "ascend-910c", "mlu370", "mlu590",
]
REQUIRED_MODELS = [
    "qwen2.5-7b", "qwen2.5-72b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b",
    "qwen3-235b-a22b", "deepseek-v3",
]


def test_all_chips_present_with_sources():
    chips = load_chips()
    assert set(REQUIRED_CHIPS) <= set(chips)
    for key, c in chips.items():
        assert isinstance(c, ChipSpec)
        assert c.sources["*"], key
        assert c.supply_channel and c.vendor, key


def test_unpublished_figures_are_flagged_not_silent():
    chips = load_chips()
    assert {"hbm_tbps", "price_usd"} <= set(chips["t-head-ppu"].assumed)
    assert "tdp_w" in chips["ascend-910c"].assumed
    mlu = chips["mlu590"]
    for f in ("bf16_tflops", "hbm_gb", "hbm_tbps", "tdp_w", "price_usd"):
        assert f in mlu.assumed
    for c in chips.values():
        if c.assumed:
            assert len(c.notes) > 40


def test_h100_figures_match_reference():
    h = load_chips()["h100"]
    assert (h.bf16_tflops, h.fp8_tflops, h.hbm_gb, h.hbm_tbps, h.interconnect_gbps, h.tdp_w) == (
        989, 1979, 80, 3.35, 900, 700)


def test_models_structure_matches_published_params():
    """Structure-derived parameter counts agree with the published totals within 3%."""
    models = load_models()
    assert set(REQUIRED_MODELS) <= set(models)
    for key, m in models.items():
        assert isinstance(m, ModelSpec)
        assert m.total_params / 1e9 == pytest.approx(m.total_params_b, rel=0.03), key
        assert m.active_params / 1e9 == pytest.approx(m.active_params_b, rel=0.03), key
        assert m.source_url.startswith("https://huggingface.co/"), key
    assert models["deepseek-v3"].is_mla and models["deepseek-v3"].is_moe
    assert models["qwen3-235b-a22b"].is_moe and not models["qwen3-235b-a22b"].is_mla


def test_partial_override_and_copies():
    chips = load_chips({"t-head-ppu": {"hbm_tbps": 2.2, "efficiency": {"hbm_efficiency": 0.6}}})
    ppu = chips["t-head-ppu"]
    assert ppu.hbm_tbps == 2.2 and ppu.efficiency.hbm_efficiency == 0.6
    assert ppu.efficiency.overhead_s == load_chips()["t-head-ppu"].efficiency.overhead_s
    assert "hbm_tbps" in ppu.overridden and "hbm_tbps" not in ppu.assumed
    chips["h100"].hbm_tbps = 1.0  # a caller's edit must not leak into the cache
    assert load_chips()["h100"].hbm_tbps == 3.35


def test_relative_to_is_the_story_parameter():
    chips = load_chips({"t-head-ppu": {"relative_to": {"chip": "h100", "perf_fraction": 0.4,
                                                       "price_fraction": 0.5}}})
    ppu, h100 = chips["t-head-ppu"], chips["h100"]
    assert ppu.bf16_tflops == pytest.approx(0.4 * h100.bf16_tflops)
    assert ppu.hbm_tbps == pytest.approx(0.4 * h100.hbm_tbps)
    assert ppu.price_usd == pytest.approx(0.5 * h100.price_usd)
    assert ppu.hbm_gb == 96  # untouched
    assert "price_usd" in ppu.overridden and "relative to h100" in ppu.notes
    with pytest.raises(ScenarioError, match="did you mean 'h100'"):
        load_chips({"t-head-ppu": {"relative_to": {"chip": "h10", "perf_fraction": 0.4}}})


def test_new_chip_must_be_complete_and_gets_default_efficiency():
    """A new chip with no family is unmeasured (assumed bands, flagged by the kernel); naming a
    family gives it that family's fitted figures."""
    new = {"name": "X1", "vendor": "Acme", "supply_channel": "acme", "memory_type": "HBM3",
           "bf16_tflops": 500, "hbm_gb": 64, "hbm_tbps": 2.0, "interconnect_gbps": 400,
           "tdp_w": 450, "price_usd": 9000}
    chips = load_chips({"x1": new, "x2": {**new, "family": "nvidia-hopper"}})
    x1 = chips["x1"].efficiency
    assert chips["x1"].family == "unmeasured" and not x1.measured and set(x1.bands) == {"low", "mid", "high"}
    assert x1.bands == chips["mlu590"].efficiency.bands
    assert chips["x2"].efficiency.hbm_efficiency == chips["h100"].efficiency.hbm_efficiency
    assert chips["x2"].efficiency.mfu_scale == chips["h100"].efficiency.mfu_scale
    assert "scenario" in chips["x1"].sources["*"]
    partial = {k: v for k, v in new.items() if k != "hbm_tbps"}
    with pytest.raises(ScenarioError) as e:
        load_chips({"x1": partial})
    assert e.value.field == "catalog.chips.x1.hbm_tbps" and "new entry" in str(e.value)


def test_bad_override_errors_name_the_field():
    with pytest.raises(ScenarioError) as e:
        load_chips({"t-head-ppu": {"hbm_tbps": -1}})
    assert e.value.field == "catalog.chips.t-head-ppu.hbm_tbps"
    assert "greater than or equal to 0" in str(e.value)
    with pytest.raises(ScenarioError) as e:
        load_chips({"t-head-ppu": {"hbm_tbs": 2.0}})
    assert e.value.field == "catalog.chips.t-head-ppu.hbm_tbs"
    assert "did you mean 'hbm_tbps'" in str(e.value)
    with pytest.raises(ScenarioError) as e:
        load_chips({"h100": {"efficiency": {"mfu": {64: 1.5}}}})
    assert e.value.field.startswith("catalog.chips.h100.efficiency.mfu")
    with pytest.raises(ScenarioError) as e:
        load_chips({"h100": {"efficiency": {"hbm_eff": 0.5}}})
    assert "did you mean 'hbm_efficiency'" in str(e.value)
    with pytest.raises(ScenarioError):
        load_chips({"h100": 3})
    with pytest.raises(ScenarioError, match="must be a number"):
        load_chips({"h100": {"hbm_tbps": True}})
    with pytest.raises(ScenarioError) as e:
        load_models({"qwen2.5-7b": {"num_layer": 3}})
    assert "did you mean 'num_layers'" in str(e.value)
    assert e.value.field == "catalog.models.qwen2.5-7b.num_layer"


def test_model_override_and_new_model():
    models = load_models({"qwen2.5-7b": {"max_context_tokens": 131072}})
    assert models["qwen2.5-7b"].max_context_tokens == 131072
    with pytest.raises(ScenarioError) as e:
        load_models({"tiny": {"name": "tiny", "num_layers": 2}})
    assert "missing" in str(e.value)


@pytest.mark.parametrize("kind", ["chips", "models"])
def test_catalog_table_formats(kind):
    text = catalog_table(kind, "table")
    assert "Sources" in text and ("h100" in text if kind == "chips" else "deepseek-v3" in text)
    rows = list(csv.DictReader(io.StringIO(catalog_table(kind, "csv"))))
    assert len(rows) >= (15 if kind == "chips" else 7)
    data = json.loads(catalog_table(kind, "json"))
    assert len(data) == len(rows)
    if kind == "chips":
        ppu = next(r for r in data if r["chip"] == "t-head-ppu")
        assert "hbm_tbps" in ppu["assumed"] and "http" in ppu["sources"]
    with pytest.raises(ScenarioError, match="allowed: table, csv, json"):
        catalog_table(kind, "xml")


def test_catalog_table_with_overrides():
    data = json.loads(catalog_table("chips", "json", {"h20": {"tdp_w": 550}}))
    h20 = next(r for r in data if r["chip"] == "h20")
    assert h20["tdp_w"] == 550 and "tdp_w" in h20["overridden"]


def test_families_engines_and_unmeasured_chips_are_declared():
    """Every chip names a family; the measured families carry fitted figures (tagged FITTED in
    their basis); domestic chips with no published serving measurement are measured: false with
    low < mid < high bands; every engine profile is tagged and names its sources."""
    from fleetsim.catalog import load_engines

    chips = load_chips()
    fams = {c.family for c in chips.values()}
    assert fams == {"nvidia-hopper", "nvidia-blackwell", "ascend", "unmeasured"}
    for key in ("t-head-ppu", "mlu370", "mlu590", "hanguang-800"):
        e = chips[key].efficiency
        assert chips[key].family == "unmeasured" and not e.measured and "NO published serving" in e.basis
        assert e.bands["low"].mfu_scale < e.bands["mid"].mfu_scale < e.bands["high"].mfu_scale
        assert e.bands["low"].hbm_efficiency < e.bands["mid"].hbm_efficiency < e.bands["high"].hbm_efficiency
    for key in ("h100", "h200", "b200", "ascend-910b", "ascend-910c"):
        assert chips[key].efficiency.measured and "FITTED" in chips[key].efficiency.basis
    engines = load_engines()
    assert {"trtllm", "vllm", "sglang", "vllm-ascend", "mindie"} <= set(engines)
    for name, prof in engines.items():
        assert "*" in prof.sources and prof.worked_example and (prof.fitted or prof.assumed), name


def test_scenario_pool_precision_and_band_errors(tmp_path):
    """A pool asking for a precision its chip lacks, or a band on a measured chip, gets one
    message naming the pool field (exit code 2 via the CLI's ScenarioError path)."""
    from fleetsim.scenario.serving import PoolConfig
    from fleetsim.serving.window import build_kernels
    from fleetsim.errors import ScenarioError as SE

    class Cfg:
        pools = {"p": PoolConfig(chip="ascend-910b", model="qwen2.5-7b", precision="fp8")}
    with pytest.raises(SE) as e:
        build_kernels(Cfg, load_chips(), load_models())
    assert e.value.field == "serving.pools.p.precision" and "does not support fp8" in str(e.value)
    Cfg.pools = {"p": PoolConfig(chip="h100", model="qwen2.5-7b", band="low")}
    with pytest.raises(SE) as e:
        build_kernels(Cfg, load_chips(), load_models())
    assert e.value.field == "serving.pools.p.band"
    Cfg.pools = {"p": PoolConfig(chip="b200", model="llama-3.1-70b", precision="fp4", kv_precision="fp8",
                                 engine="trtllm", speculative={"draft_tokens": 3, "tokens_per_step": 2.5})}
    k = build_kernels(Cfg, load_chips(), load_models())["p"]
    assert k.precision == "fp4" and k.tokens_per_step == 2.5 and k.engine.name.startswith("TensorRT")
