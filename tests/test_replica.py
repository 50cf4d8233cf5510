"""The event-skipping replica against a brute-force per-iteration reference, plus hand-worked cases.

The reference below advances one iteration at a time (one kernel call per decode step, the way a
naive simulator would) with the same policy: FCFS admission at iteration boundaries, mixed
prefill + decode iterations, the same token budget and chunking. Event skipping must give the
same timestamps for every request (to float rounding), which is what makes it safe.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.catalog import load_chips, load_models
from fleetsim.kernel import ReplicaKernel
from fleetsim.scenario.serving import ServingConfig
from fleetsim.serving.requests import COMPLETED
from fleetsim.serving.window import run_window

CHIPS, MODELS = load_chips(), load_models()


def _cfg(rate, prompt, output, max_batch=8, budget=4096, chunked=False, duration=60.0, replicas=1,
         queue_limit=None, router="jsq", chip="h100", model="llama-3.1-8b", tp=1):
    return ServingConfig.model_validate({
        "duration_s": duration, "warmup_s": 0.0,
        "workloads": {"w": {"model": model, "arrival": {"kind": "poisson", "rate_per_s": rate},
                            "prompt_tokens": prompt, "output_tokens": output}},
        "pools": {"p": {"chip": chip, "model": model, "tp": tp, "replicas": replicas,
                        "queue_limit": queue_limit,
                        "batching": {"max_batch": max_batch, "max_tokens_per_iter": budget,
                                     "chunked_prefill": chunked}}},
        "router": {"kind": router},
    })


def reference(kernel, arrival, prompt, output, max_batch, budget, chunked, duration):
    """Per-iteration simulation of one replica (no KV pressure): returns first token and finish."""
    n = len(arrival)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    admitted = np.full(n, np.nan)
    t = 0.0
    nxt = 0  # next arrival not yet queued
    waiting: list[int] = []
    prefilling: list[list[int]] = []  # [rid, done]
    decoding: dict[int, int] = {}  # rid -> generated
    ctx = 0.0
    while t < duration:
        while nxt < n and arrival[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        while waiting and len(decoding) + len(prefilling) < max_batch:
            rid = waiting.pop(0)
            prefilling.append([rid, 0])
        if not prefilling and not decoding:
            if nxt >= n:
                break
            t = arrival[nxt]
            continue
        n_dec = len(decoding)
        room = budget - n_dec
        chunks, tokens, attended = [], 0, 0.0
        for item in prefilling:
            rem = prompt[item[0]] - item[1]
            take = min(rem, max(room - tokens, 0)) if chunked else (rem if (tokens + rem <= room or not chunks) else 0)
            if take <= 0:
                break
            chunks.append((item, take))
            if np.isnan(admitted[item[0]]):
                admitted[item[0]] = t  # admitted = its first prompt chunk is scheduled
            tokens += take
            attended += take * (item[1] + take / 2.0)
        dt = kernel.step_time_s(tokens, n_dec, ctx, attended if tokens else None, 1.0) if tokens else kernel.step_time_s(0, n_dec, ctx)
        t += dt
        if t > duration:
            break
        ctx += n_dec
        for rid in list(decoding):
            decoding[rid] += 1
            if decoding[rid] >= output[rid]:
                del decoding[rid]
                ctx -= prompt[rid] + output[rid]
                finish[rid] = t + kernel.request_overhead_s
        for item, take in chunks:
            item[1] += take
        while prefilling and prefilling[0][1] >= prompt[prefilling[0][0]]:
            rid, _ = prefilling.pop(0)
            first[rid] = t + kernel.request_overhead_s  # the host cost delays what the client sees
            if output[rid] <= 1:
                finish[rid] = first[rid]
            else:
                decoding[rid] = 1
                ctx += prompt[rid] + 1
    return admitted, first, finish


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rate=st.floats(0.5, 20.0),
    max_batch=st.integers(1, 16),
    chunked=st.booleans(),
    budget=st.sampled_from([256, 1024, 4096]),
)
def test_event_skipping_matches_per_iteration_reference(seed, rate, max_batch, chunked, budget):
    """Same timestamps as one-kernel-call-per-step simulation, to 1e-6 s, on random workloads."""
    cfg = _cfg(rate, {"kind": "uniform", "low": 1, "high": 3000},
               {"kind": "geometric", "mean": 40}, max_batch=max_batch, budget=budget,
               chunked=chunked, duration=30.0)
    res = run_window(cfg, CHIPS, MODELS, seed)
    r = res.requests
    kernel = ReplicaKernel(CHIPS["h100"], MODELS["llama-3.1-8b"], 1)
    adm, first, fin = reference(kernel, r.arrival_s, r.prompt_tokens, r.output_tokens, max_batch,
                                budget, chunked, cfg.duration_s)
    np.testing.assert_allclose(r.admitted_s, adm, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(r.first_token_s, first, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(r.finish_s, fin, atol=1e-6, equal_nan=True)


def test_single_request_hand_computed():
    """One request alone: TTFT = prefill iteration + the engine's per-request host cost; then
    output-1 decode steps at growing context.

    llama-3.1-8b on one H100, prompt 512, output 64: finish = step_time_s(512, 0, 0) +
    sum_{j<63} step_time_s(0, 1, 513 + j).
    """
    cfg = _cfg(1.0, {"kind": "fixed", "value": 512}, {"kind": "fixed", "value": 64}, duration=5.0)
    cfg.workloads["w"].arrival = cfg.workloads["w"].arrival.model_copy(update={"rate_per_s": 0.05})
    res = None
    for seed in range(200):
        res = run_window(cfg, CHIPS, MODELS, seed)
        if len(res.requests) == 1 and res.requests.arrival_s[0] < 1.0:
            break
    r = res.requests
    kernel = ReplicaKernel(CHIPS["h100"], MODELS["llama-3.1-8b"], 1)
    prefill = kernel.step_time_s(512, 0, 0.0) + kernel.request_overhead_s
    assert kernel.request_overhead_s > 0
    decode = sum(kernel.step_time_s(0, 1, 513.0 + j) for j in range(63))
    assert r.first_token_s[0] - r.arrival_s[0] == pytest.approx(prefill, rel=1e-9)
    assert r.finish_s[0] - r.arrival_s[0] == pytest.approx(prefill + decode, rel=1e-9)
    assert r.status[0] == COMPLETED and r.attempts[0] == 1


@pytest.mark.parametrize("chunked,budget", [(False, 4096), (True, 64), (True, 512)])
def test_kv_pressure_preempts_and_conserves(monkeypatch, chunked, budget):
    """A tiny KV cache forces preemptions; the cache is never over-filled at any iteration
    boundary (decode runs and chunked-prefill iterations alike), and every request is accounted for."""
    from fleetsim.serving.replica import Replica

    original, original_settle = Replica._mark, Replica._settle
    worst = [0.0]

    def check(self):
        need = self.ctx + self.kv_prefill + len(self.decoding)
        if len(self.decoding) + len(self.prefilling) > 1:
            worst[0] = max(worst[0], need - self.kv_capacity)

    def checked(self, now, n_running, tokens=0):
        # an iteration starts now: what it will hold must fit (a mark settled later, for a
        # run's planned switch, sees the state of a later time: checked at `_settle` instead)
        if n_running and now == self.env.now:
            check(self)
        original(self, now, n_running, tokens)

    def settled(self, now):  # a fused prefill iteration's end: the decode run after it must fit
        due = self._fused is not None and now >= self._fused[0]
        original_settle(self, now)
        if due:
            check(self)

    monkeypatch.setattr(Replica, "_mark", checked)
    monkeypatch.setattr(Replica, "_settle", settled)
    chips = load_chips({"h100": {"hbm_gb": 19.0}})
    cfg = _cfg(8.0, {"kind": "uniform", "low": 500, "high": 2000}, {"kind": "geometric", "mean": 400},
               max_batch=64, duration=60.0, chunked=chunked, budget=budget)
    res = run_window(cfg, chips, MODELS, 3)
    assert res.pools[0].preemptions > 0
    assert worst[0] <= 0, f"KV cache over-filled by {worst[0]} tokens"
    c = res.requests.counts()
    assert c["arrived"] == c["completed"] + c["rejected"] + c["unfinished"]
    done = res.requests.status == COMPLETED
    assert np.all(res.requests.finish_s[done] >= res.requests.first_token_s[done])
    assert np.all(res.requests.first_token_s[done] >= res.requests.admitted_s[done])


def test_same_seed_identical_and_other_seed_differs():
    cfg = _cfg(6.0, {"kind": "lognormal", "median": 800, "sigma": 0.8, "max": 4096},
               {"kind": "lognormal", "median": 100, "sigma": 0.8, "max": 1024}, replicas=3,
               router="power_of_two", chunked=True, max_batch=32)
    a = run_window(cfg, CHIPS, MODELS, 11).requests
    b = run_window(cfg, CHIPS, MODELS, 11).requests
    c = run_window(cfg, CHIPS, MODELS, 12).requests
    for key in ("arrival_s", "first_token_s", "finish_s", "replica", "status"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert len(a) != len(c) or not np.array_equal(a.arrival_s, c.arrival_s)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    rate=st.floats(0.1, 60.0),
    replicas=st.integers(1, 4),
    max_batch=st.integers(1, 64),
    queue_limit=st.one_of(st.none(), st.integers(0, 5)),
    router=st.sampled_from(["round_robin", "jsq", "power_of_two", "least_tokens"]),
    chunked=st.booleans(),
)
def test_conservation_over_random_scenarios(seed, rate, replicas, max_batch, queue_limit, router, chunked):
    """arrived = completed + rejected + unfinished; timestamps causal; rejects carry a reason."""
    cfg = _cfg(rate, {"kind": "lognormal", "median": 600, "sigma": 1.0, "max": 8000},
               {"kind": "geometric", "mean": 80}, max_batch=max_batch, replicas=replicas,
               queue_limit=queue_limit, router=router, chunked=chunked, duration=20.0)
    r = run_window(cfg, CHIPS, MODELS, seed).requests
    c = r.counts()
    assert c["arrived"] == c["completed"] + c["rejected"] + c["unfinished"]
    rejected = r.status == 2
    assert np.all(r.reject_reason[rejected] > 0) and np.all(r.reject_reason[~rejected] == 0)
    done = r.status == COMPLETED
    assert np.all(r.admitted_s[done] >= r.arrival_s[done] - 1e-12)
    # the replica finishes inside the window; the client sees it the host cost later
    host_s = ReplicaKernel(CHIPS["h100"], MODELS["llama-3.1-8b"], 1).request_overhead_s
    assert np.all(r.finish_s[done] <= cfg.duration_s + host_s + 1e-9)
    assert np.all(r.first_token_s[done] - r.admitted_s[done] >= host_s - 1e-12)
    assert np.all(np.isnan(r.finish_s[r.status == 0]))
    assert np.all(r.attempts[~np.isnan(r.admitted_s)] >= 1)
    assert math.isfinite(float(np.nansum(r.finish_s)))


def test_simpy_internals_the_replica_relies_on():
    """The replica schedules its own `Timer` events straight into SimPy 4's queue (entries
    (time, priority, id, event), ids from `Environment._eid`), and the window steps the queue
    itself (`_now`, `callbacks`, `_ok`): what `Environment.step` does. Fail loudly if a SimPy
    release changes them: a Timer must fire at its time, among SimPy's own timeouts, in order."""
    import simpy

    from fleetsim.serving.replica import Deferral, Timer
    from fleetsim.serving.window import _simulate

    env = simpy.Environment()
    fired = []
    Timer(env, 2.5, lambda ev: fired.append(("timer", env.now)))
    env.timeout(1.0).callbacks.append(lambda ev: fired.append(("timeout", env.now)))

    def proc():
        yield env.timeout(3.0)
        fired.append(("process", env.now))

    env.process(proc())
    assert isinstance(next(env._eid), int)

    class Routed:
        def route(self, rid):
            fired.append(("arrival", env.now))

    assert _simulate(env, 5.0, [0.5, 2.0, 6.0], Routed(), Deferral(env)) == 2
    assert fired == [("arrival", 0.5), ("timeout", 1.0), ("arrival", 2.0), ("timer", 2.5),
                     ("process", 3.0)]
    assert env.now == 5.0


