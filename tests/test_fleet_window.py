"""The serving window a fleet state drives, and the scenario API around it:
with_overrides, validated edits, --set into a misspelled pool, serving beside a cohort run."""

from __future__ import annotations

import numpy as np
import pytest

import fleetsim
from fleetsim.errors import ScenarioError
from fleetsim.serving.metrics import summarise
from fleetsim.serving.window import run_fleet_window


@pytest.fixture()
def two_class(quickstart_path):
    """Quickstart with a second, diurnal class on the same model."""
    return fleetsim.load_scenario(quickstart_path).with_overrides([
        "serving.workloads.batch={model: qwen2.5-72b, arrival: {kind: diurnal, mean_rate_per_s: 1.0, "
        "peak_to_mean: 1.8, peak_hour: 14}, prompt_tokens: {kind: fixed, value: 500}, "
        "output_tokens: {kind: fixed, value: 50}, slo: {ttft_s: 10, tpot_s: 0.5, percentile: 90}}",
        "serving.duration_s=400", "serving.warmup_s=40",
    ])


def test_per_class_rates_and_replicas_up(two_class):
    res = run_fleet_window(two_class, replicas_up={"h20": 2, "domestic": 3},
                           rate_per_s={"chat": 2.0, "batch": 0.5}, hour_of_day=2.0, seed=4)
    sm = summarise(res)
    assert sm["pools"]["h20"]["replicas"] == 2 and sm["pools"]["domestic"]["replicas"] == 3
    n = {c: int(np.sum(res.requests.class_idx == i)) for i, c in enumerate(res.requests.class_names)}
    assert abs(n["chat"] - 800) < 4 * np.sqrt(800)
    # the diurnal class at 02:00 runs below its daily mean (peak 14:00, peak/mean 1.8)
    assert n["batch"] < 0.5 * 400 * 0.7
    # a class not named sends nothing; a pool not named has no replicas
    res2 = run_fleet_window(two_class, replicas_up={"h20": 1}, rate_per_s={"batch": 0.5},
                            hour_of_day=14.0, seed=4)
    assert set(res2.requests.class_names[i] for i in np.unique(res2.requests.class_idx)) == {"batch"}
    assert summarise(res2)["pools"]["domestic"]["replicas"] == 0


def test_hour_of_day_moves_arrivals_and_halls(two_class):
    kw = dict(replicas_up={"h20": 2, "domestic": 2}, rate_per_s={"batch": 1.0}, seed=9)
    peak = run_fleet_window(two_class, hour_of_day=14.0, **kw)
    trough = run_fleet_window(two_class, hour_of_day=2.0, **kw)
    assert len(peak.requests) > 1.5 * len(trough.requests)
    hot = two_class.with_overrides(["reliability={halls: {default: {ambient_c: 30, daily_swing_c: 20, "
                                    "peak_hour: 15}}}"])
    day = run_fleet_window(hot, hour_of_day=15.0, **kw).reliability["h20"]
    night = run_fleet_window(hot, hour_of_day=3.0, **kw).reliability["h20"]
    assert day["mean_temp_c"] > night["mean_temp_c"] + 10


def test_start_temperatures_and_spares_reach_the_window(two_class):
    kw = dict(replicas_up={"h20": 2, "domestic": 2}, rate_per_s={"chat": 1.0}, hour_of_day=10.0, seed=1)
    warm = run_fleet_window(two_class, start_temp_c={"h20": 80.0}, **kw).reliability
    cold = run_fleet_window(two_class, start_temp_c={"h20": 30.0}, **kw).reliability
    assert warm["h20"]["max_temp_c"] >= 80.0 > cold["h20"]["max_temp_c"]
    assert warm["h20"]["mean_temp_c"] > cold["h20"]["mean_temp_c"] + 3
    # every replica crashes at once (tiny MTBF), no spares on the shelf: none is back in 400 s
    crashy = two_class.with_overrides([
        "reliability={chips: {h20: {mtbf_h: 0.01}}, repair: {transient_share: 0.0, "
        "swap_h: {kind: fixed, value: 0.01}}}"])
    res = run_fleet_window(crashy, spares={"h20": 0}, **kw)
    assert res.reliability["h20"]["repairs"]["crashes"] > 0
    assert res.reliability["h20"]["repairs"]["spare_swap"] == 0
    with_spares = run_fleet_window(crashy, spares={"h20": 50}, **kw)
    assert with_spares.reliability["h20"]["repairs"]["spare_swap"] > 0


