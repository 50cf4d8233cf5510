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


def test_wilson_interval_matches_the_textbook_value():
    """8 of 10 at 95%: Wilson's interval is 0.4902 to 0.9433 (its formula worked by hand); ends
    clipped to [0, 1] and NaN for no trials."""
    import math

    from fleetsim.stats import wilson_interval

    lo, hi = wilson_interval(8, 10)
    assert abs(lo - 0.4902) < 1e-4 and abs(hi - 0.9433) < 1e-4
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
