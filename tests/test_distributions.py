"""Token-length distributions against their own theory, and their scenario schema.

The generic check follows Ciw's `compare_theoretical_to_observed`: every distribution's sample
moments must match the `mean` and `variance` it reports, and its sample must pass a chi-square
goodness-of-fit test against the `cdf` it reports.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from scipy import stats

from fleetsim.scenario.base import StrictModel
from fleetsim.scenario.workload import Arrival, LognormalTokens, TokenDist
from fleetsim.serving.distributions import (
    Empirical,
    Fixed,
    Geometric,
    Lognormal,
    TokenDistribution,
    Uniform,
)

N = 200_000
Z = 4.5  # two-sided normal quantile: a correct distribution fails one check with P ~ 7e-6

DISTRIBUTIONS = [
    Fixed(7),
    Uniform(3, 40),
    Uniform(5, 5),
    Lognormal(1000, 0.9, max=8192),
    Lognormal(20, 0.5),
    Lognormal(150, 1.0, max=1000, min=8),
    Lognormal(2, 1.2, max=64),  # mostly rounding and clipping at 1: tests the discretisation
    Geometric(1),
    Geometric(3.5),
    Geometric(250),
    Empirical(np.array([1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144.0]), scale=0.5),
]


def chi_square_p_value(dist: TokenDistribution, x: np.ndarray, bins: int = 30) -> float | None:
    """p-value of Pearson's chi-square test of x against dist.cdf, on ~equiprobable bins.

    Bin edges are the integers where the CDF first reaches j / bins; None when the law has too
    few support points for a test (a fixed value)."""
    k = np.arange(1, int(x.max()) + 2)
    cdf = dist.cdf(k)
    edges = np.unique(k[np.minimum(np.searchsorted(cdf, np.arange(1, bins) / bins), k.size - 1)])
    if edges.size < 2:
        return None
    expected = np.diff(np.concatenate([[0.0], dist.cdf(edges), [1.0]])) * x.size
    observed = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    keep = expected > 0
    assert observed[~keep].sum() == 0, "draws where the CDF puts no mass"
    stat = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return float(stats.chi2.sf(stat, keep.sum() - 1))


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_compare_theoretical_to_observed(dist: TokenDistribution) -> None:
    """Sample mean within Z sigma/sqrt(n) of `mean` (CLT); sample variance within Z standard
    errors of `variance`, the standard error sqrt((m4 - s^4) / n) taken from the sample's own
    fourth central moment; chi-square goodness of fit against `cdf` with p > 1e-3."""
    x = dist.sample(np.random.default_rng(20240601), N)
    assert x.dtype == np.int64 and x.shape == (N,) and x.min() >= 1

    assert abs(x.mean() - dist.mean) <= Z * np.sqrt(dist.variance / N)
    s2 = x.var()
    m4 = np.mean((x - x.mean()) ** 4)
    assert abs(s2 - dist.variance) <= Z * np.sqrt(max(m4 - s2 * s2, 0.0) / N) + 1e-12

    p = chi_square_p_value(dist, x)
    if p is not None:
        assert p > 1e-3, f"chi-square p = {p:.2e}"
    assert type(dist).__name__ in repr(dist)


def test_sample_zero_and_bad_counts() -> None:
    rng = np.random.default_rng(0)
    assert Lognormal(10, 1).sample(rng, 0).shape == (0,)
    with pytest.raises(ValueError, match="integer >= 0"):
        Geometric(2).sample(rng, -1)


def test_lognormal_moments_match_scipy_pmf() -> None:
    """Exact mean and variance of clip(round(X), min, max) against an independent sum of the
    pmf from scipy.stats.lognorm over the whole support (max above the 2^20 exact grid, so the
    partial-moment tail and the mass at max are both exercised); relative error < 1e-6."""
    median, sigma, top = 1e5, 2.0, 5_000_000
    d = Lognormal(median, sigma, max=top, min=3)
    law = stats.lognorm(s=sigma, scale=median)
    k = np.arange(3, top + 1, dtype=float)
    upper = np.where(k >= top, 1.0, law.cdf(k + 0.5))
    pmf = np.diff(np.concatenate([[0.0], upper]))
    mean = np.dot(pmf, k)
    var = np.dot(pmf, k * k) - mean**2
    assert d.mean == pytest.approx(mean, rel=1e-6)
    assert d.variance == pytest.approx(var, rel=1e-6)


def test_lognormal_unclipped_moments_match_the_continuous_law() -> None:
    """Without max, the rounded law's moments are the lognormal's, plus 1/12 of rounding in the
    variance, up to the mass below 0.5 (here < 1e-30): relative error < 1e-6."""
    d = Lognormal(1e5, 2.0)
    mu, s2 = np.log(1e5), 4.0
    assert d.mean == pytest.approx(np.exp(mu + s2 / 2), rel=1e-6)
    assert d.variance == pytest.approx((np.exp(s2) - 1) * np.exp(2 * mu + s2) + 1 / 12, rel=1e-6)


def test_small_exact_cases() -> None:
    assert (Fixed(5).mean, Fixed(5).variance) == (5.0, 0.0)
    assert (Uniform(1, 6).mean, Uniform(1, 6).variance) == (3.5, 35 / 12)
    assert (Geometric(1).mean, Geometric(1).variance) == (1.0, 0.0)
    e = Empirical(np.array([0.2, 3.0, 4.6]))  # 0.2 rounds to 0, floored to 1
    assert e.values.tolist() == [1, 3, 5] and e.mean == 3.0
    assert Lognormal(100, 1.0, max=100).sample(np.random.default_rng(1), 1000).max() == 100


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Fixed(0), "integer >= 1"),
        (lambda: Uniform(5, 3), "low <= high"),
        (lambda: Lognormal(100, 0.0), "0 < sigma"),
        (lambda: Lognormal(-1, 1.0), "median must be finite and > 0"),
        (lambda: Lognormal(100, 1.0, max=5, min=10), "max must be an integer >= min"),
        (lambda: Geometric(0.5), ">= 1"),
        (lambda: Empirical(np.array([])), "at least one value"),
        (lambda: Empirical(np.array([1.0, -2.0])), ">= 0"),
        (lambda: Empirical(np.array([1.0]), scale=0), "scale"),
    ],
)
def test_constructor_validates(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- scenario schema -----------------------------------------------------------------------


class _Holder(StrictModel):
    tokens: TokenDist


def _error(data: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as info:
        _Holder.model_validate({"tokens": data})
    err = info.value.errors()[0]
    return err["loc"], err["msg"]


def test_schema_builds_each_kind() -> None:
    for data in (
        {"kind": "fixed", "value": 3},
        {"kind": "uniform", "low": 1, "high": 9},
        {"kind": "lognormal", "median": 1000, "sigma": 0.9, "max": 8192},
        {"kind": "geometric", "mean": 250},
        {"kind": "empirical", "path": "lengths.csv", "column": "prompt"},
    ):
        assert _Holder.model_validate({"tokens": data}).tokens.kind == data["kind"]
    assert LognormalTokens(kind="lognormal", median=10, sigma=1).min == 1


@pytest.mark.parametrize(
    "data, loc_end, message",
    [
        ({"kind": "lognormal", "median": 100, "sigma": 0}, "sigma", "greater than 0"),
        ({"kind": "lognormal", "median": 100, "sigma": -1}, "sigma", "greater than 0"),
        ({"kind": "lognormal", "median": 100, "sigma": float("inf")}, "sigma", "finite"),
        (
            {"kind": "lognormal", "median": 100, "sigma": 1, "max": 5, "min": 9},
            None,
            "max must be >= min",
        ),
        ({"kind": "uniform", "low": 9, "high": 2}, None, "high must be >= low"),
        ({"kind": "geometric", "mean": 0.5}, "mean", "greater than or equal to 1"),
        ({"kind": "fixed", "value": 0}, "value", "greater than or equal to 1"),
        ({"kind": "fixed", "value": 3, "extra": 1}, "extra", "Extra inputs are not permitted"),
        ({"kind": "empirical", "path": "x", "column": "c", "scale": 0}, "scale", "greater than 0"),
        ({"kind": "gaussian", "mean": 3}, None, "does not match any of the expected tags"),
    ],
)
def test_schema_rejects_with_the_rule(data: dict, loc_end: str | None, message: str) -> None:
    loc, msg = _error(data)
    assert message in msg
    if loc_end is not None:
        assert loc[-1] == loc_end


def test_docs_yaml_examples_validate() -> None:
    """Every ```yaml block in docs/workloads.md that describes a workload parses with the schema
    (so the documentation cannot drift from the code)."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "workloads.md"
    blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert blocks

    class Workload(StrictModel):
        arrival: Arrival
        prompt_tokens: TokenDist | None = None
        output_tokens: TokenDist | None = None

    checked = 0
    for block in blocks:
        data = yaml.safe_load(block)
        for wl in data.values() if isinstance(data, dict) else []:
            if isinstance(wl, dict) and "arrival" in wl:
                Workload.model_validate({k: wl[k] for k in wl if k in Workload.model_fields})
                checked += 1
    assert checked >= 4
