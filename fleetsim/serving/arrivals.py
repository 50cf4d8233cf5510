"""Arrival processes: a whole window of sorted arrival times per call, in numpy blocks.

Every stochastic process here is a transformation of a unit-rate base sequence (unit Poisson
points, or unit-mean gamma renewals) drawn from the generator it is given, and `rate_scale` only
enters in the final mapping. So the same generator state at two rate scales gives the same base
draws, mapped differently: common random numbers for the goodput search, which bisects on
`rate_scale`. For Poisson and gamma the times at rate_scale s are exactly the times at 1 divided
by s (the prefix that still falls in the window).

Each process knows its theory (`mean_rate_per_s`, `expected_count`, `count_variance`) so that one
generic test checks them all.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

__all__ = [
    "ArrivalProcess",
    "PoissonProcess",
    "DiurnalProcess",
    "GammaProcess",
    "MMPPProcess",
    "TraceReplay",
]

_DAY_S = 86_400.0
_HOUR_S = 3_600.0
# The sinusoid's inverse cumulative intensity starts from linear interpolation between exact
# values at these steps, then one Newton step makes it exact to ~1e-10 arrivals.
_SINUSOID_STEP_S = 60.0


def _check_window(duration_s: float, rate_scale: float) -> None:
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be finite and > 0 (got {duration_s!r})")
    if not (math.isfinite(rate_scale) and rate_scale > 0):
        raise ValueError(f"rate_scale must be finite and > 0 (got {rate_scale!r})")


def _chunk(expected: float, spread: float = 1.0) -> int:
    """Draws per block: the expected count plus six standard deviations, so one block nearly
    always suffices. Blocks only change how draws are batched, never which values come out."""
    return int(expected + 6.0 * spread * math.sqrt(expected) + 16)


def _cumsum_until(rng: np.random.Generator, draw, horizon: float, block: int) -> np.ndarray:
    """Cumulative sums of draws(rng, size) until they pass horizon; returns those < horizon.

    One cumsum over the concatenated draws (not per block), so that a longer horizon yields
    bit-identical leading points: numpy fills arrays element by element from the same stream.
    """
    gaps = draw(rng, block)
    total = np.cumsum(gaps)
    while total[-1] < horizon:
        gaps = np.concatenate([gaps, draw(rng, block)])
        total = np.cumsum(gaps)
    return total[: np.searchsorted(total, horizon, side="left")]


def _unit_poisson(rng: np.random.Generator, horizon: float) -> np.ndarray:
    """Points of a unit-rate Poisson process on [0, horizon)."""
    return _cumsum_until(rng, lambda g, n: g.standard_exponential(n), horizon, _chunk(horizon))


class ArrivalProcess(ABC):
    """Generates a window's arrival times at once; knows its long-run rate and count moments."""

    @property
    @abstractmethod
    def mean_rate_per_s(self) -> float:
        """Long-run arrivals per second at rate_scale 1."""

    @abstractmethod
    def generate(
        self, rng: np.random.Generator, duration_s: float, rate_scale: float = 1.0
    ) -> np.ndarray:
        """Sorted float64 arrival times in [0, duration_s), rates multiplied by rate_scale."""

    @abstractmethod
    def expected_count(self, duration_s: float, rate_scale: float = 1.0) -> float:
        """E[number of arrivals in [0, duration_s)]."""

    @abstractmethod
    def count_variance(self, duration_s: float, rate_scale: float = 1.0) -> float:
        """Var[number of arrivals in [0, duration_s)] (exact unless the class says otherwise)."""


