"""Built-in catalogs (YAML inside the package) merged with a scenario's `catalog:` overrides."""

from __future__ import annotations

import copy
import difflib
import functools
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fleetsim.catalog.schema import PEAK_FIELD, ChipSpec, EngineProfile, ModelSpec
from fleetsim.errors import ScenarioError

_NESTED = {"efficiency", "sources"}  # merged key by key; everything else is replaced whole
_SCALED_BY_PERF = ("bf16_tflops", "fp8_tflops", "int8_tops", "fp4_tflops", "hbm_tbps")


@functools.cache
def _raw(filename: str) -> dict[str, Any]:
    text = resources.files("fleetsim.catalog").joinpath(filename).read_text(encoding="utf-8")
    # libyaml's parser when built (same safe constructor, same objects, about 5x faster on the
    # catalogs every run reads); the pure-Python safe loader otherwise.
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _suggest(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; allowed: {', '.join(sorted(allowed))}"


def _raise_validation(exc: ValidationError, cls: type[BaseModel], path: str, new: bool) -> None:
    """Turn pydantic's errors into one ScenarioError naming dotted field paths."""
    found: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        field = f"{path}.{loc}" if loc else path
        if err["type"] == "extra_forbidden":
            top = str(err["loc"][0])
            owner = cls if len(err["loc"]) == 1 else cls.model_fields[top].annotation
            allowed = list(getattr(owner, "model_fields", cls.model_fields))
            msg = f"unknown field '{err['loc'][-1]}'" + _suggest(err["loc"][-1], allowed)
        elif err["type"] == "missing":
            msg = "missing (" + ("a new entry must give every required field" if new else "required") + ")"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if not isinstance(err.get("input"), dict):
                msg += f" (got {err.get('input')!r})"
        found.append((field, msg))
    message = found[0][1]
    if len(found) > 1:
        message += "; also " + "; ".join(f"{f}: {m}" for f, m in found[1:])
    raise ScenarioError(message, field=found[0][0]) from None


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, val in over.items():
        if key in _NESTED and isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **val}
        else:
            out[key] = copy.deepcopy(val)
    return out


def family_efficiency(family: str | None) -> dict:
    """default_efficiency with the family's figures merged over it (chips.yaml `families`)."""
    raw = _raw("chips.yaml")
    fam = raw.get("families", {}).get(family or "unmeasured", {})
    return {**copy.deepcopy(raw["default_efficiency"]), **copy.deepcopy(fam)}


@functools.cache
def _builtin_chips() -> dict[str, ChipSpec]:
    raw = _raw("chips.yaml")
    out = {}
    for key, entry in raw["chips"].items():
        entry = _merge({"efficiency": family_efficiency(entry.get("family"))}, entry)
        try:
            out[key] = ChipSpec.model_validate(entry)
        except ValidationError as exc:  # a broken built-in file is a bug, but say where
            _raise_validation(exc, ChipSpec, f"fleetsim/catalog/chips.yaml:chips.{key}", False)
    return out


@functools.cache
def _builtin_models() -> dict[str, ModelSpec]:
    out = {}
    for key, entry in _raw("models.yaml")["models"].items():
        try:
            out[key] = ModelSpec.model_validate(entry)
        except ValidationError as exc:
            _raise_validation(exc, ModelSpec, f"fleetsim/catalog/models.yaml:models.{key}", False)
    return out


