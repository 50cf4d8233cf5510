"""What the optimal planner knows (`knows: model | scripted | oracle`): scripted events without a
probability are surprises (only the realised world has them); an event's `probability` is both
the planner's belief and the world's draw (own stream); `announced_on` makes it known; the oracle
plans on the realised future."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

import fleetsim
from fleetsim.fleet.optimal import adapter
from fleetsim.fleet.regime import build_transitions
from fleetsim.rng import stream
from fleet_helpers import scenario

BAN = {"date": "2025-06-01", "channel": "nvidia", "exporter": "banned"}


def _opt(**kw) -> dict:
    return {"kind": "optimal", "period_days": 30, "horizon_periods": 8, "futures": 200, **kw}


def _state(sc):
    """The PlanningState of the first planning day (the planner stopped before it solves)."""
    got = {}

    class Stop(Exception):
        pass

    def grab(self, state):
        got["state"] = state
        raise Stop

    real = adapter.OptimalPlanner.plan
    adapter.OptimalPlanner.plan = grab
    try:
        with pytest.raises(Stop):
            fleetsim.run(sc)
    finally:
        adapter.OptimalPlanner.plan = real
    return got["state"]


def _banned_share(sc, knows=None) -> float:
    state = _state(sc)
    cfg = sc.fleet.planner if knows is None else sc.fleet.planner.model_copy(update={"knows": knows})
    pr, _ = adapter.build_problem(state, cfg)
    return float(np.mean(pr.state("nvidia")[:, -1] == "banned"))


def test_scripted_event_is_a_surprise_by_default():
    """Default `knows: model`: no sampled future holds the scripted ban; `scripted` puts it in all."""
    sc = scenario({"planner": _opt(), "events": [BAN]}, seed=3)
    assert sc.fleet.planner.knows == "model"
    assert _banned_share(sc) == 0.0
    assert _banned_share(sc, "scripted") == 1.0


def test_event_probability_is_the_planners_belief():
    """probability 0.3: about 30% of the 200 futures hold the ban (4 binomial sigmas)."""
    sc = scenario({"planner": _opt(), "events": [{**BAN, "probability": 0.3}]}, seed=3)
    share = _banned_share(sc)
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 200)


def test_announced_event_is_known_as_the_world_has_it():
    """Announced before the planning day: every future holds it if the world drew it, none if not."""
    for seed in range(6):
        sc = scenario({"planner": _opt(), "events": [{**BAN, "probability": 0.5,
                                                      "announced_on": "2025-01-01"}]}, seed=seed)
        state = _state(sc)
        happened = any(tr.origin == "event" and tr.happened for tr in state.realised_transitions)
        pr, _ = adapter.build_problem(state, sc.fleet.planner)
        assert np.all((pr.state("nvidia")[:, -1] == "banned") == happened)


def test_world_draws_the_event_on_its_own_stream():
    """The realised world holds a probability-p event in about p of the seeds, on the stream
    fleet/event/<channel>/<date>/<n>; adding a random cycle elsewhere does not move the draw."""
    hits = []
    for seed in range(400):
        sc = scenario({"events": [{**BAN, "probability": 0.25}]}, seed=seed)
        tr = build_transitions(sc.fleet, stream(seed, "fleet", "regime"),
                               lambda n, side: stream(seed, "fleet", "regime", n, side),
                               lambda *key: stream(seed, "fleet", "event", *key))
        got = any(t.origin == "event" and t.happened for t in tr)
        assert got == (stream(seed, "fleet", "event", "nvidia", "2025-06-01", 0).random() < 0.25)
        hits.append(got)
    assert abs(np.mean(hits) - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 400)
    # without a probability the event always happens in the world
    sc = scenario({"events": [BAN]}, seed=0)
    tr = build_transitions(sc.fleet, stream(0, "fleet", "regime"), None, lambda *key: stream(0, "fleet", "event", *key))
    assert any(t.origin == "event" and t.happened for t in tr)


def test_an_event_drawn_not_to_happen_is_in_the_runs_events():
    """The run's events table says when the world drew a probable event not to happen, and the
    regime is left alone; when it happens, the regime changes."""
    seen = set()
    for seed in range(8):
        sc = scenario({"events": [{**BAN, "probability": 0.2, "note": "rumoured ban"}]}, seed=seed)
        ev = fleetsim.run(sc).events
        kinds = set(ev["kind"].astype(str))
        drawn = "event_not_drawn" in kinds
        banned = ev["detail"].astype(str).str.contains("exporter banned").any()
        assert drawn != banned
        if drawn:
            row = ev[ev["kind"].astype(str) == "event_not_drawn"].iloc[0]
            assert "probability 0.2" in row["detail"] and "rumoured ban" in row["detail"]
        seen.add(drawn)
    assert seen == {True, False}


def test_oracle_plans_on_the_realised_future():
    """`knows: oracle`: one future whose regime is the world's (the ban) and whose demand is the
    realised path (which differs from the forecast when the forecast has an error)."""
    fl = {"planner": _opt(knows="oracle"), "events": [BAN]}
    sc = scenario(fl, seed=3)
    sc.fleet.demand["chat"].forecast_error.sigma_per_year = 0.3
    state = _state(sc)
    pr, _ = adapter.build_problem(state, sc.fleet.planner)
    assert pr.K == 1
    assert pr.state("nvidia")[0, -1] == "banned"
    peaks = state.realised_peak_tokens_per_s["chat"]
    assert peaks != state.forecast_peak_tokens_per_s["chat"][: len(peaks)]
    fc, _ = adapter.build_problem(state, sc.fleet.planner.model_copy(update={"knows": "model", "futures": 1}))
    assert not np.allclose(pr.demand_rps, fc.demand_rps)


@pytest.mark.parametrize("bad, field, words", [
    ({"planner": {"kind": "optimal", "known_events": True}}, "planner", "known_events was replaced by knows"),
    ({"events": [{**BAN, "probability": 1.5}]}, "probability", "less than or equal to 1"),
    ({"events": [{**BAN, "probability": 0}]}, "probability", "greater than 0"),
    ({"events": [{**BAN, "announced_on": "2025-07-01"}]}, "events", "after the event's date"),
    ({"planner": {"kind": "optimal", "knows": "everything"}}, "knows", "'model', 'scripted' or 'oracle'"),
])
def test_bad_knowledge_inputs_are_refused(bad, field, words):
    with pytest.raises(ValidationError) as e:
        scenario(bad)
    text = str(e.value)
    assert field in text and words in text, text


def test_bad_input_through_the_loader_names_the_field():
    """A scenario with the old field: one ScenarioError naming file and field, no traceback."""
    from fleetsim.errors import ScenarioError

    with pytest.raises(ScenarioError) as e:
        fleetsim.load_scenario("scenarios/quickstart.yaml",
                               ["fleet.planner={kind: optimal, known_events: true}"])
    assert "fleet.planner" in str(e.value) and "known_events was replaced by knows" in str(e.value)


def test_plan_on_mean_future_is_the_expected_value_plan():
    """plan_on: mean_future plans each period on one future (the mean of its K), so every plan
    record says one future; the default plans on all K."""
    fl = {"planner": _opt(futures=4, horizon_periods=4)}
    sc = scenario(fl, seed=2)
    ev = scenario({"planner": _opt(futures=4, horizon_periods=4, plan_on="mean_future")}, seed=2)
    plans = {k: fleetsim.run(s).summary["fleet"]["planner_report"]["plans"] for k, s in (("sp", sc), ("ev", ev))}
    assert {p["futures"] for p in plans["sp"]} == {4}
    assert {p["futures"] for p in plans["ev"]} == {1}


def test_oracle_with_a_horizon_past_the_forecast_runs_to_the_end():
    """The oracle's last plans look past the realised path and past the forecast (a long
    horizon near the end of the run: the reference case's 24 periods from day 1,050 on crashed a
    rolling hedge with a reshape error); past the forecast the peak is held flat, as the forecast
    the other planners see is."""
    fl = {"planner": _opt(knows="oracle", futures=1, horizon_periods=40)}
    sc = scenario(fl, seed=3)
    res = fleetsim.run(sc)
    assert res.summary["fleet"]["demand_mtok"] > 0