class PoissonProcess(ArrivalProcess):
    """Homogeneous Poisson arrivals: exponential gaps with mean 1 / rate."""

    def __init__(self, rate_per_s: float) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"Poisson rate_per_s must be finite and > 0 (got {rate_per_s!r})")
        self.rate_per_s = float(rate_per_s)

    @property
    def mean_rate_per_s(self) -> float:
        return self.rate_per_s

    def cumulative_intensity(self, t: np.ndarray | float) -> np.ndarray:
        return self.rate_per_s * np.asarray(t, dtype=float)

    def generate(
        self, rng: np.random.Generator, duration_s: float, rate_scale: float = 1.0
    ) -> np.ndarray:
        _check_window(duration_s, rate_scale)
        rate = self.rate_per_s * rate_scale
        times = _unit_poisson(rng, rate * duration_s) / rate
        return times[times < duration_s]

    def expected_count(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return self.rate_per_s * rate_scale * duration_s

    def count_variance(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return self.expected_count(duration_s, rate_scale)

    def __repr__(self) -> str:
        return f"PoissonProcess(rate_per_s={self.rate_per_s:g})"


class DiurnalProcess(ArrivalProcess):
    """Non-homogeneous Poisson arrivals with a 24-hour rate shape, by time rescaling.

    Rate at simulated time t: mean_rate * m(h), h = start_hour + t / 3600 (mod 24), where m is
    either 1 + (peak_to_mean - 1) cos(2 pi (h - peak_hour) / 24) or the hourly profile scaled to
    mean 1 (constant within each hour). Arrivals are unit Poisson points u mapped through the
    inverse cumulative intensity: t = L^-1(u / rate_scale).
    """

    def __init__(
        self,
        mean_rate_per_s: float,
        peak_to_mean: float | None = None,
        peak_hour: float | None = None,
        profile: list[float] | np.ndarray | None = None,
        start_hour: float = 0.0,
    ) -> None:
        if not (math.isfinite(mean_rate_per_s) and mean_rate_per_s > 0):
            raise ValueError(
                f"Diurnal mean_rate_per_s must be finite and > 0 (got {mean_rate_per_s!r})"
            )
        if not (math.isfinite(start_hour) and 0 <= start_hour < 24):
            raise ValueError(f"Diurnal start_hour must satisfy 0 <= h < 24 (got {start_hour!r})")
        sinusoid = peak_to_mean is not None or peak_hour is not None
        if profile is not None and sinusoid:
            raise ValueError("Diurnal takes profile or peak_to_mean + peak_hour, not both")
        self.mean_rate = float(mean_rate_per_s)
        self.start_hour = float(start_hour)
        self.peak_to_mean = self.peak_hour = None
        self.profile = None
        if profile is not None:
            prof = np.asarray(profile, dtype=float)
            if prof.shape != (24,) or not np.all(np.isfinite(prof)) or np.any(prof < 0):
                raise ValueError("Diurnal profile must be 24 finite values >= 0")
            if prof.sum() <= 0:
                raise ValueError("Diurnal profile must have at least one value > 0")
            self.profile = prof / prof.mean()
            # Integral of m from midnight to the start of each hour, in seconds (mean 1 per s).
            self._hour_start = np.concatenate([[0.0], np.cumsum(self.profile)]) * _HOUR_S
        else:
            if peak_to_mean is None or peak_hour is None:
                raise ValueError("Diurnal sinusoid needs both peak_to_mean and peak_hour")
            if not (math.isfinite(peak_to_mean) and 1 <= peak_to_mean <= 2):
                raise ValueError(
                    f"Diurnal peak_to_mean must satisfy 1 <= x <= 2 (got {peak_to_mean!r})"
                )
            if not (math.isfinite(peak_hour) and 0 <= peak_hour < 24):
                raise ValueError(
                    f"Diurnal peak_hour must satisfy 0 <= h < 24 (got {peak_hour!r})"
                )
            self.peak_to_mean, self.peak_hour = float(peak_to_mean), float(peak_hour)

    @property
    def mean_rate_per_s(self) -> float:
        return self.mean_rate

    def multiplier(self, t: np.ndarray | float) -> np.ndarray:
        """Rate at simulated time t divided by the mean rate."""
        h = np.mod(self.start_hour + np.asarray(t, dtype=float) / _HOUR_S, 24.0)
        if self.profile is not None:
            return self.profile[np.minimum(h.astype(np.int64), 23)]
        amp = self.peak_to_mean - 1.0
        return 1.0 + amp * np.cos(2 * np.pi * (h - self.peak_hour) / 24.0)

    def cumulative_intensity(self, t: np.ndarray | float) -> np.ndarray:
        """Expected arrivals in [0, t) at rate_scale 1 (exact, closed form)."""
        t = np.asarray(t, dtype=float)
        if self.profile is not None:
            x0 = self.start_hour * _HOUR_S
            return self.mean_rate * (self._from_midnight(x0 + t) - self._from_midnight(x0))
        amp, omega = self.peak_to_mean - 1.0, 2 * np.pi / _DAY_S
        c = (self.start_hour - self.peak_hour) * _HOUR_S
        wave = (np.sin(omega * (t + c)) - np.sin(omega * c)) * amp / omega
        return self.mean_rate * (t + wave)

    def _from_midnight(self, x: np.ndarray) -> np.ndarray:
        """Integral of the profile multiplier from midnight of day 0 to x seconds."""
        days, y = np.divmod(x, _DAY_S)
        hour = np.minimum((y // _HOUR_S).astype(np.int64), 23)
        within = y - hour * _HOUR_S
        return days * _DAY_S + self._hour_start[hour] + self.profile[hour] * within

    def _grid(self, duration_s: float) -> np.ndarray:
        """Times at which the cumulative intensity is evaluated exactly (then interpolated)."""
        if self.profile is not None:  # exact: the intensity is constant between hour boundaries
            x0 = self.start_hour * _HOUR_S
            first = (math.floor(x0 / _HOUR_S) + 1) * _HOUR_S - x0
            inner = np.arange(first, duration_s, _HOUR_S)
            return np.concatenate([[0.0], inner, [duration_s]])
        return np.linspace(0.0, duration_s, int(math.ceil(duration_s / _SINUSOID_STEP_S)) + 1)

    def generate(
        self, rng: np.random.Generator, duration_s: float, rate_scale: float = 1.0
    ) -> np.ndarray:
        _check_window(duration_s, rate_scale)
        tb = self._grid(duration_s)
        lb = self.cumulative_intensity(tb)
        target = _unit_poisson(rng, rate_scale * lb[-1]) / rate_scale
        times = np.interp(target, lb, tb)
        if self.profile is None:  # L is not piecewise linear: one Newton step, kept in its step
            rate = self.mean_rate * self.multiplier(times)
            miss = self.cumulative_intensity(times) - target
            step = np.where(rate > 1e-9 * self.mean_rate, miss / np.maximum(rate, 1e-300), 0.0)
            seg = np.clip(np.searchsorted(tb, times, side="right") - 1, 0, tb.size - 2)
            times = np.maximum.accumulate(np.clip(times - step, tb[seg], tb[seg + 1]))
        return times[times < duration_s]

    def expected_count(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return float(rate_scale * self.cumulative_intensity(duration_s))

    def count_variance(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return self.expected_count(duration_s, rate_scale)

    def __repr__(self) -> str:
        shape = (
            f"profile={np.round(self.profile, 3).tolist()}"
            if self.profile is not None
            else f"peak_to_mean={self.peak_to_mean:g}, peak_hour={self.peak_hour:g}"
        )
        return (
            f"DiurnalProcess(mean_rate_per_s={self.mean_rate:g}, {shape}, "
            f"start_hour={self.start_hour:g})"
        )


class GammaProcess(ArrivalProcess):
    """Stationary renewal process with gamma gaps: mean 1 / rate, coefficient of variation cv.

    The first arrival comes from the equilibrium (forward recurrence) law, U x Gamma(k + 1) / k
    in unit time with shape k = 1 / cv^2, so the rate is the long-run rate from t = 0 and a
    window does not start with an artificial burst or lull.
    """

    def __init__(self, rate_per_s: float, cv: float) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"Gamma rate_per_s must be finite and > 0 (got {rate_per_s!r})")
        if not (math.isfinite(cv) and 0 < cv <= 100):
            raise ValueError(f"Gamma cv must satisfy 0 < cv <= 100 (got {cv!r})")
        self.rate_per_s, self.cv = float(rate_per_s), float(cv)
        self.shape = 1.0 / self.cv**2

    @property
    def mean_rate_per_s(self) -> float:
        return self.rate_per_s

    def interarrival_mean(self, rate_scale: float = 1.0) -> float:
        return 1.0 / (self.rate_per_s * rate_scale)

    def interarrival_variance(self, rate_scale: float = 1.0) -> float:
        return (self.cv * self.interarrival_mean(rate_scale)) ** 2

    def generate(
        self, rng: np.random.Generator, duration_s: float, rate_scale: float = 1.0
    ) -> np.ndarray:
        _check_window(duration_s, rate_scale)
        k = self.shape
        rate = self.rate_per_s * rate_scale
        horizon = rate * duration_s  # in unit-mean gaps
        first = rng.random() * rng.standard_gamma(k + 1.0) / k
        if first >= horizon:
            return np.empty(0)
        gaps = _cumsum_until(
            rng, lambda g, n: g.standard_gamma(k, n) / k, horizon - first, _chunk(horizon, self.cv)
        )
        times = (first + np.concatenate([[0.0], gaps])) / rate
        return times[times < duration_s]

    def expected_count(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return self.rate_per_s * rate_scale * duration_s

    def count_variance(self, duration_s: float, rate_scale: float = 1.0) -> float:
        """cv^2 x expected count: the renewal limit, exact for cv = 1, off by O(1) otherwise."""
        return self.cv**2 * self.expected_count(duration_s, rate_scale)

    def __repr__(self) -> str:
        return f"GammaProcess(rate_per_s={self.rate_per_s:g}, cv={self.cv:g})"


class MMPPProcess(ArrivalProcess):
    """Two-state Markov-modulated Poisson process, started in its stationary state.

    The state path (exponential sojourns) is drawn first and depends only on the window, not on
    rate_scale, which multiplies the arrival rates, not the switching: bursts keep their length.
    Arrivals are unit Poisson points through the path's inverse cumulative intensity.
    """

    def __init__(self, rates_per_s: list[float], mean_sojourn_s: list[float]) -> None:
        rates = np.asarray(rates_per_s, dtype=float)
        soj = np.asarray(mean_sojourn_s, dtype=float)
        if rates.shape != (2,) or not np.all(np.isfinite(rates) & (rates >= 0)) or rates.sum() <= 0:
            raise ValueError(
                f"MMPP rates_per_s must be 2 finite values >= 0, not both 0 (got {rates_per_s!r})"
            )
        if soj.shape != (2,) or not np.all(np.isfinite(soj) & (soj > 0)):
            raise ValueError(
                f"MMPP mean_sojourn_s must be 2 finite values > 0 (got {mean_sojourn_s!r})"
            )
        self.rates, self.sojourns = rates, soj
        self.stationary = soj / soj.sum()  # share of time in each state

    @property
    def mean_rate_per_s(self) -> float:
        return float(self.stationary @ self.rates)

    def state_path(
        self, rng: np.random.Generator, duration_s: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Switch times (starting 0, ending duration_s) and the state of each segment."""
        first = int(rng.random() < self.stationary[1])
        block = 2 * _chunk(duration_s / self.sojourns.sum())
        exps = rng.standard_exponential(block)
        while True:  # blocks only batch the same stream: the path depends on the window alone
            states = (first + np.arange(exps.size)) % 2
            ends = np.cumsum(exps * self.sojourns[states])
            if ends[-1] >= duration_s:
                break
            exps = np.concatenate([exps, rng.standard_exponential(block)])
        n = int(np.searchsorted(ends, duration_s, side="left")) + 1
        edges = np.concatenate([[0.0], ends[: n - 1], [duration_s]])
        return edges, (first + np.arange(n)) % 2

    def generate(
        self, rng: np.random.Generator, duration_s: float, rate_scale: float = 1.0
    ) -> np.ndarray:
        _check_window(duration_s, rate_scale)
        edges, states = self.state_path(rng, duration_s)
        lb = np.concatenate([[0.0], np.cumsum(self.rates[states] * np.diff(edges))])
        u = _unit_poisson(rng, rate_scale * lb[-1])
        times = np.interp(u / rate_scale, lb, edges)
        return times[times < duration_s]

    def expected_count(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return self.mean_rate_per_s * rate_scale * duration_s

    def count_variance(self, duration_s: float, rate_scale: float = 1.0) -> float:
        """E[L] + Var[L], L = integrated rate; Cov(rate(s), rate(u)) = d^2 p0 p1 e^(-r|s-u|)."""
        r = float((1.0 / self.sojourns).sum())
        d = float(self.rates[0] - self.rates[1]) * rate_scale
        p0, p1 = self.stationary
        t = duration_s
        var_l = 2 * d * d * p0 * p1 * (t / r - (-math.expm1(-r * t)) / r**2)
        return self.expected_count(t, rate_scale) + var_l

    def __repr__(self) -> str:
        return (
            f"MMPPProcess(rates_per_s={self.rates.tolist()}, "
            f"mean_sojourn_s={self.sojourns.tolist()})"
        )


class TraceReplay(ArrivalProcess):
    """Replays recorded arrival times (and carries the rows' tokens and class, if given).

    Times are taken relative to the first record (r, sorted). The trace's period is
    P = r_last x n / (n - 1) (one mean gap after the last record), so its mean rate is n / P and
    a looped trace keeps that rate. A record replays at simulated time
    (r + k P - start_s) x time_scale / rate_scale for k = 0 (and k = 1, 2, ... with loop), for
    every copy falling at or after start_s and inside the window. Deterministic: rng is unused.
    """

    def __init__(
        self,
        arrival_s: np.ndarray,
        prompt_tokens: np.ndarray | None = None,
        output_tokens: np.ndarray | None = None,
        request_class: np.ndarray | None = None,
        *,
        time_scale: float | None = None,
        target_rate_per_s: float | None = None,
        loop: bool = False,
        start_s: float = 0.0,
        source: str = "",
    ) -> None:
        t = np.asarray(arrival_s, dtype=float)
        if t.ndim != 1 or t.size < 2:
            raise ValueError("a trace needs at least 2 records")
        if not np.all(np.isfinite(t)):
            raise ValueError("trace arrival times must be finite")
        order = np.argsort(t, kind="stable")
        self.offsets_s = t[order] - t[order[0]]
        span = float(self.offsets_s[-1])
        if span <= 0:
            raise ValueError("trace arrival times must not all be equal")
        n = t.size

        def _column(a: np.ndarray | None, name: str) -> np.ndarray | None:
            if a is None:
                return None
            a = np.asarray(a)
            if a.shape != t.shape:
                raise ValueError(f"trace {name} must have one value per record")
            return a[order]

        self.prompt_tokens = _column(prompt_tokens, "prompt_tokens")
        self.output_tokens = _column(output_tokens, "output_tokens")
        self.request_class = _column(request_class, "request_class")
        self.period_s = span * n / (n - 1)
        self.native_rate_per_s = n / self.period_s
        if time_scale is not None and target_rate_per_s is not None:
            raise ValueError("give time_scale or target_rate_per_s, not both")
        if target_rate_per_s is not None:
            if not (math.isfinite(target_rate_per_s) and target_rate_per_s > 0):
                raise ValueError(
                    f"target_rate_per_s must be finite and > 0 (got {target_rate_per_s!r})"
                )
            time_scale = self.native_rate_per_s / target_rate_per_s
        time_scale = 1.0 if time_scale is None else time_scale
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"time_scale must be finite and > 0 (got {time_scale!r})")
        if not (math.isfinite(start_s) and 0 <= start_s < self.period_s):
            raise ValueError(
                f"start_s must satisfy 0 <= start_s < the trace's period {self.period_s:.6g} s "
                f"(got {start_s!r})"
            )
        self.time_scale, self.loop, self.start_s = float(time_scale), bool(loop), float(start_s)
        self.source = source

    @property
    def n_records(self) -> int:
        return int(self.offsets_s.size)

    @property
    def mean_rate_per_s(self) -> float:
        return self.native_rate_per_s / self.time_scale

    def replay(
        self, duration_s: float, rate_scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Arrival times in [0, duration_s) and, for each, the trace row (sorted) it repeats."""
        _check_window(duration_s, rate_scale)
        horizon = self.start_s + duration_s * rate_scale / self.time_scale  # trace time, exclusive
        copies = int(horizon // self.period_s) + 1 if self.loop else 1
        shifted = (self.offsets_s[None, :] + self.period_s * np.arange(copies)[:, None]).ravel()
        rows = np.tile(np.arange(self.n_records), copies)
        keep = (shifted >= self.start_s) & (shifted < horizon)
        times = (shifted[keep] - self.start_s) * (self.time_scale / rate_scale)
        rows = rows[keep]
        inside = times < duration_s
        return times[inside], rows[inside]

    def generate(
        self, rng: np.random.Generator | None, duration_s: float, rate_scale: float = 1.0
    ) -> np.ndarray:
        return self.replay(duration_s, rate_scale)[0]

    def expected_count(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return float(self.replay(duration_s, rate_scale)[0].size)

    def count_variance(self, duration_s: float, rate_scale: float = 1.0) -> float:
        return 0.0

    def __repr__(self) -> str:
        src = f"source={self.source!r}, " if self.source else ""
        return (
            f"TraceReplay({src}records={self.n_records}, period_s={self.period_s:.6g}, "
            f"time_scale={self.time_scale:g}, loop={self.loop}, start_s={self.start_s:g})"
        )
