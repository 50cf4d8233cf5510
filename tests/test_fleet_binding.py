"""What decided the result: each planning period's shortfall by cause (binding.parquet), unmet
demand attributed to those causes, and the console lines that name them."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fleetsim
from fleetsim.results.display import summary_text

from fleet_helpers import FLEET, scenario


def _unmet_from_timeline(res) -> float:
    """Unmet token/s-days counted from the timeline: demand minus what was served, per day."""
    tl = res.timeline
    by_day = tl.groupby("date", observed=True).agg(demand=("demand_tokens_per_s", "first"),
                                                    served=("served_tokens_per_s", "sum"))
    return float((by_day["demand"] - by_day["served"]).clip(lower=0).sum())


def _check_adds_up(res) -> dict:
    f = res.summary["fleet"]
    total = _unmet_from_timeline(res)
    causes = f["unmet_causes"]
    assert total > 0
    assert sum(c["share"] for c in causes) == pytest.approx(1.0, rel=1e-9)
    assert sum(c["unmet_mtok"] for c in causes) * 1e6 / 86400 == pytest.approx(total, rel=1e-6)
    flat = sum(v for k, v in f.items() if k.startswith("unmet_cause_share_"))
    assert flat == pytest.approx(1.0, rel=1e-9)
    return {(c["cause"], c["channel"]): c["share"] for c in causes}


def test_budget_binds_names_the_budget():
    res = fleetsim.run(scenario({"budget": {"total_usd": 2.0e6}}))
    shares = _check_adds_up(res)
    main = max(shares, key=shares.get)
    assert main[0] == "budget_total"
    b = res.binding
    assert set(b.columns) >= {"date", "period", "model", "cause", "channel", "wanted_tokens_per_s",
                              "ordered_tokens_per_s", "shortfall_tokens_per_s", "assumption"}
    assert (b["cause"] == "budget_total").any()
    # every plan's parts add up to what it wanted minus what it ordered
    for _, g in b.groupby(["period", "model"], observed=True):
        gap = max(0.0, g["wanted_tokens_per_s"].iloc[0] - g["ordered_tokens_per_s"].iloc[0])
        assert g["shortfall_tokens_per_s"].sum() == pytest.approx(gap, rel=1e-9, abs=1e-6)
    f = res.summary["fleet"]
    assert f["budget_first_bound_date"] is not None and f["budget_bound_periods"] > 0
    assert f["budget_unspent_usd"] < 0.05 * 2.0e6


def test_cap_binds_names_the_channel_cap_as_assumption():
    channels = {"nvidia": {**copy.deepcopy(FLEET["channels"]["nvidia"]), "cap_per_month": 20,
                           "assumed": ["cap_per_month"]}}
    res = fleetsim.run(scenario({"channels": channels}))
    shares = _check_adds_up(res)
    main = max(shares, key=shares.get)
    assert main == ("channel_cap", "nvidia")
    assert shares.get(("lead_time", ""), 0) > 0  # no fleet before the first order arrives
    f = res.summary["fleet"]
    assert f["budget_first_bound_date"] is None
    assert next(c for c in f["unmet_causes"] if c["cause"] == "channel_cap")["assumption"] is True
    text = summary_text(res.summary)
    assert "nvidia cap (ASSUMPTION)" in text
    assert "budget never bound" in text


def test_closed_regime_explains_at_most_its_cap_then_the_next_option():
    """The cheapest channel is banned; reopened it could add only its monthly cap (20 chips x
    800 tokens/s = 16,000 tokens/s, less what spares take); the rest is the open channel's cap."""
    channels = copy.deepcopy(FLEET["channels"])
    channels["nvidia"].update(initial_exporter="banned", cap_per_month=20)
    channels["huawei"]["cap_per_month"] = 30
    res = fleetsim.run(scenario({"channels": channels}))
    shares = _check_adds_up(res)
    assert max(shares, key=shares.get) == ("channel_cap", "huawei")
    assert 0 < shares[("regime_closed", "nvidia")] < 0.1
    b = res.binding
    closed = b[b["cause"] == "regime_closed"]["shortfall_tokens_per_s"]
    assert closed.max() <= 20 * 4.0 * 200 * (1 + 1e-9)
    # the line docs/fleet.md quotes
    assert ("unmet demand: 89% huawei cap, 7% lead time, 3% nvidia closed regime; budget never bound, "
            "USD 994 M unspent") in summary_text(res.summary)


