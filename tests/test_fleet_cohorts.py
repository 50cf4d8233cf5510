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
