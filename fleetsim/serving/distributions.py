"""Token-length distributions that know their own theory (Ciw's `ciw/dists` habit).

Each class validates its parameters in the constructor, reports the exact `mean` and
`variance` of what `sample` returns (after rounding and clipping, not of the continuous law it
came from), its CDF on the integers, and a `__repr__` with its parameters. `sample(rng, n)`
draws n lengths at once as int64 >= 1. One generic test checks every class against itself.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod

import numpy as np

__all__ = [
    "TokenDistribution",
    "Fixed",
    "Uniform",
    "Lognormal",
    "Geometric",
    "Empirical",
]

# The lognormal's moments are summed exactly over its integer support up to this length; beyond
# it (only reached when max is None or larger) continuous partial moments take over (see there).
_EXACT_SUPPORT = 1 << 20


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0 (got {n!r})")
    return int(n)


def _ndtr_scalar(a: float) -> float:
    """Standard normal CDF, as cephes' ndtr (scipy.special.ndtr) computes it: erf near 0,
    erfc in the tails (no cancellation). Kept here so a run needs no scipy import for it."""
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0 else y


_SQRT1_2 = math.sqrt(0.5)
_ndtr_array = np.vectorize(_ndtr_scalar, otypes=[float])


def _ndtr(z):
    """Normal CDF of an array: math's erf/erfc per element (within an ulp of scipy's) up to
    _NDTR_LOOP elements, where a loop costs less than importing scipy.special; scipy beyond."""
    z = np.asarray(z, dtype=float)
    if z.size > _NDTR_LOOP:
        from scipy import special

        return special.ndtr(z)
    if z.ndim == 0:
        return np.float64(_ndtr_scalar(float(z)) if not math.isnan(z) else math.nan)
    return _ndtr_array(z) if z.size else np.zeros(z.shape)


_NDTR_LOOP = 1 << 16


class TokenDistribution(ABC):
    """A law on the positive integers: what `prompt_tokens` and `output_tokens` draw from."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent lengths, int64, each >= 1."""

    @abstractmethod
    def cdf(self, k: np.ndarray | float) -> np.ndarray:
        """P(length <= k), vectorised over k."""

    @property
    @abstractmethod
    def mean(self) -> float: ...

    @property
    @abstractmethod
    def variance(self) -> float: ...


class Fixed(TokenDistribution):
    """Every request has `value` tokens."""

    def __init__(self, value: int) -> None:
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"Fixed value must be an integer >= 1 (got {value!r})")
        self.value = int(value)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(_check_count(n), self.value, dtype=np.int64)

    def cdf(self, k: np.ndarray | float) -> np.ndarray:
        return (np.asarray(k, dtype=float) >= self.value).astype(float)

    @property
    def mean(self) -> float:
        return float(self.value)

    @property
    def variance(self) -> float:
        return 0.0

    def __repr__(self) -> str:
        return f"Fixed(value={self.value})"


class Uniform(TokenDistribution):
    """Integers low..high inclusive, equally likely."""

    def __init__(self, low: int, high: int) -> None:
        if int(low) != low or int(high) != high or low < 1 or high < low:
            raise ValueError(
                f"Uniform needs integers 1 <= low <= high (got low={low}, high={high})"
            )
        self.low, self.high = int(low), int(high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high + 1, size=_check_count(n), dtype=np.int64)

    def cdf(self, k: np.ndarray | float) -> np.ndarray:
        width = self.high - self.low + 1
        return np.clip((np.floor(np.asarray(k, dtype=float)) - self.low + 1) / width, 0.0, 1.0)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2.0

    @property
    def variance(self) -> float:
        return ((self.high - self.low + 1) ** 2 - 1) / 12.0

    def __repr__(self) -> str:
        return f"Uniform(low={self.low}, high={self.high})"


