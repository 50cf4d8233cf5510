"""Crash hazard: base rate from MTBF, Arrhenius in die temperature, over-temperature knee, and
continuous high load; failure times by cumulative-hazard inversion (one Exp(1) draw per unit).

A unit fails when its integrated hazard reaches its own E ~ Exp(1): for any hazard path this
gives exactly the survival function S(t) = exp(-integral of the hazard), and it needs no
per-step Bernoulli draws, so the step length does not bias the failure times.
"""

from __future__ import annotations

import numpy as np

from fleetsim.catalog.reliability import ChipReliability

BOLTZMANN_EV_PER_K = 8.617333262e-5
KELVIN = 273.15


def arrhenius_factor(temp_c, ref_c: float, ea_ev: float) -> np.ndarray:
    """exp(Ea/k (1/T_ref - 1/T)): how much faster failures come at T than at T_ref."""
    t_k = np.asarray(temp_c, dtype=float) + KELVIN
    return np.exp(ea_ev / BOLTZMANN_EV_PER_K * (1.0 / (ref_c + KELVIN) - 1.0 / t_k))


def hot_factor(p: ChipReliability, temp_c) -> np.ndarray:
    """Extra hazard above `hot_c` (1 when hot_gain_per_c is 0): the 'overheats and crashes' knee."""
    excess = np.clip(np.asarray(temp_c, dtype=float) - p.hot_c, 0.0, None)
    return np.exp(p.hot_gain_per_c * excess)


def extended_factor(p: ChipReliability, high_load_h) -> np.ndarray:
    """1 + gain (1 - exp(-h / tau)): grows with hours of continuous high load, saturates."""
    h = np.asarray(high_load_h, dtype=float)
    return 1.0 + p.extended_gain * (1.0 - np.exp(-h / p.extended_tau_h))


def hazard_per_h(p: ChipReliability, temp_c, high_load_h=0.0) -> np.ndarray:
    """Failures per chip-hour at this die temperature and continuous-load history."""
    return (
        p.hazard_multiplier
        / p.mtbf_h
        * arrhenius_factor(temp_c, p.mtbf_ref_c, p.ea_ev)
        * hot_factor(p, temp_c)
        * extended_factor(p, high_load_h)
    )


def update_high_load_h(p: ChipReliability, high_load_h, utilisation, dt_h: float) -> np.ndarray:
    """Hours of continuous high load: +dt above the threshold, drained at `extended_recovery` below."""
    h = np.asarray(high_load_h, dtype=float)
    high = np.asarray(utilisation, dtype=float) >= p.extended_threshold
    return np.where(high, h + dt_h, np.maximum(0.0, h - p.extended_recovery * dt_h))


def first_passage(cum0, rate, dt, threshold) -> tuple[np.ndarray, np.ndarray]:
    """Within a step of constant rate: which units' cumulative hazard reaches `threshold`, and when.

    Returns (mask, offset) where offset = (threshold - cum0) / rate for the crashed units, in the
    time unit of `dt` (rate must be per that unit).
    """
    cum0 = np.asarray(cum0, dtype=float)
    rate = np.asarray(rate, dtype=float)
    threshold = np.asarray(threshold, dtype=float)
    crashed = cum0 + rate * dt >= threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(crashed, np.clip((threshold - cum0) / rate, 0.0, dt), np.inf)
    return crashed, offset


def cumulative_knots(rate_per_h: np.ndarray) -> np.ndarray:
    """Integrated hazard at the edges of hourly pieces: [0, r0, r0 + r1, ...]."""
    return np.concatenate(([0.0], np.cumsum(np.asarray(rate_per_h, dtype=float))))


def invert_cumulative(knots: np.ndarray, rate_per_h: np.ndarray, targets) -> np.ndarray:
    """Hours (from the first knot) at which a piecewise-linear cumulative hazard reaches targets.

    Targets beyond the last knot give inf (no failure within the horizon).
    """
    targets = np.asarray(targets, dtype=float)
    k = np.searchsorted(knots, targets, side="right") - 1
    inside = (k >= 0) & (k < len(rate_per_h))
    kk = np.clip(k, 0, len(rate_per_h) - 1)
    hours = kk + (targets - knots[kk]) / rate_per_h[kk]
    return np.where(inside, hours, np.inf)