def test_console_shows_budget_frozen_and_slo_lines():
    res = fleetsim.run(scenario({"budget": {"total_usd": 2.0e6}}))
    text = summary_text(res.summary)
    assert "unmet demand: " in text and "budget total budget" not in text
    assert "budget bound from 2025-" in text
    assert "frozen orders at the horizon: 0 chips" in text
    assert "stranded: 0 chips" in text
    assert "cost USD per million tokens" in text and "(depreciation + power + opex + rental)" in text


def test_binding_parquet_in_run_folder(tmp_path):
    import pandas as pd

    fleetsim.run(scenario({"budget": {"total_usd": 2.0e6}}), out_dir=tmp_path / "r")
    b = pd.read_parquet(tmp_path / "r" / "binding.parquet")
    assert len(b) and b["shortfall_tokens_per_s"].ge(0).all()
    from fleetsim.report.html import _fleet_body
    from fleetsim.report.plots import open_run

    _, tables = _fleet_body(open_run(tmp_path / "r"))
    section = next(t for t in tables if "What decided the result" in t)
    assert "budget_total" in section and "budget bound from 2025-" in section


# -- shadow prices of the optimal planner -------------------------------------------------------
@pytest.mark.parametrize("kw, key, value", [
    # demand 10 req/s for 2 periods, 1 req/s per 1-chip replica at USD 1, penalty USD 100 per
    # req/s-period: one more chip serves both periods (saves 200) and costs 1 -> 199 per chip,
    # per USD of budget (carried over), and 199 / 500 W per W of site power
    ({"budget_usd": np.array([3.0, 0.0])}, "budget", 199.0),
    ({"cap_chips": {"ch": np.array([4.0, 4.0])}}, "cap:ch", 199.0),
    ({"site_power_w": np.array([2500.0, 2500.0])}, "power", 199.0 / 500.0),
    ({"budget_usd": np.array([30.0, 30.0])}, "budget", 0.0),   # slack: worth nothing
])
def test_shadow_prices_match_hand_values(kw, key, value):
    from fleetsim.fleet.optimal.milp import solve
    from fleetsim.fleet.optimal.problem import Option, Pool, Problem

    pools = [Pool("p", "chip", 1, np.array([1.0]), power_w_per_replica=500.0)]
    opts = [Option("o", "ch", "p", price_usd_per_chip=1.0)]
    pr = Problem(["c"], pools, opts, 1.0, np.full((1, 1, 2), 10.0),
                 unmet_penalty_usd_per_rps_period=np.array([100.0]), **kw)
    assert solve(pr).shadow_prices[key] == pytest.approx(value, rel=1e-6, abs=1e-9)


def test_optimal_fleet_run_records_budget_shadow_price():
    res = fleetsim.run(scenario({"budget": {"total_usd": 2.0e6},
                                 "planner": {"kind": "optimal", "period_days": 60, "horizon_periods": 3}}))
    b = res.binding
    assert b["shadow_budget_usd_per_usd"].notna().all()
    assert (b["shadow_budget_usd_per_usd"] > 0).any()
    _check_adds_up(res)
    rule = fleetsim.run(scenario({"budget": {"total_usd": 2.0e6}}))
    assert rule.binding["shadow_budget_usd_per_usd"].isna().all()


