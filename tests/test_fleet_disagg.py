"""The fleet and both planners buy a prefill/decode type per role (issue 22).

A pair of role pools serves the lesser of its two sides (each side's rate is per instance of
its role, fleet.capacity here); the planners buy the two roles in the ratio of their rates.
Hand-worked: prefill 6 req/s x 250 tokens = 1500 tokens/s per 910B instance, decode 10 req/s =
2500 tokens/s per H20 instance, so a balanced pair has 2500 / 1500 = 5/3 prefill chips per
decode chip; at list prices (910B USD 16,700, H20 13,500) a token/s costs 16,700 / 1500 +
13,500 / 2500 = 16.5 USD of chips on the pair against 13,500 / 500 = 27 on the colocated H20, so
the rule planner buys the pair.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fleetsim
from fleetsim.errors import ScenarioError
from fleetsim.scenario.model import Scenario

BASE = {
    "name": "pd_fleet", "seed": 1,
    "serving": {
        "duration_s": 120, "warmup_s": 20,
        "workloads": {"chat": {
            "model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 10},
            "prompt_tokens": {"kind": "lognormal", "median": 600, "sigma": 0.8, "max": 4096},
            "output_tokens": {"kind": "lognormal", "median": 200, "sigma": 0.7, "max": 1024},
            "slo": {"ttft_s": 2.0, "tpot_s": 0.1, "percentile": 95}}},
        "pools": {
            "pre": {"chip": "ascend-910b", "model": "qwen2.5-7b", "tp": 1, "role": "prefill",
                    "handoff": {"decode_pool": "dec", "link_gbps": 50}},
            "dec": {"chip": "h20", "model": "qwen2.5-7b", "tp": 1, "role": "decode"},
            "colo": {"chip": "h20", "model": "qwen2.5-7b", "tp": 1}}},
    "fleet": {
        "start": "2025-01-01", "years": 1,
        "demand": {"chat": {"tokens_per_s": 3.0e6, "growth_per_year": 1.0, "peak_to_mean": 1.5}},
        "channels": {
            "nvidia-h20": {"vendor": "NVIDIA", "us_controlled": True,
                           "offers": [{"chip": "h20", "pool": "dec"}, {"chip": "h20", "pool": "colo"}],
                           "lead_time_days": {"kind": "fixed", "value": 60}},
            "huawei": {"vendor": "Huawei", "offers": [{"chip": "ascend-910b", "pool": "pre"}],
                       "lead_time_days": {"kind": "fixed", "value": 60}}},
        "planner": {"kind": "cheapest", "period_days": 30, "horizon_days": 120, "headroom": 0.1},
        "budget": {"total_usd": 1.0e10},
        "finance": {"server_overhead_usd_per_node": 40000, "pue": 1.2, "power_usd_per_kwh": 0.07},
        "capacity": {
            "pre": {"chat": {"goodput_rps": 6.0, "output_tokens_per_request": 250, "power_w_per_replica": 300}},
            "dec": {"chat": {"goodput_rps": 10.0, "output_tokens_per_request": 250, "power_w_per_replica": 350}},
            "colo": {"chat": {"goodput_rps": 2.0, "output_tokens_per_request": 250, "power_w_per_replica": 350}}},
        "windows": {"enabled": False}, "replications": 1}}


def scen(**fleet) -> Scenario:
    d = copy.deepcopy(BASE)
    d["fleet"] |= fleet
    return Scenario.model_validate(d)


def chips_by_pool(res) -> dict[str, int]:
    o = res.orders
    return o.groupby("pool")["count_chips"].sum().to_dict()


@pytest.mark.parametrize("planner", [
    {"kind": "cheapest", "period_days": 30, "horizon_days": 120, "headroom": 0.1},
    {"kind": "optimal", "period_days": 30, "horizon_periods": 4, "headroom": 0.1, "futures": 1},
])
def test_both_planners_buy_both_roles_in_the_ratio_of_their_rates(planner):
    res = fleetsim.run(scen(planner=planner, years=0.25))
    got = chips_by_pool(res)
    assert got.get("pre", 0) > 1000 and got.get("dec", 0) > 600, got
    assert got["pre"] / got["dec"] == pytest.approx(2500 / 1500, rel=0.01)
    if planner["kind"] == "cheapest":  # the pair is cheaper per token/s than colocated H20
        assert "colo" not in got


def test_a_pair_serves_the_lesser_of_its_two_sides():
    """Installed 300 prefill and 300 decode chips, nothing to buy: the decode side has surplus,
    so the pair's capacity is 300 x 1500 tokens/s (the prefill side), split by chips up."""
    s = scen(initial_fleet=[{"chip": "ascend-910b", "channel": "huawei", "count": 300, "pool": "pre"},
                            {"chip": "h20", "channel": "nvidia-h20", "count": 300, "pool": "dec"}],
             budget={"total_usd": 0.0}, years=0.1)
    res = fleetsim.run(s)
    t = res.timeline
    day = t[t.date == t.date.max()]
    cap = day.capacity_tokens_per_s.sum()
    up = day.replicas_up.to_numpy()
    assert up.sum() > 0
    k = {"ascend-910b": 1500.0, "h20": 2500.0}
    sides = {r.chip: r.replicas_up * k[r.chip] for r in day.itertuples()}
    assert cap == pytest.approx(min(sides.values()), rel=1e-9)
    assert sides["h20"] > sides["ascend-910b"]  # the prefill side bound
    served = day.served_tokens_per_s.sum()
    assert served <= cap * (1 + 1e-9)


