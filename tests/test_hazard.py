"""Crash hazard: Arrhenius, knees, and failure times against the analytic survival function (KS)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fleetsim.catalog.reliability import chip_reliability
from fleetsim.reliability.hazard import (
    BOLTZMANN_EV_PER_K,
    arrhenius_factor,
    cumulative_knots,
    extended_factor,
    first_passage,
    hazard_per_h,
    invert_cumulative,
    update_high_load_h,
)
from fleetsim.reliability.health import PoolHealth
from fleetsim.reliability.thermal import ambient_c, equilibrium
from fleetsim.scenario.reliability import HallConfig

H100 = chip_reliability("h100")
DOMESTIC = chip_reliability("ascend-910b")
# KS tests: fixed seeds make them deterministic; under the null a p-value below 0.01 has
# probability 1%, so a pass at alpha = 0.01 says the sample is consistent with the law.
ALPHA = 0.01


def test_arrhenius_factor():
    assert arrhenius_factor(64.0, 64.0, 0.7) == pytest.approx(1.0)
    want = math.exp(0.7 / BOLTZMANN_EV_PER_K * (1 / (64 + 273.15) - 1 / (74 + 273.15)))
    assert arrhenius_factor(74.0, 64.0, 0.7) == pytest.approx(want)
    assert 1.8 < want < 2.2  # ~2x per 10 C near 70 C for 0.7 eV
    assert arrhenius_factor(50.0, 64.0, 0.0) == 1.0


def test_base_rate_is_one_over_mtbf_at_reference():
    assert hazard_per_h(H100, H100.mtbf_ref_c) == pytest.approx(1 / H100.mtbf_h)


def test_domestic_hazard_climbs_above_hot_c():
    """Above hot_c the domestic hazard grows by exp(gain x excess) on top of Arrhenius."""
    t = DOMESTIC.hot_c + 10.0
    arr_only = arrhenius_factor(t, DOMESTIC.hot_c, DOMESTIC.ea_ev)
    ratio = hazard_per_h(DOMESTIC, t) / hazard_per_h(DOMESTIC, DOMESTIC.hot_c)
    assert ratio == pytest.approx(arr_only * math.exp(10 * DOMESTIC.hot_gain_per_c))
    assert hazard_per_h(H100, 95.0) / hazard_per_h(H100, 85.0) == pytest.approx(
        arrhenius_factor(95.0, 85.0, H100.ea_ev)
    )  # no knee for NVIDIA


def test_extended_operation_factor():
    p = DOMESTIC
    assert extended_factor(p, 0.0) == 1.0
    assert extended_factor(p, 1e6) == pytest.approx(1 + p.extended_gain)
    h = update_high_load_h(p, np.array([0.0, 5.0, 5.0]), np.array([0.95, 0.95, 0.1]), 2.0)
    np.testing.assert_allclose(h, [2.0, 7.0, 5.0 - 2.0 * p.extended_recovery])
    assert update_high_load_h(p, 1.0, 0.0, 10.0) == 0.0


def test_first_passage_offsets():
    crashed, off = first_passage([0.0, 0.5, 0.9], [0.1, 0.1, 0.01], 5.0, [0.2, 2.0, 0.95])
    np.testing.assert_array_equal(crashed, [True, False, True])
    np.testing.assert_allclose(off[[0, 2]], [2.0, 5.0])


def _ks_against_truncated(times: np.ndarray, cdf, horizon: float) -> float:
    """KS p-value of failure times observed up to `horizon` against cdf conditioned on <= horizon."""
    f_h = cdf(horizon)
    return stats.kstest(times, lambda t: np.minimum(cdf(t) / f_h, 1.0)).pvalue


@pytest.mark.parametrize("ambient", [25.0, 40.0])
def test_poolhealth_failure_times_exponential_arrhenius_scaled(ambient):
    """Constant temperature -> exponential lifetimes with rate chips x lambda(T) (Arrhenius-scaled
    from mtbf at mtbf_ref_c). KS test at alpha 0.01 on 3,000 replicas, step 300 s; the hall at
    40 C checks the Arrhenius scaling, since the fitted law has the rate at that temperature.
    """
    p = H100.replace(mtbf_h=20.0)  # short lifetimes keep the test fast; law unchanged
    hall = HallConfig(ambient_c=ambient)
    n, chips, u = 3000, 2, 0.6
    ph = PoolHealth(p, hall, n, chips, np.random.default_rng(7), initial_utilisation=u)
    t_eq = float(ph.temp_c[0])
    arrhenius = math.exp(
        p.ea_ev / BOLTZMANN_EV_PER_K * (1 / (p.mtbf_ref_c + 273.15) - 1 / (t_eq + 273.15))
    )
    rate_per_s = chips / p.mtbf_h * arrhenius / 3600.0  # written out, not via hazard_per_h
    horizon = 8.0 / rate_per_s
    dt = 300.0
    times = []
    t = 0.0
    while t < horizon:
        ph.advance(t, dt, np.full(n, u))
        times.extend(ph.last_crash_times_s.tolist())
        t += dt
    np.testing.assert_allclose(ph.temp_c[ph.up], t_eq, atol=1e-6)
    times = np.array(times)
    assert len(times) > 0.99 * n
    p_value = _ks_against_truncated(times, lambda x: 1 - np.exp(-rate_per_s * x), t)
    assert p_value > ALPHA, p_value


def test_inversion_matches_survival_with_diurnal_hazard():
    """Cumulative-hazard inversion with a daily temperature cycle and a growing long-load term:
    sampled times follow F(t) = 1 - exp(-Lambda(t)) with Lambda piecewise linear (KS, alpha 0.01).
    """
    p = DOMESTIC.replace(mtbf_h=200.0)
    hall = HallConfig(ambient_c=30, daily_swing_c=10)
    hours = np.arange(24 * 30)
    temp, _ = equilibrium(p, 0.9, ambient_c(hall, hours + 0.5))
    rate = hazard_per_h(p, temp, hours + 0.5)
    knots = cumulative_knots(rate)
    e = np.random.default_rng(3).exponential(1.0, 20000)
    t = invert_cumulative(knots, rate, e)
    finite = t[np.isfinite(t)]
    assert np.all(np.isinf(t[e >= knots[-1]]))

    def cdf(x):
        return 1 - np.exp(-np.interp(x, np.arange(len(knots)), knots))

    assert _ks_against_truncated(finite, cdf, float(len(rate))) > ALPHA
