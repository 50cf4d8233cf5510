"""Size before the start: a run's time and memory are estimated and checked against limits for
serving windows, cohort runs and a fleet's serving windows (issue 23: a 10-year fleet at 4e9
tokens/s passed validate, then its windows ran for minutes and took 10.75 GB)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import fleetsim
from fleetsim import sizing
from fleetsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "scenarios" / "quickstart.yaml")
BIG = ["--set", "fleet.years=10", "--set", "fleet.demand.chat.tokens_per_s=4e9", "--set", "fleet.budget.schedule=even"]


def test_the_ten_year_fleet_is_refused_with_what_to_change(user_error):
    """Demand doubles every year for ten years on a budget and supply caps that buy a small
    share of it: each window's cell would queue tens of thousands of times its capacity."""
    r = CliRunner().invoke(main, ["validate", QUICK, *BIG])
    msg = user_error(r, file=QUICK, field="fleet.demand",
                     contains=["GB of memory", "20 fleet serving windows", "To shrink it",
                               "fleet.budget.total_usd", "fleet.windows.duration_s"])
    assert "FLEETSIM_MAX_MEMORY_GB" in msg
    # the figures docs/fleet.md quotes for this command
    assert "about 199 GB of memory and 10.9 h" in msg and "up to 2.48e+08 requests each" in msg
    assert "demand up to 3.53e+04x" in msg
    doc = " ".join((ROOT / "docs" / "fleet.md").read_text().split())
    assert "--set fleet.budget.schedule=even" in doc and "up to 2.5e8 requests each" in doc
    assert "3.5e4 times" in doc and "about 199 GB and 11 h" in doc
    r = CliRunner().invoke(main, ["run", QUICK, *BIG, "-q", "--no-plots"])
    user_error(r, field="fleet.demand")


def test_past_the_time_warning_validate_and_run_say_so(monkeypatch):
    monkeypatch.setenv("FLEETSIM_MAX_MEMORY_GB", "1000")
    r = CliRunner().invoke(main, ["validate", QUICK, *BIG])
    assert r.exit_code == 0, r.output
    assert "size estimate: about" in r.output and "warning: this run may take about" in r.output
    assert "lower fleet.demand" in r.output


def test_every_shipped_scenario_is_small():
    for path in sorted((ROOT / "scenarios").glob("*.yaml")) + [ROOT / "scenarios" / "examples" / "melange_toy.yaml"]:
        est = fleetsim.api.size_estimate(fleetsim.load_scenario(path))
        assert est.peak_bytes < 1e9 and est.time_s < sizing.WARN_TIME_S, (path.name, est.text())


def test_serving_window_estimate_counts_its_requests():
    """A serving window's request count is rate x duration: the estimate's, and the run's within
    Poisson noise (5 standard deviations)."""
    scen = fleetsim.load_scenario(ROOT / "scenarios" / "serving_quickstart.yaml", ["serving.duration_s=60", "serving.warmup_s=10"])
    est = fleetsim.api.size_estimate(scen)
    expected = 4.5 * 60
    assert f"serving window ({expected:.3g} requests)" in est.text()
    n = len(fleetsim.run(scen).requests)
    assert abs(n - expected) < 5 * expected ** 0.5
    assert est.peak_bytes == pytest.approx(sizing.BASE_BYTES + expected * sizing.BYTES_PER_REQUEST)


def test_a_cohort_run_past_the_memory_limit_is_refused(monkeypatch, user_error):
    monkeypatch.setenv("FLEETSIM_MAX_MEMORY_GB", "0.3")
    path = str(ROOT / "scenarios" / "llama3-reliability.yaml")
    r = CliRunner().invoke(main, ["validate", path, "--set", "reliability.cohort_run.cohorts.0.count=2000000"])
    user_error(r, field="reliability.cohort_run.cohorts", contains=["cohort run", "representative sample"])


def test_a_fleet_window_bigger_than_estimated_stops_before_it_runs(monkeypatch):
    """The estimate bounds capacity from above; a window found too big at run time is refused."""
    from fleetsim.errors import ScenarioError
    from fleetsim.fleet.windows import _check_window_size
    from fleetsim.scenario.fleet import WindowsConfig

    monkeypatch.setenv("FLEETSIM_MAX_MEMORY_GB", "1")
    wcfg = WindowsConfig(duration_s=60)
    _check_window_size({"chat": 1000.0}, wcfg, {"window": 3})  # 60k requests: fine
    with pytest.raises(ScenarioError, match="fleet serving window 3 would simulate about 6e"):
        _check_window_size({"chat": 1e5}, wcfg, {"window": 3})