def _fingerprint(res) -> bytes:
    r = res.requests
    parts = [r.arrival_s, r.admitted_s, r.first_token_s, r.finish_s, r.status, r.replica,
             r.pool_idx, r.attempts]
    parts += [a for p in res.pools for a in (p.busy_s, p.batch_area, np.array([p.preemptions]))]
    return b"".join(np.ascontiguousarray(a).tobytes() for a in parts)


_FUSE_CASES = [  # (prompt, output, max_batch, chunked, budget, replicas, queue_limit, router, rate)
    ({"kind": "fixed", "value": 1}, {"kind": "geometric", "mean": 50}, 1, False, 4096, 3, None, "central", 2.0),
    ({"kind": "fixed", "value": 1}, {"kind": "geometric", "mean": 20}, 8, False, 4096, 2, None, "jsq", 20.0),
    ({"kind": "lognormal", "median": 600, "sigma": 1.0, "max": 8000}, {"kind": "geometric", "mean": 80},
     16, True, 512, 2, None, "least_tokens", 8.0),
    ({"kind": "lognormal", "median": 600, "sigma": 1.0, "max": 8000}, {"kind": "geometric", "mean": 80},
     4, False, 4096, 3, 0, "central", 30.0),
    ({"kind": "uniform", "low": 500, "high": 2000}, {"kind": "geometric", "mean": 400},
     64, False, 4096, 1, None, "jsq", 8.0),  # (run on a small KV cache below: preemptions)
]


