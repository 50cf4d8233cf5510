"""Per-chip-kind thermal and crash-hazard defaults (reliability.yaml), merged with overrides.

Keyed by the chip catalog's short names. The chip catalog may land with or without a TDP for a
chip; the TDP given here is only a fallback. Every value carries a `basis` string starting with
SOURCE, DERIVED, EST, CALIBRATED or ASSUMPTION, so a planner can see which numbers are guesses.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from fleetsim.errors import ScenarioError

BASIS_TAGS = ("SOURCE", "DERIVED", "EST", "CALIBRATED", "ASSUMPTION")

# Fields read from the YAML (r_th_c_per_w is derived from rise_at_tdp_c unless overridden).
PARAM_FIELDS = (
    "tdp_w",
    "idle_frac",
    "rise_at_tdp_c",
    "tau_s",
    "clock_power_exp",
    "dvfs_onset_c",
    "dvfs_slope_per_c",
    "throttle_c",
    "t_max_c",
    "throttle_floor",
    "mtbf_h",
    "mtbf_ref_c",
    "ea_ev",
    "hazard_multiplier",
    "hot_c",
    "hot_gain_per_c",
    "extended_threshold",
    "extended_gain",
    "extended_tau_h",
    "extended_recovery",
)


@dataclasses.dataclass(frozen=True)
class ChipReliability:
    """Resolved thermal and hazard parameters of one chip kind (see docs/reliability.md).

    Thermal: power = idle + (tdp - idle) * utilisation * clock**clock_power_exp; steady
    temperature = ambient + power * r_th * cooling_factor; first-order lag tau_s. Clock:
    1 - dvfs_slope_per_c * (T - dvfs_onset_c) above the DVFS onset (boost bins), then a linear
    hardware slowdown from throttle_c to throttle_floor at t_max_c. Hazard per hour:
    hazard_multiplier / mtbf_h * Arrhenius(T vs mtbf_ref_c, ea_ev) * exp(hot_gain_per_c *
    max(0, T - hot_c)) * (1 + extended_gain * (1 - exp(-high_load_h / extended_tau_h))).
    """

    chip: str
    tdp_w: float
    idle_frac: float
    r_th_c_per_w: float
    tau_s: float
    clock_power_exp: float
    dvfs_onset_c: float
    dvfs_slope_per_c: float
    throttle_c: float
    t_max_c: float
    throttle_floor: float
    mtbf_h: float
    mtbf_ref_c: float
    ea_ev: float
    hazard_multiplier: float
    hot_c: float
    hot_gain_per_c: float
    extended_threshold: float
    extended_gain: float
    extended_tau_h: float
    extended_recovery: float
    basis: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def idle_w(self) -> float:
        return self.idle_frac * self.tdp_w

    @property
    def dynamic_w(self) -> float:
        """Power above idle at full utilisation and full clock."""
        return self.tdp_w - self.idle_w

    def replace(self, **changes: Any) -> ChipReliability:
        out = dataclasses.replace(self, **changes)
        out.check()
        return out

    def check(self, field_prefix: str | None = None) -> None:
        """Raise ScenarioError naming the offending field when the parameters are inconsistent."""
        prefix = field_prefix or f"reliability.chips.{self.chip}"
        rules = [
            ("tdp_w", self.tdp_w > 0, "must be > 0 W"),
            ("idle_frac", 0 <= self.idle_frac < 1, "must be in [0, 1)"),
            ("r_th_c_per_w", self.r_th_c_per_w > 0, "must be > 0 C/W"),
            ("tau_s", self.tau_s > 0, "must be > 0 s"),
            ("clock_power_exp", 0 <= self.clock_power_exp <= 4, "must be in [0, 4]"),
            ("dvfs_slope_per_c", self.dvfs_slope_per_c >= 0, "must be >= 0"),
            ("t_max_c", self.t_max_c > self.throttle_c, "must be above throttle_c"),
            ("throttle_floor", 0 < self.throttle_floor <= 1, "must be in (0, 1]"),
            ("dvfs_onset_c", self.dvfs_onset_c <= self.throttle_c, "must not be above throttle_c"),
            (
                "dvfs_slope_per_c",
                1 - self.dvfs_slope_per_c * (self.throttle_c - self.dvfs_onset_c)
                >= self.throttle_floor,
                "is so steep that the DVFS clock falls below throttle_floor before throttle_c",
            ),
            ("mtbf_h", self.mtbf_h > 0, "must be > 0 h"),
            (
                "mtbf_ref_c",
                -50 < self.mtbf_ref_c < 200,
                "must be a die temperature in (-50, 200) C",
            ),
            ("ea_ev", 0 <= self.ea_ev <= 3, "must be in [0, 3] eV"),
            ("hazard_multiplier", self.hazard_multiplier > 0, "must be > 0"),
            ("hot_gain_per_c", 0 <= self.hot_gain_per_c <= 2, "must be in [0, 2] per C"),
            ("extended_threshold", 0 <= self.extended_threshold <= 1, "must be in [0, 1]"),
            ("extended_gain", self.extended_gain >= 0, "must be >= 0"),
            ("extended_tau_h", self.extended_tau_h > 0, "must be > 0 h"),
            ("extended_recovery", self.extended_recovery >= 0, "must be >= 0"),
        ]
        for name, ok, rule in rules:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise ScenarioError(f"{rule} (got {value})", field=f"{prefix}.{name}")


@functools.cache
def _raw() -> dict[str, Any]:
    text = resources.files("fleetsim.catalog").joinpath("reliability.yaml").read_text("utf-8")
    return yaml.safe_load(text)["chips"]


def _flatten(name: str, raw: dict[str, Any], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Follow `inherits` chains; values and basis strings of the child win."""
    if name in seen:
        raise ValueError(f"reliability.yaml: inheritance loop through {name}")
    entry = raw[name]
    parent = entry.get("inherits")
    base = _flatten(parent, raw, seen + (name,)) if parent else {"basis": {}}
    out = {**base, **{k: v for k, v in entry.items() if k not in ("inherits", "basis")}}
    out["basis"] = {**base["basis"], **entry.get("basis", {})}
    return out


