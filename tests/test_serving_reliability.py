"""Crashes, throttling and repair inside a serving window."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fleetsim
from fleetsim import api
from fleetsim.scenario.model import Scenario
from fleetsim.serving import router as RT
from fleetsim.serving.health import ServingReliability
from fleetsim.serving.requests import REJECTED, UNFINISHED
from fleetsim.serving.window import run_window

ROOT = Path(__file__).resolve().parents[1]


def _crashy(tmp_path, mtbf_h=0.1, replicas=3, duration_s=1800, cooling=1.0, restart_min=2.0):
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
    result = fleetsim.run(_crashy(tmp_path, mtbf_h=0.05, replicas=1, restart_min=30.0))
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


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    router=st.sampled_from(["central", "jsq", "power_of_two", "round_robin", "least_tokens"]),
    chunked=st.booleans(),
    max_batch=st.sampled_from([1, 8]),
    queue_limit=st.sampled_from([None, 2]),
)
def test_request_bookkeeping_under_crashes(seed, router, chunked, max_batch, queue_limit):
    """At the end of a window with many crashes, every unfinished request sits in exactly one
    place (a replica's queue or batch, or the central queue), a finished one in none, no down
    replica holds requests, each replica's counters match its queues, and every request's
    `replica` is the one that holds it (-1 while it waits in the central queue)."""
    captured = {}
    original = RT.Router.__init__

    def keep(self, *a, **k):
        original(self, *a, **k)
        captured["router"] = self

    data = {
        "name": "f", "seed": seed,
        "serving": {"duration_s": 600, "warmup_s": 0,
                    "workloads": {"w": {"model": "llama-3.1-8b",
                                        "arrival": {"kind": "gamma", "rate_per_s": 6, "cv": 2},
                                        "prompt_tokens": {"kind": "lognormal", "median": 800,
                                                          "sigma": 1.0, "max": 20000},
                                        "output_tokens": {"kind": "geometric", "mean": 150}}},
                    "pools": {"a": {"chip": "t-head-ppu", "model": "llama-3.1-8b", "replicas": 3,
                                    "queue_limit": queue_limit,
                                    "batching": {"max_batch": max_batch, "max_tokens_per_iter": 512,
                                                 "chunked_prefill": chunked}},
                              "b": {"chip": "h20", "model": "llama-3.1-8b", "replicas": 1,
                                    "queue_limit": queue_limit, "batching": {"max_batch": max_batch}}},
                    "router": {"kind": router}},
        "reliability": {"chips": {"t-head-ppu": {"mtbf_h": 0.1}, "h20": {"mtbf_h": 0.2}},
                        "repair": {"transient_share": 0.6, "restart_min": {"kind": "fixed", "value": 1},
                                   "repair_h": {"kind": "fixed", "value": 0.05},
                                   "swap_h": {"kind": "fixed", "value": 0.01}, "lost_share": 0.3,
                                   "spare_fraction": 0.0},
                        "thermal_step_s": 5},
    }
    scen = Scenario.model_validate(data)
    chips, models = api.resolve_catalogs(scen)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RT.Router, "__init__", keep)
        res = run_window(scen.serving, chips, models, seed,
                         reliability=ServingReliability(scen.reliability, chips))
    router_obj, req = captured["router"], res.requests
    where: collections.Counter = collections.Counter()
    holder = {}
    for held in router_obj.held.values():
        for rid in held:
            where[rid] += 1
            assert req.replica[rid] == -1 and req.pool_idx[rid] == -1
    for rep in {r.index: r for reps in router_obj.all_by_model.values() for r in reps}.values():
        ids = list(rep.waiting) + [item[0] for item in rep.prefilling] + list(rep.decoding)
        assert rep.n_in == len(ids) and rep.spare == rep.max_batch - len(ids)
        assert rep.up or not ids, "a down replica holds requests"
        for rid in ids:
            where[rid] += 1
            holder[rid] = rep
    unfinished = set(np.flatnonzero(req.status == UNFINISHED).tolist())
    assert all(where[rid] == 1 for rid in unfinished), "an unfinished request is lost or doubled"
    assert all(rid in unfinished for rid in where), "a finished request is still queued"
    for rid, rep in holder.items():
        assert req.replica[rid] == rep.index_in_pool and req.pool_idx[rid] == rep.pool_idx
    rejected = req.status == REJECTED
    assert np.all(req.reject_reason[rejected] > 0)
