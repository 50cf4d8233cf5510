"""First-order RC thermal model with DVFS and hardware throttling, vectorised over chips.

power = idle + (tdp - idle) * utilisation * clock**k; steady temperature = ambient + power * r_th
(r_th scaled by the hall's cooling factor); over a step of constant power the temperature relaxes
exactly: T' = T_ss + (T - T_ss) exp(-dt / tau). The clock depends on the die temperature, and the
power on the clock, so the end-of-step temperature solves T' = a T + (1 - a) T_ss(clock(T'))
(a = exp(-dt/tau)): the governor sees the temperature it produces. That fixed point is unique
(the right side falls as T' rises) and stable for any step, unlike an explicit update, which
oscillates when the slowdown ramp is steep and the step is a sizeable part of tau.
"""

from __future__ import annotations

import math

import numpy as np

from fleetsim.catalog.reliability import ChipReliability

_TOL_C = 1e-9


def ambient_c(hall, hour_of_day) -> np.ndarray:
    """Inlet temperature of a hall at an hour of day (sinusoid, peak at `peak_hour`)."""
    h = np.asarray(hour_of_day, dtype=float)
    return hall.ambient_c + 0.5 * hall.daily_swing_c * np.cos(
        2.0 * np.pi * (h - hall.peak_hour) / 24.0
    )


def seasonal_ambient_c(hall, day_of_year) -> np.ndarray:
    """A hall's daily-mean inlet on a day of the year (sinusoid, warmest on hottest_day_of_year)."""
    d = np.asarray(day_of_year, dtype=float)
    swing = getattr(hall, "seasonal_swing_c", 0.0)
    return hall.ambient_c + 0.5 * swing * np.cos(2.0 * np.pi * (d - getattr(hall, "hottest_day_of_year", 200)) / 365.25)


def clock_fraction(p: ChipReliability, temp_c) -> np.ndarray:
    """Clock as a fraction of full boost: a gentle DVFS slope, then the hardware slowdown ramp."""
    t = np.asarray(temp_c, dtype=float)
    f_dvfs = 1.0 - p.dvfs_slope_per_c * np.clip(t - p.dvfs_onset_c, 0.0, None)
    f_th = 1.0 - p.dvfs_slope_per_c * max(0.0, p.throttle_c - p.dvfs_onset_c)
    frac = np.clip((t - p.throttle_c) / (p.t_max_c - p.throttle_c), 0.0, 1.0)
    return np.where(t <= p.throttle_c, f_dvfs, f_th + (p.throttle_floor - f_th) * frac)


def _clock_slope(p: ChipReliability, t: np.ndarray) -> np.ndarray:
    """d clock / d temperature (piecewise constant)."""
    f_th = 1.0 - p.dvfs_slope_per_c * max(0.0, p.throttle_c - p.dvfs_onset_c)
    steep = (p.throttle_floor - f_th) / (p.t_max_c - p.throttle_c)
    return np.where(
        t <= p.dvfs_onset_c,
        0.0,
        np.where(t <= p.throttle_c, -p.dvfs_slope_per_c, np.where(t < p.t_max_c, steep, 0.0)),
    )


def power_w(p: ChipReliability, utilisation, clock=1.0) -> np.ndarray:
    """Electrical power of one chip: idle plus busy share of dynamic power at this clock."""
    u = np.asarray(utilisation, dtype=float)
    return p.idle_w + p.dynamic_w * u * np.asarray(clock, dtype=float) ** p.clock_power_exp


def steady_temp_c(
    p: ChipReliability, utilisation, ambient, cooling_factor=1.0, clock=1.0
) -> np.ndarray:
    """Temperature a chip settles at for a fixed clock (no governor)."""
    return (
        np.asarray(ambient, dtype=float)
        + power_w(p, utilisation, clock) * p.r_th_c_per_w * cooling_factor
    )


