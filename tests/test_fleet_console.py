"""Fleet console lines of issue 18: when the budget was fully committed, and the serving
windows' SLO attainment (mean, worst window with its date and chip kind, windows that missed)."""

from __future__ import annotations

import types

import fleetsim
from fleet_helpers import scenario
from fleetsim.fleet.records import _worst_window
from fleetsim.results.display import fleet_text


def test_budget_date_when_it_binds_and_never_when_it_does_not():
    tight = fleetsim.run(scenario({"budget": {"total_usd": 2.0e6}})).summary
    assert tight["fleet"]["budget_exhausted_on"] is not None
    assert f"budget fully committed: {tight['fleet']['budget_exhausted_on']}" in fleet_text(tight)
    loose = fleetsim.run(scenario({"budget": {"total_usd": 1.0e12}})).summary
    assert loose["fleet"]["budget_exhausted_on"] is None
    assert "budget fully committed: never" in fleet_text(loose)


def test_worst_window_and_misses():
    sc = scenario()
    sim = types.SimpleNamespace(serving=sc.serving)  # chat's SLO: 95th percentile
    windows = {"attainment": [0.99, 0.90, None, 0.97, 0.93], "date": ["2025-01-31"] * 2 + ["2025-03-02"] * 3,
               "chip": ["h20", "ascend-910b", "h20", "h20", "ascend-910b"], "workload": ["chat"] * 5}
    out = _worst_window(sim, windows)
    assert out == {"window_attainment_worst": 0.9, "window_worst_date": "2025-01-31",
                   "window_worst_chip": "ascend-910b", "windows_missed": 2}
