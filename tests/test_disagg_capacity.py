"""A prefill/decode type in the capacity function (issue 22): one unit = prefill_per_unit
prefill instances + decode_per_unit decode instances, searched as one cell of units; and a
decode instance never holds more KV than it has.

Hand-worked case (infinitely fast link, the same chip both sides, one request at a time): the
idle TTFT is the prefill iteration alone and the decode step is the colocated replica's, so the
zero-load attainment of the unit equals the colocated replica's for any SLO; with a TTFT target
just below that prefill time plus a 10 ms link, the unit's floor drops to 0.
"""

from __future__ import annotations

import numpy as np
import pytest

import fleetsim
from fleetsim.scenario.model import Scenario
from fleetsim.serving import disagg
from fleetsim.serving.capacity import capacity, capacity_table, format_capacity_table
from fleetsim.serving.goodput import zero_load_attainment
from fleetsim.serving.window import built_parts


def scen(link_gbps=1e12, latency_s=0.0, units=(1, 1), ttft_s=2.0, model="qwen2.5-7b"):
    return Scenario.model_validate({
        "name": "pdcap", "seed": 3, "serving": {
            "duration_s": 30, "warmup_s": 5,
            "goodput": {"precision": 0.2, "min_windows": 5, "max_windows": 15, "requests_per_window": 150,
                        "cell_replicas": 1},
            "workloads": {"chat": {"model": model, "arrival": {"kind": "poisson", "rate_per_s": 1},
                                   "prompt_tokens": {"kind": "fixed", "value": 2000},
                                   "output_tokens": {"kind": "fixed", "value": 60},
                                   "slo": {"ttft_s": ttft_s, "tpot_s": 0.1, "percentile": 90}}},
            "pools": {"pre": {"chip": "h100", "model": model, "role": "prefill",
                              "handoff": {"decode_pool": "dec", "link_gbps": link_gbps,
                                          "link_latency_s": latency_s,
                                          "prefill_per_unit": units[0], "decode_per_unit": units[1]}},
                      "dec": {"chip": "h100", "model": model, "role": "decode"},
                      "gpu": {"chip": "h100", "model": model}}}})


def test_infinitely_fast_link_on_equal_chips_has_the_colocated_floor():
    s = scen()
    k = built_parts(s)[2]["gpu"]
    p, o = np.full(50, 2000), np.full(50, 60)
    wl = s.serving.workloads["chat"]
    assert zero_load_attainment(k, p, o, wl, decode_kernel=k, transfer_s=0.0) == zero_load_attainment(k, p, o, wl)
    prefill_s = float(k.iteration_time_s(np.array([2000]), 0, 0.0)[0])
    tight = scen(latency_s=0.01, ttft_s=prefill_s + 0.005).serving.workloads["chat"]
    assert zero_load_attainment(k, p, o, tight) == 1.0
    assert zero_load_attainment(k, p, o, tight, decode_kernel=k, transfer_s=0.01) == 0.0


def test_pd_type_is_one_row_per_unit_with_both_roles():
    s = scen(units=(1, 2))
    rows = capacity_table(s)
    assert [r.pool for r in rows] == ["pre", "gpu"]  # the decode pool has no row of its own
    pd, co = rows
    assert (pd.role, pd.decode_pool, pd.prefill_per_unit, pd.decode_per_unit) == ("prefill", "dec", 1, 2)
    assert pd.chips_per_replica == 3 and co.chips_per_replica == 1
    assert pd.goodput_rps > 0 and pd.windows > 0
    assert pd.power_w_per_replica > 2 * co.power_w_per_replica * 0.5  # three chips' worth, not one
    assert "pre+dec" in format_capacity_table(rows) and "1xh100/2xh100" in format_capacity_table(rows)
    with pytest.raises(fleetsim.errors.ScenarioError, match="role decode"):
        capacity(s, "dec", "chat")


