"""Sweeps: axes, seeds, store, resume after a real SIGTERM, failures recorded, clean refusals.

A tiny serving scenario (one H20 pool, 20 simulated seconds) keeps each run under ~0.1 s; the
kill test uses a longer window so a run is still in flight when the signal lands.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fleetsim import api
from fleetsim.cli import main
from fleetsim.sweep import runner
from fleetsim.sweep.executors import SerialExecutor
from fleetsim.sweep.spec import SweepSpec, parse_param, parse_range, point_seed, settle_integer_axes
from fleetsim.sweep.summary import pareto_front, t_interval

TINY = """\
name: tiny
seed: 3
serving:
  duration_s: {duration}
  warmup_s: 2
  workloads:
    chat:
      model: qwen2.5-72b
      arrival: {{kind: poisson, rate_per_s: 3}}
      prompt_tokens: {{kind: lognormal, median: 500, sigma: 0.8, max: 4000}}
      output_tokens: {{kind: lognormal, median: 100, sigma: 0.7, max: 500}}
      slo: {{ttft_s: 2.0, tpot_s: 0.1, percentile: 95}}
  pools:
    h20:
      chip: h20
      model: qwen2.5-72b
      tp: 4
      replicas: 2
"""
REPLICAS = "serving.pools.h20.replicas"
RATE = "serving.workloads.chat.arrival.rate_per_s"


def tiny(tmp_path: Path, duration: float = 20) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(duration=duration))
    return path


def spec(seeds: int = 2, **kw) -> SweepSpec:
    return SweepSpec(params={REPLICAS: [1, 2]}, ranges=dict([parse_range(f"{RATE}=2:6:3")]), seeds=seeds, **kw)


def serial(path: Path, out: Path, s: SweepSpec, **kw):
    return runner.run_sweep(path, s, out, executor=SerialExecutor(), quiet=True, plots=False, **kw)


def test_axes_expand_to_the_cartesian_product_in_order():
    s = spec()
    pts = s.points(0)
    assert pts == [{REPLICAS: r, RATE: v} for r in (1, 2) for v in (2.0, 4.0, 6.0)]
    s = SweepSpec(ranges=dict([parse_range(f"{REPLICAS}=1:4:3"), parse_range(f"{RATE}=1:4:3")]))
    settle_integer_axes(s, {"serving": {"pools": {"h20": {"replicas": 2}},
                                        "workloads": {"chat": {"arrival": {"rate_per_s": 3.0}}}}})
    pts = s.points(0)
    assert [p[REPLICAS] for p in pts[::3]] == [1, 2, 4] and all(isinstance(p[REPLICAS], int) for p in pts)
    assert [p[RATE] for p in pts[:3]] == [1.0, 2.5, 4.0]  # a float field keeps its fractions
    assert parse_param("a.b=1,x,true")[1] == [1, "x", True]


def test_latin_hypercube_is_seeded_and_stratified():
    s = SweepSpec(ranges=dict([parse_range(f"{RATE}=2:6"), parse_range("serving.duration_s=10.0:30.0")]),
                  sample=8)
    a, b, c = s.points(1), s.points(1), s.points(2)
    assert a == b and a != c
    rates = np.array([p[RATE] for p in a])
    assert rates.min() >= 2 and rates.max() <= 6
    # Latin hypercube: exactly one sample in each of the 8 equal strata of every axis
    for axis, lo, hi in ((RATE, 2, 6), ("serving.duration_s", 10, 30)):
        x = np.array([p[axis] for p in a])
        strata = np.floor((x - lo) / (hi - lo) * 8).clip(0, 7)
        assert sorted(strata) == list(range(8))


def test_seeds_are_per_point_and_replicate_and_stable():
    pts = spec().points(0)
    seeds = [point_seed(7, p, r) for p in pts for r in range(3)]
    assert len(set(seeds)) == len(seeds)
    assert point_seed(7, pts[0], 0) == point_seed(7, dict(reversed(list(pts[0].items()))), 0)
    assert point_seed(8, pts[0], 0) != point_seed(7, pts[0], 0)


def test_replicates_differ_and_reruns_are_identical(tmp_path):
    path = tiny(tmp_path)
    a = serial(path, tmp_path / "a", spec())
    b = serial(path, tmp_path / "b", spec())
    pd.testing.assert_frame_equal(a.table, b.table)
    t = a.table
    assert len(t) == 12 and (t.status == "ok").all()
    r0, r1 = t[t.replicate == 0].reset_index(), t[t.replicate == 1].reset_index()
    assert (r0.seed != r1.seed).all()
    # different seeds draw different arrivals and lengths: p95 TTFT differs on every point
    assert (r0.ttft_p95_s != r1.ttft_p95_s).all()
    # each replicate equals a plain run of that point's scenario with that seed
    row = t.iloc[7]
    one = api.run(api.load_scenario(path, [f"{REPLICAS}={row[REPLICAS]}", f"{RATE}={row[RATE]}"]), seed=int(row.seed))
    assert one.summary["classes"]["chat"]["slo_attainment"] == row.slo_attainment_chat
    assert one.summary["classes"]["chat"]["throughput_req_per_s"] == row.throughput_req_per_s


def test_store_skips_finished_points_and_aggregates_with_t_interval(tmp_path):
    path = tiny(tmp_path)
    first = serial(path, tmp_path / "s", spec(seeds=2))
    assert (first.from_store, first.ran) == (0, 12)
    again = serial(path, tmp_path / "s", spec(seeds=3))  # one more replicate: only it runs
    assert (again.from_store, again.ran) == (12, 6)
    assert len(list((tmp_path / "s" / "points").glob("*.parquet"))) == 18
    agg = again.aggregate
    g = again.table[again.table.point == 4].throughput_req_per_s.to_numpy()
    from scipy import stats

    half = stats.t.ppf(0.975, 2) * g.std(ddof=1) / np.sqrt(3)
    row = agg[agg.point == 4].iloc[0]
    assert row.throughput_req_per_s == pytest.approx(g.mean())
    assert row.throughput_req_per_s_ci95_hi - row.throughput_req_per_s == pytest.approx(half)
    for f in ("results.parquet", "results.csv", "aggregate.parquet", "aggregate.csv"):
        assert (tmp_path / "s" / f).exists()


def test_a_failing_point_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    path = tiny(tmp_path)
    real = api.run

    def flaky(scenario, *a, **kw):
        if scenario.serving.pools["h20"].replicas == 1 and scenario.serving.workloads["chat"].arrival.rate_per_s == 4:
            raise RuntimeError("boom")
        return real(scenario, *a, **kw)

    monkeypatch.setattr(api, "run", flaky)
    res = serial(path, tmp_path / "f", spec())
    failed = res.table[res.table.status == "failed"]
    assert res.failed == 2 and len(failed) == 2
    assert (failed.error == "RuntimeError: boom").all() and failed.throughput_req_per_s.isna().all()
    assert (res.table.status == "ok").sum() == 10
    assert res.aggregate.runs_failed.sum() == 2
    monkeypatch.setattr(api, "run", real)
    retry = serial(path, tmp_path / "f", spec(), retry_failed=True)
    assert (retry.ran, retry.failed) == (2, 0)


def test_t_interval_and_pareto_front_known_answers():
    m, lo, hi = t_interval(np.array([1.0, 2.0, 3.0]))
    assert m == 2 and hi - m == pytest.approx(4.302652729911275 * 1 / np.sqrt(3)) == m - lo
    assert np.isnan(t_interval(np.array([5.0]))[1])
    cost = np.array([1.0, 2.0, 3.0, 2.5, 4.0])
    att = np.array([0.5, 0.7, 0.9, 0.6, 0.9])
    assert sorted(pareto_front(cost, att, True)) == [0, 1, 2]
    assert sorted(pareto_front(cost, -att, False)) == [0, 1, 2]


def _cli(args):
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("axis, needle", [
    (["--param", f"{REPLICAS}=1,2,-1"], "greater than or equal to 0"),      # bad value, last point
    (["--param", "serving.pools.h20.replica=1,2"], "did you mean 'replicas'"),  # bad path
    (["--param", "serving.pools.h21.tp=4"], "serving.pools.h21"),           # no such pool
    (["--range", f"{RATE}=3:1:2"], "lo <= hi"),
    (["--sample", "4", "--param", f"{REPLICAS}=1"], "--range"),
])
def test_bad_axis_is_refused_before_any_point_runs(tmp_path, axis, needle):
    path = tiny(tmp_path)
    out = tmp_path / "bad"
    r = _cli(["sweep", str(path), *axis, "-o", str(out), "-q"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
    assert "Traceback" not in r.output
    assert not (out / "points").exists()


def test_cli_sweep_file_and_plots(tmp_path):
    path = tiny(tmp_path)
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(f"params:\n  {REPLICAS}: [1, 2]\nranges:\n  {RATE}: 2:6:2\nseeds: 2\n"
                          "metric: slo_attainment_chat\n")
    out = tmp_path / "cli"
    r = _cli(["sweep", str(path), "--file", str(sweep_file), "-o", str(out), "-q", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "4 points x 2 seeds = 8 runs; 0 from the store, 8 run, 0 failed" in r.output
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == ["heatmap_slo_attainment_chat.png", "pareto_chip_capex_usd_slo_attainment_min.png",
                    "tornado_slo_attainment_chat.png"]
    r = _cli(["sweep", str(path), "--file", str(sweep_file), "-o", str(out), "-q", "--metric", "nope"])
    assert r.exit_code == 2 and "not a metric" in r.output


def test_kill_midway_then_resume_equals_uninterrupted(tmp_path):
    """A real subprocess, SIGTERM after a few points are stored; the rerun runs only the rest."""
    path = tiny(tmp_path, duration=300)
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "fleetsim.cli", "sweep", str(path), "--param", f"{REPLICAS}=1,2",
            "--range", f"{RATE}=2:6:3", "--seeds", "2", "--workers", "1", "-q", "-o", str(out)]
    env = {**os.environ, "CI": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    points = out / "points"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if points.exists() and len(list(points.glob("*.parquet"))) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    before = {p.name: p.stat().st_mtime_ns for p in points.glob("*.parquet")}
    assert 3 <= len(before) < 12, f"kill landed too late ({len(before)} stored)"
    assert not (out / "results.parquet").exists()

    resumed = runner.run_sweep(path, spec(), out, workers=2, quiet=True, plots=False)
    assert resumed.from_store == len(before) and resumed.ran == 12 - len(before)
    after = {p.name: p.stat().st_mtime_ns for p in points.glob("*.parquet")}
    assert len(after) == 12 and all(after[k] == v for k, v in before.items())  # never rewritten
    whole = serial(path, tmp_path / "whole", spec())
    pd.testing.assert_frame_equal(resumed.table, whole.table)


def test_fleet_sweep_reports_fleet_metrics_and_replicates_vary_fleet_seed(tmp_path):
    """Fleet replicates set fleet.seed (the scenario seed, which seeds capacity searches, stays);
    replicate r of every point shares its seed (common random numbers), unless independent."""
    root = Path(__file__).resolve().parents[1]
    s = SweepSpec(params={"fleet.demand.chat.growth_per_year": [0.5, 1.5]}, seeds=2,
                  base_overrides=["fleet.years=1", "fleet.windows.every_days=365", "fleet.replications=2"])
    _, _, tasks = runner.resolve_points(root / "scenarios" / "fleet_small.yaml", s)
    assert {t["scenario"].seed for t in tasks} == {1}
    assert len({t["scenario"].fleet.seed for t in tasks}) == 2
    assert tasks[0]["scenario"].fleet.seed == tasks[2]["scenario"].fleet.seed  # point 0 and 1, replicate 0
    s.paired = False
    _, _, independent = runner.resolve_points(root / "scenarios" / "fleet_small.yaml", s)
    assert len({t["scenario"].fleet.seed for t in independent}) == 4
    s.paired = True
    res = serial(root / "scenarios" / "fleet_small.yaml", tmp_path / "fleet", s)
    t = res.table
    assert (t.status == "ok").all(), t.error.tolist()
    for col in ("capex_usd_total", "unmet_demand_share", "cost_usd_per_mtok", "us_dependence_share_end"):
        assert t[col].notna().all()
    # more growth buys more chips
    by = t.groupby("fleet.demand.chat.growth_per_year").capex_usd_total.mean()
    assert by[1.5] > by[0.5]
    assert res.aggregate.shape[0] == 2 and "capex_usd_total_ci95_lo" in res.aggregate
    assert any(p.name.startswith("pareto_cost_usd_per_mtok_unmet_demand_share") for p in
               summary_plots(tmp_path / "fleet", res, s))


def summary_plots(out, res, s):
    from fleetsim.sweep import summary

    return summary.write_plots(out, res.table, res.aggregate, s)


def test_seed_axes_are_refused(tmp_path):
    r = _cli(["sweep", str(tiny(tmp_path)), "--param", "seed=1,2", "-q", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--seeds" in r.output


def test_pareto_fronts_never_join_points_of_different_assumptions():
    """Demand growth is an assumption, the budget a decision: one front per growth value."""
    from fleetsim.sweep.summary import fronts, is_decision, path_label

    g, b = "fleet.demand.chat.growth_per_year", "fleet.budget.total_usd"
    assert not is_decision(g) and is_decision(b) and is_decision("serving.pools.h20.replicas")
    assert path_label(g) == "demand chat: growth per year"
    d = pd.DataFrame({g: [0.5, 0.5, 1.5, 1.5], b: [1e9, 2e9, 1e9, 2e9],
                      "capex_usd_total": [1.0, 2.0, 1.0, 2.0], "unmet_demand_share": [0.02, 0.01, 0.2, 0.1]})
    got = fronts(d, "capex_usd_total", "unmet_demand_share", [g], higher=False)
    assert [name for name, _, _ in got] == ["demand chat: growth per year 0.5", "demand chat: growth per year 1.5"]
    for _, pts, front in got:
        assert pts[g].nunique() == 1 and len(front) == 2


def test_tornado_shows_shares_in_percent_and_fields_in_words(tmp_path, monkeypatch):
    """As the heatmap does: the tornado drew unmet_demand_share as a fraction ('share, 0 to 1',
    ticks 0.0035) and its rows as dotted paths."""
    from fleetsim.sweep import summary

    g, b = "fleet.demand.chat.growth_per_year", "fleet.budget.total_usd"
    ok = pd.DataFrame({g: [0.5, 0.5, 1.0, 1.0], b: [2e8, 9e8, 2e8, 9e8],
                       "unmet_demand_share": [0.0, 0.0, 0.0075, 0.0]})
    seen = {}
    import matplotlib.pyplot as plt

    closed = plt.close

    def keep(fig=None):
        if fig is not None:
            ax = fig.axes[0]
            seen.update(x=ax.get_xlabel(), y=[t.get_text() for t in ax.get_yticklabels()],
                        lim=ax.get_xlim(), title=ax.get_title())
        closed(fig)

    monkeypatch.setattr("matplotlib.pyplot.close", keep)
    summary.tornado(ok, [g, b], "unmet_demand_share", tmp_path / "t.png")
    assert seen["x"] == "unmet demand share (%)", seen
    assert any(t.startswith("demand chat: growth per year") for t in seen["y"]), seen["y"]
    assert seen["lim"][1] > 0.3  # 0.375% at the worst level, drawn in percent


def test_pareto_points_that_coincide_share_one_label(tmp_path, monkeypatch):
    """Two budgets that buy the same fleet (the budget never binds) sat on one point with their
    labels printed over each other ('2e+08' on '9e+08'): one label lists both."""
    import matplotlib.pyplot as plt

    from fleetsim.sweep import summary

    g, b = "fleet.demand.chat.growth_per_year", "fleet.budget.total_usd"
    agg = pd.DataFrame({g: [0.5, 0.5, 1.0, 1.0], b: [2e8, 9e8, 2e8, 9e8],
                        "cost_usd_per_mtok": [0.167, 0.167, 0.16, 0.215],
                        "unmet_demand_share": [0.0, 0.0, 0.0075, 0.0]})
    texts, closed = [], plt.close

    def keep(fig=None):
        if fig is not None:
            texts.extend(t.get_text() for t in fig.axes[0].texts)
        closed(fig)

    monkeypatch.setattr("matplotlib.pyplot.close", keep)
    assert summary.pareto(agg, tmp_path, [g, b]) is not None
    assert sorted(texts) == ["2e+08", "2e+08; 9e+08", "9e+08"], texts