@pytest.mark.parametrize("case", range(len(_FUSE_CASES)))
def test_fused_prefill_and_decode_give_the_same_bytes(monkeypatch, case):
    """A prefill iteration fused with the decode run after it (one event) gives exactly the
    timestamps and busy figures of the two events it replaces, and saves events."""
    from fleetsim.serving.replica import Replica

    prompt, output, max_batch, chunked, budget, replicas, ql, router, rate = _FUSE_CASES[case]
    cfg = _cfg(rate, prompt, output, max_batch=max_batch, chunked=chunked, budget=budget,
               duration=120.0, replicas=replicas, queue_limit=ql, router=router)
    chips = load_chips({"h100": {"hbm_gb": 19.0}}) if case == 4 else CHIPS
    fused = run_window(cfg, chips, MODELS, 5)
    monkeypatch.setattr(Replica, "_start_fused", lambda self, t1, chunks, n_dec: None)
    plain = run_window(cfg, chips, MODELS, 5)
    assert _fingerprint(fused) == _fingerprint(plain)
    assert fused.sim_events < plain.sim_events
    if case == 4:
        assert fused.pools[0].preemptions > 0


@pytest.mark.parametrize("case", [1, 2, 4])
def test_cuts_applied_when_decided_give_the_same_bytes(monkeypatch, case):
    """A decode run cut by an arrival, with no other arrival before the step boundary, is ended
    (and the next run planned) when the cut is decided, as of the boundary: the same bytes as a
    timer at the boundary, fewer events."""
    from fleetsim.serving import window as W

    prompt, output, max_batch, chunked, budget, replicas, ql, router, rate = _FUSE_CASES[case]
    cfg = _cfg(rate / 4, prompt, output, max_batch=max_batch, chunked=chunked, budget=budget,
               duration=300.0, replicas=replicas, queue_limit=ql, router=router)
    chips = load_chips({"h100": {"hbm_gb": 19.0}}) if case == 4 else CHIPS
    planned = run_window(cfg, chips, MODELS, 6)
    original = W.Deferral
    monkeypatch.setattr(W, "Deferral", lambda env, **kw: original(env, **(kw | {"plan_cuts": False})))
    timed = run_window(cfg, chips, MODELS, 6)
    assert _fingerprint(planned) == _fingerprint(timed)
    assert planned.sim_events < timed.sim_events


