"""Cohort engines: the event engine's shared repair pool in global time order; the fleet's
daily CohortFleet conserves chips and follows the load."""

from __future__ import annotations

import numpy as np

from fleetsim.catalog import load_chips
from fleetsim.reliability import cohort
from fleetsim.reliability.cohort import CohortFleet, resolve_chip
from fleetsim.scenario.reliability import HallConfig, ReliabilityConfig, RepairConfig


def test_technicians_see_repairs_in_global_time_order(monkeypatch):
    seen: list[float] = []
    orig = cohort._Technicians.assign

    def spy(self, arrival_s, duration_s):
        seen.append(arrival_s)
        return orig(self, arrival_s, duration_s)

    monkeypatch.setattr(cohort._Technicians, "assign", spy)
    cfg = ReliabilityConfig.model_validate({
        "chips": {"h100": {"mtbf_h": 300.0}},
        "repair": {"technicians": 1, "transient_share": 0.0},
        "cohort_run": {"days": 20, "cohorts": [{"chip": "h100", "count": 400, "utilisation": 0.9},
                                           {"chip": "h100", "count": 400, "utilisation": 0.5}]}})
    cohort.run_reliability(cfg, load_chips(), np.random.default_rng(1))
    assert len(seen) > 100
    assert np.all(np.diff(seen) >= 0)


def test_cohort_fleet_conserves_and_load_raises_hazard():
    rel = ReliabilityConfig()
    chips = load_chips()
    p = resolve_chip(rel, "h100", chips)
    fleet = CohortFleet(["a", "b"], [p, p], [HallConfig(), HallConfig()], RepairConfig(technicians=2),
                        np.random.default_rng(0))
    fleet.add(0, 0, 0, 50_000, 0, 10_000, 1.0)
    fleet.add(1, 0, 0, 50_000, 0, 10_000, 1.0)
    crashes = np.zeros(2)
    for day in range(200):
        out = fleet.step(day, np.array([1.0, 0.1]), 0.05)
        crashes += out["transient"] + out["hardware"]
        v = fleet.view
        assert np.array_equal(v("active") + v("in_repair") + v("lost") + v("retired") + v("removed"),
                              v("delivered"))
    assert out["hazard_per_chip_h"][0] > out["hazard_per_chip_h"][1]  # hotter at full load
    assert crashes[0] > crashes[1]
    assert fleet.counts["lost"] > 0 and fleet.counts["repaired"] > 0


def test_crash_rate_memo_is_shared_by_physics_and_matches_a_fresh_solve():
    """Futures of one process share the crash-rate memo of a pool with the same chip physics and
    hall cooling (not of another chip or a better-cooled hall), and a shared entry is the value a
    fresh equilibrium solve gives."""
    from fleetsim.reliability.hazard import hazard_per_h
    from fleetsim.reliability.thermal import equilibrium

    rel, chips = ReliabilityConfig(), load_chips()
    h100, other = resolve_chip(rel, "h100", chips), resolve_chip(rel, "mi300x", chips)
    cool = HallConfig(cooling_factor=0.8)
    make = lambda: CohortFleet(["a", "b", "c"], [h100, h100, other], [HallConfig(), cool, HallConfig()],
                               RepairConfig(), np.random.default_rng(0))
    a, b = make(), make()
    assert a._rates[0] is b._rates[0]          # same chip, same hall: one memo for both futures
    assert a._rates[0] is not a._rates[1]      # the better-cooled hall solves its own
    assert a._rates[0] is not a._rates[2]      # another chip too
    got = a._rate(1, 0.7371, 24.04)
    assert b._rates[1][(0.737, 24.0)] == got   # the other future reads it
    temp, _ = equilibrium(h100, 0.737, 24.0, 0.8)
    assert got == float(hazard_per_h(h100, temp))
    assert got != a._rate(0, 0.7371, 24.04)    # the cooling factor is in the key