def test_a_role_given_without_its_partner_is_refused():
    d = copy.deepcopy(BASE)
    del d["fleet"]["capacity"]["pre"]
    s = Scenario.model_validate(d)
    with pytest.raises(ScenarioError, match="fleet.capacity"):
        fleetsim.run(s)


def test_hourly_rentals_with_role_pools_are_refused_with_a_message():
    s = scen(offpeak={"value_usd_per_node_hour": 10.0})
    with pytest.raises(ScenarioError, match="prefill/decode"):
        fleetsim.run(s)


def _lone_decode(**fleet) -> dict:
    """`dec` offered on a channel, its prefill pool `pre` offered by none (a colocated 910B pool
    keeps the huawei channel)."""
    d = copy.deepcopy(BASE)
    d["serving"]["pools"]["c910"] = {"chip": "ascend-910b", "model": "qwen2.5-7b", "tp": 1}
    d["fleet"]["capacity"]["c910"] = {"chat": {"goodput_rps": 1.0, "output_tokens_per_request": 250}}
    d["fleet"]["channels"]["huawei"]["offers"] = [{"chip": "ascend-910b", "pool": "c910"}]
    d["fleet"] |= fleet
    return d


def test_a_role_offered_whose_partner_can_never_have_chips_is_refused_at_load(tmp_path):
    """No channel offers `pre` and none is installed: `dec` chips could never serve. Refused by
    `fleetsim run` with the file, the offer's field and what to do; exit 2, no traceback."""
    import yaml
    from click.testing import CliRunner

    from fleetsim.cli import main as cli

    path = tmp_path / "lone.yaml"
    path.write_text(yaml.safe_dump(_lone_decode()))
    res = CliRunner().invoke(cli, ["run", str(path), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "lone.yaml" in res.output and "fleet.channels.nvidia-h20.offers.0" in res.output
    assert "prefill pool 'pre' no channel offers" in res.output and "offer 'pre'" in res.output
    assert not (tmp_path / "out").exists()


def test_installed_chips_whose_partner_can_never_have_chips_are_refused():
    from fleetsim.api import input_warnings

    d = _lone_decode(initial_fleet=[{"chip": "h20", "channel": "nvidia-h20", "count": 64, "pool": "dec"}])
    with pytest.raises(ScenarioError, match="64 chips are installed in pool 'dec'") as e:
        input_warnings(Scenario.model_validate(d))
    assert e.value.field == "fleet.initial_fleet.0"


@pytest.mark.parametrize("kind", ["cheapest", "optimal"])
def test_a_role_offered_whose_partner_is_only_installed_warns(kind):
    """`pre` installed but not offered: legitimate (the optimal planner buys `dec` to match it; a
    rule planner never buys a lone side), so a warning naming the offer and the planner's outcome."""
    from fleetsim.api import input_warnings

    planner = {"cheapest": {"kind": "cheapest", "period_days": 30, "horizon_days": 120},
               "optimal": {"kind": "optimal", "period_days": 30, "horizon_periods": 4, "futures": 1}}[kind]
    d = _lone_decode(planner=planner, initial_fleet=[
        {"chip": "ascend-910b", "channel": "huawei", "count": 1000, "pool": "pre"}])
    lines = input_warnings(Scenario.model_validate(d))
    hit = [ln for ln in lines if "fleet.channels.nvidia-h20.offers.0" in ln]
    assert len(hit) == 1, lines
    assert "prefill pool 'pre' is not" in hit[0] and "1,000 installed 'pre' chips" in hit[0]
    assert ("never buys 'dec'" in hit[0]) == (kind == "cheapest")


def test_the_lone_role_warning_reaches_summary_json():
    d = _lone_decode(years=0.1, budget={"total_usd": 0.0}, initial_fleet=[
        {"chip": "ascend-910b", "channel": "huawei", "count": 100, "pool": "pre"}])
    res = fleetsim.run(Scenario.model_validate(d))
    assert any("never buys 'dec'" in w for w in res.summary["warnings"]), res.summary.get("warnings")
    assert chips_by_pool(res).get("dec", 0) == 0  # what the warning says


def test_both_roles_offered_give_no_lone_role_message():
    from fleetsim.api import input_warnings

    assert not [ln for ln in input_warnings(scen()) if "is offered but" in ln]


def test_optimal_buys_the_lone_offered_side_to_match_the_installed_partner():
    """What the optimal warning says: 1000 installed 910B prefill chips x 1500 tokens/s need
    1000 x 1500 / 2500 = 600 H20 decode chips, and the planner buys exactly those."""
    d = _lone_decode(years=0.25, planner={"kind": "optimal", "period_days": 30, "horizon_periods": 4,
                                          "headroom": 0.1, "futures": 1},
                     initial_fleet=[{"chip": "ascend-910b", "channel": "huawei", "count": 1000, "pool": "pre"}])
    got = chips_by_pool(fleetsim.run(Scenario.model_validate(d)))
    assert got.get("dec", 0) == 600, got


def test_a_channel_that_can_never_sell_offers_nothing():
    """A channel capped at 0 a month with no event to reopen it (kept for its installed chips)
    sells nothing: its lone `dec` offer is not refused, and a `pre` offered only there does not
    count as the partner of a `dec` offered elsewhere. An event that lifts the cap makes it sell."""
    from fleetsim.api import input_warnings

    d = _lone_decode()
    d["fleet"]["channels"]["nvidia-h20"]["cap_per_month"] = 0
    assert not [ln for ln in input_warnings(Scenario.model_validate(d)) if "'dec'" in ln]
    d["fleet"]["events"] = [{"date": "2025-06-01", "channel": "nvidia-h20", "cap_per_month": 100}]
    with pytest.raises(ScenarioError, match="prefill pool 'pre' no channel offers"):
        input_warnings(Scenario.model_validate(d))
    d = _lone_decode()
    d["fleet"]["channels"]["huawei"]["offers"].append({"chip": "ascend-910b", "pool": "pre"})
    d["fleet"]["channels"]["huawei"]["cap_per_month"] = 0
    with pytest.raises(ScenarioError, match="prefill pool 'pre' no channel offers"):
        input_warnings(Scenario.model_validate(d))
