"""Regime timelines: the built-in reference events and random approval/restriction cycles."""

from __future__ import annotations

import numpy as np

from fleetsim.fleet.regime import build_transitions, reference_timeline
from fleet_helpers import scenario


def test_reference_timeline_has_sources_and_maps_roles():
    rows = reference_timeline()["events"]
    assert all(r["source"] and r["date"] for r in rows)
    sc = scenario({"reference_events": {"h20": "nvidia"}})
    tr = build_transitions(sc.fleet, np.random.default_rng(0))
    got = [(t.day, t.state, t.levy) for t in tr]
    assert (98, "licence_required", None) in got          # 2025-04-09
    assert (219, "open", 0.15) in got                     # 2025-08-08, 15% levy
    assert (223, "buyer_ban", None) in got                # 2025-08-12
    assert all(t.channel == "nvidia" for t in tr)


def test_markov_cycle_mean_sojourns():
    """Exponential sojourns: mean open and closed durations within 10% over many cycles."""
    sc = scenario({"years": 10, "channels": {
        **scenario().fleet.model_dump(mode="json")["channels"],
        "nvidia": {"us_controlled": True, "offers": [{"chip": "h20"}],
                   "random_cycle": {"mean_open_days": 40, "mean_closed_days": 20,
                                    "closed_state": "banned"}}}})
    opens, closes = [], []
    for seed in range(20):
        tr = build_transitions(sc.fleet, np.random.default_rng(seed))
        days = [0] + [t.day for t in tr]
        states = ["open"] + [t.state for t in tr]
        assert all(a != b for a, b in zip(states, states[1:]))      # alternates
        for s, d0, d1 in zip(states, days, days[1:]):
            (opens if s == "open" else closes).append(d1 - d0)
    # integer days floor each time: subtract ~0.5 d of rounding from the exact means
    assert abs(np.mean(opens) - 40) < 4 and abs(np.mean(closes) - 20) < 2