def test_demand_above_plan_takes_what_no_plan_explains():
    """Realised demand far above the forecast (the planner never sees the surprise) and no limit
    binding: after the first lead time the unmet demand is `demand_above_plan`."""
    demand = {"chat": {**FLEET["demand"]["chat"], "forecast_error": {"sigma_per_year": 1.5}}}
    res = fleetsim.run(scenario({"demand": demand}, seed=3))
    shares = _check_adds_up(res)
    assert shares.get(("demand_above_plan", ""), 0) > 0.2
    assert not any(c.startswith("budget") or c == "channel_cap" for c, _ in shares)


def test_console_slo_attainment_from_windows():
    """A budget-starved fleet: the later windows are overloaded and miss the 95% SLO."""
    res = fleetsim.run(scenario({"budget": {"total_usd": 3.0e6},
                                 "windows": {"every_days": 60, "cell_replicas": 2, "duration_s": 60,
                                             "warmup_s": 10}}))
    f = res.summary["fleet"]
    w = res.windows
    att = w["attainment"].astype(float)
    assert f["window_attainment_worst"] == pytest.approx(att.min(), rel=1e-3, abs=5e-4)  # summary rounds to 3 places
    worst = w.iloc[int(att.values.argmin())]
    assert f["window_worst_chip"] == worst["chip"]
    missed = w[att < 0.95]["window"].nunique()
    assert 0 < missed < f["windows"]
    assert f["window_worst_date"] == str(worst["date"])[:10]
    assert f["windows_missed"] == missed
    text = summary_text(res.summary)
    assert f"SLO attainment in {f['windows']} serving windows: mean {f['window_attainment_mean']:.1%}" in text
    assert f"{missed} below the SLO percentile" in text


def test_unknown_assumed_field_is_refused():
    channels = copy.deepcopy(FLEET["channels"])
    channels["nvidia"]["assumed"] = ["cap_per_mnth"]
    with pytest.raises(Exception, match="cap_per_mnth.*allowed:.*cap_per_month"):
        scenario({"channels": channels})


# -- planner fixes (issue 19) ---------------------------------------------------------------------
def test_both_planners_replan_the_day_a_channel_closes_or_reopens():
    """Plans are every 30 days from 2025-01-01 (day 59 = 2025-03-01 is not one); a ban on
    2025-03-05 and a reopening on 2025-06-10 each bring a plan that same day."""
    events = [{"date": "2025-03-05", "channel": "nvidia", "exporter": "banned"},
              {"date": "2025-06-10", "channel": "nvidia", "exporter": "open"}]
    for planner in ({"kind": "cheapest", "period_days": 30, "horizon_days": 90, "headroom": 0.1},
                    {"kind": "optimal", "period_days": 30, "horizon_periods": 3}):
        res = fleetsim.run(scenario({"events": events, "planner": planner}))
        days = set(res.binding["date"].astype(str).str[:10])
        assert {"2025-03-05", "2025-06-10"} <= days, planner["kind"]


def test_optimal_plans_with_the_spare_share():
    """With 20% of chips held as spares, what the optimiser orders first serves 1 / (1 - 0.2)
    times fewer tokens per chip: it orders about that much more (within a few percent: whole
    replicas, and the plan may shift orders between periods). Without the spare share the two
    first orders were the same."""
    planner = {"kind": "optimal", "period_days": 60, "horizon_periods": 3}
    first = {}
    for sf in (0.0, 0.2):
        rel = {"repair": {"spare_fraction": sf}}
        res = fleetsim.run(scenario({"planner": planner}, reliability=rel))
        o = res.orders
        first[sf] = int(o[o["ordered_on"] == o["ordered_on"].min()]["count_chips"].sum())
    assert 0.97 / 0.8 <= first[0.2] / first[0.0] <= 1.06 / 0.8


