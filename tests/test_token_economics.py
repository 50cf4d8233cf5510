"""Token economics (issue 20): demand in requests or tokens, input mix from the workload's own
lengths, prefix-cache hits, revenue by token type; and inputs that cannot be right.

The one-class day, worked by hand:
  demand   1,000 output tokens/s, flat, one day; prompts 300 tokens, outputs 100 (fixed): 3 input
           tokens per output token; 25% of input tokens hit the prefix cache;
  fleet    20 chips installed at the start, 100 output tokens/s each (ample: all demand served);
  prices   output USD 2.00, cache-miss input 0.50, cache-hit input 0.10 per million tokens.
  tokens   output 1,000 x 86,400 = 86.4 M; input 259.2 M, of which 64.8 M hits, 194.4 M misses;
  revenue  86.4 x 2.00 + 64.8 x 0.10 + 194.4 x 0.50 = 172.80 + 6.48 + 97.20 = USD 276.48.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fleetsim
from fleetsim.errors import ScenarioError
from fleetsim.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[1]


def one_class_day(demand: dict | None = None, prices: dict | None = None, hit_share: float = 0.25,
                  finance: dict | None = None) -> Scenario:
    price = {"output_usd_per_mtok": 2.0, "input_cache_miss_usd_per_mtok": 0.5,
             "input_cache_hit_usd_per_mtok": 0.1} if prices is None else prices
    dem = {"tokens_per_s": 1000.0, "peak_to_mean": 1.0, **({"prices": price} if price else {})}
    if demand is not None:
        dem = {**{k: v for k, v in dem.items() if k != "tokens_per_s"}, **demand}
    return Scenario.model_validate({
        "name": "tokens", "seed": 0,
        "serving": {
            "duration_s": 60, "warmup_s": 10,
            "workloads": {"chat": {
                "model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 1},
                "prompt_tokens": {"kind": "fixed", "value": 300},
                "output_tokens": {"kind": "fixed", "value": 100},
                "prefix_cache_hit_share": hit_share}},
            "pools": {"gpu": {"chip": "h100", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}}},
        "reliability": {"repair": {"spare_fraction": 0.0}, "chips": {"h100": {"mtbf_h": 1e12}}},
        "fleet": {
            "start": "2025-01-01", "years": 0.00274,
            "demand": {"chat": dem},
            "channels": {"vendor": {"offers": [{"chip": "h100", "price_usd": 10000}],
                                    "lead_time_days": {"kind": "fixed", "value": 0}}},
            "initial_fleet": [{"chip": "h100", "channel": "vendor", "count": 20}],
            "planner": {"kind": "cheapest", "period_days": 366, "horizon_days": 0, "headroom": 0.0},
            "budget": {"total_usd": 0.0},
            "finance": finance or {},
            "commissioning_days": 0,
            "capacity": {"gpu": {"chat": {"goodput_rps": 1.0, "output_tokens_per_request": 100}}},
            "windows": {"enabled": False}}})


def test_revenue_by_token_type_on_a_one_class_day():
    res = fleetsim.run(one_class_day())
    f = res.summary["fleet"]
    assert f["unmet_demand_share"] == 0
    assert f["served_mtok"] == pytest.approx(86.4, rel=1e-9)
    assert f["served_input_mtok"] == pytest.approx(259.2, rel=1e-9)
    assert f["served_input_cache_hit_mtok"] == pytest.approx(64.8, rel=1e-9)
    by = f["revenue_usd_by_token_type"]
    assert by["output"] == pytest.approx(172.80, rel=1e-9)
    assert by["input_cache_hit"] == pytest.approx(6.48, rel=1e-9)
    assert by["input_cache_miss"] == pytest.approx(97.20, rel=1e-9)
    assert f["revenue_usd"] == pytest.approx(276.48, rel=1e-9)
    # the same money counted three ways: summary, ledger, timeline
    led = res.ledger
    assert -led.loc[led.kind == "revenue", "amount_usd"].sum() == pytest.approx(276.48, rel=1e-9)
    tl = res.timeline
    assert tl[["revenue_output_usd", "revenue_input_cache_hit_usd", "revenue_input_cache_miss_usd"]
              ].to_numpy().sum() == pytest.approx(276.48, rel=1e-9)
    assert f["margin_usd"] == pytest.approx(276.48 - (f["ledger_usd_by_kind"]["depreciation"]
                                                      + f["ledger_usd_by_kind"]["power"]
                                                      + f["ledger_usd_by_kind"]["opex"]), rel=1e-9)


def test_cost_split_by_revenue_share_adds_up():
    f = fleetsim.run(one_class_day()).summary["fleet"]
    costs = f["revenue_usd"] - f["margin_usd"]
    split = f["cost_usd_per_mtok_output"] * f["served_mtok"] + f["cost_usd_per_mtok_input"] * f["served_input_mtok"]
    assert split == pytest.approx(costs, rel=2e-3)  # each figure is printed to 3 digits


def test_demand_in_requests_equals_demand_in_tokens():
    """10 req/s x 100 output tokens = 1,000 output tokens/s: the same fleet, byte for byte."""
    a = fleetsim.run(one_class_day())
    b = fleetsim.run(one_class_day(demand={"requests_per_s": 10.0}))
    assert a.timeline.equals(b.timeline)
    assert a.summary["fleet"]["revenue_usd"] == b.summary["fleet"]["revenue_usd"]


def test_one_price_for_output_tokens_only_without_a_price_list():
    f = fleetsim.run(one_class_day(prices={}, finance={"revenue_usd_per_mtok": 2.0})).summary["fleet"]
    assert f["revenue_usd"] == pytest.approx(86.4 * 2.0, rel=1e-9)
    assert f["revenue_usd_by_token_type"]["input_cache_miss"] == 0
    unpriced = fleetsim.run(one_class_day(prices={})).summary["fleet"]
    assert "revenue_usd" not in unpriced and unpriced["served_input_mtok"] == pytest.approx(259.2)


def test_demand_needs_exactly_one_unit():
    with pytest.raises(Exception, match="exactly one of tokens_per_s"):
        one_class_day(demand={"tokens_per_s": 1000.0, "requests_per_s": 10.0})


def test_deepseek_day_revenue_as_published():
    """DeepSeek's published day (scenarios/examples/deepseek_day.yaml): USD 562,027 of theoretical
    revenue; the rounded token counts (608B in, 342B hits, 168B out) give 562,100."""
    sc = fleetsim.load_scenario(ROOT / "scenarios/examples/deepseek_day.yaml")
    f = fleetsim.run(sc).summary["fleet"]
    assert f["unmet_demand_share"] == 0
    assert f["revenue_usd"] == pytest.approx(562_027, rel=5e-4)
    assert f["served_input_mtok"] == pytest.approx(608_000, rel=1e-3)
    assert f["served_input_cache_hit_mtok"] == pytest.approx(342_000, rel=1e-3)
    assert f["rented_end"]["h800"] == 278 * 8  # rented for the peak hour: 278 nodes, as published


def test_pool_of_a_model_nobody_asks_for_is_refused():
    sc = one_class_day()
    data = sc.model_dump(mode="json", exclude_none=True)
    data["serving"]["pools"]["idle"] = {"chip": "h20", "model": "llama-3.1-8b", "tp": 1, "replicas": 1}
    data["serving"]["workloads"]["other"] = {**data["serving"]["workloads"]["chat"], "model": "llama-3.1-8b"}
    with pytest.raises(ScenarioError, match="no fleet.demand class asks for") as e:
        fleetsim.run(Scenario.model_validate(data))
    assert e.value.field == "serving.pools.idle.model"


def test_implausible_and_impossible_chip_figures(tmp_path):
    base = (ROOT / "scenarios/serving_quickstart.yaml").read_text()
    warn = tmp_path / "warn.yaml"
    assert "\ncatalog:" not in base
    warn.write_text(base + "\ncatalog:\n  chips:\n    t-head-ppu: {hbm_tbps: 40}\n")
    out = subprocess.run([sys.executable, "-m", "fleetsim.cli", "validate", str(warn)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "warning:" in out.stderr and "catalog.chips.t-head-ppu.hbm_tbps" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "\ncatalog:\n  chips:\n    t-head-ppu: {bf16_tflops: 40000}\n")
    out = subprocess.run([sys.executable, "-m", "fleetsim.cli", "validate", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "bf16_tflops" in out.stderr and str(bad) in out.stderr


def test_lead_time_longer_than_the_horizon_warns():
    from fleetsim.api import input_warnings

    sc = one_class_day()
    data = sc.model_dump(mode="json", exclude_none=True)
    data["fleet"]["channels"]["vendor"]["lead_time_days"] = {"kind": "fixed", "value": 30}
    lines = input_warnings(Scenario.model_validate(data))
    assert any("fleet.channels.vendor.lead_time_days" in ln for ln in lines)
    assert not input_warnings(sc)
