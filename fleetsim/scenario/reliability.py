"""The `reliability:` section: data halls, per-chip overrides, repair, and a reliability-only fleet run.

Chip defaults (thermal and hazard parameters with their sources) live in
`fleetsim/catalog/reliability.yaml`; this schema only holds what a scenario changes.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from fleetsim.scenario.base import StrictModel

Pos = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class HallConfig(StrictModel):
    """A data hall: inlet air temperature with a daily sinusoid, and how good its cooling is.

    ambient(h) = ambient_c + daily_swing_c / 2 * cos(2 pi (h - peak_hour) / 24), so
    `daily_swing_c` is peak-to-peak. `cooling_factor` multiplies every chip's thermal resistance
    (1.0 = the chip's design cooling; 1.3 = 30% worse airflow or hotter aisles).
    """

    ambient_c: Annotated[float, Field(ge=-20, le=60)] = 25.0
    daily_swing_c: Annotated[float, Field(ge=0, le=40)] = 0.0
    peak_hour: Annotated[float, Field(ge=0, lt=24)] = 15.0
    cooling_factor: Annotated[float, Field(gt=0, le=10)] = 1.0


class ChipReliabilityOverride(StrictModel):
    """Any field of a chip kind's reliability defaults (see docs/reliability.md for meanings)."""

    tdp_w: Pos | None = None
    idle_frac: Annotated[float, Field(ge=0, lt=1)] | None = None
    rise_at_tdp_c: Pos | None = None
    r_th_c_per_w: Pos | None = None
    tau_s: Pos | None = None
    clock_power_exp: Annotated[float, Field(ge=0, le=4)] | None = None
    dvfs_onset_c: float | None = None
    dvfs_slope_per_c: Annotated[float, Field(ge=0, le=0.2)] | None = None
    throttle_c: float | None = None
    t_max_c: float | None = None
    throttle_floor: Annotated[float, Field(gt=0, le=1)] | None = None
    mtbf_h: Pos | None = None
    mtbf_ref_c: float | None = None
    ea_ev: Annotated[float, Field(ge=0, le=3)] | None = None
    hazard_multiplier: Pos | None = None
    hot_c: float | None = None
    hot_gain_per_c: Annotated[float, Field(ge=0, le=2)] | None = None
    extended_threshold: Fraction | None = None
    extended_gain: NonNeg | None = None
    extended_tau_h: Pos | None = None
    extended_recovery: NonNeg | None = None


class FixedDuration(StrictModel):
    """Always the same duration."""

    kind: Literal["fixed"] = "fixed"
    value: NonNeg


class LognormalDuration(StrictModel):
    """Lognormal duration given by its median and log-space sigma."""

    kind: Literal["lognormal"] = "lognormal"
    median: Pos
    sigma: Annotated[float, Field(ge=0, le=5)]


Duration = Annotated[Union[FixedDuration, LognormalDuration], Field(discriminator="kind")]


class RepairConfig(StrictModel):
    """What happens after a crash: automated restart, or a hardware repair through a queue.

    Defaults (sources.md s3.1, s3.3, s3.6, s3.7): 22% of Llama 3's unexpected interruptions were
    not hardware, so they restart (median ~16.7 min, glennklockwood's derivation); hardware
    repairs take 1-5 days (EST; AidAI median time to mitigate 52.5 h), 30% of hardware faults
    lose the chip (0.04 swaps / 0.133 hardware faults per GPU-year, DERIVED), 5% spares (Delta).
    """

    transient_share: Fraction = 0.22
    restart_min: Duration = LognormalDuration(median=16.7, sigma=0.3)
    repair_h: Duration = LognormalDuration(median=48.0, sigma=0.6)
    swap_h: Duration = FixedDuration(value=2.0)
    lost_share: Fraction = 0.30
    spare_fraction: Annotated[float, Field(ge=0, le=1)] = 0.05
    technicians: Annotated[int, Field(ge=1)] | None = None


class CohortConfig(StrictModel):
    """Chips delivered together: one kind, one utilisation, one hall."""

    name: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    chip: str
    count: Annotated[int, Field(ge=1, le=100_000_000)]
    utilisation: Fraction
    hall: str = "default"
    start_day: Annotated[int, Field(ge=0)] = 0
    chips_per_node: Annotated[int, Field(ge=1, le=1024)] = 8
    spares: Annotated[int, Field(ge=0)] | None = None


class FleetReliabilityConfig(StrictModel):
    """A reliability-only run: cohorts at fixed utilisation over `days`, no requests."""

    days: Annotated[int, Field(ge=1, le=36_500)]
    start_hour: Annotated[float, Field(ge=0, lt=24)] = 0.0
    cohorts: Annotated[list[CohortConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_names(self) -> "FleetReliabilityConfig":
        seen: set[str] = set()
        for i, c in enumerate(self.cohorts):
            if c.name is None:
                c.name = f"{c.chip}-{i}"
            if c.name in seen:
                raise ValueError(f"cohort names must be unique; '{c.name}' appears twice")
            seen.add(c.name)
        for i, c in enumerate(self.cohorts):
            if c.start_day >= self.days:
                raise ValueError(
                    f"cohort {i} ('{c.name}') starts on day {c.start_day}, after the run's "
                    f"{self.days} days; start_day must be below days"
                )
        return self


class ReliabilityConfig(StrictModel):
    """Thermal model, crash hazard and repair for serving pools and reliability runs."""

    halls: dict[str, HallConfig] = Field(default_factory=lambda: {"default": HallConfig()})
    chips: dict[str, ChipReliabilityOverride] = {}
    repair: RepairConfig = RepairConfig()
    thermal_step_s: Annotated[float, Field(gt=0, le=600)] = 15.0
    serving_crashes: bool = True
    fleet: FleetReliabilityConfig | None = None

    @field_validator("halls")
    @classmethod
    def _default_hall(cls, v: dict[str, HallConfig]) -> dict[str, HallConfig]:
        if "default" not in v:
            v = {"default": HallConfig(), **v}
        return v

    @model_validator(mode="after")
    def _halls_exist(self) -> "ReliabilityConfig":
        if self.fleet is not None:
            for c in self.fleet.cohorts:
                if c.hall not in self.halls:
                    raise ValueError(
                        f"cohort '{c.name}' uses hall '{c.hall}', which is not defined; "
                        f"halls: {', '.join(sorted(self.halls))}"
                    )
        return self
