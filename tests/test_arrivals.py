"""Arrival processes against their own theory, common random numbers, and their schema."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from fleetsim.scenario.base import StrictModel
from fleetsim.scenario.workload import Arrival
from fleetsim.serving.arrivals import (
    ArrivalProcess,
    DiurnalProcess,
    GammaProcess,
    MMPPProcess,
    PoissonProcess,
)

Z = 4.5  # two-sided normal quantile: a correct process fails one check with P ~ 7e-6

PROFILE = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.5, 1.6, 1.6, 1.5,
           1.4, 1.5, 1.6, 1.7, 1.6, 1.5, 1.3, 1.2, 1.0, 0.0, 0.6, 0.3]  # fmt: skip

PROCESSES = [
    PoissonProcess(20.0),
    GammaProcess(20.0, cv=0.5),
    GammaProcess(20.0, cv=2.0),
    DiurnalProcess(20.0, peak_to_mean=1.8, peak_hour=3.0, start_hour=2.9),
    DiurnalProcess(20.0, profile=PROFILE, start_hour=23.9987),  # window crosses midnight
    MMPPProcess([5.0, 60.0], [2.0, 0.5]),
    MMPPProcess([0.0, 40.0], [1.0, 1.0]),  # on/off
]


@pytest.mark.parametrize("proc", PROCESSES, ids=repr)
def test_counts_match_own_theory(proc: ArrivalProcess) -> None:
    """R = 2000 windows of 10 s (about 200 arrivals each). The mean count is within
    Z sqrt(count_variance / R) of expected_count (CLT); the sample variance of the counts is
    within Z standard errors of count_variance, the standard error sqrt((m4 - s^4) / R) taken
    from the counts' own fourth central moment. For gamma, count_variance is the renewal limit
    cv^2 E[N]; the O(1) correction (-6.8 for cv 2, -0.4 for cv 0.5) is under 1% of it, well
    inside the ~14% tolerance. Also: sorted, in [0, 10), float64."""
    rng = np.random.default_rng(7)
    duration, reps = 10.0, 2000
    counts = np.empty(reps)
    for i in range(reps):
        t = proc.generate(rng, duration)
        assert t.dtype == np.float64
        if t.size:
            assert t[0] >= 0 and t[-1] < duration and np.all(np.diff(t) >= 0)
        counts[i] = t.size
    mean, var = proc.expected_count(duration), proc.count_variance(duration)
    assert abs(counts.mean() - mean) <= Z * np.sqrt(var / reps)
    s2 = counts.var(ddof=1)
    m4 = np.mean((counts - counts.mean()) ** 4)
    assert abs(s2 - var) <= Z * np.sqrt((m4 - s2 * s2) / reps)
    assert type(proc).__name__ in repr(proc)


def test_poisson_gaps_are_exponential_and_counts_poisson_dispersed() -> None:
    """Gaps: KS test against Exp(rate), p > 1e-3. Counts in 200 intervals of 10 s: the
    dispersion statistic sum (n_i - mean)^2 / mean ~ chi-square(199) under Poisson; its
    two-sided p-value > 1e-3."""
    proc = PoissonProcess(5.0)
    t = proc.generate(np.random.default_rng(11), 2000.0)
    assert stats.kstest(np.diff(t), stats.expon(scale=1 / 5.0).cdf).pvalue > 1e-3
    counts = np.bincount((t // 10).astype(int), minlength=200)
    dispersion = ((counts - counts.mean()) ** 2).sum() / counts.mean()
    p = stats.chi2.cdf(dispersion, counts.size - 1)
    assert 1e-3 / 2 < p < 1 - 1e-3 / 2


def ks_p_above(x: np.ndarray, cdf, x_min: float) -> float:
    """KS p-value from the distance between the empirical and reference CDFs taken only at
    x >= x_min. That distance is at most the full KS statistic, so the p-value read from the
    full statistic's null law (scipy's kstwo) is conservative. Needed where many values fall
    below float64 resolution of the clock (gamma gaps with cv 3: ~4% are below 1e-13 s and the
    differences of absolute times round them to 0)."""
    x = np.sort(x)
    n = x.size
    i = np.arange(n)
    f = cdf(x)
    above = x >= x_min
    d = max(
        np.max((i + 1) / n - f, where=above, initial=0), np.max(f - i / n, where=above, initial=0)
    )
    return float(stats.kstwo.sf(d, n))


@pytest.mark.parametrize("cv", [0.3, 1.0, 3.0])
def test_gamma_gaps(cv: float) -> None:
    """Gaps after the first follow Gamma(1/cv^2, scale cv^2/rate): KS p > 1e-3 (above 1e-9 s,
    see ks_p_above); the sample mean
    gap within Z sd/sqrt(n) of 1/rate and the sample variance within Z standard errors (from the
    sample's fourth moment) of (cv/rate)^2, i.e. the inter-arrival CV is cv."""
    rate = 50.0
    proc = GammaProcess(rate, cv)
    gaps = np.diff(proc.generate(np.random.default_rng(3), 2000.0))
    ref = stats.gamma(a=1 / cv**2, scale=cv**2 / rate)
    assert ks_p_above(gaps, ref.cdf, 1e-9) > 1e-3
    n = gaps.size
    var = proc.interarrival_variance()
    assert abs(gaps.mean() - proc.interarrival_mean()) <= Z * np.sqrt(var / n)
    s2, m4 = gaps.var(), np.mean((gaps - gaps.mean()) ** 4)
    assert abs(s2 - proc.interarrival_variance()) <= Z * np.sqrt((m4 - s2 * s2) / n)


def test_gamma_starts_stationary() -> None:
    """The first arrival follows the equilibrium law, mean (1 + cv^2) / (2 rate) and second
    moment E[X^3] / (3 E[X]) = (1+k)(2+k) / (3 k^2 rate^2) (k = 1/cv^2), not a full gap of
    mean 1/rate: 4000 windows, mean within Z sd/sqrt(n)."""
    rate, cv = 20.0, 2.0
    k = 1 / cv**2
    proc = GammaProcess(rate, cv)
    rng = np.random.default_rng(5)
    first = np.array([proc.generate(rng, 20.0)[0] for _ in range(4000)])
    mean = (1 + cv**2) / (2 * rate)
    sd = np.sqrt((1 + k) * (2 + k) / (3 * k * k * rate * rate) - mean**2)
    assert abs(first.mean() - mean) <= Z * sd / np.sqrt(first.size)


@pytest.mark.parametrize(
    "proc",
    [
        DiurnalProcess(2.0, profile=PROFILE, start_hour=5.5),
        DiurnalProcess(2.0, peak_to_mean=1.6, peak_hour=14.0, start_hour=0.0),
        DiurnalProcess(2.0, peak_to_mean=2.0, peak_hour=20.25, start_hour=17.0),
    ],
    ids=repr,
)
def test_diurnal_hourly_counts_follow_profile(proc: DiurnalProcess) -> None:
    """One simulated day (~173,000 arrivals): the 24 hourly counts against the exact expected
    counts L(h+1) - L(h): Pearson chi-square with 24 degrees of freedom (nothing estimated),
    p > 1e-3; hours with zero rate get zero arrivals. Time-rescaling theorem: the gaps of
    L(t_i) are Exp(1), KS p > 1e-3. The day's expected count is mean_rate x 86400."""
    t = proc.generate(np.random.default_rng(13), 86_400.0)
    edges = np.arange(25) * 3600.0
    expected = np.diff(proc.cumulative_intensity(edges))
    observed = np.histogram(t, bins=edges)[0]
    assert np.all(observed[expected == 0] == 0)
    live = expected > 0
    chi2 = ((observed[live] - expected[live]) ** 2 / expected[live]).sum()
    assert stats.chi2.sf(chi2, live.sum()) > 1e-3
    assert proc.expected_count(86_400.0) == pytest.approx(2.0 * 86_400, rel=1e-9)
    assert stats.kstest(np.diff(proc.cumulative_intensity(t)), "expon").pvalue > 1e-3


def test_diurnal_profile_is_normalised_and_aligned() -> None:
    """The profile is rescaled to mean 1, and simulated t = 0 sits at start_hour."""
    proc = DiurnalProcess(10.0, profile=[2.0] * 12 + [6.0] * 12, start_hour=11.5)
    assert proc.multiplier(0.0) == pytest.approx(0.5)
    assert proc.multiplier(1800.0) == pytest.approx(1.5)
    assert proc.cumulative_intensity(3600.0) == pytest.approx(10 * (0.5 + 1.5) * 1800)


def test_mmpp_long_run_rate() -> None:
    """One window of 20,000 s: count within Z sqrt(count_variance) of mean_rate x duration,
    where count_variance = E[L] + Var[L] is exact for the stationary start (sd ~ 3% here)."""
    proc = MMPPProcess([1.0, 10.0], [30.0, 10.0])
    assert proc.mean_rate_per_s == pytest.approx(0.75 * 1 + 0.25 * 10)
    n = proc.generate(np.random.default_rng(17), 20_000.0).size
    assert abs(n - proc.expected_count(20_000.0)) <= Z * np.sqrt(proc.count_variance(20_000.0))


def test_mmpp_arrivals_only_in_on_state() -> None:
    proc = MMPPProcess([0.0, 30.0], [5.0, 2.0])
    edges, states = proc.state_path(np.random.default_rng(4), 500.0)
    t = proc.generate(np.random.default_rng(4), 500.0)
    seg = np.searchsorted(edges, t, side="right") - 1
    assert t.size > 0 and np.all(states[seg] == 1)
    assert edges[0] == 0 and edges[-1] == 500.0 and np.all(np.diff(edges) >= 0)


# --- common random numbers across rate_scale ------------------------------------------------


@pytest.mark.parametrize("proc", [PoissonProcess(30.0), GammaProcess(30.0, 1.7)], ids=repr)
def test_crn_renewal_exactly_rescaled(proc: ArrivalProcess) -> None:
    """Same generator state: the times at rate_scale 2 are exactly those at 1 divided by 2
    (bit for bit: halving is exact in floating point), followed by the arrivals of the second
    half of the window; at rate_scale 1.37 equal to 1e-12 relative."""
    d = 100.0
    t1 = proc.generate(np.random.default_rng(99), d)
    t2 = proc.generate(np.random.default_rng(99), d, rate_scale=2.0)
    assert np.array_equal(t2[: t1.size], t1 / 2)
    assert np.all(t2[t1.size :] >= d / 2) and t2.size > t1.size
    t3 = proc.generate(np.random.default_rng(99), d, rate_scale=1.37)
    np.testing.assert_allclose(t3[: np.searchsorted(t3, d / 1.37)], t1[t1 < d] / 1.37, rtol=1e-12)


@pytest.mark.parametrize(
    "proc",
    [
        DiurnalProcess(3.0, profile=PROFILE, start_hour=6.2),
        DiurnalProcess(3.0, peak_to_mean=1.7, peak_hour=9.0, start_hour=6.0),
    ],
    ids=repr,
)
def test_crn_diurnal_same_unit_points(proc: DiurnalProcess) -> None:
    """t = L^-1(u / s) with the same unit points u: 2 L(t at s=2) = L(t at s=1) for the first
    points (exact for profiles; for the sinusoid after its Newton step, to 1e-9 relative)."""
    d = 7200.0
    t1 = proc.generate(np.random.default_rng(8), d)
    t2 = proc.generate(np.random.default_rng(8), d, rate_scale=2.0)
    lhs = 2 * proc.cumulative_intensity(t2[: t1.size])
    np.testing.assert_allclose(lhs, proc.cumulative_intensity(t1), rtol=1e-9, atol=1e-6)


def test_crn_mmpp_same_path_and_points() -> None:
    """The state path does not depend on rate_scale; arrivals are the same unit points through
    the path's cumulative intensity L: 2 L(t at s=2) = L(t at s=1)."""
    proc = MMPPProcess([2.0, 20.0], [20.0, 5.0])
    d = 600.0
    edges, states = proc.state_path(np.random.default_rng(21), d)
    lb = np.concatenate([[0.0], np.cumsum(proc.rates[states] * np.diff(edges))])
    t1 = proc.generate(np.random.default_rng(21), d)
    t2 = proc.generate(np.random.default_rng(21), d, rate_scale=2.0)
    np.testing.assert_allclose(
        2 * np.interp(t2[: t1.size], edges, lb), np.interp(t1, edges, lb), rtol=1e-9
    )


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PoissonProcess(-1.0), "rate_per_s must be finite and > 0"),
        (lambda: PoissonProcess(float("nan")), "rate_per_s must be finite and > 0"),
        (lambda: GammaProcess(1.0, 0.0), "0 < cv"),
        (lambda: MMPPProcess([0.0, 0.0], [1.0, 1.0]), "not both 0"),
        (lambda: MMPPProcess([1.0, 2.0], [1.0, 0.0]), "> 0"),
        (lambda: DiurnalProcess(1.0, peak_to_mean=1.5, peak_hour=3, profile=[1] * 24), "not both"),
        (lambda: DiurnalProcess(1.0, peak_to_mean=1.5), "both peak_to_mean and peak_hour"),
        (lambda: DiurnalProcess(1.0, peak_to_mean=2.5, peak_hour=3), "1 <= x <= 2"),
        (lambda: DiurnalProcess(1.0, profile=[1] * 23), "24 finite values"),
        (lambda: PoissonProcess(1.0).generate(np.random.default_rng(), 0.0), "duration_s"),
        (lambda: PoissonProcess(1.0).generate(np.random.default_rng(), 1.0, -2), "rate_scale"),
    ],
)
def test_constructor_validates(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


class _Holder(StrictModel):
    arrival: Arrival


DIURNAL = {"kind": "diurnal", "mean_rate_per_s": 3}
MMPP = {"kind": "mmpp", "rates_per_s": [1, 2], "mean_sojourn_s": [1, 1]}
TRACE = {"kind": "trace", "path": "t.csv"}


@pytest.mark.parametrize(
    "data, loc_end, message",
    [
        ({"kind": "poisson", "rate_per_s": -3}, "rate_per_s", "greater than 0"),
        ({"kind": "poisson", "rate_per_s": 0}, "rate_per_s", "greater than 0"),
        ({"kind": "poisson"}, "rate_per_s", "Field required"),
        ({"kind": "poison", "rate_per_s": 3}, None, "'poison' found using 'kind' does not match"),
        ({"kind": "gamma", "rate_per_s": 3, "cv": -1}, "cv", "greater than 0"),
        ({**DIURNAL, "peak_to_mean": 3, "peak_hour": 1}, "peak_to_mean", "less than or equal to 2"),
        ({**DIURNAL, "peak_hour": 1}, None, "both peak_to_mean and peak_hour"),
        ({**DIURNAL, "profile": [1] * 24, "peak_hour": 1}, None, "not both"),
        ({**DIURNAL, "profile": [1] * 12}, "profile", "24 hourly values (got 12)"),
        ({**DIURNAL, "profile": [0] * 24}, "profile", "at least one value > 0"),
        ({**MMPP, "rates_per_s": [1, -1]}, "rates_per_s", ">= 0"),
        ({**MMPP, "mean_sojourn_s": [1, 2, 3]}, "mean_sojourn_s", "2 values"),
        ({**TRACE, "time_scale": 2, "target_rate_per_s": 1}, None, "not both"),
        ({**TRACE, "columns": {"arrival": "t"}}, "arrival", "Extra inputs"),
    ],
)
def test_schema_rejects_with_the_rule(data: dict, loc_end: str | None, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Holder.model_validate({"arrival": data})
    err = info.value.errors()[0]
    assert message in err["msg"]
    if loc_end is not None:
        assert err["loc"][-1] == loc_end


def test_schema_trace_defaults_and_class_alias() -> None:
    arr = _Holder.model_validate(
        {"arrival": {"kind": "trace", "path": "t.csv", "columns": {"class": "tenant"}}}
    ).arrival
    assert (arr.columns.arrival_s, arr.columns.prompt_tokens, arr.columns.output_tokens) == (
        "arrival_s",
        "prompt_tokens",
        "output_tokens",
    )
    assert arr.columns.request_class == "tenant" and not arr.loop and arr.start_s == 0
