"""Heat in the daily capacity (issue 19): a hall's seasonal inlet and the sustained load drive
throttling (capacity) and the crash hazard day by day.

- capacity: fleetsim.fleet.capacity.seasonal_capacities evaluates each seasonal pool at the
  coolest, mean and warmest daily-mean inlet; the fleet interpolates linearly on each day's
  inlet, ambient_c + seasonal_swing_c / 2 cos(2 pi (doy - hottest_day_of_year) / 365.25), and the
  planner sizes for the warmest point;
- hazard: the cohorts' crash rate is taken at each day's inlet, times
  1 + extended_gain (1 - exp(-h / extended_tau_h)), h the hours of continuous load above
  extended_threshold (24 a day above it, drained at extended_recovery below).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pytest

from fleet_helpers import scenario
from fleetsim.api import resolve_catalogs
from fleetsim.catalog.reliability import ChipReliability
from fleetsim.fleet.capacity import ReplicaCapacity, replica_capacities
from fleetsim.fleet.sim import _FleetSim, run_fleet
from fleetsim.reliability.hazard import extended_factor, update_high_load_h
from fleetsim.reliability.thermal import seasonal_ambient_c


def _seasonal(swing: float = 20.0):
    return scenario(reliability={"halls": {"default": {"ambient_c": 25.0, "seasonal_swing_c": swing,
                                                       "hottest_day_of_year": 182}}})


def test_seasonal_inlet_formula():
    hall = _seasonal().reliability.halls["default"]
    assert float(seasonal_ambient_c(hall, 182)) == pytest.approx(35.0)
    assert float(seasonal_ambient_c(hall, 182 + 365.25 / 2)) == pytest.approx(15.0)
    assert float(seasonal_ambient_c(hall, 182 + 365.25 / 4)) == pytest.approx(25.0, abs=1e-9)


def test_capacity_follows_the_inlet_day_by_day():
    """Given grid: 'nv' does 1,200 tokens/s a replica at 15 C, 800 at 25 C (its figure in the
    helper scenario), 400 at 35 C ('dom' 900, 600, 300: still dearer per token, so the planner
    keeps buying 'nv'); the fleet's capacity per replica on day d is the linear interpolation at
    that day's inlet. (With 'nv' alone derated, the planner sizing for the hottest day buys
    'dom' instead.)"""
    sc = _seasonal()
    chips, models = resolve_catalogs(sc)
    caps = replica_capacities(sc, chips, models)
    base = caps[("nv", "chat")]
    pt = lambda rps: dataclasses.replace(base, goodput_rps=rps)
    dom = caps[("dom", "chat")]
    grid = {("nv", "chat"): [(15.0, pt(6.0)), (25.0, pt(4.0)), (35.0, pt(2.0))],
            ("dom", "chat"): [(15.0, dataclasses.replace(dom, goodput_rps=4.5)), (25.0, dom),
                              (35.0, dataclasses.replace(dom, goodput_rps=1.5))]}
    sim = _FleetSim(sc, chips, models, caps, None)
    sim.caps_grid = grid
    sim._setup()
    pi = sim.pool_ix["nv"]
    for day in (0, 90, 181, 270):
        a = sim.amb_day[day, pi]
        want = np.interp(a, [15.0, 25.0, 35.0], [1200.0, 800.0, 400.0])
        assert sim._k_on(day)[pi, 0] == pytest.approx(want)
    jul1 = (dt.date(2025, 7, 1) - sc.fleet.start).days
    assert sim._k_on(jul1)[pi, 0] == pytest.approx(400.0, rel=1e-3)  # the hottest day
    assert sim.k_eff[pi, 0] == pytest.approx(400.0)  # the planner sizes for it
    # the run: a hot summer lowers the domestic pool's capacity per replica up
    res = run_fleet(sc, chips, models, caps, caps_grid=grid)
    per_rep = res.pool_daily["capacity_tokens_per_s"][:, pi] / np.maximum(res.pool_daily["replicas_up"][:, pi], 1e-9)
    up = res.pool_daily["replicas_up"][:, pi] > 0
    summer = up & (np.abs(sim.amb_day[:, pi] - 35.0) < 1.0)
    winter = up & (np.abs(sim.amb_day[:, pi] - 15.0) < 1.0)
    assert summer.any() and winter.any()
    assert per_rep[summer].max() < per_rep[winter].min()


def test_no_swing_is_the_old_fleet_to_the_byte():
    a = run_fleet(*_args(scenario()))
    b = run_fleet(*_args(_seasonal(0.0)))
    for k in a.timeline:
        assert np.array_equal(np.asarray(a.timeline[k]), np.asarray(b.timeline[k])), k


def _args(sc):
    chips, models = resolve_catalogs(sc)
    return sc, chips, models, replica_capacities(sc, chips, models)


def test_sustained_high_load_raises_the_crash_rate_by_hand():
    """Ascend 910B (extended_gain 0.5, tau 12 h in the catalog): after three days above the
    threshold h = 72 h, the factor is 1 + 0.5 (1 - e^-6) = 1.4988; a day below drains 24 h."""
    sc = _seasonal(0.0)
    from fleetsim.reliability import resolve_chip

    p = resolve_chip(sc.reliability, "ascend-910b", resolve_catalogs(sc)[0])
    assert p.extended_gain == 0.5 and p.extended_tau_h == 12.0
    h = 0.0
    for _ in range(3):
        h = float(update_high_load_h(p, h, p.extended_threshold + 0.01, 24.0))
    assert h == 72.0
    assert float(extended_factor(p, h)) == pytest.approx(1 + 0.5 * (1 - math.exp(-6)))
    h = float(update_high_load_h(p, h, 0.0, 24.0))
    assert h == 72.0 - 24.0 * p.extended_recovery