def _check_mapping(obj: Any, path: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ScenarioError(f"expected a mapping of name -> fields, got {type(obj).__name__}", field=path)
    return obj


def _resolve_relative(
    key: str, over: dict, chips: dict[str, ChipSpec], path: str
) -> dict:
    """`relative_to: {chip, perf_fraction, price_fraction}`: scale another chip's peaks and
    price. This is how a scenario states the story's "30-50% of an H100 at half the price"."""
    rel = over.pop("relative_to")
    allowed = {"chip", "perf_fraction", "price_fraction"}
    if not isinstance(rel, dict) or "chip" not in rel:
        raise ScenarioError(
            "relative_to needs {chip: NAME, perf_fraction: F, price_fraction: F}", field=path
        )
    for k in rel:
        if k not in allowed:
            raise ScenarioError(f"unknown field '{k}'" + _suggest(k, sorted(allowed)), field=f"{path}.{k}")
    ref_name = rel["chip"]
    if ref_name not in chips:
        raise ScenarioError(f"unknown chip '{ref_name}'" + _suggest(ref_name, list(chips)), field=f"{path}.chip")
    ref = chips[ref_name]
    derived: dict[str, Any] = {}
    for name, fraction_key, fields in (
        ("perf", "perf_fraction", _SCALED_BY_PERF),
        ("price", "price_fraction", ("price_usd",)),
    ):
        if fraction_key not in rel:
            continue
        frac = rel[fraction_key]
        if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not frac > 0:
            raise ScenarioError(f"{fraction_key} must be a number > 0, got {frac!r}", field=f"{path}.{fraction_key}")
        for f in fields:
            val = getattr(ref, f)
            if val is not None:
                derived[f] = float(val) * frac
    if "perf_fraction" in rel:
        # "40% of an H100" is delivered performance: the reference chip's measured efficiencies
        # (its family) apply to the scaled peaks, not an assumed band for an unmeasured chip
        derived["family"] = ref.family
    note = f" Scenario: {sorted(derived)} set relative to {ref_name} ({rel})."
    derived.update(over)  # explicit fields beat the relative ones
    derived["notes"] = over.get("notes", "") + note
    return derived


def _apply(
    builtin: dict[str, BaseModel],
    overrides: Any,
    cls: type[BaseModel],
    path: str,
    defaults: dict,
) -> dict:
    out = {k: v.model_copy(deep=True) for k, v in builtin.items()}
    for key, over in _check_mapping(overrides, path).items():
        epath = f"{path}.{key}"
        over = dict(_check_mapping(over, epath))
        if cls is ChipSpec and "relative_to" in over:
            over = _resolve_relative(key, over, out, f"{epath}.relative_to")
        new = key not in out
        if new:
            base = copy.deepcopy(defaults)
            if cls is ChipSpec:
                base["sources"] = {"*": f"scenario catalog entry {epath}"}
                base["efficiency"] = family_efficiency(over.get("family"))
            data = _merge(base, over)
        else:
            data = _merge(out[key].model_dump(), over)
            if cls is ChipSpec:
                touched = [f for f in over if f in cls.model_fields and f not in ("notes", "sources")]
                for flag in ("assumed", "estimated"):
                    if flag not in over:
                        data[flag] = [f for f in data[flag] if f not in touched]
                if "overridden" not in over:
                    data["overridden"] = sorted(set(data["overridden"]) | set(touched))
        _reject_bools(over, cls, epath)
        unknown = [f for f in over if f not in cls.model_fields]
        if unknown:
            f = unknown[0]
            raise ScenarioError(
                f"unknown field '{f}'" + _suggest(f, list(cls.model_fields)), field=f"{epath}.{f}"
            )
        try:
            out[key] = cls.model_validate(data)
        except ValidationError as exc:
            _raise_validation(exc, cls, epath, new)
    return out


def _reject_bools(over: dict, cls: type[BaseModel], path: str) -> None:
    """YAML `true` would pass as 1.0 in a numeric field; name the exact field instead."""
    for key, val in over.items():
        f = cls.model_fields.get(key)
        if f is None:
            continue
        if isinstance(val, bool) and f.annotation is not bool:
            raise ScenarioError(f"must be a number, got {val!r}", field=f"{path}.{key}")
        sub = getattr(f.annotation, "model_fields", None)
        if sub and isinstance(val, dict):
            _reject_bools(val, f.annotation, f"{path}.{key}")


def load_chips(overrides: dict[str, dict] | None = None) -> dict[str, ChipSpec]:
    """Built-in chips, with a scenario's `catalog.chips` section applied (copies; safe to edit)."""
    defaults = {"efficiency": _raw("chips.yaml")["default_efficiency"]}
    return _apply(_builtin_chips(), overrides, ChipSpec, "catalog.chips", defaults)


def load_models(overrides: dict[str, dict] | None = None) -> dict[str, ModelSpec]:
    """Built-in models, with a scenario's `catalog.models` section applied."""
    return _apply(_builtin_models(), overrides, ModelSpec, "catalog.models", {})


@functools.cache
def _builtin_engines() -> dict[str, EngineProfile]:
    out = {}
    for key, entry in _raw("engines.yaml")["engines"].items():
        try:
            out[key] = EngineProfile.model_validate(entry)
        except ValidationError as exc:
            _raise_validation(exc, EngineProfile, f"fleetsim/catalog/engines.yaml:engines.{key}", False)
    return out


def load_engines(overrides: dict[str, dict] | None = None) -> dict[str, EngineProfile]:
    """Built-in engine profiles, with a scenario's `catalog.engines` section applied."""
    return _apply(_builtin_engines(), overrides, EngineProfile, "catalog.engines", {})


def get_chip(name: str, chips: dict[str, ChipSpec], field: str = "chip") -> ChipSpec:
    if name not in chips:
        raise ScenarioError(f"unknown chip '{name}'" + _suggest(name, list(chips)), field=field)
    return chips[name]


def get_model(name: str, models: dict[str, ModelSpec], field: str = "model") -> ModelSpec:
    if name not in models:
        raise ScenarioError(f"unknown model '{name}'" + _suggest(name, list(models)), field=field)
    return models[name]


__all__ = ["load_chips", "load_engines", "load_models", "get_chip", "get_model", "PEAK_FIELD"]
