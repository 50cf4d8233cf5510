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
    got = [(t.day, t.exporter, t.importer, t.levy) for t in tr]
    assert (98, "licence_required", None, None) in got    # 2025-04-09, the US side
    assert (219, "open", None, 0.15) in got               # 2025-08-08, 15% levy
    assert (223, None, "buyer_ban", None) in got          # 2025-08-12, the Chinese side
    assert all(t.channel == "nvidia" for t in tr)


def test_reference_2026_rows_marked_and_secondary_flagged():
    """The round-3 rows carry `added: 2026`; rows from aggregators say SECONDARY in their source."""
    rows = reference_timeline()["events"]
    added = [r for r in rows if r.get("added") == 2026]
    assert len(added) >= 7 and all(str(r["date"]) >= "2025-12-08" for r in added)
    sc = scenario({"years": 2, "reference_events": {"h200": "nvidia"}})
    tr = build_transitions(sc.fleet, np.random.default_rng(0))
    secondary = [t for t in tr if t.source.startswith("SECONDARY: ")]
    n_sec = sum(1 for r in rows if r.get("secondary") and r["role"] == "h200")
    assert len(secondary) == n_sec >= 3
    block = [t for t in tr if t.importer == "customs_block"]
    assert [t.day for t in block] == [377]                # 2026-01-13: Chinese customs
    paused = [t for t in tr if t.cap_per_month == 0]
    assert paused and paused[0].source.startswith("SECONDARY")


def test_old_one_state_form_maps_to_its_side():
    """`state:` of older files: licence_required/banned -> exporter, buyer_ban -> importer,
    open -> both sides open; initial_state likewise."""
    from fleetsim.scenario.fleet import ChannelConfig, RegimeEvent

    ev = lambda st: RegimeEvent(date="2025-02-01", channel="nvidia", state=st).sides
    assert ev("banned") == ("banned", None) and ev("buyer_ban") == (None, "buyer_ban")
    assert ev("open") == ("open", "open") and ev("licence_required") == ("licence_required", None)
    ch = ChannelConfig(offers=[{"chip": "h20"}], initial_state="buyer_ban")
    assert (ch.initial_exporter, ch.initial_importer) == ("open", "buyer_ban")
    import pytest
    with pytest.raises(ValueError):
        RegimeEvent(date="2025-02-01", channel="nvidia", state="open", importer="buyer_ban")


def test_cycles_per_side_are_independent():
    """A list of cycles, one per side: each side's transitions alternate on their own."""
    sc = scenario({"years": 5, "channels": {
        **scenario().fleet.model_dump(mode="json")["channels"],
        "nvidia": {"us_controlled": True, "offers": [{"chip": "h20"}],
                   "random_cycle": [{"mean_open_days": 60, "mean_closed_days": 30, "closed_state": "banned"},
                                    {"mean_open_days": 50, "mean_closed_days": 20,
                                     "closed_state": "customs_block"}]}}})
    tr = build_transitions(sc.fleet, np.random.default_rng(1))
    exp = ["open"] + [t.exporter for t in tr if t.exporter]
    imp = ["open"] + [t.importer for t in tr if t.importer]
    assert len(exp) > 5 and len(imp) > 5
    assert all(t.exporter is None or t.importer is None for t in tr)
    assert all(a != b for a, b in zip(exp, exp[1:])) and set(exp) == {"open", "banned"}
    assert all(a != b for a, b in zip(imp, imp[1:])) and set(imp) == {"open", "customs_block"}


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
        states = ["open"] + [t.exporter for t in tr]
        assert all(a != b for a, b in zip(states, states[1:]))      # alternates
        for s, d0, d1 in zip(states, days, days[1:]):
            (opens if s == "open" else closes).append(d1 - d0)
    # integer days floor each time: subtract ~0.5 d of rounding from the exact means
    assert abs(np.mean(opens) - 40) < 4 and abs(np.mean(closes) - 20) < 2


def test_reference_case_h200_sides_through_mid_2026():
    """scenarios/alibaba_2025.yaml with the built-in timeline: on 2026-05-15 (the USTR's "no H200
    deliveries") the H200 channel's US side is open with its 25% fee and the Chinese side blocks;
    the H20 channel's US side is open (15%) and the Chinese side bans buying."""
    from pathlib import Path

    import fleetsim
    from fleetsim.fleet.regime import combined_state

    sc = fleetsim.load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "alibaba_2025.yaml")
    f = sc.fleet
    tr = build_transitions(f, np.random.default_rng(0))
    cut = (np.datetime64("2026-05-15") - np.datetime64(f.start)).astype(int)
    state = {n: [c.initial_exporter, c.initial_importer, c.levy] for n, c in f.channels.items()}
    for t in tr:
        if t.day <= cut:
            s = state[t.channel]
            s[0], s[1] = t.exporter or s[0], t.importer or s[1]
            s[2] = s[2] if t.levy is None else t.levy
    assert state["nvidia-h200"] == ["open", "customs_block", 0.25]
    assert state["nvidia-h20"] == ["open", "buyer_ban", 0.15]
    assert combined_state(*state["nvidia-h200"][:2]) == "buyer_ban"
    assert f.channels["nvidia-h200"].payment.deposit_share < 1


def test_cycle_streams_named_by_channel_and_side():
    """Common random numbers: with named streams, adding an importer cycle leaves the exporter
    cycle's transitions exactly as they were."""
    from fleetsim.rng import stream

    ch = scenario().fleet.model_dump(mode="json")["channels"]
    exp = {"mean_open_days": 60, "mean_closed_days": 30, "closed_state": "banned"}
    imp = {"mean_open_days": 50, "mean_closed_days": 20, "closed_state": "buyer_ban"}
    named = lambda n, side: stream(7, "fleet", "regime", n, side)
    got = []
    for cycles in ([exp], [imp, exp]):  # the importer cycle listed first
        sc = scenario({"years": 3, "channels": {**ch, "nvidia": {**ch["nvidia"], "random_cycle": cycles}}})
        tr = build_transitions(sc.fleet, np.random.default_rng(0), named)
        got.append([(t.day, t.exporter) for t in tr if t.exporter])
    assert got[0] == got[1] and len(got[0]) > 3
