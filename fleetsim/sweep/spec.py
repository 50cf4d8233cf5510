"""What a sweep varies: axes from the command line or a sweep file, expanded into points.

Axes are the scenario's dotted `--set` paths. `--param path=v1,v2` lists values; `--range
path=lo:hi:n` gives n evenly spaced values; with `sample: N` the ranges are instead sampled by a
seeded Latin hypercube (scipy.stats.qmc). Listed values and grid ranges form a cartesian product;
Latin hypercube samples are crossed with the listed values. Each point runs `seeds` replicates.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import yaml
from pydantic import Field, ValidationError

from fleetsim.errors import FleetsimError
from fleetsim.scenario.base import StrictModel


class SweepError(FleetsimError):
    """A sweep axis or sweep file that cannot be used (the CLI prints it as one line, exit 2)."""


class RangeAxis(StrictModel):
    """lo..hi: `n` evenly spaced values on a grid, or a continuous interval under `sample`."""

    lo: float
    hi: float
    n: Annotated[int, Field(ge=2, le=10_000)] | None = None
    integer: bool | None = Field(
        None, description="round values to integers (default: when the scenario's field holds an integer)")


class SweepFile(StrictModel):
    """A sweep file: the same axes as the command line (`fleetsim sweep SCENARIO --file F`)."""

    params: dict[str, list[Any]] = Field({}, description="path -> values (a grid axis)")
    ranges: dict[str, RangeAxis | str] = Field({}, description="path -> {lo, hi, n} or 'lo:hi:n'")
    sample: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None, description="Latin hypercube points over `ranges` (n is then ignored)")
    seeds: Annotated[int, Field(ge=1, le=10_000)] = Field(1, description="replicates per point")
    seed: Annotated[int, Field(ge=0)] | None = Field(None, description="root seed (default: the scenario's)")
    set: list[str] = Field([], description="base overrides applied to every point")
    metric: str | None = Field(None, description="metric for the tornado plot")
    heatmap: list[str] | None = Field(None, description="two parameter paths for the heatmap")
    paired: bool = Field(True, description="replicate r of every point runs on the same seed (common "
                         "random numbers: differences between points are the settings' effects); false: "
                         "every point its own seeds")
    baseline: Annotated[int, Field(ge=0)] = Field(0, description="point the paired differences are taken against")


@dataclass
class SweepSpec:
    """Resolved axes and options; `points()` expands them."""

    params: dict[str, list[Any]] = field(default_factory=dict)
    ranges: dict[str, RangeAxis] = field(default_factory=dict)
    sample: int | None = None
    seeds: int = 1
    seed: int | None = None
    base_overrides: list[str] = field(default_factory=list)
    metric: str | None = None
    heatmap: list[str] | None = None
    paired: bool = True       # common random numbers: replicate r of every point shares its seed
    baseline: int = 0         # the point paired differences are taken against

    @property
    def paths(self) -> list[str]:
        return list(self.params) + list(self.ranges)

    def points(self, root_seed: int) -> list[dict[str, Any]]:
        """Parameter values of every point, in a fixed order (no replicates)."""
        if not self.params and not self.ranges:
            raise SweepError("a sweep needs at least one axis: --param, --range or a sweep file")
        grid_axes: list[tuple[str, list[Any]]] = list(self.params.items())
        if self.sample is None:
            for path, ax in self.ranges.items():
                if ax.n is None:
                    raise SweepError(f"range '{path}' needs a count lo:hi:n (or give --sample N)")
                vals = np.linspace(ax.lo, ax.hi, ax.n)
                grid_axes.append((path, [_num(v, ax.integer) for v in vals]))
            combos = [dict(zip([p for p, _ in grid_axes], c))
                      for c in itertools.product(*[v for _, v in grid_axes])]
            return combos
        if not self.ranges:
            raise SweepError("--sample N draws a Latin hypercube over ranges: give at least one --range")
        from scipy.stats import qmc

        names = list(self.ranges)
        # Seeded from the root seed through SeedSequence: the same sweep draws the same design.
        rng = np.random.default_rng(np.random.SeedSequence(entropy=root_seed, spawn_key=(zlib.crc32(b"lhs"),)))
        try:
            lhs = qmc.LatinHypercube(d=len(names), rng=rng)
        except TypeError:  # scipy < 1.15 calls it seed
            lhs = qmc.LatinHypercube(d=len(names), seed=rng)
        unit = lhs.random(self.sample)
        lo = np.array([self.ranges[p].lo for p in names])
        hi = np.array([self.ranges[p].hi for p in names])
        design = qmc.scale(unit, lo, hi) if np.all(hi > lo) else lo + unit * (hi - lo)
        samples = [{p: _num(row[i], self.ranges[p].integer) for i, p in enumerate(names)} for row in design]
        listed = [dict(zip(self.params, c)) for c in itertools.product(*self.params.values())]
        return [lst | smp for lst in listed for smp in samples]


def _num(v: float, integer: bool | None) -> float | int:
    """Grid and sample values as plain Python numbers (12 significant digits: clean --set text)."""
    if integer:
        return round(float(v))
    x = float(f"{float(v):.12g}")
    return x


def override_strings(point: dict[str, Any]) -> list[str]:
    """`path=value` strings for the loader; values as JSON (valid YAML, so typed by the schema)."""
    return [f"{path}={json.dumps(value)}" for path, value in point.items()]


def point_seed(root_seed: int, point: dict[str, Any], replicate: int) -> int:
    """The scenario seed of one point and replicate: a SeedSequence child of the root, keyed by
    the point's values (not its position, so adding an axis value never reseeds other points)
    and the replicate number. Never the clock, never shared between replicates."""
    key = zlib.crc32(json.dumps(point, sort_keys=True).encode())
    ss = np.random.SeedSequence(entropy=root_seed, spawn_key=(key, replicate))
    return int(ss.generate_state(1, np.uint64)[0]) >> 1  # 63 bits: fits a signed int64 column


def replicate_seed(root_seed: int, point: dict[str, Any], replicate: int, paired: bool = True) -> int:
    """The seed of a point's replicate: shared by every point when `paired` (common random
    numbers: future r of every point sees the same demand, regimes, crashes), else point_seed."""
    return point_seed(root_seed, {} if paired else point, replicate)


def parse_param(text: str) -> tuple[str, list[Any]]:
    """`path=v1,v2,...` -> (path, values); each value read as YAML (numbers, booleans, strings)."""
    path, raw = _split(text, "--param", "path=v1,v2,...")
    values = []
    for item in raw.split(","):
        if not item.strip():
            raise SweepError(f"--param '{text}': an empty value; give path=v1,v2,...")
        try:  # YAML 1.2 numbers: 0.9e9 is a number, as the docs write them (not YAML 1.1's text)
            values.append(yaml.load(item, Loader=_SweepLoader))
        except yaml.YAMLError:
            values.append(item.strip())
    return path, values


def parse_range(text: str) -> tuple[str, RangeAxis]:
    """`path=lo:hi:n` (or `path=lo:hi` under --sample) -> (path, RangeAxis)."""
    path, raw = _split(text, "--range", "path=lo:hi:n")
    return path, _range_from_text(raw, f"--range '{text}'")


def _range_from_text(raw: str, where: str) -> RangeAxis:
    parts = [p.strip() for p in str(raw).split(":")]
    if len(parts) not in (2, 3):
        raise SweepError(f"{where}: expected lo:hi:n (for example 2:8:4) or lo:hi with --sample")
    try:
        lo, hi = float(parts[0]), float(parts[1])
        n = int(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise SweepError(f"{where}: lo and hi must be numbers and n an integer (for example 2:8:4)") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise SweepError(f"{where}: need finite lo <= hi, got {parts[0]}:{parts[1]}")
    if n is not None and n < 2:
        raise SweepError(f"{where}: n must be at least 2 (a single value is a --param)")
    return RangeAxis(lo=lo, hi=hi, n=n)


def settle_integer_axes(spec: SweepSpec, scenario_data: dict[str, Any]) -> None:
    """Ranges over integer fields (replicas, tp, ...) round to integers: decided by the type of the
    value the scenario holds at that path now (a float field such as rate_per_s holds 3.0)."""
    from fleetsim.scenario.loader import child, split_set_path

    for path, ax in spec.ranges.items():
        if ax.integer is not None:
            continue
        node: Any = scenario_data
        for key in split_set_path(path, scenario_data):
            node = child(node, key)
        ax.integer = isinstance(node, int) and not isinstance(node, bool)


def _split(text: str, option: str, form: str) -> tuple[str, str]:
    if "=" not in text:
        raise SweepError(f"{option} takes {form}, got '{text}'")
    path, raw = text.split("=", 1)
    if not path.strip() or not raw.strip():
        raise SweepError(f"{option} takes {form}, got '{text}'")
    return path.strip(), raw


class _SweepLoader(yaml.SafeLoader):
    """safe_load with YAML 1.2 numbers: no base-60 (`rate: 2:6:3` stays the text 2:6:3), and an
    exponent needs no sign (`0.9e9` is a number, as the docs write them, not text)."""


_SweepLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in res if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for ch, res in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx in (
    ("tag:yaml.org,2002:int", r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    ("tag:yaml.org,2002:float", (r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
                                 r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")),
):
    _SweepLoader.add_implicit_resolver(_tag, __import__("re").compile(_rx), list("-+0123456789."))


def load_sweep_file(path: str | Path) -> SweepSpec:
    """Read a sweep YAML file into a SweepSpec (errors name the file and the field)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SweepLoader)
    except OSError as exc:
        raise SweepError(f"cannot read sweep file: {exc.strerror or exc}", file=str(path)) from None
    except yaml.YAMLError as exc:
        raise SweepError(f"broken YAML: {str(exc).splitlines()[0]}", file=str(path)) from None
    if not isinstance(data, dict):
        raise SweepError("a sweep file is a mapping (params, ranges, sample, seeds, ...)", file=str(path))
    try:
        f = SweepFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function", "RangeAxis", "str")))
        raise SweepError(err["msg"], file=str(path), field=where or None) from None
    ranges = {}
    for p, ax in f.ranges.items():
        if isinstance(ax, str):
            ranges[p] = _range_from_text(ax, f"{path}: ranges.{p}")
        else:
            if ax.hi < ax.lo:
                raise SweepError("need lo <= hi", file=str(path), field=f"ranges.{p}")
            ranges[p] = ax
    for p, vals in f.params.items():
        if not vals:
            raise SweepError("give at least one value", file=str(path), field=f"params.{p}")
    return SweepSpec(params=dict(f.params), ranges=ranges, sample=f.sample, seeds=f.seeds, seed=f.seed,
                     base_overrides=list(f.set), metric=f.metric, heatmap=f.heatmap, paired=f.paired,
                     baseline=f.baseline)


def merge(base: SweepSpec, params: dict[str, list[Any]], ranges: dict[str, RangeAxis], **options: Any) -> SweepSpec:
    """Command-line axes and options on top of a sweep file's (None leaves the file's value)."""
    for path in list(params) + list(ranges):
        if path in base.params or path in base.ranges or (path in params and path in ranges):
            raise SweepError(f"axis '{path}' is given twice; keep one")
    spec = SweepSpec(params=base.params | params, ranges=base.ranges | ranges, sample=base.sample,
                     seeds=base.seeds, seed=base.seed, base_overrides=list(base.base_overrides),
                     metric=base.metric, heatmap=base.heatmap, paired=base.paired, baseline=base.baseline)
    for k, v in options.items():
        if k == "base_overrides":
            spec.base_overrides += list(v)
        elif v is not None:
            setattr(spec, k, v)
    return spec
