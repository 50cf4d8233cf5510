"""Serving windows on a fleet sized at goodput sit near the SLO target (real capacity function)."""

from __future__ import annotations

import os

import numpy as np

import fleetsim
from fleetsim.results.cache import ResultCache
from fleetsim.scenario.model import Scenario


def sized_at_goodput(seed: int = 4) -> Scenario:
    return Scenario.model_validate({
        "name": "sized", "seed": seed,
        "serving": {
            "duration_s": 300, "warmup_s": 60,
            "workloads": {"chat": {
                "model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 1},
                "prompt_tokens": {"kind": "lognormal", "median": 800, "sigma": 0.7, "max": 4096},
                "output_tokens": {"kind": "lognormal", "median": 200, "sigma": 0.7, "max": 1024},
                "slo": {"ttft_s": 1.0, "tpot_s": 0.05, "percentile": 90}}},
            "pools": {"gpu": {"chip": "h20", "model": "qwen2.5-7b", "tp": 1, "replicas": 1,
                              "batching": {"max_batch": 32}}},
            "goodput": {"cell_replicas": 4, "duration_s": 300, "warmup_s": 60, "precision": 0.1}},
        "reliability": {"repair": {"spare_fraction": 0.0}},
        "fleet": {
            "start": "2025-01-01", "years": 0.5,
            "demand": {"chat": {"tokens_per_s": 2.0e5, "peak_to_mean": 1.0}},
            "channels": {"vendor": {"offers": [{"chip": "h20"}],
                                    "lead_time_days": {"kind": "fixed", "value": 5}}},
            "planner": {"kind": "cheapest", "period_days": 30, "horizon_days": 0, "headroom": 0.0},
            "budget": {"total_usd": 1e9},
            "commissioning_days": 0,
            "windows": {"every_days": 30, "cell_replicas": 4, "duration_s": 300, "warmup_s": 60}}})


def _attainment(cache_dir, headroom: float) -> np.ndarray:
    from fleetsim.api import resolve_catalogs
    from fleetsim.fleet.capacity import replica_capacities
    from fleetsim.fleet.sim import run_fleet
    from fleetsim.fleet.windows import window_runner

    sc = sized_at_goodput()
    sc.fleet.planner.headroom = headroom
    chips, models = resolve_catalogs(sc)
    caps = replica_capacities(sc, chips, models, cache=ResultCache(cache_dir))
    res = run_fleet(sc, chips, models, caps, window_runner=window_runner(chips, models))
    w = res.windows
    if headroom > 0:  # at exactly goodput the prediction is a coin toss; with room it must hold
        assert all(w["predicted_attainment_ok"])
    return np.array(w["attainment"], dtype=float)


def test_windows_attainment_near_slo_when_sized_at_goodput(lasting_results_dir):
    """Sized at goodput (headroom 0, the goodput cell's size in the windows): attainment about
    the SLO target (90%), window to window noisy (300 s windows); with 30% headroom: all clear it.
    The goodput search (the test's cost) goes to the lasting goodput cache: content-keyed, so
    an unchanged package and scenario read it back on a rerun."""
    tmp_path = lasting_results_dir
    at_goodput = _attainment(tmp_path, 0.0)
    assert len(at_goodput) >= 5
    assert 0.86 < at_goodput.mean() < 0.996
    roomy = _attainment(tmp_path, 0.3)
    # With 30% headroom every window clears the 90% target with room (TTFT queueing behind long
    # prompts keeps attainment near 98% at 77% of goodput, not at 100%).
    assert roomy.min() > 0.95
    assert roomy.mean() > at_goodput.mean()


def _forked_windows_match_one_process(cache_dir: str) -> int:
    """Run the reference fleet's windows in one process and shared with a forked child; assert
    the rows are the same. Returns fork_workers() (1: nothing could be shared here)."""
    from fleetsim import forked
    from fleetsim.api import resolve_catalogs
    from fleetsim.fleet.capacity import replica_capacities
    from fleetsim.fleet.sim import run_fleet
    from fleetsim.fleet.windows import window_runner

    if forked.fork_workers() < 2:
        return 1
    sc = sized_at_goodput()
    chips, models = resolve_catalogs(sc)
    caps = replica_capacities(sc, chips, models, cache=ResultCache(cache_dir))
    rows = {}
    saved = os.environ.get("FLEETSIM_FORK")
    try:
        for fork in ("0", "1"):
            os.environ["FLEETSIM_FORK"] = fork
            pids = []
            runner = window_runner(chips, models)
            res = run_fleet(sc, chips, models, caps,
                            window_runner=lambda sim, snap: (pids.append(os.getpid()), runner(sim, snap))[1])
            rows[fork] = res.windows
            n = len(res.windows["window"])
            assert n >= 5
            assert len(pids) == (n if fork == "0" else (n + 1) // 2)
    finally:
        if saved is None:
            os.environ.pop("FLEETSIM_FORK", None)
        else:
            os.environ["FLEETSIM_FORK"] = saved
    assert rows["0"].keys() == rows["1"].keys()
    for k in rows["0"]:
        assert list(map(repr, rows["0"][k])) == list(map(repr, rows["1"][k])), k
    return 2


def test_windows_shared_with_a_forked_child_give_the_same_rows(lasting_results_dir, monkeypatch):
    """fleetsim.forked: a child runs every other window (each has its own seed stream and reads
    the fleet's state only); the rows are those of one process, in window order. Where this test
    process already runs another thread (an earlier test's), fleetsim will not fork in it, so the
    probe runs in a fresh spawned interpreter instead of being skipped."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.setenv("FLEETSIM_FORK", "1")  # the user's setting is not this probe's question
    monkeypatch.delenv("FLEETSIM_FUTURE_WORKERS", raising=False)
    if threading.active_count() == 1:
        workers = _forked_windows_match_one_process(str(lasting_results_dir))
    else:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            workers = pool.submit(_forked_windows_match_one_process, str(lasting_results_dir)).result()
    if workers < 2 and len(os.sched_getaffinity(0)) >= 2:
        raise AssertionError("two CPUs, yet fleetsim.forked would not fork: the shared-window path is untested")
    if workers < 2:
        import pytest

        pytest.skip("one CPU: nothing is shared")
