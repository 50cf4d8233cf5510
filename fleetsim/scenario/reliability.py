"""The `reliability:` section: data halls, per-chip overrides, repair, and a reliability-only
cohort run (`cohort_run`; named so the top-level `fleet:` section cannot be confused with it).

Chip defaults (thermal and hazard parameters with their sources) live in
`fleetsim/catalog/reliability.yaml`; this schema only holds what a scenario changes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fleetsim.scenario.base import StrictModel


class HallConfig(StrictModel):
    """A data hall: inlet air temperature with a daily sinusoid, and how good its cooling is.

    ambient(h) = ambient_c + daily_swing_c / 2 * cos(2 pi (h - peak_hour) / 24), so
    `daily_swing_c` is peak-to-peak; over a year the daily mean itself follows
    ambient_c + seasonal_swing_c / 2 * cos(2 pi (day of year - hottest_day_of_year) / 365.25). `cooling_factor` multiplies every chip's thermal resistance
    (1.0 = the chip's design cooling; 1.3 = 30% worse airflow or hotter aisles).
    """

    ambient_c: Annotated[
        float, Field(ge=-20, le=60, description="daily-mean inlet air temperature")
    ] = 25.0
    daily_swing_c: Annotated[
        float, Field(ge=0, le=40, description="peak-to-peak daily inlet swing (sinusoid)")
    ] = 0.0
    peak_hour: Annotated[
        float, Field(ge=0, lt=24, description="hour of day of the warmest inlet")
    ] = 15.0
    seasonal_swing_c: Annotated[
        float, Field(ge=0, le=40, description="peak-to-peak swing of the daily-mean inlet over a "
                     "year (sinusoid; fleet runs: capacity and crash hazard follow it day by day)")
    ] = 0.0
    hottest_day_of_year: Annotated[
        int, Field(ge=1, le=366, description="day of the year of the warmest daily mean (200: mid-July)")
    ] = 200
    cooling_factor: Annotated[
        float,
        Field(
            gt=0,
            le=10,
            description="multiplies every chip's thermal resistance; >1 is worse cooling",
        ),
    ] = 1.0


def _opt(description: str, **bounds):
    return Field(default=None, description=description, **bounds)


class ChipReliabilityOverride(StrictModel):
    """Any field of a chip kind's reliability defaults (see docs/reliability.md for meanings)."""

    tdp_w: float | None = _opt(
        "power at full load and full clock (wins over the chip catalog)", gt=0
    )
    idle_frac: float | None = _opt("idle power as a fraction of TDP", ge=0, lt=1)
    rise_at_tdp_c: float | None = _opt(
        "die minus inlet temperature at TDP (sets r_th = rise / TDP)", gt=0
    )
    r_th_c_per_w: float | None = _opt(
        "thermal resistance, C per W (instead of rise_at_tdp_c)", gt=0
    )
    tau_s: float | None = _opt("thermal time constant", gt=0)
    clock_power_exp: float | None = _opt("dynamic power ~ clock^k", ge=0, le=4)
    dvfs_onset_c: float | None = _opt("die temperature where boost clock starts to fall")
    dvfs_slope_per_c: float | None = _opt(
        "clock fraction lost per C above dvfs_onset_c", ge=0, le=0.2
    )
    throttle_c: float | None = _opt("hardware slowdown starts (throttled above this)")
    t_max_c: float | None = _opt("clock reaches throttle_floor here")
    throttle_floor: float | None = _opt("clock fraction at and above t_max_c", gt=0, le=1)
    mtbf_h: float | None = _opt("mean time between crashes per chip at mtbf_ref_c", gt=0)
    mtbf_ref_c: float | None = _opt("die temperature at which mtbf_h applies")
    ea_ev: float | None = _opt(
        "Arrhenius activation energy (0 = no temperature effect)", ge=0, le=3
    )
    hazard_multiplier: float | None = _opt("chip-kind penalty on the crash rate", gt=0)
    hot_c: float | None = _opt("over-temperature knee: extra hazard above this")
    hot_gain_per_c: float | None = _opt("hazard x exp(gain x (T - hot_c)) above hot_c", ge=0, le=2)
    extended_threshold: float | None = _opt("busy fraction counted as high load", ge=0, le=1)
    extended_gain: float | None = _opt(
        "hazard grows up to (1 + gain) with continuous high load", ge=0
    )
    extended_tau_h: float | None = _opt("hours of high load for the growth (1 - 1/e)", gt=0)
    extended_recovery: float | None = _opt(
        "high-load hours drained per hour below the threshold", ge=0
    )


class FixedDuration(StrictModel):
    """Always the same duration."""

    kind: Literal["fixed"] = "fixed"
    value: Annotated[float, Field(ge=0, description="the duration, in the field's unit")]


class LognormalDuration(StrictModel):
    """Lognormal duration given by its median and log-space sigma."""

    kind: Literal["lognormal"] = "lognormal"
    median: Annotated[float, Field(gt=0, description="median, in the field's unit")]
    sigma: Annotated[float, Field(ge=0, le=5, description="standard deviation of the log")]


Duration = Annotated[FixedDuration | LognormalDuration, Field(discriminator="kind")]


class RepairConfig(StrictModel):
    """What happens after a crash: automated restart, or a hardware repair through a queue.

    Defaults (sources.md s3.1, s3.3, s3.6, s3.7): 22% of Llama 3's unexpected interruptions were
    not hardware, so they restart (median ~16.7 min, glennklockwood's derivation); hardware
    repairs take 1-5 days (EST; AidAI median time to mitigate 52.5 h), 30% of hardware faults
    lose the chip (0.04 swaps / 0.133 hardware faults per GPU-year, DERIVED), 5% spares (Delta).
    """

    transient_share: Annotated[
        float, Field(ge=0, le=1, description="share of crashes fixed by an automated restart")
    ] = 0.22
    restart_min: Duration = Field(
        default=LognormalDuration(median=16.7, sigma=0.3),
        description="automated restart time, minutes",
    )
    repair_h: Duration = Field(
        default=LognormalDuration(median=48.0, sigma=0.6),
        description="bench repair time of a broken chip, hours (after any queue)",
    )
    swap_h: Duration = Field(
        default=FixedDuration(value=2.0),
        description="time to install a spare or repaired chip, hours",
    )
    lost_share: Annotated[
        float, Field(ge=0, le=1, description="share of bench repairs that scrap the chip")
    ] = 0.30
    spare_fraction: Annotated[
        float, Field(ge=0, le=1, description="spare chips per chip in service")
    ] = 0.05
    technicians: (
        Annotated[int, Field(ge=1, description="repairs worked at once; null = no queue")] | None
    ) = None


class CohortConfig(StrictModel):
    """Chips delivered together: one kind, one utilisation, one hall."""

    name: (
        Annotated[
            str,
            Field(min_length=1, max_length=80, description="label in tables (default: chip-index)"),
        ]
        | None
    ) = None
    chip: str = Field(description="chip catalog short name")
    count: Annotated[int, Field(ge=1, le=100_000_000, description="chips in service")]
    utilisation: Annotated[float, Field(ge=0, le=1, description="busy fraction, constant")]
    hall: str = Field(default="default", description="data hall name (reliability.halls)")
    start_day: Annotated[int, Field(ge=0, description="day the cohort enters service")] = 0
    chips_per_node: Annotated[
        int, Field(ge=1, le=1024, description="a chip failure interrupts its whole node")
    ] = 8
    spares: (
        Annotated[
            int, Field(ge=0, description="spare chips (default: repair.spare_fraction x count)")
        ]
        | None
    ) = None


class FleetReliabilityConfig(StrictModel):
    """A reliability-only run: cohorts at fixed utilisation over `days`, no requests."""

    days: Annotated[int, Field(ge=1, le=36_500, description="length of the run")]
    start_hour: Annotated[
        float, Field(ge=0, lt=24, description="hour of day at t = 0 (ambient cycle)")
    ] = 0.0
    cohorts: Annotated[
        list[CohortConfig], Field(min_length=1, description="chips delivered together")
    ]

    @model_validator(mode="after")
    def _unique_names(self) -> FleetReliabilityConfig:
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

    halls: dict[str, HallConfig] = Field(
        default_factory=lambda: {"default": HallConfig()},
        description="data halls by name; a 'default' hall always exists",
    )
    chips: dict[str, ChipReliabilityOverride] = Field(
        default={}, description="per chip kind, overrides of fleetsim/catalog/reliability.yaml"
    )
    repair: RepairConfig = Field(
        default=RepairConfig(), description="restart, repair, spares, technicians"
    )
    thermal_step_s: Annotated[
        float,
        Field(
            gt=0, le=600, description="serving layer: thermal/crash update step (well below tau_s)"
        ),
    ] = 15.0
    serving_crashes: bool = Field(
        default=True, description="serving windows: crash replicas (false: thermal throttling only)"
    )
    cohort_run: FleetReliabilityConfig | None = Field(
        default=None,
        description="a reliability-only run of chip cohorts at fixed load (no requests); "
        "may sit beside a serving section",
    )

    @property
    def fleet(self) -> FleetReliabilityConfig | None:
        """Old name of `cohort_run`, read-only, for code not yet renamed."""
        return self.cohort_run

    @field_validator("halls")
    @classmethod
    def _default_hall(cls, v: dict[str, HallConfig]) -> dict[str, HallConfig]:
        if "default" not in v:
            v = {"default": HallConfig(), **v}
        return v

    @model_validator(mode="after")
    def _halls_exist(self) -> ReliabilityConfig:
        if self.cohort_run is not None:
            for c in self.cohort_run.cohorts:
                if c.hall not in self.halls:
                    raise ValueError(
                        f"cohort '{c.name}' uses hall '{c.hall}', which is not defined; "
                        f"halls: {', '.join(sorted(self.halls))}"
                    )
        return self