class Lognormal(TokenDistribution):
    """clip(round(X), min, max) with ln X ~ Normal(ln median, sigma^2).

    `mean` and `variance` are those of the rounded, clipped integer: summed exactly over the
    support up to 2^20 tokens; if the support goes further (max None or above 2^20) the rest uses
    the lognormal's partial moments, with 1/12 added to the second moment for rounding, a
    relative error below 1e-6 of the tail's own share.
    """

    def __init__(self, median: float, sigma: float, max: int | None = None, min: int = 1) -> None:
        if not (math.isfinite(median) and median > 0):
            raise ValueError(f"Lognormal median must be finite and > 0 (got {median!r})")
        if not (math.isfinite(sigma) and 0 < sigma <= 10):
            raise ValueError(f"Lognormal sigma must satisfy 0 < sigma <= 10 (got {sigma!r})")
        if int(min) != min or min < 1:
            raise ValueError(f"Lognormal min must be an integer >= 1 (got {min!r})")
        if max is not None and (int(max) != max or max < min):
            raise ValueError(f"Lognormal max must be an integer >= min={min} (got {max!r})")
        self.median, self.sigma = float(median), float(sigma)
        self.min = int(min)
        self.max = None if max is None else int(max)
        self.mu = math.log(self.median)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = np.rint(np.exp(self.mu + self.sigma * rng.standard_normal(_check_count(n))))
        hi = np.inf if self.max is None else self.max
        return np.clip(x, self.min, hi).astype(np.int64)

    def _phi(self, x: np.ndarray | float, shift: float = 0.0) -> np.ndarray:
        """P(X <= x) for the lognormal with ln-mean mu + shift (shift = r sigma^2: moment r)."""
        with np.errstate(divide="ignore"):
            z = (np.log(np.asarray(x, dtype=float)) - self.mu - shift) / self.sigma
        return _ndtr(z)

    def cdf(self, k: np.ndarray | float) -> np.ndarray:
        k = np.floor(np.asarray(k, dtype=float))
        p = self._phi(np.maximum(k + 0.5, 0.5))
        p = np.where(k < self.min, 0.0, p)
        if self.max is not None:
            p = np.where(k >= self.max, 1.0, p)
        return p

    def _moments(self) -> tuple[float, float]:
        top = _EXACT_SUPPORT if self.max is None else min(self.max, _EXACT_SUPPORT)
        k = np.arange(self.min, top + 1, dtype=float)
        upper = self.cdf(k)  # P(N <= k); at k = max this is 1
        pmf = np.diff(np.concatenate([[0.0], upper]))
        m1 = float(np.dot(pmf, k))
        m2 = float(np.dot(pmf, k * k))
        if upper[-1] < 1.0:  # support continues beyond the grid
            a = top + 0.5
            b = np.inf if self.max is None else self.max - 0.5
            s2 = self.sigma**2
            ex1 = math.exp(self.mu + s2 / 2)
            ex2 = math.exp(2 * self.mu + 2 * s2)
            mass = float(self._phi(b) - self._phi(a))
            m1 += ex1 * float(self._phi(b, s2) - self._phi(a, s2))
            m2 += ex2 * float(self._phi(b, 2 * s2) - self._phi(a, 2 * s2)) + mass / 12.0
            if self.max is not None:  # draws above max - 0.5 land on max
                at_max = float(1.0 - self._phi(b))
                m1 += at_max * self.max
                m2 += at_max * self.max**2
        return m1, max(m2 - m1 * m1, 0.0)

    @functools.cached_property
    def _exact_moments(self) -> tuple[float, float]:  # ~10 ms, so only when asked for
        return self._moments()

    @property
    def mean(self) -> float:
        return self._exact_moments[0]

    @property
    def variance(self) -> float:
        return self._exact_moments[1]

    def __repr__(self) -> str:
        return (
            f"Lognormal(median={self.median:g}, sigma={self.sigma:g}, "
            f"max={self.max}, min={self.min})"
        )


class Geometric(TokenDistribution):
    """P(n) = p (1 - p)^(n - 1) on n = 1, 2, ... with p = 1 / mean: discrete exponential."""

    def __init__(self, mean: float) -> None:
        if not (math.isfinite(mean) and mean >= 1):
            raise ValueError(f"Geometric mean must be finite and >= 1 (got {mean!r})")
        self._mean = float(mean)
        self.p = 1.0 / self._mean

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.geometric(self.p, size=_check_count(n)).astype(np.int64)

    def cdf(self, k: np.ndarray | float) -> np.ndarray:
        k = np.floor(np.asarray(k, dtype=float))
        with np.errstate(divide="ignore"):  # p = 1: log1p(-1) = -inf gives cdf 1, as it should
            return np.where(k < 1, 0.0, -np.expm1(np.maximum(k, 1) * np.log1p(-self.p)))

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        return (1.0 - self.p) / self.p**2

    def __repr__(self) -> str:
        return f"Geometric(mean={self._mean:g})"


class Empirical(TokenDistribution):
    """Resample observed lengths: max(1, round(value * scale)), each value equally likely."""

    def __init__(self, values: np.ndarray, scale: float = 1.0, source: str = "") -> None:
        raw = np.asarray(values, dtype=float).ravel()
        if raw.size == 0:
            raise ValueError("Empirical needs at least one value")
        if not np.all(np.isfinite(raw)) or np.any(raw < 0):
            raise ValueError("Empirical values must be finite and >= 0")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"Empirical scale must be finite and > 0 (got {scale!r})")
        self.scale = float(scale)
        self.source = source
        self.values = np.sort(np.maximum(np.rint(raw * self.scale), 1).astype(np.int64))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.values[rng.integers(0, self.values.size, size=_check_count(n))]

    def cdf(self, k: np.ndarray | float) -> np.ndarray:
        idx = np.searchsorted(self.values, np.asarray(k, dtype=float), side="right")
        return idx / self.values.size

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def variance(self) -> float:
        return float(self.values.var())

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        return f"Empirical(n={self.values.size}, scale={self.scale:g}{src})"
