"""Fit a chip's kernel efficiencies to a handful of measured iteration times.

`fleetsim calibrate CHIP MEASUREMENTS.csv`: a user with a new chip and ten measurements gets a
catalog override a scenario can include. Columns (one row per measured iteration):

    model, tp, batch, prompt_tokens, context_tokens, phase, measured_s [, precision, kv_precision]

Lines starting with '#' are comments (cite your measurement setup there).
phase=prefill: `batch` prompts of `prompt_tokens` each processed in one iteration.
phase=decode: `batch` sequences each holding `context_tokens`, one decode step.
Three factors are fitted (least squares on relative error, scipy.optimize.least_squares): a scale
on the MFU table, hbm_efficiency and overhead_s; with fewer than three rows, the later ones stay.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

from fleetsim.catalog import PRECISIONS, ChipSpec, load_chips, load_models
from fleetsim.catalog.loader import _suggest
from fleetsim.errors import CapacityError, ScenarioError
from fleetsim.kernel.latency import ReplicaKernel

REQUIRED = ("model", "tp", "batch", "phase", "measured_s")
OPTIONAL = ("prompt_tokens", "context_tokens", "precision", "kv_precision")


@dataclass(frozen=True)
class _Row:
    line: int
    model: str
    tp: int
    batch: int
    phase: str
    tokens: float
    measured_s: float
    precision: str
    kv_precision: str


@dataclass
class CalibrationResult:
    chip: str
    source: str
    fitted: dict  # efficiency fields that were fitted, with their values
    table: pd.DataFrame  # per point: measured, default, fitted, relative errors
    rms_rel_error: float
    rms_rel_error_default: float
    efficiency: dict = field(repr=False)  # the full efficiency block to override with

    def to_override_yaml(self) -> str:
        """The `catalog: chips: {chip: {efficiency: ...}}` snippet a scenario can include."""
        eff = dict(self.efficiency)
        eff["mfu"] = {
            int(k) if float(k).is_integer() else float(k): round(float(v), 4) for k, v in eff["mfu"].items()
        }
        eff = {k: (round(float(v), 6) if isinstance(v, (float, np.floating)) else v) for k, v in eff.items()}
        eff["basis"] = (
            f"fitted by fleetsim calibrate from {self.source}: {len(self.table)} points, RMS "
            f"relative error {self.rms_rel_error:.1%} (catalog defaults: "
            f"{self.rms_rel_error_default:.1%})"
        )
        return yaml.safe_dump({"catalog": {"chips": {self.chip: {"efficiency": eff}}}}, sort_keys=False)

    def __str__(self) -> str:
        cols = ["model", "tp", "phase", "batch", "tokens", "measured_s", "default_s", "fitted_s", "rel_error"]
        t = self.table[cols].copy()
        t["rel_error"] = t["rel_error"].map(lambda x: f"{x:+.1%}")
        fitted = ", ".join(f"{k}={v:.4g}" for k, v in self.fitted.items())
        return (
            f"calibrated {self.chip} from {self.source}: {fitted}\n"
            f"RMS relative error {self.rms_rel_error:.1%} (defaults {self.rms_rel_error_default:.1%})\n"
            + t.to_string(index=False)
        )


def _read(path: Path, models: dict) -> list[_Row]:
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read measurements file: {exc.strerror}", file=src) from None
    kept = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader([ln for _, ln in kept])
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ScenarioError(
            f"missing column(s) {missing}; required: {', '.join(REQUIRED)}, plus prompt_tokens "
            f"(prefill rows) or context_tokens (decode rows)", file=src, field=missing[0])
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    if unknown:
        raise ScenarioError(f"unknown column '{unknown[0]}'" + _suggest(unknown[0], list(REQUIRED + OPTIONAL)),
                            file=src, field=unknown[0])
    rows = []
    for i, raw in enumerate(reader):
        line = kept[i + 1][0]  # file line number (comments and blank lines skipped)
        rec = {k.strip(): (v or "").strip() for k, v in raw.items() if k}

        def num(col, kind=float, positive=True):
            val = rec.get(col, "")
            try:
                x = kind(float(val)) if kind is int else float(val)
                if kind is int and float(val) != x:
                    raise ValueError
            except ValueError:
                raise ScenarioError(f"row {line}: column {col} must be a {'whole ' if kind is int else ''}"
                                    f"number, got {val!r}", file=src, field=col, line=line) from None
            if positive and not (x > 0 and math.isfinite(x)):
                raise ScenarioError(f"row {line}: column {col} must be > 0, got {val!r}",
                                    file=src, field=col, line=line)
            return x

        model = rec["model"]
        if model not in models:
            raise ScenarioError(f"row {line}: unknown model '{model}'" + _suggest(model, list(models)),
                                file=src, field="model", line=line)
        phase = rec["phase"].lower()
        if phase not in ("prefill", "decode"):
            raise ScenarioError(f"row {line}: phase must be prefill or decode, got {rec['phase']!r}",
                                file=src, field="phase", line=line)
        tok_col = "prompt_tokens" if phase == "prefill" else "context_tokens"
        if not rec.get(tok_col):
            raise ScenarioError(f"row {line}: a {phase} row needs {tok_col}", file=src, field=tok_col, line=line)
        prec = {}
        for col in ("precision", "kv_precision"):
            prec[col] = rec.get(col) or "bf16"
            if prec[col] not in PRECISIONS:
                raise ScenarioError(f"row {line}: {col} must be one of {', '.join(PRECISIONS)}, got "
                                    f"{prec[col]!r}", file=src, field=col, line=line)
        rows.append(_Row(line, model, num("tp", int), num("batch", int), phase, num(tok_col),
                         num("measured_s"), prec["precision"], prec["kv_precision"]))
    if not rows:
        raise ScenarioError("no measurement rows", file=src)
    return rows


def _predict(chip: ChipSpec, rows: list[_Row], models: dict, src: str) -> np.ndarray:
    kernels: dict = {}
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        key = (r.model, r.tp, r.precision, r.kv_precision)
        if key not in kernels:
            try:
                kernels[key] = ReplicaKernel(chip, models[r.model], r.tp, r.precision, kv_precision=r.kv_precision)
            except (CapacityError, ScenarioError) as exc:
                raise ScenarioError(f"row {r.line}: {exc.message}", file=src, field="tp", line=r.line) from None
        k = kernels[key]
        if r.phase == "prefill":
            out[i] = k.step_time_s(r.batch * r.tokens, 0, 0, r.batch * 0.5 * r.tokens**2)
        else:
            out[i] = k.step_time_s(0, r.batch, r.batch * r.tokens)
    return out


def calibrate(chip_name: str, measurements_csv_path, overrides: dict | None = None) -> CalibrationResult:
    """Fit `chip_name`'s MFU scale, hbm_efficiency and overhead_s to measured iteration times.

    `overrides` is the scenario's `catalog` section ({chips: ..., models: ...}) so new chips and
    models can be calibrated too."""
    overrides = overrides or {}
    chips = load_chips(overrides.get("chips"))
    models = load_models(overrides.get("models"))
    if chip_name not in chips:
        raise ScenarioError(f"unknown chip '{chip_name}'" + _suggest(chip_name, list(chips)), field="chip")
    path = Path(measurements_csv_path)
    src = str(path)
    rows = _read(path, models)
    chip = chips[chip_name]
    measured = np.array([r.measured_s for r in rows])
    eff0 = chip.efficiency
    mfu0 = dict(eff0.mfu)
    max_scale = 1.0 / max(mfu0.values())
    n_fit = min(3, len(rows))
    names = ["mfu_scale", "hbm_efficiency", "overhead_s"][:n_fit]
    x0 = np.array([1.0, eff0.hbm_efficiency, eff0.overhead_s])[:n_fit]
    lo = np.array([0.02, 0.02, 0.0])[:n_fit]
    hi = np.array([max_scale, 1.0, 1.0])[:n_fit]
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def chip_for(x: np.ndarray) -> ChipSpec:
        vals = dict(zip(names, x))
        eff = eff0.model_copy(update={
            "mfu": {k: v * vals.get("mfu_scale", 1.0) for k, v in mfu0.items()},
            "hbm_efficiency": vals.get("hbm_efficiency", eff0.hbm_efficiency),
            "overhead_s": vals.get("overhead_s", eff0.overhead_s),
        })
        return chip.model_copy(update={"efficiency": eff})

    default_pred = _predict(chip, rows, models, src)

    def residuals(x):
        return _predict(chip_for(x), rows, models, src) / measured - 1.0

    fit = least_squares(residuals, x0, bounds=(lo, hi), x_scale=np.maximum(np.abs(x0), 1e-3))
    best = chip_for(fit.x)
    fitted_pred = _predict(best, rows, models, src)
    rel = fitted_pred / measured - 1.0
    rel0 = default_pred / measured - 1.0
    table = pd.DataFrame({
        "line": [r.line for r in rows], "model": [r.model for r in rows], "tp": [r.tp for r in rows],
        "phase": [r.phase for r in rows], "batch": [r.batch for r in rows],
        "tokens": [r.tokens for r in rows], "measured_s": measured, "default_s": default_pred,
        "fitted_s": fitted_pred, "rel_error_default": rel0, "rel_error": rel,
    })
    fitted = dict(zip(names, map(float, fit.x)))
    return CalibrationResult(
        chip=chip_name, source=path.name, fitted=fitted, table=table,
        rms_rel_error=float(np.sqrt(np.mean(rel**2))),
        rms_rel_error_default=float(np.sqrt(np.mean(rel0**2))),
        efficiency=best.efficiency.model_dump(),
    )