def test_a_decode_instance_never_exceeds_its_kv_capacity(monkeypatch):
    seen = []
    orig_start, orig_end = disagg.DecodeReplica._start, disagg.DecodeReplica._end

    def used(r):
        return r.ctx + r.kv_prefill + len(r.decoding)

    def start(self):
        # on entry: the state a run's end left (a decode run's end is inline in `_on_timer`,
        # which `_end` no longer sees); after: the next run's, with its next step's growth
        seen.append((self.ctx + self.kv_prefill, self.kv_capacity))
        t = orig_start(self)
        seen.append((used(self), self.kv_capacity))
        return t

    def end(self):
        orig_end(self)
        seen.append((self.ctx + self.kv_prefill, self.kv_capacity))

    monkeypatch.setattr(disagg.DecodeReplica, "_start", start)
    monkeypatch.setattr(disagg.DecodeReplica, "_end", end)
    data = scen(model="llama-3.1-70b").model_dump(mode="json", exclude_none=True)
    sv = data["serving"]
    del sv["pools"]["gpu"]
    sv["pools"]["pre"] |= {"tp": 2, "replicas": 2}
    sv["pools"]["dec"] |= {"tp": 2, "replicas": 1}
    sv["workloads"]["chat"]["prompt_tokens"] = {"kind": "fixed", "value": 1000}
    sv["workloads"]["chat"]["output_tokens"] = {"kind": "fixed", "value": 200}
    sv["workloads"]["chat"]["arrival"]["rate_per_s"] = 3.0
    res = fleetsim.run(Scenario.model_validate(data))
    assert len(seen) > 50
    cap = seen[0][1]
    assert max(u for u, _ in seen) <= cap
    assert max(u for u, _ in seen) > 0.8 * cap  # the cache did fill: the bound was tested
    assert (res.requests.status == "completed").sum() > 10


@pytest.mark.slow
def test_role_capacities_measure_each_side_with_the_other_in_surplus():
    """The fleet's per-role rates: prefill on a 1:k unit, decode on a k:1 unit (k from the
    analytic guesses), each per instance of its role; a 1:1 unit serves no more than its
    slower side (within the searches' noise)."""
    from fleetsim.serving.capacity import role_capacities

    s = scen(link_gbps=50.0)
    pre, dec = role_capacities(s, "pre", "chat")
    assert (pre.role, pre.chip, pre.prefill_per_unit) == ("prefill", "h100", 1)
    assert (dec.role, dec.decode_per_unit) == ("decode", 1)
    assert pre.decode_per_unit >= 1 and dec.prefill_per_unit >= 1
    assert pre.prefill_per_unit + pre.decode_per_unit + dec.prefill_per_unit + dec.decode_per_unit > 4  # skewed
    unit = capacity(s, "pre", "chat")  # 1:1
    assert unit.goodput_rps <= 1.15 * min(pre.goodput_rps, dec.goodput_rps)
    assert pre.power_w_per_replica < unit.power_w_per_replica  # one role's share of its unit


def test_pd_search_windows_hold_about_a_colocated_windows_requests():
    """A unit of three or more instances searches with its measured window time halved (the
    search took 13x a colocated type's at full length; a quarter biased it low)."""
    from fleetsim.scenario.serving import GoodputConfig
    from fleetsim.serving.capacity import pd_goodput_config

    g = GoodputConfig()
    assert pd_goodput_config(g, (1, 1)) == g
    h = pd_goodput_config(g, (3, 1))
    assert h.duration_s - h.warmup_s == pytest.approx((g.duration_s - g.warmup_s) / 2)
    assert pd_goodput_config(g, (11, 1)).duration_s == h.duration_s  # never below half
    assert h.requests_per_window == g.requests_per_window and h.warmup_s == g.warmup_s


def test_pd_search_rounds_stay_within_the_narrow_design(monkeypatch):
    """A unit's attainment falls off a cliff, so its search rounds span at most +-PD_MAX_SPREAD
    in log rate (the colocated default, 0.35, spent the whole budget on the plateau and past the
    cliff); a colocated type keeps the default."""
    import math

    from fleetsim.serving import capacity as capmod
    from fleetsim.serving import goodput

    calls = []
    real = goodput.search_goodput

    def spy(*a, **k):
        out = real(*a, **k)
        calls.append((k.get("decode") is not None, k.get("max_spread"), out["trace"]))
        return out

    monkeypatch.setattr(goodput, "search_goodput", spy)
    capmod._MEMO.clear()
    s = scen(units=(2, 1))
    capacity(s, "pre", "chat")
    capacity(s, "gpu", "chat")
    (pd, pd_spread, trace), (co, co_spread, _) = calls
    assert pd and pd_spread == capmod.PD_MAX_SPREAD and not co and co_spread is None
    x = [math.log(e["rate"]) for e in trace]
    k, spans = len(goodput.OFFSETS), []
    while len(x) >= k:  # the rounds, from the end: k rates evenly spaced in log rate
        r, x = x[-k:], x[:-k]
        steps = np.diff(r)
        if not np.allclose(steps, steps[0], atol=1e-9):
            break
        spans.append(r[-1] - r[0])
    # a round spans two spreads (a round after one with no decreasing fit looks wider: past
    # the cap, as a colocated search does)
    assert spans and min(spans) <= 2 * capmod.PD_MAX_SPREAD + 1e-9
