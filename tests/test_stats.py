"""fleetsim.stats: the t quantile without scipy.stats gives scipy.stats's bits (every interval in
summary.json and replicates depends on it)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from fleetsim.stats import t_interval, t_quantile, unpaired_interval


def test_t_quantile_is_scipy_stats_to_the_bit():
    dfs = list(range(1, 200)) + list(np.random.default_rng(3).uniform(1.0, 400.0, 200))
    for df in dfs:
        for p in (0.975, 0.95, 0.995, 0.9):
            assert t_quantile(p, df) == float(stats.t.ppf(p, df)), (p, df)


def test_intervals_as_with_scipy_stats():
    x = np.random.default_rng(5).normal(3.0, 2.0, 16)
    m, lo, hi = t_interval(x)
    half = float(stats.t.ppf(0.975, 15) * x.std(ddof=1) / np.sqrt(16))
    assert (lo, hi) == (m - half, m + half)
    d, lo, hi = unpaired_interval(x[:7], x[7:])
    assert lo < d < hi