def test_fused_runs_with_crashes_give_the_same_bytes(monkeypatch, tmp_path):
    """Crashes land inside fused runs (before and after their prefill iteration ends; 5 of the 14
    crashes here hit a fused run's decode part before anything settled it): the same
    first tokens, retries and finishes as with a separate event per prefill iteration."""
    import fleetsim
    from fleetsim.serving.replica import Replica

    path = tmp_path / "crashy.yaml"
    path.write_text("""
name: crashy
seed: 4
serving:
  duration_s: 600
  warmup_s: 0
  workloads:
    chat:
      model: llama-3.1-8b
      arrival: {kind: poisson, rate_per_s: 1}
      prompt_tokens: {kind: lognormal, median: 600, sigma: 0.8, max: 4096}
      output_tokens: {kind: geometric, mean: 300}
  pools:
    a: {chip: h100, model: llama-3.1-8b, tp: 1, replicas: 3, hall: h}
reliability:
  halls: {h: {ambient_c: 25, cooling_factor: 1.0}}
  chips: {h100: {mtbf_h: 0.01}}
  repair: {transient_share: 1.0, restart_min: {kind: fixed, value: 0.2}}
  thermal_step_s: 10
""")
    fused = fleetsim.run(fleetsim.load_scenario(path))
    monkeypatch.setattr(Replica, "_start_fused", lambda self, t1, chunks, n_dec: None)
    plain = fleetsim.run(fleetsim.load_scenario(path))
    assert (plain.requests.attempts > 1).sum() > 0
    for col in ("arrival_s", "first_token_s", "finish_s", "attempts", "status"):
        assert plain.requests[col].equals(fused.requests[col]), col


def test_one_token_prompts_cost_two_events_a_request():
    """A 1-token prompt gets no prefill event of its own: its arrival and its completion."""
    cfg = _cfg(0.4, {"kind": "fixed", "value": 1}, {"kind": "geometric", "mean": 500}, max_batch=1,
               duration=3000.0, replicas=3, router="central")
    res = run_window(cfg, CHIPS, MODELS, 2)
    assert res.sim_events / len(res.requests) <= 2.01
