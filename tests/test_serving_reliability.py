"""Crashes, throttling and repair inside a serving window."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import fleetsim

ROOT = Path(__file__).resolve().parents[1]


def _crashy(tmp_path, mtbf_h=0.5, replicas=3, duration_s=1800, cooling=1.0, restart_min=2.0):
    text = f"""
name: crashy
seed: 4
serving:
  duration_s: {duration_s}
  warmup_s: 0
  workloads:
    chat:
      model: llama-3.1-8b
      arrival: {{kind: poisson, rate_per_s: 6}}
      prompt_tokens: {{kind: lognormal, median: 600, sigma: 0.8, max: 4096}}
      output_tokens: {{kind: geometric, mean: 150}}
  pools:
    a: {{chip: h100, model: llama-3.1-8b, tp: 1, replicas: {replicas}, hall: h}}
reliability:
  halls: {{h: {{ambient_c: 25, cooling_factor: {cooling}}}}}
  chips: {{h100: {{mtbf_h: {mtbf_h}}}}}
  repair: {{transient_share: 0.7, restart_min: {{kind: fixed, value: {restart_min}}}}}
  thermal_step_s: 10
"""
    path = tmp_path / "crashy.yaml"
    path.write_text(text)
    return fleetsim.load_scenario(path)


def test_crashed_requests_are_retried_or_rejected_with_a_reason(tmp_path):
    """Every request on a crashed replica ends completed (attempts > 1), rejected with a
    reason, or still unfinished at the end; the events table records every crash."""
    result = fleetsim.run(_crashy(tmp_path))
    req, ev = result.requests, result.events
    crashes = int((ev.kind == "crash").sum())
    assert crashes >= 3, "the stress settings should crash replicas several times"
    assert crashes == result.summary["reliability"]["a"]["crashes"]
    assert len(req) == int((req.status == "completed").sum() + (req.status == "rejected").sum()
                           + (req.status == "unfinished").sum())
    retried = req[req.attempts > 1]
    assert len(retried) > 0
    assert (retried.status == "completed").sum() > 0
    rejected = req[req.status == "rejected"]
    assert set(rejected.reject_reason.astype(str)) <= {"crash_no_replica", "no_replica", "queue_full"}
    back = ev.kind.isin(["restart", "repair_done"]).sum()
    down_at_end = crashes - back
    assert 0 <= down_at_end <= 3
    assert result.summary["pools"]["a"]["availability"] < 1.0


def test_all_replicas_down_rejects_with_crash_reason(tmp_path):
    """One replica with a long restart: requests arriving while it is down are rejected with
    `no_replica`, the ones it held with `crash_no_replica`; none is lost."""
    result = fleetsim.run(_crashy(tmp_path, mtbf_h=0.3, replicas=1, restart_min=30.0))
    req = result.requests
    reasons = set(req.loc[req.status == "rejected", "reject_reason"].astype(str))
    assert "no_replica" in reasons
    assert reasons <= {"crash_no_replica", "no_replica"}
    held = req[(req.reject_reason == "crash_no_replica")]
    assert (held.attempts >= 2).all()


def test_worse_cooling_throttles_and_costs_capacity(tmp_path):
    """Same seed, cooling factor 1.0 vs 1.8 on the thermal-stress scenario (2 h): hotter
    chips throttle more, crash more, and the pool loses effective capacity and SLO attainment."""
    spec = importlib.util.spec_from_file_location("ts", ROOT / "docs" / "examples" / "thermal_stress.py")
    ts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ts)
    cool, hot = ts.compare([1.0, 1.8], duration_s=7200)
    assert hot["mean_clock"] < cool["mean_clock"]
    assert hot["throttled_share"] > cool["throttled_share"]
    assert hot["crashes"] > cool["crashes"]
    assert hot["effective_capacity"] < cool["effective_capacity"] - 0.05
    assert hot["slo_attainment"] < cool["slo_attainment"]
    assert hot["ttft_p99_s"] > cool["ttft_p99_s"]


def test_serving_crashes_off_keeps_throttling(tmp_path):
    scen = _crashy(tmp_path, cooling=2.5)
    scen.reliability.serving_crashes = False
    s = fleetsim.run(scen).summary
    assert s["reliability"]["a"]["crashes"] == 0
    assert s["reliability"]["a"]["mean_clock"] < 0.95