def test_unknown_names_are_refused(two_class):
    with pytest.raises(ScenarioError, match="did you mean 'h20'"):
        run_fleet_window(two_class, replicas_up={"h2O": 1}, rate_per_s={}, hour_of_day=0, seed=0)
    with pytest.raises(ScenarioError, match="unknown workload"):
        run_fleet_window(two_class, replicas_up={}, rate_per_s={"chatt": 1.0}, hour_of_day=0, seed=0)


def test_with_overrides_revalidates_and_keeps_source(quickstart_path):
    scen = fleetsim.load_scenario(quickstart_path)
    other = scen.with_overrides(["serving.pools.h20.replicas=2", "seed=11"])
    assert other.serving.pools["h20"].replicas == 2 and other.seed == 11
    assert scen.serving.pools["h20"].replicas == 4 and scen.seed == 7  # the original is unchanged
    assert other.source_path == scen.source_path and other.base_dir == scen.base_dir
    with pytest.raises(ScenarioError, match="greater than or equal to 0"):
        scen.with_overrides(["serving.pools.h20.replicas=-3"])


def test_in_place_edit_is_validated(quickstart_path):
    scen = fleetsim.load_scenario(quickstart_path)
    with pytest.raises(ScenarioError):
        scen.serving.pools["h20"].replicas = -3
    with pytest.raises(ScenarioError):
        scen.serving.duration_s = "long"
    assert scen.serving.pools["h20"].replicas == 4


def test_set_into_a_misspelled_pool_is_an_error(quickstart_path, runner):
    from fleetsim.cli import main

    with pytest.raises(ScenarioError, match="no entry 'h2O' \\(did you mean 'h20'\\?\\)"):
        fleetsim.load_scenario(quickstart_path, ["serving.pools.h2O.replicas=2"])
    res = runner.invoke(main, ["run", str(quickstart_path), "--set", "serving.pools.h2O.replicas=2"])
    assert res.exit_code == 2 and "did you mean 'h20'" in res.output
    # the built-in catalog and the default hall exist without being written
    fleetsim.load_scenario(quickstart_path, ["catalog.chips.h20.tdp_w=350",
                                             "reliability.halls.default.ambient_c=30"])


def test_serving_beside_a_cohort_run(quickstart_path, tmp_path):
    scen = fleetsim.load_scenario(quickstart_path, [
        "serving.duration_s=60", "serving.warmup_s=10",
        "reliability={cohort_run: {days: 2, cohorts: [{chip: h20, count: 64, utilisation: 0.7}]}}"])
    res = fleetsim.run(scen, out_dir=tmp_path / "both")
    assert "classes" in res.summary and "cohort_run" in res.summary
    assert res.timeline is not None and (tmp_path / "both" / "timeline.parquet").exists()


def test_start_hour_moves_diurnal_arrivals(two_class):
    """serving.start_hour is one clock for arrivals and halls: at 14:00 the diurnal class peaks."""
    from fleetsim.serving.window import generate_requests

    counts = {}
    for h in (2.0, 14.0):
        cfg = two_class.with_overrides([f"serving.start_hour={h}"]).serving
        req, _, _ = generate_requests(cfg, 3, two_class.base_dir)
        counts[h] = int(np.sum(np.array(req.class_names)[req.class_idx] == "batch"))
    assert counts[14.0] > 1.5 * counts[2.0]