def step_temp(
    p: ChipReliability,
    temp_c,
    utilisation,
    ambient,
    dt_s: float,
    cooling_factor: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Temperature after `dt_s` at constant utilisation, and the clock the governor then holds.

    `dt_s = inf` gives the equilibrium. Solved by safeguarded Newton on the bracket
    [T' at the floor clock, T' at full clock]; chips that never reach the DVFS onset are exact
    in one evaluation.
    """
    t0 = np.asarray(temp_c, dtype=float)
    u = np.asarray(utilisation, dtype=float)
    amb = np.asarray(ambient, dtype=float)
    a = 0.0 if math.isinf(dt_s) else math.exp(-dt_s / p.tau_s)
    r = p.r_th_c_per_w * cooling_factor
    base = a * t0 + (1.0 - a) * (amb + r * p.idle_w)
    gain = (1.0 - a) * r * p.dynamic_w * u
    if base.shape != gain.shape:  # (broadcast_arrays costs more than the rest of a cool step)
        base, gain = np.broadcast_arrays(base, gain)
    shape = base.shape
    base, gain = base.ravel(), gain.ravel()
    k = p.clock_power_exp

    hi = base + gain
    out = hi.copy()
    need = (hi > p.dvfs_onset_c) & (gain > 0)
    if not need.any():
        return out.reshape(shape), np.ones(shape)
    b, g = base[need], gain[need]
    lo = b + g * p.throttle_floor**k
    hi_n = hi[need]
    x = hi_n.copy()
    for _ in range(100):
        f = clock_fraction(p, x)
        h = x - b - g * f**k
        done = np.abs(h) <= _TOL_C
        if done.all():
            break
        lo = np.where(h < 0, x, lo)
        hi_n = np.where(h > 0, x, hi_n)
        fk1 = f ** (k - 1) if k != 1 else np.ones_like(f)
        dh = 1.0 - g * k * fk1 * _clock_slope(p, x)  # >= 1
        newton = x - h / dh
        inside = (newton > lo) & (newton < hi_n)
        x = np.where(done, x, np.where(inside, newton, 0.5 * (lo + hi_n)))
    out[need] = x
    out = out.reshape(shape)
    return out, clock_fraction(p, out)


def equilibrium(p: ChipReliability, utilisation, ambient, cooling_factor: float = 1.0):
    """(temperature, clock) a chip settles at under constant load and inlet temperature."""
    t_dummy = np.zeros(np.broadcast(np.asarray(utilisation), np.asarray(ambient)).shape)
    return step_temp(p, t_dummy, utilisation, ambient, math.inf, cooling_factor)


def step_mean_temp(p: ChipReliability, t0, t1, dt_s: float) -> np.ndarray:
    """Time-mean temperature over a step on the exponential path from t0 to t1."""
    t0 = np.asarray(t0, dtype=float)
    t1 = np.asarray(t1, dtype=float)
    a = math.exp(-dt_s / p.tau_s)
    if a >= 1.0:
        return 0.5 * (t0 + t1)
    t_ss = (t1 - a * t0) / (1.0 - a)
    return t_ss + (t0 - t_ss) * (1.0 - a) * p.tau_s / dt_s


def crossing_offset_s(p: ChipReliability, t0, t1, dt_s: float, level_c: float) -> np.ndarray:
    """When within the step the exponential path from t0 to t1 crosses `level_c` (dt_s if never)."""
    t0 = np.asarray(t0, dtype=float)
    t1 = np.asarray(t1, dtype=float)
    a = math.exp(-dt_s / p.tau_s)
    if a >= 1.0:
        return np.full(np.broadcast(t0, t1).shape, float(dt_s))
    t_ss = (t1 - a * t0) / (1.0 - a)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (level_c - t_ss) / (t0 - t_ss)
        off = -p.tau_s * np.log(ratio)
    ok = np.isfinite(off) & (off >= 0) & (off <= dt_s)
    return np.where(ok, off, float(dt_s))
