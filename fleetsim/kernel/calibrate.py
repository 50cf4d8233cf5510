"""Fit kernel efficiencies to measurements: a chip's from its measured iteration times, or chip
families' and engines' from a published measurement set (fleetsim/catalog/measurements.csv).

`fleetsim calibrate all fleetsim/catalog/measurements.csv` refits the shipped calibration from the
FIT split (calibrate_set); `fleetsim calibrate CHIP FILE` with a measurement-set file fits CHIP's
family only (and warns that the points of its sibling chips share the fit).

`fleetsim calibrate CHIP MEASUREMENTS.csv`: a user with a new chip and ten measurements gets a
catalog override a scenario can include. Columns (one row per measured iteration):

    model, tp, batch, prompt_tokens, context_tokens, phase, measured_s [, precision, kv_precision, engine]

Lines starting with '#' are comments (cite your measurement setup there).
phase=prefill: `batch` prompts of `prompt_tokens` each processed in one iteration.
phase=decode: `batch` sequences each holding `context_tokens`, one decode step.
Up to three factors are fitted (least squares on relative error, scipy.optimize.least_squares):
mfu_scale, hbm_efficiency and the chip's extra overhead_s (on top of the engine's), never more
than rows - 2 of them: two rows are refused. `engine` (default vllm / vllm-ascend) names the
engine the iterations were measured under.
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

from fleetsim.catalog import PRECISIONS, ChipSpec, load_chips, load_engines, load_models
from fleetsim.catalog.loader import _suggest
from fleetsim.errors import CapacityError, ScenarioError
from fleetsim.kernel.latency import ReplicaKernel, default_engine

REQUIRED = ("model", "tp", "batch", "phase", "measured_s")
OPTIONAL = ("prompt_tokens", "context_tokens", "precision", "kv_precision", "engine")


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
    engine: str | None = None


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
        for table in ("mfu", "attention"):
            eff[table] = {
                int(k) if float(k).is_integer() else float(k): round(float(v), 4) for k, v in eff[table].items()
            }
        if eff.get("bands") is None:
            eff.pop("bands", None)
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
                         num("measured_s"), prec["precision"], prec["kv_precision"], rec.get("engine") or None))
    if not rows:
        raise ScenarioError("no measurement rows", file=src)
    return rows


def _predict(chip: ChipSpec, rows: list[_Row], models: dict, src: str) -> np.ndarray:
    kernels: dict = {}
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        key = (r.model, r.tp, r.precision, r.kv_precision, r.engine)
        if key not in kernels:
            try:
                kernels[key] = ReplicaKernel(chip, models[r.model], r.tp, r.precision,
                                             kv_precision=r.kv_precision, engine=r.engine)
            except (CapacityError, ScenarioError) as exc:
                raise ScenarioError(f"row {r.line}: {exc.message}", file=src, field=exc.field or "tp",
                                    line=r.line) from None
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
    path = Path(measurements_csv_path)
    try:
        head = next((ln for ln in path.read_text(encoding="utf-8").splitlines()
                     if ln.strip() and not ln.startswith("#")), "")
    except OSError:
        head = ""
    if {"split", "metric", "published"} <= {h.strip() for h in head.split(",")}:
        from fleetsim.kernel.measurements import load_measurements

        return calibrate_set(chip_name, load_measurements(path))
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
    # mfu_scale keeps every GEMM at or below peak under the rows' engines' multipliers
    engines = load_engines()
    names_used = {r.engine or default_engine(chip) for r in rows}
    top_gemm = max([engines[e].gemm_efficiency for e in names_used if e in engines], default=1.0)
    max_scale = 1.0 / (max(eff0.mfu.values()) * top_gemm)
    n_fit = max(0, min(3, len(rows) - 2))
    names = ["mfu_scale", "hbm_efficiency", "overhead_s"][:n_fit]
    x0 = np.array([eff0.mfu_scale, eff0.hbm_efficiency, eff0.overhead_s])[:n_fit]
    lo = np.array([0.02, 0.02, 0.0])[:n_fit]
    hi = np.array([max_scale, 1.0, 1.0])[:n_fit]
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def chip_for(x: np.ndarray) -> ChipSpec:
        vals = dict(zip(names, x))
        eff = eff0.model_copy(update={
            "mfu_scale": vals.get("mfu_scale", eff0.mfu_scale),
            "hbm_efficiency": vals.get("hbm_efficiency", eff0.hbm_efficiency),
            "overhead_s": vals.get("overhead_s", eff0.overhead_s),
        })
        return chip.model_copy(update={"efficiency": eff.model_copy(update={"measured": True, "bands": None})})

    default_pred = _predict(chip, rows, models, src)  # bad rows (capacity, precision) fail first
    if n_fit < 1:
        raise ScenarioError(
            f"{len(rows)} measurement row(s) cannot calibrate anything: a fit needs at least "
            "parameters + 2 points (3 rows for one parameter, 5 for all three)", file=src)

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


# ---------------------------------------------------------------------------------------------
# The measurement set: fit chip-family efficiencies and engine overheads over many published
# points (fleetsim/catalog/measurements.csv format), from the FIT split only.
# ---------------------------------------------------------------------------------------------

PRIOR = {"mfu_scale": 1.0, "hbm_efficiency": 0.75, "overhead_s": 0.003, "speedup_per_year": 0.0,
         "gemm_efficiency": 1.0, "activation_passes": 4.0, "expert_gemm_scale": 1.0}  # fixed start, not the shipped fit
# A second fixed start: the objective is rough (efficiency read at whole rows, best batch chosen
# among integers), so least squares can stop in a worse valley; the lower cost of the two wins.
ALT_START = {"mfu_scale": 0.5, "hbm_efficiency": 0.6, "overhead_s": 0.005, "speedup_per_year": 0.2,
             "gemm_efficiency": 2.0, "activation_passes": 12.0,
             "expert_gemm_scale": 0.5}
# hbm_efficiency <= 0.9: no serving stack beats the 86.7% (H100) to 92% (GB200) copy microbenchmarks
# (sources.md s4.3); mfu_scale <= 2.2 keeps every GEMM efficiency <= 1.
# gemm_efficiency (an engine's multiplier on its family's GEMM efficiency) as the schema allows; the
# kernel refuses a product above peak.
# overhead_s <= 6 ms: a per-step fixed cost (scheduling, sampling, one graph launch) is a few ms at
# most: xDeepServe's host scheduling gap is ~2 ms a step (arXiv 2508.02520 Sec. 7.1), and a CUDA-graph
# decode step of Llama-3.1-8B on an H100 is 5.1 ms of which ~4.8 ms is the weight read
# (https://cloudai.pt/tag/cuda-graphs/). A larger intercept would be model or batch work in disguise.
BOUNDS = {"mfu_scale": (0.05, 2.2), "hbm_efficiency": (0.05, 0.9), "overhead_s": (0.0, 0.006),
          "speedup_per_year": (0.0, 1.0), "gemm_efficiency": (0.2, 5.0),
          "activation_passes": (0.0, 40.0), "expert_gemm_scale": (0.05, 1.0)}
LARGE_RESIDUAL = 0.5
# Fit discipline: a parameter is fitted only when at least this many fit points from at least this
# many independent sources inform it; otherwise it is borrowed under a transfer rule (recorded).
MIN_POINTS, MIN_SOURCES = 5, 2  # |kernel / published - 1| above this after the fit is reported as a warning


@dataclass
class SetCalibration:
    """A fit over the measurement set: parameters, per-point errors on both splits, warnings."""

    fitted: dict  # "family:<name>.mfu_scale" / "engine:<name>.overhead_s.<platform>" -> value
    rows: list  # compare() rows with the fitted catalog, fit and test splits
    fit_points: int
    warnings: list
    chips: dict = field(repr=False)
    engines: dict = field(repr=False)
    transfers: dict = field(default_factory=dict)  # "engine:<name>.<field>[.<platform>]" -> rule

    def to_override_yaml(self) -> str:
        return self.to_catalog_yaml()

    def to_catalog_yaml(self) -> str:
        """The `families:` and `engines:` figures to ship (fleetsim/catalog/*.yaml)."""
        fam: dict = {}
        eng: dict = {}
        for key, val in self.fitted.items():
            kind, rest = key.split(":", 1)
            if kind == "family":
                name, fld = rest.split(".")
                fam.setdefault(name, {})[fld] = round(float(val), 4)
            elif kind == "pool":
                continue  # shipped through the engines that borrow it (transfers, below)
            elif rest.count(".") == 1:
                name, fld = rest.split(".")
                eng.setdefault(name, {})[fld] = round(float(val), 4)
            else:
                name, fld, plat = rest.split(".")
                eng.setdefault(name, {}).setdefault(fld, {})[plat] = round(float(val), 5)
        for key, rule in self.transfers.items():
            kind, rest = key.split(":", 1)
            name, fld = rest.split(".", 1)
            if kind == "family":
                val = next(getattr(c.efficiency, fld) for c in self.chips.values() if c.family == name)
                fam.setdefault(name, {})[fld] = round(float(val), 4)
            if kind == "engine":
                eng.setdefault(name, {}).setdefault("transfers", {})[fld] = rule
                if fld.startswith("overhead_s."):
                    plat = fld.split(".")[1]
                    eng[name].setdefault("overhead_s", {})[plat] = round(
                        float(self.engines[name].overhead_s[plat]), 5)
        return yaml.safe_dump({"families": fam, "engines": eng}, sort_keys=True)

    def __str__(self) -> str:
        from fleetsim.kernel.measurements import summary

        lines = [f"fitted {len(self.fitted)} parameters on {self.fit_points} fit-split points:"]
        lines += [f"  {k} = {v:.4g}" for k, v in self.fitted.items()]
        # the fit split's residuals only: the test split is read once, by the docs generator
        # (python -m fleetsim.kernel.measurements), never while tuning the kernel
        s = summary(self.rows, "fit")
        if s["points"]:
            lines.append(f"fit set: {s['points']} points, median |error| {s['median_abs']:.1%}, "
                         f"{s['within_25']:.0%} within 25%, worst {s['max_abs']:.0%}")
        n_test = sum(r["split"] == "test" for r in self.rows)
        lines.append(f"test set: {n_test} points held out (not printed; docs/validation.md)")
        for r in self.rows:
            if r["split"] == "fit":
                lines.append(f"  {r['split']:4} {r['key']:42} {r['published']:>12.5g} {r['kernel']:>12.5g} {r['rel_error']:+7.1%}")
        lines += [f"transferred {k}: {v}" for k, v in self.transfers.items()]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _apply_params(names: list[str], x: np.ndarray, chips: dict, engines: dict,
                  ties: dict | None = None) -> tuple[dict, dict]:
    """Set fitted values into copies of the catalogs. `ties` maps a parameter name to the
    (engine, platform) overheads that borrow it (a pooled platform overhead, or the overhead of
    the best-measured engine on a platform)."""
    chips = dict(chips)
    engines = dict(engines)
    fam_upd: dict = {}

    def set_overhead(name, plat, val):
        e = engines[name]
        engines[name] = e.model_copy(update={"overhead_s": {**e.overhead_s, plat: float(val)}})

    for key, val in zip(names, x):
        kind, rest = key.split(":", 1)
        if kind == "family":
            name, fld = rest.split(".")
            fam_upd.setdefault(name, {})[fld] = float(val)
        elif kind == "pool":
            pass  # a pooled platform overhead exists only through its ties
        elif rest.count(".") == 1:
            name, fld = rest.split(".")
            engines[name] = engines[name].model_copy(update={fld: float(val)})
        else:
            name, fld, plat = rest.split(".")
            set_overhead(name, plat, val)
        for name, plat in (ties or {}).get(key, ()):
            set_overhead(name, plat, val)
    for cname, c in chips.items():
        if c.family in fam_upd:
            chips[cname] = c.model_copy(update={"efficiency": c.efficiency.model_copy(update=fam_upd[c.family])})
    return chips, engines


def _qualifies(rows: list) -> bool:
    return len(rows) >= MIN_POINTS and len({m.source for m in rows}) >= MIN_SOURCES


def _evidence(rows: list) -> str:
    return f"{len(rows)} fit point(s) from {len({m.source for m in rows})} source(s)"


def calibrate_set(chip: str = "all", points=None) -> SetCalibration:
    """Fit family efficiencies (mfu_scale, hbm_efficiency) and the engines' fitted figures
    (overheads, speedup per year, GEMM multipliers) to the FIT split of the measurement set;
    `chip` limits the fit to that chip's family. Refuses fewer points than parameters + 2; warns
    on large residuals and on points from other chips."""
    from fleetsim.catalog.schema import PLATFORM_OF_FAMILY
    from fleetsim.kernel.measurements import compare, load_measurements

    chips0, models, engines0 = load_chips(), load_models(), load_engines()
    points = tuple(points) if points is not None else load_measurements()
    fit_rows = [m for m in points if m.split == "fit"]
    warnings: list[str] = []
    if chip != "all":
        if chip not in chips0:
            raise ScenarioError(f"unknown chip '{chip}'" + _suggest(chip, list(chips0) + ["all"]), field="chip")
        family = chips0[chip].family
        fit_rows = [m for m in fit_rows if chips0[m.chip].family == family]
        others = sorted({m.chip for m in fit_rows if m.chip != chip})
        if others:
            warnings.append(
                f"{sum(m.chip != chip for m in fit_rows)} of {len(fit_rows)} points come from other "
                f"chips of family {family} ({', '.join(others)}): the fit is the family's, not {chip}'s")
    # Engines with a fitted gemm_efficiency (a multiplier on their family's GEMM efficiency) are
    # fitted second, on their own rows, given the shared fit: the multiplier is relative to the
    # family as the other engines set it, and its few points cannot pull the shared figures.
    gemm_cands = sorted({m.engine for m in fit_rows if "gemm_efficiency" in engines0[m.engine].fitted})
    own_eng = [e for e in gemm_cands if _qualifies([m for m in fit_rows if m.engine == e])]
    shared_rows = [m for m in fit_rows if m.engine not in own_eng]
    own_rows = [m for m in fit_rows if m.engine in own_eng]

    platform_of = lambda m: PLATFORM_OF_FAMILY.get(chips0[m.chip].family, "other")  # noqa: E731
    transfers: dict[str, str] = {}
    ties: dict[str, list] = {}

    # ---- chip families: fitted when their points qualify, else they keep the catalog's figures ----
    fam_names = []
    for fam in sorted({chips0[m.chip].family for m in shared_rows}):
        rows_f = [m for m in shared_rows if chips0[m.chip].family == fam]
        if _qualifies(rows_f):
            fam_names += [f"family:{fam}.mfu_scale", f"family:{fam}.hbm_efficiency",
                          f"family:{fam}.activation_passes"]
            moe = [m for m in rows_f if models[m.model].is_moe]
            if _qualifies(moe):
                fam_names.append(f"family:{fam}.expert_gemm_scale")
            else:
                warnings.append(f"family {fam}: expert GEMMs informed by {_evidence(moe)} (MoE) < "
                                f"{MIN_POINTS} from {MIN_SOURCES}; expert_gemm_scale kept at the catalog's")
        else:
            warnings.append(f"family {fam}: {_evidence(rows_f)} < {MIN_POINTS} from {MIN_SOURCES}; "
                            "its efficiencies are not fitted (catalog figures kept)")

    # ---- per-step overheads by (engine, platform): own fit, pooled platform fit, or borrowed ----
    eng_names = []
    platforms = sorted({platform_of(m) for m in fit_rows})
    for plat in platforms:
        on_plat = [m for m in fit_rows if platform_of(m) == plat]
        cands = sorted(n for n, e in engines0.items() if plat in e.platforms and plat in e.overhead_s
                       and ("overhead_s" in e.fitted or n in {m.engine for m in on_plat}))
        own, rest = [], []
        for eng in cands:
            rows_e = [m for m in on_plat if m.engine == eng]
            (own if _qualifies(rows_e) else rest).append(eng)
        for eng in own:
            eng_names.append(f"engine:{eng}.overhead_s.{plat}")
        pooled = [m for m in on_plat if m.engine in rest]
        if rest and _qualifies(pooled) and len({m.engine for m in pooled}) >= 2:
            key = f"pool:{plat}.overhead_s"
            eng_names.append(key)
            ties[key] = [(eng, plat) for eng in rest]
            members = ", ".join(sorted({m.engine for m in pooled}))
            for eng in rest:
                transfers[f"engine:{eng}.overhead_s.{plat}"] = (
                    f"pooled {plat} per-step overhead, one value fitted over the {plat} engines without "
                    f"qualifying points of their own ({members}: {_evidence(pooled)}); own: "
                    f"{_evidence([m for m in on_plat if m.engine == eng])}")
        elif rest and own:
            src = max(own, key=lambda n: sum(m.engine == n for m in on_plat))
            key = f"engine:{src}.overhead_s.{plat}"
            ties.setdefault(key, []).extend((eng, plat) for eng in rest)
            for eng in rest:
                transfers[f"engine:{eng}.overhead_s.{plat}"] = (
                    f"borrowed from {src} on {plat} (the {plat} engine with most fit points, "
                    f"{_evidence([m for m in on_plat if m.engine == src])}); own: "
                    f"{_evidence([m for m in on_plat if m.engine == eng])} < {MIN_POINTS} from {MIN_SOURCES}")
        elif rest:
            for eng in rest:
                warnings.append(f"engine {eng} on {plat}: no qualifying points to fit or borrow its "
                                "overhead from; the catalog's figure is kept")

    # ---- software speedup per year: an engine's own points at several dates ----
    for eng in sorted({m.engine for m in shared_rows}):
        if "speedup_per_year" not in engines0[eng].fitted:
            continue
        rows_e = [m for m in fit_rows if m.engine == eng]
        dates = sorted({m.date for m in rows_e})
        if not (_qualifies(rows_e) and len(dates) >= 2):
            transfers[f"engine:{eng}.speedup_per_year"] = f"not fitted ({_evidence(rows_e)}): 0, every release as the profile"
            continue
        if engines0[eng].reference_date != dates[-1]:
            raise ScenarioError(
                f"engine {eng}: reference_date {engines0[eng].reference_date} must be the newest "
                f"fit-split date of its points ({dates[-1]}): speedup_per_year is fitted relative "
                "to it", field="reference_date")
        eng_names.append(f"engine:{eng}.speedup_per_year")

    # ---- GEMM multipliers of engines far off their family (fitted second, own rows only) ----
    own_names = [f"engine:{eng}.gemm_efficiency" for eng in own_eng]
    for eng in gemm_cands:
        rows_e = [m for m in fit_rows if m.engine == eng]
        if eng not in own_eng:
            transfers[f"engine:{eng}.gemm_efficiency"] = (
                f"the family's GEMM efficiency (multiplier 1): own {_evidence(rows_e)} < {MIN_POINTS} "
                f"from {MIN_SOURCES}")
    shared_names = fam_names + eng_names
    names = shared_names + own_names
    if len(fit_rows) < len(names) + 2:
        raise ScenarioError(
            f"{len(fit_rows)} fit-split point(s) cannot fit {len(names)} parameters: calibrate needs "
            f"at least parameters + 2 = {len(names) + 2} points", field="measurements")
    borrowed_gemm = [k.split(":")[1].split(".")[0] for k in transfers if k.endswith(".gemm_efficiency")]
    for eng in borrowed_gemm:
        engines0 = {**engines0, eng: engines0[eng].model_copy(update={"gemm_efficiency": 1.0})}
    x_shared = _least_squares(shared_names, shared_rows, chips0, engines0, models, ties)
    chips1, engines1 = _apply_params(shared_names, x_shared, chips0, engines0, ties)
    x_own = _least_squares(own_names, own_rows, chips1, engines1, models, ties)
    fit_x = np.concatenate([x_shared, x_own])
    chips, engines = _apply_params(names, fit_x, chips0, engines0, ties)
    # grouped expert GEMMs are the platform's software (CUTLASS / CANN grouped matmul): a family
    # without qualifying MoE points borrows the fitted figure of its platform's family with most
    if chip == "all":
        fitted_egs = {k.split(":")[1].split(".")[0]: v for k, v in zip(names, fit_x)
                      if k.endswith(".expert_gemm_scale")}
        moe_pts = lambda f: [m for m in shared_rows if chips0[m.chip].family == f and models[m.model].is_moe]  # noqa: E731
        for fam in sorted({c.family for c in chips0.values() if c.efficiency.measured} - set(fitted_egs)):
            plat = PLATFORM_OF_FAMILY.get(fam)
            donors = [f for f in fitted_egs if PLATFORM_OF_FAMILY.get(f) == plat]
            if not donors:
                continue
            src = max(donors, key=lambda f: len(moe_pts(f)))
            for cname, c in chips.items():
                if c.family == fam:
                    chips[cname] = c.model_copy(update={"efficiency": c.efficiency.model_copy(
                        update={"expert_gemm_scale": float(fitted_egs[src])})})
            transfers[f"family:{fam}.expert_gemm_scale"] = (
                f"borrowed from {src} (same platform's grouped-GEMM software; {_evidence(moe_pts(src))} "
                f"MoE); own: {_evidence(moe_pts(fam))} MoE < {MIN_POINTS} from {MIN_SOURCES}")
    for key in transfers:  # the shipped profile says where a borrowed figure came from
        if key.startswith("family:"):
            continue
        name, fld = key.split(":", 1)[1].split(".", 1)
        engines[name] = engines[name].model_copy(update={"transfers": {**engines[name].transfers, fld: transfers[key]}})
    rows = compare(points, chips, models, engines)
    for r in rows:
        if r["split"] == "fit" and abs(r["rel_error"]) > LARGE_RESIDUAL:
            if any(m.key == r["key"] for m in fit_rows):
                warnings.append(f"large residual after the fit: {r['key']} {r['rel_error']:+.0%}")
    for n, v in zip(names, fit_x):
        b = BOUNDS[n.split(".")[1]]
        if min(v - b[0], b[1] - v) < 1e-4 * max(1.0, b[1]):
            warnings.append(f"{n} sits on its bound {v:.4g}: the data push it past a physical limit")
    return SetCalibration(dict(zip(names, map(float, fit_x))), rows, len(fit_rows), warnings, chips,
                          engines, transfers)


def _least_squares(names: list[str], rows: list, chips0: dict, engines0: dict, models: dict,
                   ties: dict | None = None) -> np.ndarray:
    """Least squares on log(kernel / published) over `rows`, from the two fixed starts (the
    objective is rough: efficiency read at whole rows, best batch among integers), within BOUNDS."""
    from fleetsim.kernel.measurements import predict

    if not names:
        return np.zeros(0)
    published = np.array([m.published for m in rows])
    lo = np.array([BOUNDS[n.split(".")[1]][0] for n in names])
    hi = np.array([BOUNDS[n.split(".")[1]][1] for n in names])

    def residuals(x):
        chips, engines = _apply_params(names, x, chips0, engines0, ties)
        try:
            pred = np.array([predict(m, chips, models, engines) for m in rows])
        except ScenarioError:  # a GEMM above peak: as bad as a factor of 10 on every point
            return np.full(len(rows), math.log(10.0))
        return np.log(pred / published)

    fit = None
    for start in (PRIOR, ALT_START):
        x0 = np.array([start[n.split(".")[1]] for n in names])
        cand = least_squares(residuals, x0, bounds=(lo, hi), x_scale=np.maximum(x0, 1e-3), diff_step=1e-3)
        if fit is None or cand.cost < fit.cost:
            fit = cand
    return fit.x
