"""Fleet layer: chip and money conservation, regime shocks, budget, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fleetsim
from fleetsim.errors import ScenarioError
from fleetsim.scenario.model import Scenario
from fleet_helpers import FLEET, SERVING, scenario


def run(sc):
    return fleetsim.run(sc)


def check_conservation(res) -> None:
    """Chips from two independent structures: the orders table (order objects) and the timeline
    (cohort arrays + counters), every day and chip kind."""
    tl, orders = res.timeline, res.orders
    dates = np.sort(tl["date"].unique())
    check_rentals(res)
    for chip, t in tl.groupby("chip", observed=True):
        t = t.set_index("date").reindex(dates)
        o = orders[(orders["chip"] == chip) & (orders["kind"] == "buy")]
        od = o["ordered_on"].values
        dd = o["delivered_on"].values
        cd = o["cancelled_on"].values
        n = o["count_chips"].values
        ordered = np.array([n[od <= d].sum() for d in dates])
        delivered = np.array([n[(o["fate"] == "delivered").values & (dd <= d)].sum() for d in dates])
        cancelled = np.array([n[np.isin(o["fate"], ["cancelled", "stranded"]) & (cd <= d)].sum() for d in dates])
        assert np.array_equal(ordered, delivered + cancelled + t["on_order"].values), chip
        assert np.array_equal(delivered, t["delivered"].values), chip
        parts = t["active"] + t["in_repair"] + t["lost"] + t["retired"] + t["removed"]
        assert np.array_equal(t["delivered"].values, parts.values), chip
        assert (t[["active", "in_repair", "lost", "retired", "removed", "on_order"]] >= 0).all().all()
        assert np.array_equal(t["installed"].values, (t["active"] + t["in_repair"]).values)


def check_rentals(res) -> None:
    """Rented chips and rental money from the orders table alone (kind rent) against the
    timeline's rented / rent_on_order / rent_returned columns and the ledger's `rental` rows."""
    tl, orders, led = res.timeline, res.orders, res.ledger
    dates = np.sort(tl["date"].unique())
    end = dates[-1] + np.timedelta64(1, "D")
    rent = orders[orders["kind"] == "rent"]
    for chip, t in tl.groupby("chip", observed=True):
        t = t.set_index("date").reindex(dates)
        o = rent[rent["chip"] == chip]
        n, od, dd = o["count_chips"].values, o["ordered_on"].values, o["delivered_on"].values
        rd, cd, fate = o["returned_on"].values, o["cancelled_on"].values, o["fate"].values
        dlv = fate == "delivered"
        assert np.all(rd[dlv] == dd[dlv] + o["term_days"].values[dlv].astype("timedelta64[D]")), chip
        rented = np.array([n[dlv & (dd <= d) & (rd > d)].sum() for d in dates])
        returned = np.array([n[dlv & (rd <= d)].sum() for d in dates])
        ordered = np.array([n[od <= d].sum() for d in dates])
        gone = np.array([n[np.isin(fate, ["cancelled", "stranded"]) & (cd <= d)].sum() for d in dates])
        delivered = np.array([n[dlv & (dd <= d)].sum() for d in dates])
        assert np.array_equal(rented, t["rented"].values), chip
        assert np.array_equal(returned, t["rent_returned"].values), chip
        assert np.array_equal(ordered, delivered + gone + t["rent_on_order"].values), chip
        assert np.array_equal(delivered, t["rented"].values + t["rent_returned"].values), chip
    # money: each delivered rental paid count x hourly price x 24 for every day inside the horizon
    dlv = rent[rent["fate"] == "delivered"]
    days = ((np.minimum(dlv["returned_on"].values, end) - dlv["delivered_on"].values)
            / np.timedelta64(1, "D")).astype(float)
    paid = float((dlv["count_chips"] * dlv["price_usd_per_chip_hour"] * 24.0 * days).sum())
    booked = float(led[led["kind"] == "rental"]["amount_usd"].sum())
    assert booked == pytest.approx(paid, rel=1e-9, abs=1e-6)
    assert tl["rental_usd"].sum() == pytest.approx(paid, rel=1e-9, abs=1e-6)
    s = res.summary["fleet"]
    assert s["ledger_usd_by_kind"]["rental"] == pytest.approx(paid, rel=1e-9, abs=1e-6)
    # rented chips never depreciate and are no capex
    assert (rent["price_usd_per_chip"] == 0).all() and (rent["levy_usd"] == 0).all()


def check_write_offs(res) -> None:
    """Deposits, balances, refunds, impairments and money at risk from three structures: the
    orders table, the ledger (rows tagged with their order) and the timeline, plus the summary.
    Every dollar paid for a bought order is in a delivered chip, refunded, impaired, or still in
    transit; money at risk (paid into held orders) is never negative."""
    s, led, tl, o = res.summary["fleet"], res.ledger, res.timeline, res.orders
    buy = o[o["kind"] == "buy"]
    pay = led[led["kind"].isin(["capex", "levy"]) & (led["order_id"] >= 0)]
    paid = pay.groupby("order_id")["amount_usd"].sum().reindex(buy["order_id"], fill_value=0.0).values
    np.testing.assert_allclose(paid, buy["paid_usd"].values, rtol=1e-9, atol=1e-6)
    first = pay.merge(buy[["order_id", "ordered_on"]], on="order_id")
    first = first[first["date"] == first["ordered_on"]].groupby("order_id")["amount_usd"].sum()
    np.testing.assert_allclose(first.reindex(buy["order_id"], fill_value=0.0).values, buy["deposit_usd"].values,
                               rtol=1e-9, atol=1e-6)
    full = buy["count_chips"] * (buy["price_usd_per_chip"] + 8000 / 8) + buy["levy_usd"]
    fate = buy["fate"].values
    dlv, gone, transit = fate == "delivered", np.isin(fate, ["cancelled", "stranded"]), fate == "in_transit"
    initial = (buy["paid_usd"] == 0).values & dlv & (buy["due_on"] == buy["ordered_on"]).values
    np.testing.assert_allclose(buy["paid_usd"].values[dlv & ~initial], full.values[dlv & ~initial], rtol=1e-9)
    np.testing.assert_allclose((buy["refund_usd"] + buy["impairment_usd"]).values[gone],
                               buy["paid_usd"].values[gone], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(buy["paid_usd"].values[transit], buy["deposit_usd"].values[transit], rtol=1e-9)
    assert (buy["impairment_usd"].values[~gone] == 0).all()
    imp = led[led["kind"] == "impairment"]["amount_usd"].sum()
    assert imp == pytest.approx(buy["impairment_usd"].sum(), abs=1e-6)
    assert imp == pytest.approx(s["impairment_usd"], abs=1e-6)
    assert tl["impairment_usd"].sum() == pytest.approx(imp, rel=1e-9, abs=1e-6)
    # capex + levy - refunds = delivered chips' cost + impaired + still in transit
    assert s["capex_usd_total"] == pytest.approx(
        full.values[dlv & ~initial].sum() + imp + buy["paid_usd"].values[transit].sum(), rel=1e-9, abs=1e-3)
    # money at risk: never negative, within what is in transit, the horizon's figure the summary's
    assert (tl["at_risk_usd"] >= 0).all() and (tl["paid_in_transit_usd"] >= 0).all()
    assert (tl["at_risk_usd"] <= tl["paid_in_transit_usd"] + 1e-6).all()
    last = tl[tl["date"] == tl["date"].max()]
    assert last["at_risk_usd"].sum() == pytest.approx(s["at_risk_usd"], rel=1e-9, abs=1e-6)
    assert last["paid_in_transit_usd"].sum() == pytest.approx(s["paid_in_transit_usd"], rel=1e-9, abs=1e-6)
    assert s["at_risk_usd"] == pytest.approx(buy["paid_usd"].values[transit & ~buy["held_on"].isna().values].sum())
    if s["cost_usd_per_mtok"] is not None:
        assert s["all_in_cost_usd_per_mtok"] >= s["cost_usd_per_mtok"]


def check_both_sides(res) -> None:
    """No delivery on a day either side of its channel is closed: each channel's sides rebuilt
    from its regime_change events (every one records both sides after the change)."""
    import re

    ev = res.events
    sc = res.scenario.fleet
    rc = ev[ev["kind"] == "regime_change"]
    for _, d in ev[ev["kind"] == "delivery"].iterrows():
        mine = rc[(rc["channel"] == d["channel"]) & (rc["date"] <= d["date"])]
        if len(mine):
            m = re.search(r"; exporter (\w+) .*?; importer (\w+)", mine["detail"].iloc[-1])
            exp, imp = m.group(1), m.group(2)
        else:
            ch = sc.channels[d["channel"]]
            exp, imp = ch.initial_exporter, ch.initial_importer
        assert exp == "open" and imp in ("open", "discouraged"), (d["date"], d["channel"], exp, imp)


def check_money(res) -> None:
    s, led, tl = res.summary["fleet"], res.ledger, res.timeline
    check_write_offs(res)
    check_both_sides(res)
    by_kind = led.groupby("kind", observed=True)["amount_usd"].sum()
    for k, v in s["ledger_usd_by_kind"].items():
        assert by_kind.get(k, 0.0) == pytest.approx(v, rel=1e-9, abs=1e-6)
    capex = led[led["kind"].isin(["capex", "levy", "refund"])]["amount_usd"].sum()
    assert capex == pytest.approx(s["capex_usd_total"], rel=1e-9, abs=1e-6)
    assert tl["capex_usd"].sum() == pytest.approx(capex, rel=1e-9, abs=1e-6)
    assert tl["depreciation_usd"].sum() == pytest.approx(by_kind.get("depreciation", 0.0), rel=1e-9)
    assert tl["power_usd"].sum() == pytest.approx(by_kind.get("power", 0.0), rel=1e-9, abs=1e-6)
    # money from the orders table alone: what was paid minus refunds
    o = res.orders
    paid = ((o["price_usd_per_chip"] + 8000 / 8) * o["count_chips"] + o["levy_usd"]).where(
        o["fate"] != "delivered", 0)
    assert o["refund_usd"].sum() == pytest.approx(-by_kind.get("refund", 0.0), abs=1e-6)
    if res.scenario.fleet.budget.overrun == "forbid":
        assert capex <= res.scenario.fleet.budget.total_usd * (1 + 1e-9)
        cum = tl.groupby("date")["capex_usd"].sum().cumsum().values
        assert np.all(cum <= res.scenario.fleet.budget.total_usd * (1 + 1e-9))
    del paid


def test_small_fleet_conserves_chips_and_money():
    res = run(scenario())
    check_conservation(res)
    check_money(res)
    s = res.summary["fleet"]
    assert s["capex_usd_total"] > 0 and s["unmet_demand_share"] < 0.2


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    budget=st.floats(2e7, 2e9),
    growth=st.floats(0.0, 2.0),
    ban_day=st.integers(10, 300),
    on_ban=st.sampled_from(["cancel", "strand"]),
    refund=st.floats(0.0, 1.0),
    capex_at=st.sampled_from(["order", "delivery"]),
    planner=st.sampled_from(["cheapest", "security_weighted", "domestic_share"]),
    removal=st.floats(0.0, 0.5),
    overrun=st.sampled_from(["forbid", "allow"]),
    sigma=st.floats(0.0, 0.5),
    technicians=st.one_of(st.none(), st.integers(1, 5)),
    cycle=st.one_of(st.none(), st.sampled_from(["licence_required", "banned", "buyer_ban"])),
    rent_usd_h=st.one_of(st.none(), st.floats(0.05, 0.5)),
    rent_term=st.integers(1, 90),
    deposit=st.one_of(st.none(), st.floats(0.0, 1.0)),
    cancel_after=st.one_of(st.none(), st.integers(0, 120)),
    on_cancel=st.sampled_from(["forfeit", "refund"]),
    incidence=st.floats(0.0, 1.0),
    block=st.one_of(st.none(), st.tuples(st.integers(5, 300), st.integers(0, 200),
                                          st.sampled_from(["buyer_ban", "customs_block", "discouraged"]))),
    importer_cycle=st.booleans(),
)
def test_conservation_random_scenarios(seed, budget, growth, ban_day, on_ban, refund, capex_at, planner,
                                       removal, overrun, sigma, technicians, cycle, rent_usd_h, rent_term,
                                       deposit, cancel_after, on_cancel, incidence, block, importer_cycle):
    import datetime as dt

    ban = (dt.date(2025, 1, 1) + dt.timedelta(days=ban_day)).isoformat()
    ch = copy.deepcopy(FLEET["channels"])
    ch["nvidia"].update(on_ban=on_ban, refund_share=refund, risk_per_year=0.5)
    ch["huawei"]["cap_per_month"] = 3000
    if rent_usd_h is not None:  # a rent channel (lead time, term, sometimes cheaper than buying)
        ch["cloud"] = {"kind": "rent", "min_term_days": rent_term, "us_controlled": True,
                       "lead_time_days": {"kind": "fixed", "value": 10}, "on_ban": on_ban,
                       "offers": [{"chip": "h20", "price_usd_per_chip_hour": rent_usd_h}]}
    cycles = []
    if cycle is not None:  # random approval/restriction cycles on top of the dated ban
        cycles.append({"mean_open_days": 60, "mean_closed_days": 40, "closed_state": cycle})
    if importer_cycle and cycle not in ("buyer_ban",):  # the importer side cycles on its own
        cycles.append({"mean_open_days": 50, "mean_closed_days": 30, "closed_state": "customs_block"})
    if cycles:
        ch["nvidia"]["random_cycle"] = cycles
    ch["nvidia"]["levy"], ch["nvidia"]["levy_incidence"] = 0.15, incidence
    if deposit is not None:  # payment terms: deposit at order, balance at delivery, buyer cancels
        ch["nvidia"]["payment"] = {"deposit_share": deposit, "cancel_held_after_days": cancel_after,
                                   "deposit_on_cancel": on_cancel}
    importer = []
    if block is not None:  # the importer side closes (and maybe reopens) apart from the exporter's
        d0, length, kind = block
        importer.append({"date": (dt.date(2025, 1, 1) + dt.timedelta(days=d0)).isoformat(),
                         "channel": "nvidia", "importer": kind, "compliance_share": 0.5})
        if d0 + length < 365:
            importer.append({"date": (dt.date(2025, 1, 1) + dt.timedelta(days=d0 + length)).isoformat(),
                             "channel": "nvidia", "importer": "open"})
    sc = scenario({
        "budget": {"total_usd": budget, "overrun": overrun},
        "demand": {"chat": {"tokens_per_s": 2.0e5, "growth_per_year": growth,
                            "forecast_error": {"sigma_per_year": sigma}}},
        "channels": ch,
        "events": [{"date": ban, "channel": "nvidia", "state": "banned"}] + importer
        + ([{"date": ban, "channel": "cloud", "state": "banned"}] if rent_usd_h is not None else []),
        "removals": [{"date": "2025-10-01", "share": removal}],
        "planner": {"kind": planner, "period_days": 30},
        "finance": {"server_overhead_usd_per_node": 8000, "capex_at": capex_at},
        "initial_fleet": [{"chip": "h20", "channel": "nvidia", "count": 200, "price_usd": 9000}],
    }, seed=seed, reliability={"repair": {"technicians": technicians, "spare_fraction": 0.02}})
    res = run(sc)
    check_conservation(res)
    check_money(res)


def test_ban_stops_deliveries_planner_switches_and_lift_resumes():
    """Banned from 2025-03-01 (in-transit orders cancelled), lifted 2025-07-01."""
    sc = scenario({"events": [{"date": "2025-03-01", "channel": "nvidia", "state": "banned"},
                              {"date": "2025-07-01", "channel": "nvidia", "state": "open"}]})
    res = run(sc)
    o = res.orders
    ban, lift = pd.Timestamp("2025-03-01"), pd.Timestamp("2025-07-01")
    nv = o[o["channel"] == "nvidia"]
    delivered = nv[nv["fate"] == "delivered"]
    assert not ((delivered["delivered_on"] >= ban) & (delivered["delivered_on"] < lift)).any()
    assert not ((nv["ordered_on"] >= ban) & (nv["ordered_on"] < lift)).any()
    assert (nv[nv["ordered_on"] < ban]["fate"].isin(["delivered", "cancelled"])).all()
    assert (nv["fate"] == "cancelled").any()            # what was in transit on the ban day
    hw = o[o["channel"] == "huawei"]
    assert (hw["ordered_on"] >= ban).any() and (hw["ordered_on"] < lift).any()  # planner buys others
    assert (nv["ordered_on"] >= lift).any()             # orders resume when lifted
    assert ((delivered["delivered_on"] >= lift)).any()
    check_conservation(res)


def test_ban_cancel_refunds_share_of_payment():
    ch = copy.deepcopy(FLEET["channels"])
    ch["nvidia"].update(on_ban="cancel", refund_share=0.5)
    res = run(scenario({"channels": ch, "events": [{"date": "2025-03-01", "channel": "nvidia", "state": "banned"}]}))
    o = res.orders
    gone = o[o["fate"] == "cancelled"]
    assert len(gone) >= 1
    paid = gone["count_chips"] * (gone["price_usd_per_chip"] + 8000 / 8) + gone["levy_usd"]
    np.testing.assert_allclose(gone["refund_usd"], 0.5 * paid)
    check_money(res)
    check_conservation(res)


def test_ban_strand_keeps_money_and_chips_away():
    ch = copy.deepcopy(FLEET["channels"])
    ch["nvidia"].update(on_ban="strand")
    res = run(scenario({"channels": ch, "events": [{"date": "2025-03-01", "channel": "nvidia", "state": "banned"}]}))
    st = res.orders[res.orders["fate"] == "stranded"]
    assert len(st) >= 1 and (st["refund_usd"] == 0).all()
    assert res.summary["fleet"]["chips_by_fate"]["stranded"] == st["count_chips"].sum()
    check_money(res)
    check_conservation(res)


def test_buyer_ban_licence_open_zero_shipped():
    sc = scenario({"events": [{"date": "2025-02-01", "channel": "nvidia", "state": "open", "levy": 0.15},
                              {"date": "2025-02-01", "channel": "nvidia", "state": "buyer_ban"}],
                   "channels": {**copy.deepcopy(FLEET["channels"]),
                                "nvidia": {**FLEET["channels"]["nvidia"], "initial_state": "licence_required"}}})
    res = run(sc)
    nv = res.orders[res.orders["channel"] == "nvidia"]
    assert nv.empty                                    # never ordered, never shipped
    tl = res.timeline
    assert tl[tl["chip"] == "h20"]["delivered"].max() == 0
    assert (tl[tl["chip"] == "h20"]["regime_state"].astype(str) == "buyer_ban").iloc[-1]
    assert (res.orders["channel"] == "huawei").any()


def test_licence_required_holds_orders_until_open():
    sc = scenario({"events": [{"date": "2025-01-10", "channel": "nvidia", "state": "licence_required"},
                              {"date": "2025-04-01", "channel": "nvidia", "state": "open"}]})
    res = run(sc)
    nv = res.orders[res.orders["channel"] == "nvidia"]
    first = nv.iloc[0]                                  # ordered day 0, due day 30, held
    assert first["fate"] == "delivered" and first["delivered_on"] == pd.Timestamp("2025-04-01")


def _unmet_after(res, date="2025-03-01") -> float:
    tl = res.timeline.drop_duplicates("date").set_index("date").loc[date:]
    return float(tl["unmet_tokens_per_s"].sum() / tl["demand_tokens_per_s"].sum())


def test_budget_ample_vs_halved():
    """Ample budget: unmet ~0 once the first orders land (day 60 on); half of what it spent: not."""
    start = [{"chip": "h20", "channel": "nvidia", "count": 350, "price_usd": 9000}]
    plan = {"kind": "cheapest", "period_days": 15, "horizon_days": 0, "headroom": 0.05}
    dmd = {"chat": {"tokens_per_s": 2.0e5, "growth_per_year": 3.0, "peak_to_mean": 1.3}}
    ample = run(scenario({"budget": {"total_usd": 5e8}, "initial_fleet": start, "planner": plan, "demand": dmd}))
    need = ample.summary["fleet"]["capex_usd_total"]
    assert _unmet_after(ample) < 0.001
    halved = run(scenario({"budget": {"total_usd": need / 2}, "initial_fleet": start, "planner": plan,
                           "demand": dmd}))
    assert halved.summary["fleet"]["capex_usd_total"] <= need / 2 + 1e-6
    assert _unmet_after(halved) > 10 * max(_unmet_after(ample), 0.001)
    assert halved.summary["fleet"]["peak_unmet_share"] > 0.05


def test_domestic_share_planner_hits_target():
    res = run(scenario({"planner": {"kind": "domestic_share", "target_share": 0.6}}))
    end = res.timeline[res.timeline["date"] == res.timeline["date"].max()].set_index("chip")
    cap = end["capacity_tokens_per_s"]
    assert cap["ascend-910b"] / cap.sum() > 0.45
    cheap = run(scenario())
    end_c = cheap.timeline[cheap.timeline["date"] == cheap.timeline["date"].max()].set_index("chip")
    assert end_c.loc["ascend-910b", "capacity_tokens_per_s"] < cap["ascend-910b"]


def test_same_seed_same_tables():
    a, b = run(scenario(seed=3)), run(scenario(seed=3))
    for name in ("timeline", "ledger", "orders", "events"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.summary == b.summary


def _bad(changes, serving=None):
    data = {"name": "t", "serving": copy.deepcopy(serving or SERVING), "fleet": {**copy.deepcopy(FLEET), **changes}}
    with pytest.raises((ScenarioError, ValueError)) as info:
        sc = Scenario.model_validate(data)
        fleetsim.api.check_references(sc)
    return str(info.value)


def test_bad_input_messages():
    ch = copy.deepcopy(FLEET["channels"])
    ch["huawei"]["offers"] = [{"chip": "ascend-999"}]
    assert "unknown chip 'ascend-999'" in _bad({"channels": ch})
    ch = copy.deepcopy(FLEET["channels"])
    ch["huawei"]["offers"] = [{"chip": "h100"}]
    assert "no replica type uses it" in _bad({"channels": ch})
    assert "unknown channel 'amd'" in _bad({"events": [{"date": "2025-03-01", "channel": "amd", "state": "banned"}]})
    assert "outside the horizon" in _bad({"events": [{"date": "2027-03-01", "channel": "nvidia", "state": "banned"}]})
    assert "sum to 1" in _bad({"budget": {"total_usd": 1e9, "schedule": [0.5, 0.4]}})
    # kind: optimal is available once branch `optimal` is merged (tests/test_optimal_fleet.py)


def test_bad_input_via_file_names_field(tmp_path):
    import yaml

    data = {"name": "t", "serving": SERVING, "fleet": {**FLEET, "events": [
        {"date": "2025-03-01", "channel": "amd", "state": "banned"}]}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as info:
        fleetsim.api.load_scenario(path)
    assert "bad.yaml" in str(info.value) and "fleet" in str(info.value)


def test_roadmap_generations_close_the_gap_and_are_bought_once_offered():
    from fleetsim.fleet.roadmap import generation_fraction

    ch = copy.deepcopy(FLEET["channels"])
    ch["huawei"]["roadmap"] = {"base": "ascend-910b", "target": "h100", "gap_closed_per_year": 0.5,
                               "first_date": "2025-04-01", "every_years": 0.25, "generations": 2}
    cap = copy.deepcopy(FLEET["capacity"])
    for k, rps in ((1, 7.0), (2, 9.0)):  # faster generations (given by hand: fast test)
        cap[f"dom-gen{k}"] = {"chat": {"goodput_rps": rps, "output_tokens_per_request": 200}}
    res = run(scenario({"channels": ch, "capacity": cap}))
    chips = res.scenario.catalog.chips
    r0 = 376 / 989
    assert chips["ascend-910b-gen1"]["bf16_tflops"] == pytest.approx(989 * generation_fraction(r0, 0.5, 0.25))
    assert chips["ascend-910b-gen2"]["bf16_tflops"] == pytest.approx(989 * (1 - (1 - r0) * 0.5 ** 0.5))
    o = res.orders
    for k, first in ((1, "2025-04-01"), (2, "2025-07-01")):
        mine = o[o["chip"] == f"ascend-910b-gen{k}"]
        assert len(mine) > 0 and (mine["ordered_on"] >= pd.Timestamp(first)).all()
    check_conservation(res)


def test_site_racks_and_power_limit_the_fleet():
    free = run(scenario())
    chips_free = free.timeline.groupby("date")[["installed", "on_order"]].sum().sum(axis=1).max()
    racks = run(scenario({"site": {"racks": 10, "chips_per_rack": 40}}))
    tl = racks.timeline.groupby("date")[["installed", "on_order"]].sum().sum(axis=1)
    assert tl.max() <= 400 < chips_free
    assert racks.summary["fleet"]["unmet_demand_share"] > free.summary["fleet"]["unmet_demand_share"]
    # 0.2 MW of facility power at TDP x PUE 1.2: 400 W H20s -> at most 416 chips
    power = run(scenario({"site": {"power_mw": 0.2}}))
    tl = power.timeline.groupby("date")[["installed", "on_order"]].sum().sum(axis=1)
    assert tl.max() <= 0.2e6 / (400 * 1.2) + 1


def test_retirement_at_end_of_life():
    res = run(scenario({"finance": {"server_overhead_usd_per_node": 8000, "life_years": 0.5},
                        "initial_fleet": [{"chip": "h20", "channel": "nvidia", "count": 300, "price_usd": 9000}]}))
    h20 = res.timeline[res.timeline["chip"] == "h20"].reset_index(drop=True)
    life = round(0.5 * 365)
    assert h20["retired"][life - 1] == 0
    assert h20["retired"][life] >= 300 - h20["lost"][life] - h20["in_repair"][life]
    dep = res.ledger[(res.ledger["kind"] == "depreciation") & (res.ledger["chip"] == "h20")]
    assert dep["amount_usd"].sum() <= h20["delivered"].iloc[-1] * (10000 + 8000 / 8)
    check_conservation(res)


def test_overrun_allowed_is_reported_and_revenue_gives_margin():
    start = [{"chip": "h20", "channel": "nvidia", "count": 300, "price_usd": 9000}]
    res = run(scenario({"budget": {"total_usd": 1e6, "overrun": "allow"}, "initial_fleet": start,
                        "finance": {"server_overhead_usd_per_node": 8000, "revenue_usd_per_mtok": 2.0}}))
    s = res.summary["fleet"]
    assert s["capex_usd_total"] > 1e6 and s["overrun_usd"] == pytest.approx(s["capex_usd_total"] - 1e6)
    assert s["revenue_usd"] == pytest.approx(2.0 * res.timeline["served_tokens_per_s"].sum() * 86400 / 1e6)
    costs = sum(s["ledger_usd_by_kind"][k] for k in ("depreciation", "power", "opex"))
    assert s["margin_usd"] == pytest.approx(s["revenue_usd"] - costs)
    check_money(res)