def test_planner_counts_only_chips_in_service(monkeypatch):
    """Chips fail often and wait 30 days for repair: the plan counts what the daily step serves
    with, min(all chips, chips in service / (1 - spare share)), never every chip in repair (the
    state's tokens per replica already take the 5% spare share out)."""
    from fleetsim.fleet import sim as simmod

    seen = []
    orig = simmod._FleetSim._explain

    def spy(self, day, state, placed, committed_usd):
        co = self.cohorts
        alive = co.view("retire_day") > day + 60
        for pi, pn in enumerate(self.pool_names):
            sel = alive & (co.view("pool") == pi)
            seen.append((state.pools[pn].installed_replicas * self.tp[pi],
                         float(co.view("active")[sel].sum()), float(co.view("in_repair")[sel].sum())))
        return orig(self, day, state, placed, committed_usd)

    monkeypatch.setattr(simmod._FleetSim, "_explain", spy)
    rel = {"chips": {"h20": {"mtbf_h": 300.0}, "ascend-910b": {"mtbf_h": 300.0}},
           "repair": {"transient_share": 0.0, "lost_share": 0.0,
                      "repair_h": {"kind": "fixed", "value": 720}}}
    fleetsim.run(scenario(reliability=rel))
    assert any(rep > 0 for _, _, rep in seen)
    assert any(rep > 0.05 * (act + rep) for _, act, rep in seen)  # more in repair than the spares
    for inst, active, rep in seen:
        assert inst == pytest.approx(min(active + rep, active / 0.95))


def test_domestic_share_target_binds_when_the_fleet_already_covers_demand():
    """2,000 H20 cover the year's demand (about 650 replicas at its peak): the cheapest planner
    orders nothing, the domestic_share planner still buys Ascend chips up to half the requirement."""
    init = [{"chip": "h20", "channel": "nvidia", "count": 2000, "price_usd": 10000}]
    cheap = fleetsim.run(scenario({"initial_fleet": init}))
    assert cheap.orders[cheap.orders["chip"] == "ascend-910b"]["count_chips"].sum() == 0
    dom = fleetsim.run(scenario({"initial_fleet": init, "planner": {
        "kind": "domestic_share", "target_share": 0.5, "period_days": 30, "horizon_days": 90, "headroom": 0.1}}))
    o = dom.orders
    bought = int(o[(o["chip"] == "ascend-910b")]["count_chips"].sum())
    assert bought > 100
    tl = dom.timeline
    last = tl[tl["date"] == tl["date"].max()].set_index("chip")["capacity_tokens_per_s"]
    demand_peak = tl["demand_tokens_per_s"].max() * 1.3
    assert last["ascend-910b"] >= 0.4 * demand_peak


def test_console_over_futures_names_mean_causes_and_cost_basis():
    res = fleetsim.run(scenario({"budget": {"total_usd": 2.0e6}, "replications": 3}))
    text = summary_text(res.summary)
    assert "unmet demand by cause, mean share over the 100% of futures with any: 90% total budget, 10% lead time" in text
    assert "(depreciation + power + opex + rental)" in text
    # the budget, frozen and stranded orders over the futures, each with its interval
    from fleetsim.report.html import _decided_tables
    from fleetsim.results.rounding import format_interval

    h = res.summary["futures"]["headlines"]
    iv = lambda k, kind: format_interval(h[k]["mean"], h[k]["ci95_lo"], h[k]["ci95_hi"], kind)  # noqa: E731
    assert h["budget_bound_periods"]["mean"] > 0
    lines = [f"over the futures: budget bound in {iv('budget_bound_periods', 'plain')} planning periods a future, "
             f"{iv('budget_unspent_usd', 'usd')} unspent",
             f"over the futures: frozen orders at the horizon {iv('frozen_chips', 'count')} chips, "
             f"{iv('frozen_usd', 'usd')}; stranded {iv('stranded_chips', 'count')} chips"]
    for line in lines:
        assert "  " + line in text, line
    report = _decided_tables(res.summary["fleet"], res.summary["futures"])[0]
    assert lines[0] in report and "in future" in report and "mean share over the 100% of futures" in report
    loose = fleetsim.run(scenario({"budget": {"total_usd": 1.0e12}, "replications": 2, "years": 0.25})).summary
    assert "  over the futures: budget never bound in any future, USD " in summary_text(loose)
