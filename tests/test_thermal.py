"""Thermal model: exact RC relaxation, governor fixed point and stability, clock curve, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fleetsim.catalog.reliability import chip_reliability
from fleetsim.reliability.health import PoolHealth
from fleetsim.reliability.thermal import (
    ambient_c,
    clock_fraction,
    crossing_offset_s,
    equilibrium,
    power_w,
    steady_temp_c,
    step_mean_temp,
    step_temp,
)
from fleetsim.scenario.reliability import HallConfig

H100 = chip_reliability("h100")
# No governor below 200 C: the plain RC model.
PLAIN = H100.replace(dvfs_onset_c=199.0, throttle_c=200.0, t_max_c=210.0)


def test_power_runs_idle_to_tdp():
    assert power_w(H100, 0.0) == pytest.approx(H100.idle_w)
    assert power_w(H100, 1.0) == pytest.approx(H100.tdp_w)
    assert power_w(H100, 0.5) == pytest.approx(0.5 * (H100.idle_w + H100.tdp_w))


def test_exact_rc_step_matches_analytic():
    """T' = T_ss + (T - T_ss) exp(-dt/tau) exactly, and two half steps equal one full step."""
    t0 = np.array([30.0, 50.0, 90.0])
    u = np.array([0.2, 0.7, 1.0])
    t_ss = steady_temp_c(PLAIN, u, 25.0)
    for dt in (1.0, 15.0, 60.0, 600.0):
        got, clock = step_temp(PLAIN, t0, u, 25.0, dt)
        want = t_ss + (t0 - t_ss) * math.exp(-dt / PLAIN.tau_s)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(clock, 1.0)
        half, _ = step_temp(PLAIN, step_temp(PLAIN, t0, u, 25.0, dt / 2)[0], u, 25.0, dt / 2)
        np.testing.assert_allclose(half, got, atol=1e-9)


def test_equilibrium_is_fixed_point_of_the_step():
    u = np.linspace(0, 1, 11)
    for cooling in (1.0, 1.5, 2.5):
        t_eq, _f_eq = equilibrium(H100, u, 30.0, cooling)
        t1, _f1 = step_temp(H100, t_eq, u, 30.0, 15.0, cooling)
        np.testing.assert_allclose(t1, t_eq, atol=1e-7)
        # and it satisfies T = ambient + r P(clock(T))
        want = steady_temp_c(H100, u, 30.0, cooling, clock_fraction(H100, t_eq))
        np.testing.assert_allclose(t_eq, want, atol=1e-7)


def test_governor_stable_for_long_steps():
    """Implicit governor: with a steep slowdown and dt = 5 tau, no oscillation around equilibrium."""
    t_eq, _ = equilibrium(H100, 1.0, 45.0, 1.6)
    assert H100.throttle_c < t_eq < H100.t_max_c  # inside the steep ramp
    t = np.array([40.0, 120.0])
    signs = []
    for _ in range(20):
        t, _ = step_temp(H100, t, 1.0, 45.0, 5 * H100.tau_s, 1.6)
        gap = t - t_eq
        signs.append(np.where(np.abs(gap) > 1e-6, np.sign(gap), 0.0))
    signs = np.array(signs)
    assert np.all((signs == signs[0]) | (signs == 0))  # approaches from one side, no overshoot
    np.testing.assert_allclose(t, t_eq, atol=1e-3)


def test_clock_curve_continuous_monotone_and_floored():
    t = np.linspace(20, 120, 10001)
    f = clock_fraction(H100, t)
    assert np.all(np.diff(f) <= 1e-12)
    assert np.max(np.abs(np.diff(f))) < 0.01  # continuous at the kinks
    assert f[0] == 1.0
    assert clock_fraction(H100, H100.t_max_c) == pytest.approx(H100.throttle_floor)
    assert clock_fraction(H100, 150.0) == pytest.approx(H100.throttle_floor)


def test_worse_cooling_heats_and_throttles():
    """Hardware slowdown holds the die near the limit and costs clock as cooling worsens."""
    temps, clocks = [], []
    for cooling in (1.0, 1.3, 1.6, 2.0):
        t, f = equilibrium(H100, 1.0, 30.0, cooling)
        temps.append(float(t))
        clocks.append(float(f))
    assert temps == sorted(temps) and clocks == sorted(clocks, reverse=True)
    assert temps[-1] > H100.throttle_c and temps[-1] < H100.t_max_c
    assert clocks[-1] < clock_fraction(H100, H100.throttle_c)


def test_ambient_sinusoid_peaks_at_peak_hour():
    hall = HallConfig(ambient_c=25, daily_swing_c=6, peak_hour=15)
    assert ambient_c(hall, 15.0) == pytest.approx(28.0)
    assert ambient_c(hall, 3.0) == pytest.approx(22.0)
    assert np.mean(ambient_c(hall, np.arange(24) + 0.5)) == pytest.approx(25.0)


def test_step_mean_and_crossing_on_exponential_path():
    t0, dt = 40.0, 90.0
    t1, _ = step_temp(PLAIN, t0, 1.0, 25.0, dt)
    t_ss = float(steady_temp_c(PLAIN, 1.0, 25.0))
    # numeric mean of the path
    s = np.linspace(0, dt, 200001)
    path = t_ss + (t0 - t_ss) * np.exp(-s / PLAIN.tau_s)
    assert float(step_mean_temp(PLAIN, t0, t1, dt)) == pytest.approx(
        np.trapezoid(path, s) / dt, abs=1e-6
    )
    level = 0.5 * (t0 + float(t1))
    off = float(crossing_offset_s(PLAIN, t0, t1, dt, level))
    assert t_ss + (t0 - t_ss) * math.exp(-off / PLAIN.tau_s) == pytest.approx(level, abs=1e-9)


def _clock_swing(clock: np.ndarray) -> float:
    return float((clock.max() - clock.min()) / clock.mean())


def test_h100_diurnal_swing_calibration():
    """CALIBRATION (not validation): a 6 C peak-to-peak daily inlet swing at busy 0.9 gives the
    Llama 3 'diurnal 1-2% throughput variation' as a clock swing, 1.5% by construction.
    Quasi-static hourly equilibrium and a dynamic 30 s PoolHealth integration must agree: tau
    (60 s) is far below the daily period, so they differ by well under 0.1 percentage point.
    """
    hall = HallConfig(ambient_c=25, daily_swing_c=6)
    amb = ambient_c(hall, np.linspace(0, 24, 24 * 60, endpoint=False))
    _, f = equilibrium(H100, 0.9, amb)
    static = _clock_swing(f)
    assert 0.01 <= static <= 0.02
    assert static == pytest.approx(0.015, abs=0.001)

    ph = PoolHealth(
        H100,
        hall,
        4,
        8,
        np.random.default_rng(0),
        start_hour=0.0,
        crashes=False,
        initial_utilisation=0.9,
    )
    clocks = []
    for k in range(2 * 2880):  # two days of 30 s steps; keep the second
        ph.advance(30.0 * k, 30.0, np.full(4, 0.9))
        clocks.append(ph.throttle[0])
    dynamic = _clock_swing(np.array(clocks[2880:]))
    assert dynamic == pytest.approx(static, abs=0.001)
