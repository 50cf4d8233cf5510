"""Rent channels in the fleet: Mélange's published toy instance as a scenario through
`planner: {kind: optimal}`, rentals running to their term, `cheapest` renting only when it is
cheaper per goodput, and the chips and money of rentals accounted for."""

from __future__ import annotations

import copy
import pathlib

import numpy as np
import pandas as pd
import pytest

import fleetsim
from fleetsim.api import load_scenario
from fleetsim.errors import ScenarioError
from fleet_helpers import FLEET, scenario
from test_fleet import check_conservation, check_money

MELANGE = pathlib.Path(__file__).parent.parent / "scenarios" / "examples" / "melange_toy.yaml"
# github.com/tyler-griggs/melange-release README "Solver Output": {"A10G": 3, "A100-80GB": 1, "cost": 6.7}
MELANGE_PLAN = {"cloud:a10g:A10G": 3, "cloud:a100:A100-80GB": 1}
MELANGE_USD_PER_H = 6.70


def _melange(overrides=()):
    return fleetsim.run(load_scenario(MELANGE, overrides=list(overrides)))


@pytest.fixture(scope="module")
def melange():
    return _melange()


def test_melange_toy_instance_gives_its_published_allocation_and_cost(melange):
    s = melange.summary["fleet"]
    plans = s["planner_report"]["plans"]
    assert len(plans) == s["days"] == 7  # one plan a day
    for p in plans:
        assert p["status"] == "optimal"
        assert p["orders_replicas"] == MELANGE_PLAN
        # the plan's cost for its one-day period, per hour
        assert p["cost_split_usd"]["rent"] / 24.0 == pytest.approx(MELANGE_USD_PER_H, abs=1e-9)
        assert p["objective_usd"] / 24.0 == pytest.approx(MELANGE_USD_PER_H, abs=1e-9)
    # what the fleet then rented and paid, day by day
    tl = melange.timeline
    rented = tl.pivot(index="date", columns="chip", values="rented")
    assert (rented["a10g"] == 3).all() and (rented["a100"] == 1).all()
    day_usd = melange.ledger[melange.ledger["kind"] == "rental"].groupby("date")["amount_usd"].sum()
    assert len(day_usd) == 7
    assert np.allclose(day_usd.values / 24.0, MELANGE_USD_PER_H, rtol=0, atol=1e-9)
    assert s["ledger_usd_by_kind"]["rental"] == pytest.approx(7 * 24 * MELANGE_USD_PER_H, abs=1e-6)
    # nothing bought, nothing depreciated, nothing unmet; the cost per Mtok is the rental
    for k in ("capex", "levy", "depreciation", "power"):
        assert s["ledger_usd_by_kind"][k] == 0.0
    assert s["unmet_demand_share"] == 0.0
    served_mtok = 30.0 * 86400 * 7 / 1e6  # 30 req/s x 1 token/request
    assert s["cost_usd_per_mtok"] == pytest.approx(7 * 24 * MELANGE_USD_PER_H / served_mtok, rel=1e-3)
    check_conservation(melange)


def test_melange_continuous_split_rents_less_than_the_fleet_can_serve():
    """slice_factor 0 (fleetsim's default continuous split): the plan is 1 A10G + 1 A100 at
    USD 4.68/h, as the problem classes give (tests/test_optimal.py). The fleet's daily step
    serves each class on every pool in proportion to capacity, not by the plan's split: 1 + 1
    replicas then carry 29.2 req/s of the 30 (a known gap between the plan and the day)."""
    res = _melange(["fleet.planner.slice_factor=0"])
    p = res.summary["fleet"]["planner_report"]["plans"][0]
    assert p["orders_replicas"] == {"cloud:a10g:A10G": 1, "cloud:a100:A100-80GB": 1}
    assert p["cost_split_usd"]["rent"] / 24.0 == pytest.approx(1.01 + 3.67, abs=1e-9)
    assert 0.0 < res.summary["fleet"]["unmet_demand_share"] < 0.05


def test_rentals_run_to_their_term_before_the_planner_rents_again():
    """A 3-day minimum term: the planner sees the running rentals (the problem's `rented`) and
    rents again only when they are returned (days 0, 3, 6)."""
    res = _melange(["fleet.channels.cloud.min_term_days=3"])
    o = res.orders
    assert sorted(o["ordered_on"].dt.day.unique().tolist()) == [1, 4, 7]
    assert (o["term_days"] == 3).all()
    rented = res.timeline.pivot(index="date", columns="chip", values="rented")
    assert (rented["a10g"] == 3).all() and (rented["a100"] == 1).all()
    # the last rental runs past the horizon: paid for its one day inside it
    assert res.summary["fleet"]["ledger_usd_by_kind"]["rental"] == pytest.approx(7 * 24 * 6.70, abs=1e-6)
    check_conservation(res)


