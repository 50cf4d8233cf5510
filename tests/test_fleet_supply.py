"""Two-sided regimes, payment terms and write-offs: hand-computed micro-scenarios.

Common set-up (every figure chosen so the arithmetic is exact; cf. tests/test_fleet_micro.py):
  demand      1,000 output tokens/s, flat (no growth, peak_to_mean 1, no forecast error);
  capacity    given: 100 output tokens/s per replica (1 req/s x 100 tokens), 500 W, tp 1, no
              spares: the planner needs 1,000 / 100 = 10 chips;
  planner     cheapest, one plan on day 0 (period 366 d), no headroom, horizon 0; it plans again
              only on a day a channel reopens (both sides open again);
  channel     one, `vendor`, price USD 10,000 a chip, no overhead, fixed lead time 10 days:
              ordered day 0, due day 10; payment: 30% at order, the balance at delivery;
  finance     life 1 year (depreciation 1/365 of the price a day from delivery), PUE 1.0,
              USD 0.10/kWh; commissioning 5 days; crashes off (MTBF 10^12 h).
The order (10 chips) is USD 100,000: deposit USD 30,000 on day 0, balance USD 70,000 at delivery.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import fleetsim
from fleetsim.scenario.model import Scenario

START = np.datetime64("2025-01-01")
BASE = {
    "name": "supply-micro", "seed": 0,
    "serving": {
        "duration_s": 60, "warmup_s": 10,
        "workloads": {"chat": {
            "model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 1},
            "prompt_tokens": {"kind": "fixed", "value": 100},
            "output_tokens": {"kind": "fixed", "value": 100}}},
        "pools": {"gpu": {"chip": "h100", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}}},
    "reliability": {"chips": {"h100": {"mtbf_h": 1.0e12, "ea_ev": 0.0}},
                    "repair": {"spare_fraction": 0.0}},
    "fleet": {
        "start": "2025-01-01", "years": 1,
        "demand": {"chat": {"tokens_per_s": 1000.0, "growth_per_year": 0.0, "peak_to_mean": 1.0}},
        "channels": {"vendor": {"offers": [{"chip": "h100", "price_usd": 10000}], "us_controlled": True,
                                "lead_time_days": {"kind": "fixed", "value": 10},
                                "payment": {"deposit_share": 0.3}}},
        "planner": {"kind": "cheapest", "period_days": 366, "horizon_days": 0, "headroom": 0.0},
        "budget": {"total_usd": 1.0e6},
        "finance": {"life_years": 1.0, "pue": 1.0, "power_usd_per_kwh": 0.10,
                    "server_overhead_usd_per_node": 0.0},
        "commissioning_days": 5,
        "capacity": {"gpu": {"chat": {"goodput_rps": 1.0, "output_tokens_per_request": 100,
                                      "power_w_per_replica": 500.0}}},
        "windows": {"enabled": False}}}


def run(events=(), channel=None, fleet=None):
    data = copy.deepcopy(BASE)
    data["fleet"]["events"] = [{"channel": "vendor", **e} for e in events]
    data["fleet"]["channels"]["vendor"].update(channel or {})
    data["fleet"].update(fleet or {})
    return fleetsim.run(Scenario.model_validate(data))


def day(n: int) -> pd.Timestamp:
    return pd.Timestamp(START + np.timedelta64(n, "D"))


def ledger_by(res, kind: str) -> pd.Series:
    led = res.ledger[res.ledger["kind"] == kind]
    return led.groupby(led["date"])["amount_usd"].sum()


def test_deposit_held_by_buyer_ban_that_lifts_after_60_days():
    """Importer side: buyer ban from day 5 (2025-01-06), lifted day 65 (2025-03-07), 60 days.

    Worked out:
      day 0   order of 10 chips; deposit 0.3 x 100,000 = USD 30,000 (ledger capex, day 0);
      day 10  due, but the importer side is closed: held (orders.held_on = 2025-01-11);
              paid_in_transit 30,000 on days 0..64; at_risk 30,000 on days 10..64, then 0;
      day 65  the ban lifts: delivered that day, balance USD 70,000 paid (ledger capex, day 65);
              the planner replans (channel reopened) and orders nothing (10 chips cover demand);
      depreciation 100,000 / 365 a day on days 65..364 (300 days) = USD 82,191.78;
      impairment 0; nothing at risk at the horizon; exporter side open all year.
    """
    res = run([{"date": "2025-01-06", "importer": "buyer_ban"},
               {"date": "2025-03-07", "importer": "open"}])
    o = res.orders
    assert len(o) == 1
    o = o.iloc[0]
    assert o["fate"] == "delivered" and o["delivered_on"] == day(65) and o["held_on"] == day(10)
    assert o["deposit_usd"] == pytest.approx(30_000) and o["paid_usd"] == pytest.approx(100_000)
    capex = ledger_by(res, "capex")
    assert capex[day(0)] == pytest.approx(30_000) and capex[day(65)] == pytest.approx(70_000)
    assert len(capex) == 2
    tl = res.timeline.set_index(np.arange(365))
    np.testing.assert_allclose(tl["paid_in_transit_usd"], np.r_[np.full(65, 30_000.0), np.zeros(300)])
    np.testing.assert_allclose(tl["at_risk_usd"], np.r_[np.zeros(10), np.full(55, 30_000.0), np.zeros(300)])
    assert (tl["delivered"][:65] == 0).all() and (tl["delivered"][65:] == 10).all()
    assert (tl["importer_state"][5:65] == "buyer_ban").all() and (tl["importer_state"][65:] == "open").all()
    assert (tl["exporter_state"] == "open").all()
    assert (tl["regime_state"][5:65] == "buyer_ban").all()
    led = res.ledger.groupby("kind", observed=True)["amount_usd"].sum()
    assert led["depreciation"] == pytest.approx(300 * 100_000 / 365)
    s = res.summary["fleet"]
    assert s["impairment_usd"] == 0 and s["at_risk_usd"] == 0
    assert s["all_in_cost_usd_per_mtok"] == s["cost_usd_per_mtok"]


@pytest.mark.parametrize("terms, refund", [("forfeit", 0.0), ("refund", 30_000.0)])
def test_held_order_cancelled_by_buyer(terms, refund):
    """Importer buyer ban from day 5, never lifted; the buyer cancels an order held over 30 days.
    An initial fleet of 10 free chips serves half the demand (2,000 tokens/s), so the planner
    orders the other 10 chips and the run has served tokens to divide by.

    Worked out:
      day 0   order of 10 chips, deposit USD 30,000;
      day 10  due and held; day 40 held 30 days: the buyer cancels (fate cancelled, event
              buyer_cancel); forfeit: refund 0, impairment USD 30,000 (ledger kind impairment,
              day 40); refund: refund USD 30,000, impairment 0; the balance is never paid;
      served  1,000 tokens/s all year by the initial fleet: 86.4 Mtok a day, 31,536 Mtok;
      power   10 replicas at goodput x 500 W = 5 kW x 24 h x USD 0.10 = USD 12 a day, 4,380;
      cost per Mtok (depreciation 0 + power) = 4,380 / 31,536 = USD 0.1389;
      all-in (+ impairment) = (4,380 + 30,000) / 31,536 = USD 1.090 (forfeit), 0.1389 (refund).
    """
    res = run([{"date": "2025-01-06", "importer": "buyer_ban"}],
              channel={"payment": {"deposit_share": 0.3, "cancel_held_after_days": 30,
                                   "deposit_on_cancel": terms}},
              fleet={"demand": {"chat": {"tokens_per_s": 2000.0, "growth_per_year": 0.0, "peak_to_mean": 1.0}},
                     "initial_fleet": [{"chip": "h100", "channel": "vendor", "count": 10, "price_usd": 0}]})
    o = res.orders[res.orders["ordered_on"] == day(0)]
    o = o[o["count_chips"] == 10].iloc[-1]
    assert o["fate"] == "cancelled" and o["cancelled_on"] == day(40) and o["held_on"] == day(10)
    assert o["refund_usd"] == pytest.approx(refund) and o["impairment_usd"] == pytest.approx(30_000 - refund)
    assert o["paid_usd"] == pytest.approx(30_000)
    ev = res.events[res.events["kind"] == "buyer_cancel"]
    assert len(ev) == 1 and ev["date"].iloc[0] == day(40)
    s = res.summary["fleet"]
    assert s["impairment_usd"] == pytest.approx(30_000 - refund)
    assert s["capex_usd_total"] == pytest.approx(30_000 - refund)
    if refund == 0:
        assert ledger_by(res, "impairment")[day(40)] == pytest.approx(30_000)
    assert s["cost_usd_per_mtok"] == pytest.approx(4380 / 31536, rel=2e-3)
    assert s["all_in_cost_usd_per_mtok"] == pytest.approx((4380 + 30_000 - refund) / 31536, rel=2e-3)
    assert s["at_risk_usd"] == 0
    tl = res.timeline.set_index(np.arange(365))
    np.testing.assert_allclose(tl["at_risk_usd"], np.r_[np.zeros(10), np.full(30, 30_000.0), np.zeros(325)])
    assert tl["impairment_usd"].sum() == pytest.approx(30_000 - refund)


@pytest.mark.parametrize("on_ban, refund_share", [("strand", 0.0), ("cancel", 0.5)])
def test_exporter_ban_strands_what_was_paid(on_ban, refund_share):
    """Exporter side bans on day 5 with the order in transit. The channel has a 10% levy of which
    the buyer bears half (levy_incidence 0.5).

    Worked out:
      per chip: price 10,000 + buyer's levy 0.5 x 0.1 x 10,000 = 500 (the vendor absorbs 500):
      USD 10,500; order 105,000; deposit 30%: capex 30,000 + levy 1,500 = USD 31,500 on day 0;
      day 5: strand: impairment USD 31,500 (the deposit); cancel with refund_share 0.5: refund
      15,750, impairment 15,750; the balance 73,500 is never paid and leaves the commitments;
      orders: levy_usd 5,000 (the order's buyer levy), levy_vendor_usd 0 (nothing delivered);
      nothing delivered, nothing at risk.
    """
    res = run([{"date": "2025-01-06", "exporter": "banned"}],
              channel={"levy": 0.1, "levy_incidence": 0.5, "on_ban": on_ban, "refund_share": refund_share})
    o = res.orders.iloc[0]
    fate = "stranded" if on_ban == "strand" else "cancelled"
    assert o["fate"] == fate and o["cancelled_on"] == day(5)
    assert o["levy_usd"] == pytest.approx(5_000) and o["deposit_usd"] == pytest.approx(31_500)
    led = res.ledger.groupby("kind", observed=True)["amount_usd"].sum()
    assert led["capex"] == pytest.approx(30_000) and led["levy"] == pytest.approx(1_500)
    assert led["impairment"] == pytest.approx(31_500 * (1 - refund_share))
    assert led.get("refund", 0.0) == pytest.approx(-31_500 * refund_share)
    s = res.summary["fleet"]
    assert s["impairment_usd"] == pytest.approx(31_500 * (1 - refund_share))
    assert s["capex_usd_total"] == pytest.approx(31_500 * (1 - refund_share))
    ch = s["channels"]["vendor"]
    assert ch["exporter_state"] == "banned" and ch["importer_state"] == "open"
    assert ch["levy_incidence"] == 0.5 and ch["chips_delivered"] == 0 and ch["at_risk_usd"] == 0
    assert res.timeline["delivered"].max() == 0


def test_exporter_opens_while_importer_blocks_then_importer_opens():
    """Order day 0; exporter licence_required on day 5; importer customs_block on day 8; the
    exporter side opens on day 30 while customs still block; customs open on day 90.

    Worked out:
      day 10  due: both sides closed, held; day 30: exporter open, importer customs_block: still
              held, zero shipped, no replan (the channel has not reopened);
      day 90  customs open: delivered that day (balance USD 70,000 paid), serving from day 95;
      timeline exporter licence_required days 5..29, open after; importer customs_block days
      8..89; delivered 0 before day 90, 10 from day 90; at risk 30,000 on days 10..89.
      Events record both sides at every change.
    """
    res = run([{"date": "2025-01-06", "exporter": "licence_required"},
               {"date": "2025-01-09", "importer": "customs_block"},
               {"date": "2025-01-31", "exporter": "open"},
               {"date": "2025-04-01", "importer": "open"}])
    tl = res.timeline.set_index(np.arange(365))
    assert (tl["delivered"][:90] == 0).all() and (tl["delivered"][90:] == 10).all()
    assert (tl["exporter_state"][5:30] == "licence_required").all() and (tl["exporter_state"][30:] == "open").all()
    assert (tl["importer_state"][8:90] == "customs_block").all() and (tl["importer_state"][90:] == "open").all()
    np.testing.assert_allclose(tl["at_risk_usd"], np.r_[np.zeros(10), np.full(80, 30_000.0), np.zeros(275)])
    o = res.orders
    assert len(o) == 1 and o["delivered_on"].iloc[0] == day(90)
    assert ledger_by(res, "capex")[day(90)] == pytest.approx(70_000)
    rc = res.events[res.events["kind"] == "regime_change"]
    assert list(rc["date"]) == [day(5), day(8), day(30), day(90)]
    assert rc["detail"].iloc[2].startswith("open; exporter open") and "importer customs_block" in rc["detail"].iloc[2]
    assert rc["detail"].iloc[1].startswith("importer customs_block; exporter licence_required")
    assert (tl["capacity_tokens_per_s"][:95] == 0).all() and (tl["capacity_tokens_per_s"][95:] == 1000).all()


def test_discouraged_buyer_forgoes_its_compliance_share_and_shipments_pass():
    """Importer `discouraged` from the start with compliance 0.6: of the 10 chips planned the
    buyer orders 10 x 0.4 = 4, and they are delivered on their due day (day 10)."""
    res = run(channel={"initial_importer": "discouraged", "compliance_share": 0.6})
    o = res.orders.iloc[0]
    assert o["count_chips"] == 4 and o["delivered_on"] == day(10)


def test_importer_forced_removal_of_the_channels_chips():
    """An importer event with remove_share 0.5 on day 30 takes 5 of the 10 chips the channel
    delivered out of service (timeline removed 5 from day 30; a removal event names the channel)."""
    res = run([{"date": "2025-01-31", "remove_share": 0.5, "note": "forced removal"}])
    tl = res.timeline.set_index(np.arange(365))
    assert (tl["removed"][:30] == 0).all() and (tl["removed"][30:] == 5).all()
    ev = res.events[res.events["kind"] == "removal"]
    assert list(ev["channel"]) == ["vendor"] and list(ev["count"]) == [5]


def test_bad_payment_and_side_input_is_one_clear_message():
    from fleetsim.errors import ScenarioError

    data = copy.deepcopy(BASE)
    data["fleet"]["events"] = [{"date": "2025-02-01", "channel": "vendor", "importer": "banned"}]
    with pytest.raises((ScenarioError, ValueError)) as info:
        Scenario.model_validate(data)
    msg = str(info.value)
    assert "importer" in msg and "customs_block" in msg
    data = copy.deepcopy(BASE)
    data["fleet"]["channels"]["vendor"]["payment"] = {"deposit_share": 1.5}
    with pytest.raises((ScenarioError, ValueError)) as info:
        Scenario.model_validate(data)
    assert "deposit_share" in str(info.value)


def test_console_prints_both_costs_with_what_they_include():
    """The console's fleet text: both costs per Mtok, each with its basis, the impairment and the
    money at risk, and the channel whose side is closed at the end."""
    from fleetsim.results.display import fleet_text

    res = run([{"date": "2025-01-06", "importer": "customs_block"}],
              fleet={"demand": {"chat": {"tokens_per_s": 2000.0, "growth_per_year": 0.0, "peak_to_mean": 1.0}},
                     "initial_fleet": [{"chip": "h100", "channel": "vendor", "count": 10, "price_usd": 0}]})
    text = fleet_text({"fleet": res.summary["fleet"], "scenario": "supply-micro"})
    assert "cost USD per million tokens: 0.139 (depreciation + power + opex + rental)" in text
    assert "all-in cost USD per million tokens: 0.139 (depreciation + impairments" in text
    assert "at risk USD 30,000 (paid into orders held at the horizon)" in text
    assert "channel vendor: exporter open (levy 0, buyer bears 100%), importer customs_block" in text


def test_console_over_futures_prints_both_costs_impaired_and_at_risk():
    """Over futures (every `fleetsim run` of the reference case: 16 futures) the headlines carry the
    all-in cost beside the depreciation-based one, and the impaired and at-risk money, each with its
    interval: the reference case's console printed the depreciation-based cost alone."""
    from fleetsim.results.display import fleet_text

    res = run([{"date": "2025-01-06", "importer": "customs_block"}],
              fleet={"demand": {"chat": {"tokens_per_s": 2000.0, "growth_per_year": 0.0, "peak_to_mean": 1.0}},
                     "initial_fleet": [{"chip": "h100", "channel": "vendor", "count": 10, "price_usd": 0}],
                     "replications": 2})
    text = fleet_text({**res.summary, "scenario": "supply-micro"})
    assert "  cost USD per million tokens: 0.139 (all futures) (depreciation + power + opex + rental)" in text
    assert "  all-in cost USD per million tokens: 0.139 (all futures) (depreciation + impairments" in text
    assert "  at risk (paid into orders held at the horizon): USD 30,000 (all futures)" in text
    assert "  impaired (paid, never to arrive: stranded, cancelled, forfeited): USD 0\n" in text
