"""A warm fleet run imports no scipy.stats / scipy.integrate / scipy.special (issue 24: about
0.45 s a process), and the closed forms that replaced them agree with scipy."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest


def test_wilson_interval_is_scipys_to_the_bit():
    from scipy.stats import binomtest

    from fleetsim.fleet.windows import _wilson

    for n in (1, 2, 7, 100, 537):
        for k in range(n + 1):
            ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            assert _wilson(k, n) == (float(ci.low), float(ci.high)), (k, n)
    assert _wilson(0, 0) == (None, None)


@pytest.mark.parametrize("k", [1, 2, 10, 200, 5000])
@pytest.mark.parametrize("mean", [1e-6, 0.5, 10.0, 199.0, 200.0, 4000.0, 6000.0])
def test_poisson_tail_matches_scipy(k, mean):
    from scipy.stats import poisson

    from fleetsim.serving.capacity import poisson_at_least

    want = float(poisson.sf(k - 1, mean))
    assert poisson_at_least(k, mean) == pytest.approx(want, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("h0", [1e-6, 1e-4, 1e-2])
@pytest.mark.parametrize("g", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("tau", [1.0, 100.0, 5000.0])
def test_mean_up_time_series_matches_a_careful_quadrature(h0, g, tau):
    """E[up] under the continuous-load hazard: the incomplete-gamma series against quad split
    at multiples of tau at 1e-13 relative tolerance."""
    from scipy import integrate

    from fleetsim.serving.capacity import _mean_up_extended

    def f(t):
        return math.exp(-h0 * ((1 + g) * t - g * tau * (1 - math.exp(-t / tau))))

    edges = sorted({0.0, *(min(tau * m, 60 / h0) for m in (1, 3, 10, 30, 100)), 60 / h0})
    ref = sum(integrate.quad(f, a, b, limit=500, epsabs=0, epsrel=1e-13)[0] for a, b in zip(edges, edges[1:]))
    assert _mean_up_extended(h0, g, tau) == pytest.approx(ref, rel=1e-12)


def test_normal_cdf_within_an_ulp_of_scipy():
    from scipy.special import ndtr

    from fleetsim.serving.distributions import _ndtr

    z = np.linspace(-8, 8, 20001)
    assert np.max(np.abs(_ndtr(z) - ndtr(z))) <= 2.3e-16
    assert _ndtr(-np.inf) == 0.0 and _ndtr(np.inf) == 1.0 and math.isnan(_ndtr(np.nan))


def test_warm_path_imports_no_scipy_stats_integrate_special():
    """What a warm fleet run calls (workload means, the capacity's availability, the windows'
    intervals), in a fresh process: none of the three scipy packages gets imported."""
    code = """
import sys
from fleetsim.api import load_scenario
from fleetsim.fleet.windows import _wilson
from fleetsim.serving.capacity import replica_mtbf_mttr_h
from fleetsim.serving.distributions import Lognormal
from fleetsim.reliability import resolve_chip
from fleetsim.catalog import load_chips
from fleetsim.scenario.reliability import ReliabilityConfig
Lognormal(1000, 0.9, max=8192).mean
_wilson(90, 100)
rel = ReliabilityConfig()
p = resolve_chip(rel, "ascend-910b", load_chips())
replica_mtbf_mttr_h(p, 70.0, 1.0, 4, rel.repair, 100)
bad = [m for m in ("scipy.stats", "scipy.integrate", "scipy.special") if m in sys.modules]
print(",".join(bad))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout
