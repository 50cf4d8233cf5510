"""The capacity function the fleet layer plans with: goodput with its interval, availability from
the hazard and repair model, derated goodput, power and energy at that load."""

from __future__ import annotations

import math

import pytest

import fleetsim
from fleetsim.catalog import load_chips
from fleetsim.reliability import resolve_chip
from fleetsim.reliability.hazard import hazard_per_h
from fleetsim.scenario.reliability import ReliabilityConfig, RepairConfig
from fleetsim.serving import capacity as cap_mod
from fleetsim.serving.capacity import Capacity, capacity, capacity_table, replica_mtbf_mttr_h

FAST = ["serving.goodput.precision=0.1", "serving.goodput.max_windows=40",
        "serving.goodput.requests_per_window=500", "serving.goodput.duration_s=200",
        "serving.goodput.warmup_s=30"]


@pytest.fixture()
def scen(quickstart_path):
    return fleetsim.load_scenario(quickstart_path, FAST)


def test_capacity_fields_are_consistent(scen):
    c = capacity(scen, "h20", "chat")
    assert isinstance(c, Capacity) and c.tp == 4 and c.chip == "h20"
    lo, hi = c.goodput_ci95_rps
    assert 0 < lo <= c.goodput_rps <= hi
    assert 0.99 < c.availability < 1.0
    assert c.effective_goodput_rps == pytest.approx(c.goodput_rps * c.availability)
    assert 0 < c.zero_load_attainment <= 1
    assert 50 < c.output_tokens_per_request < 1000
    # power between idle and TDP of four chips; energy = power / (tokens per s)
    p = resolve_chip(ReliabilityConfig(), "h20", load_chips())
    assert 4 * p.idle_w < c.power_w_per_replica < 4 * p.tdp_w
    tok_s = c.goodput_rps * c.output_tokens_per_request
    assert c.energy_kwh_per_mtok == pytest.approx(c.power_w_per_replica / tok_s * 1e6 / 3.6e6)
    assert 0.9 < c.clock_factor <= 1.0
    assert not c.cached


def test_memo_hit_is_flagged_and_identical(scen):
    a = capacity(scen, "domestic", "chat")
    b = capacity(scen, "domestic", "chat")
    assert b.cached and not a.cached or a.cached  # a may be warm from another test in this process
    assert a.as_row() == b.as_row() and "cached" not in a.as_row()


def test_hot_badly_cooled_hall_throttles_and_crashes_more(scen):
    """'Slower, cheaper, crashes when hot' reaches the capacity number: lower clock, goodput and
    availability in a 40 C hall with 30% worse cooling."""
    cool = capacity(scen, "h20", "chat")
    hot = capacity(scen, "h20", "chat", ambient_c=40.0, cooling_factor=1.3)
    assert hot.clock_factor < cool.clock_factor - 0.02
    assert hot.goodput_rps < cool.goodput_rps
    assert hot.availability < cool.availability
    assert hot.mtbf_h_per_replica < cool.mtbf_h_per_replica


def test_availability_matches_the_formula():
    """No high-load growth, no spares wait: A = MTBF / (MTBF + MTTR) with MTBF = 1 / (tp h) and
    MTTR = s E[restart] + (1 - s) E[swap]."""
    p = resolve_chip(ReliabilityConfig(), "h100", load_chips())
    repair = RepairConfig(spare_fraction=1.0)
    mtbf, mttr = replica_mtbf_mttr_h(p, 60.0, 0.0, 8, repair, replicas=10)
    assert mtbf == pytest.approx(1.0 / (8 * float(hazard_per_h(p, 60.0))))
    restart_h = 16.7 * math.exp(0.3 ** 2 / 2) / 60
    assert mttr == pytest.approx(0.22 * restart_h + 0.78 * 2.0, rel=1e-6)
    # continuous high load raises the hazard over the up-time: shorter mean up-time
    mtbf_hot, _ = replica_mtbf_mttr_h(p, 60.0, 1.0, 8, repair, replicas=10)
    if p.extended_gain > 0:
        assert mtbf_hot < mtbf
    # no spares: every hardware fault waits for its bench repair too
    _, mttr_none = replica_mtbf_mttr_h(p, 60.0, 0.0, 8, RepairConfig(spare_fraction=0.0), replicas=10)
    assert mttr_none == pytest.approx(mttr + 0.78 * 48.0 * math.exp(0.6 ** 2 / 2), rel=1e-6)


def test_capacity_table_covers_matching_pairs(scen):
    rows = capacity_table(scen)
    assert [(r.pool, r.workload) for r in rows] == [("h20", "chat"), ("domestic", "chat")]


def test_goodput_cli_prints_interval_and_availability(quickstart_path, runner):
    from fleetsim.cli import main

    res = runner.invoke(main, ["goodput", str(quickstart_path), *sum([["--set", o] for o in FAST], [])])
    assert res.exit_code == 0, res.output
    assert "95% CI" in res.output and "avail." in res.output and "derated" in res.output
    row = [line for line in res.output.splitlines() if line.startswith("h20")][0]
    assert "[" in row and "%" in row


def test_memo_does_not_leak_between_conditions(scen):
    a = capacity(scen, "h20", "chat", ambient_c=20.0)
    b = capacity(scen, "h20", "chat", ambient_c=45.0)
    assert a.ambient_c == 20.0 and b.ambient_c == 45.0 and a.goodput_rps != b.goodput_rps
    assert cap_mod.CACHE_STATS["misses"] >= 2