@functools.cache
def reliability_defaults() -> dict[str, dict[str, Any]]:
    """Flattened defaults per chip kind (entries starting with '_' are shared parents only)."""
    raw = _raw()
    return {k: _flatten(k, raw) for k in raw if not k.startswith("_")}


def known_chips() -> list[str]:
    return sorted(k for k in reliability_defaults() if k != "default")


def chip_reliability(
    chip: str,
    tdp_w: float | None = None,
    override: Mapping[str, Any] | Any | None = None,
) -> ChipReliability:
    """Resolve one chip kind: own defaults (or `default`), catalog TDP, then scenario override.

    `tdp_w` is the chip catalog's TDP (None or NaN when the catalog has none); an override's
    `tdp_w` wins over both. `r_th_c_per_w` follows from `rise_at_tdp_c / tdp_w` unless the
    override sets it, so a chip with a different TDP keeps its designed temperature rise.
    """
    table = reliability_defaults()
    entry = dict(table.get(chip, table["default"]))
    basis = dict(entry.pop("basis"))
    if chip not in table:
        basis = {
            k: f"ASSUMPTION: unknown chip '{chip}', generic default. {v}" for k, v in basis.items()
        }
    if tdp_w is not None and math.isfinite(float(tdp_w)) and float(tdp_w) > 0:
        entry["tdp_w"] = float(tdp_w)
        basis["tdp_w"] = "SOURCE: chip catalog (fleetsim/catalog/chips.yaml)"
    if override is not None and hasattr(override, "model_dump"):
        override = override.model_dump(exclude_none=True)
    override = dict(override or {})
    r_th = override.pop("r_th_c_per_w", None)
    for key, value in override.items():
        if key not in PARAM_FIELDS:
            raise ScenarioError(
                f"unknown reliability parameter '{key}'; allowed: {', '.join(PARAM_FIELDS)}, r_th_c_per_w",
                field=f"reliability.chips.{chip}.{key}",
            )
        entry[key] = float(value)
        basis[key] = "SCENARIO override"
    rise = float(entry.pop("rise_at_tdp_c"))
    if r_th is None:
        r_th = rise / float(entry["tdp_w"])
    else:
        basis["r_th_c_per_w"] = "SCENARIO override"
    params = ChipReliability(
        chip=chip, r_th_c_per_w=float(r_th), basis=basis, **{k: float(v) for k, v in entry.items()}
    )
    params.check()
    return params
