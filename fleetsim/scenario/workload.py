"""Scenario schema for what a workload class sends: arrival process and token-length distributions.

Each is a tagged union on `kind`. File paths (`empirical.path`, `trace.path`) stay as written;
`fleetsim.serving.workload` resolves them against the scenario file's folder (its `base_dir`
argument) when it builds the runtime objects, so a scenario can be moved with its data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from fleetsim.scenario.base import StrictModel


def Real(**constraints: Any) -> Any:  # noqa: N802 (reads like Field)
    """A float field that also rejects inf and nan (pydantic allows them by default)."""
    return Field(allow_inf_nan=False, **constraints)


# ---------------------------------------------------------------------------------------------
# Token-length distributions (prompt_tokens, output_tokens). Every draw is an integer >= 1.


class FixedTokens(StrictModel):
    """Every request has the same length (deterministic service for M/D/1 checks)."""

    kind: Literal["fixed"]
    value: int = Field(ge=1, description="tokens per request, >= 1")


class UniformTokens(StrictModel):
    """Integers low..high inclusive, equally likely."""

    kind: Literal["uniform"]
    low: int = Field(ge=1, description="smallest length, >= 1")
    high: int = Field(ge=1, description="largest length, >= low")

    @model_validator(mode="after")
    def _ordered(self) -> "UniformTokens":
        if self.high < self.low:
            raise ValueError(f"high must be >= low (got low={self.low}, high={self.high})")
        return self


class LognormalTokens(StrictModel):
    """round(exp(N(ln median, sigma^2))), clipped to [min, max]: the usual fit to chat lengths."""

    kind: Literal["lognormal"]
    median: float = Real(gt=0, description="median length in tokens, > 0")
    sigma: float = Real(gt=0, le=10, description="std. dev. of ln(length), 0 < sigma <= 10")
    max: int | None = Field(
        default=None, ge=1, description="clip longer draws to this (e.g. the context); null = none"
    )
    min: int = Field(default=1, ge=1, description="clip shorter draws to this, >= 1")

    @model_validator(mode="after")
    def _ordered(self) -> "LognormalTokens":
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max must be >= min (got min={self.min}, max={self.max})")
        return self


class GeometricTokens(StrictModel):
    """P(n) = p (1-p)^(n-1) on 1, 2, ...: the discrete exponential, for M/M/c checks."""

    kind: Literal["geometric"]
    mean: float = Real(ge=1, description="mean length in tokens, >= 1 (support is 1, 2, ...)")


class EmpiricalTokens(StrictModel):
    """Resample the values of one CSV column (for example a trace's prompt lengths)."""

    kind: Literal["empirical"]
    path: str = Field(min_length=1, description="CSV file, relative to the scenario file's folder")
    column: str = Field(min_length=1, description="column holding the lengths in tokens")
    scale: float = Real(default=1.0, gt=0, description="multiply every value by this, > 0")


TokenDist = Annotated[
    Union[FixedTokens, UniformTokens, LognormalTokens, GeometricTokens, EmpiricalTokens],
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------------------------------
# Arrival processes.


class PoissonArrival(StrictModel):
    """Independent arrivals at a constant rate (exponential inter-arrival times)."""

    kind: Literal["poisson"]
    rate_per_s: float = Real(gt=0, description="mean arrivals per second, > 0")


class DiurnalArrival(StrictModel):
    """Poisson arrivals whose rate follows the time of day.

    Give either `peak_to_mean` and `peak_hour` (a 24-hour sinusoid) or `profile` (24 hourly
    multipliers, rescaled to mean 1, constant within each hour).
    """

    kind: Literal["diurnal"]
    mean_rate_per_s: float = Real(gt=0, description="rate averaged over 24 hours, > 0")
    peak_to_mean: float | None = Real(
        default=None, ge=1, le=2, description="sinusoid peak rate / mean rate, 1 <= x <= 2"
    )
    peak_hour: float | None = Real(
        default=None, ge=0, lt=24, description="hour of day of the sinusoid's peak, 0 <= h < 24"
    )
    profile: list[float] | None = Field(
        default=None, description="24 non-negative hourly multipliers (hour 0 first)"
    )
    start_hour: float | None = Real(
        default=None, ge=0, lt=24,
        description="hour of day at simulated t = 0, 0 <= h < 24; null: the window's serving.start_hour",
    )

    @field_validator("profile")
    @classmethod
    def _profile_shape(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) != 24:
            raise ValueError(f"profile must have 24 hourly values (got {len(v)})")
        if any(not (x >= 0) or x == float("inf") for x in v):
            raise ValueError("profile values must be finite and >= 0")
        if sum(v) <= 0:
            raise ValueError("profile must have at least one value > 0")
        return v

    @model_validator(mode="after")
    def _one_shape(self) -> "DiurnalArrival":
        sinusoid = self.peak_to_mean is not None or self.peak_hour is not None
        if self.profile is not None and sinusoid:
            raise ValueError("give either profile or peak_to_mean + peak_hour, not both")
        if self.profile is None and (self.peak_to_mean is None or self.peak_hour is None):
            raise ValueError("give either profile (24 values) or both peak_to_mean and peak_hour")
        return self


class GammaArrival(StrictModel):
    """Renewal process with gamma inter-arrival times: cv > 1 is bursty, cv < 1 regular."""

    kind: Literal["gamma"]
    rate_per_s: float = Real(gt=0, description="mean arrivals per second, > 0")
    cv: float = Real(
        gt=0, le=100, description="coefficient of variation of inter-arrival times, 0 < cv <= 100"
    )


class MMPPArrival(StrictModel):
    """Two-state Markov-modulated Poisson process: a calm state and a burst state."""

    kind: Literal["mmpp"]
    rates_per_s: list[float] = Field(
        description="[rate in state 0, rate in state 1], each >= 0, not both 0"
    )
    mean_sojourn_s: list[float] = Field(
        description="[mean time in state 0, mean time in state 1] in seconds, each > 0"
    )

    @field_validator("rates_per_s")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        if len(v) != 2:
            raise ValueError(f"rates_per_s must have 2 values [low, high] (got {len(v)})")
        if any(not (0 <= x < float("inf")) for x in v) or sum(v) <= 0:
            raise ValueError("rates_per_s must be finite, >= 0 and not both 0")
        return v

    @field_validator("mean_sojourn_s")
    @classmethod
    def _sojourns(cls, v: list[float]) -> list[float]:
        if len(v) != 2:
            raise ValueError(f"mean_sojourn_s must have 2 values (got {len(v)})")
        if any(not (0 < x < float("inf")) for x in v):
            raise ValueError("mean_sojourn_s values must be finite and > 0")
        return v


class TraceColumns(StrictModel):
    """Which CSV column holds what. `prompt_tokens`/`output_tokens` null: sample them instead."""

    # `class` is a Python keyword: the field is request_class, written `class` in a scenario;
    # both spellings are accepted so that a dumped config validates again.
    model_config = ConfigDict(populate_by_name=True)

    arrival_s: str = Field(default="arrival_s", min_length=1, description="arrival time, seconds")
    prompt_tokens: str | None = Field(default="prompt_tokens", description="prompt length column")
    output_tokens: str | None = Field(default="output_tokens", description="output length column")
    request_class: str | None = Field(
        default=None, alias="class", description="optional column naming each request's class"
    )


class TraceArrival(StrictModel):
    """Replay a CSV of requests; the Azure traces replay with a column mapping.

    Times are taken relative to the first row (r). A row replays at simulated time
    (r - start_s) * time_scale; rows before start_s are skipped unless `loop` wraps round to
    them. See docs/workloads.md.
    """

    kind: Literal["trace"]
    path: str = Field(min_length=1, description="CSV file, relative to the scenario file's folder")
    columns: TraceColumns = Field(default_factory=TraceColumns)
    time_scale: float | None = Real(
        default=None, gt=0, description="multiply trace times by this (0.5 = twice the rate), > 0"
    )
    target_rate_per_s: float | None = Real(
        default=None, gt=0, description="rescale times so the mean rate is this, > 0"
    )
    loop: bool = Field(default=False, description="repeat the trace when the window is longer")
    start_s: float = Real(default=0.0, ge=0, description="trace time (s) replayed at t = 0, >= 0")

    @model_validator(mode="after")
    def _one_scale(self) -> "TraceArrival":
        if self.time_scale is not None and self.target_rate_per_s is not None:
            raise ValueError("give time_scale or target_rate_per_s, not both")
        return self


Arrival = Annotated[
    Union[PoissonArrival, DiurnalArrival, GammaArrival, MMPPArrival, TraceArrival],
    Field(discriminator="kind"),
]

__all__ = [
    "Arrival",
    "DiurnalArrival",
    "EmpiricalTokens",
    "FixedTokens",
    "GammaArrival",
    "GeometricTokens",
    "LognormalTokens",
    "MMPPArrival",
    "PoissonArrival",
    "TokenDist",
    "TraceArrival",
    "TraceColumns",
    "UniformTokens",
]
