"""Small statistics shared by the fleet's futures, sweeps and comparisons (at the bottom of the
package, beside fleetsim.rng): a mean with its Student-t interval, and paired differences."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """Student t quantile: `scipy.stats.t.ppf(p, df)` to the bit (its `_ppf` is this very
    function, with loc 0 and scale 1), without importing scipy.stats: that import (with the
    scipy.optimize, sparse and spatial it pulls in) cost about 0.6 s of every warm fleet run."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def t_interval(x, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and `level` Student-t interval of the mean (NaN bounds for fewer than two values;
    NaNs in `x` are left out)."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if len(x) < 2:
        return m, math.nan, math.nan
    half = float(t_quantile(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def unpaired_interval(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of b - a and its Welch interval, as if the two samples were independent."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan
    d = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return d, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    dof = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0) + (vb ** 2 / (len(b) - 1) if vb else 0))
    half = float(t_quantile(0.5 + level / 2, float(dof)) * se)
    return d, d - half, d + half


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson interval of a share of k successes in n (NaN for n = 0): honest near 0 and 1."""
    from scipy.special import ndtri  # scipy.stats.norm.ppf's own function, without scipy.stats

    if n <= 0:
        return math.nan, math.nan
    z, p = float(ndtri(0.5 + level / 2)), k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def quantiles(x, qs=(5, 50, 95)) -> list[float]:
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return [math.nan] * len(qs)
    return [float(v) for v in np.percentile(x, qs)]