def _rent(price_usd_h: float, lead: int = 0, term: int = 30, **kw) -> dict:
    ch = copy.deepcopy(FLEET["channels"])
    ch["cloud"] = {"kind": "rent", "min_term_days": term, "lead_time_days": {"kind": "fixed", "value": lead},
                   "offers": [{"chip": "h20", "price_usd_per_chip_hour": price_usd_h}], **kw}
    return ch


def test_cheapest_rents_only_when_renting_is_cheaper_per_goodput():
    """An h20 bought costs USD 11,000 (price + overhead) plus ~USD 1,000 of power over 5 years;
    rented at USD 0.05/h it costs USD 2,192 over the same 5 years; at USD 0.5/h, USD 21,915."""
    cheap = fleetsim.run(scenario({"channels": _rent(0.05)}))
    dear = fleetsim.run(scenario({"channels": _rent(0.5)}))
    assert (cheap.orders["kind"] == "rent").any()
    assert not (cheap.orders["kind"] == "buy").any() or cheap.orders[cheap.orders["kind"] == "rent"][
        "count_chips"].sum() > cheap.orders[cheap.orders["kind"] == "buy"]["count_chips"].sum()
    assert not (dear.orders["kind"] == "rent").any()
    s = cheap.summary["fleet"]
    assert s["ledger_usd_by_kind"]["rental"] > 0
    tl = cheap.timeline
    assert tl["opex_usd"].sum() == pytest.approx(tl["power_usd"].sum() + tl["rental_usd"].sum(), rel=1e-9)
    check_conservation(cheap)
    check_money(cheap)


def test_ban_cancels_rentals_on_order_and_accounts_for_them():
    """Rentals with a 10-day lead, the rent channel banned on day 40: rentals on order then are
    cancelled (nothing was paid), delivered ones run to their term."""
    ch = _rent(0.05, lead=10, term=20)
    res = fleetsim.run(scenario({"channels": ch, "planner": {"kind": "cheapest", "period_days": 5},
                                 "events": [{"date": "2025-02-10", "channel": "cloud", "state": "banned"}]}))
    r = res.orders[res.orders["kind"] == "rent"]
    assert (r["fate"] == "cancelled").any() and (r["fate"] == "delivered").any()
    assert (r[r["fate"] == "cancelled"]["refund_usd"] == 0).all()
    assert not (r["ordered_on"] >= pd.Timestamp("2025-02-10")).any()
    check_conservation(res)
    check_money(res)


def test_optimal_rents_through_the_lead_time_of_purchases():
    """No fleet on day 0 and 37 days to a bought chip's service: the optimal planner bridges
    with rentals and leaves less demand unmet than without the rent channel."""
    base = {"kind": "optimal", "period_days": 30, "horizon_periods": 6}
    without = fleetsim.run(scenario({"planner": base}))
    with_rent = fleetsim.run(scenario({"planner": base, "channels": _rent(0.3)}))
    assert (with_rent.orders["kind"] == "rent").any()
    assert with_rent.summary["fleet"]["unmet_demand_share"] < without.summary["fleet"]["unmet_demand_share"]
    check_conservation(with_rent)
    check_money(with_rent)


def test_rent_channel_needs_hourly_prices():
    ch = _rent(0.3)
    del ch["cloud"]["offers"][0]["price_usd_per_chip_hour"]
    with pytest.raises(Exception) as e:
        scenario({"channels": ch})
    assert "price_usd_per_chip_hour" in str(e.value)
    sc = scenario({"channels": _rent(0.3)})
    assert sc.fleet.channels["cloud"].lead_time_days.value == 0  # rent default: no lead time
    assert sc.fleet.channels["nvidia"].lead_time_days.value == 30


def test_rent_channel_error_names_the_file_and_field(tmp_path):
    text = MELANGE.read_text().replace("price_usd_per_chip_hour: 1.01", "price_usd: 1.01")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(bad)
    assert "bad.yaml" in str(e.value) and "price_usd_per_chip_hour" in str(e.value)
