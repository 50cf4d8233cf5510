"""From a workload's scenario config to arrays of requests for one window.

File paths in the config are resolved here, against `base_dir` (the scenario file's folder),
not in the schema: the config keeps what the user wrote. Errors about files and columns are
`ScenarioError`s naming the file and the dotted field (`<field_prefix>.arrival.path`).

Build once with `compile_workload` when drawing many windows (the goodput search reads each
CSV once that way); `build_requests` is the one-shot form.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fleetsim.errors import ScenarioError
from fleetsim.scenario.workload import (
    DiurnalArrival,
    EmpiricalTokens,
    FixedTokens,
    GammaArrival,
    GeometricTokens,
    LognormalTokens,
    MMPPArrival,
    PoissonArrival,
    TraceArrival,
    UniformTokens,
)
from fleetsim.serving.arrivals import (
    ArrivalProcess,
    DiurnalProcess,
    GammaProcess,
    MMPPProcess,
    PoissonProcess,
    TraceReplay,
)
from fleetsim.serving.distributions import (
    Empirical,
    Fixed,
    Geometric,
    Lognormal,
    TokenDistribution,
    Uniform,
)

__all__ = [
    "RequestBlock",
    "Workload",
    "arrival_process",
    "build_requests",
    "compile_workload",
    "token_distribution",
]


class WorkloadLike(Protocol):
    """What the glue reads from a workload config (the rest, model and SLO, is not ours)."""

    arrival: Any
    prompt_tokens: Any
    output_tokens: Any


@dataclass(frozen=True)
class RequestBlock:
    """One workload's requests in a window, in arrival order."""

    arrival_s: np.ndarray  # float64, sorted, in [0, duration_s)
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    request_class: np.ndarray | None = None  # str per request, from a trace's class column

    def __post_init__(self) -> None:
        n = self.arrival_s.shape[0]
        if self.prompt_tokens.shape != (n,) or self.output_tokens.shape != (n,):
            raise ValueError("RequestBlock arrays must all have one entry per request")
        if self.request_class is not None and self.request_class.shape != (n,):
            raise ValueError("RequestBlock request_class must have one entry per request")

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


def _field(prefix: str, *parts: str) -> str:
    return ".".join(p for p in (prefix, *parts) if p)


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def _read_csv(
    path: str, base_dir: Path, field: str, columns: dict[str, str]
) -> dict[str, pd.Series]:
    """Read the named columns ({field suffix: column name}) of a CSV, or fail naming the field."""
    full = _resolve(path, base_dir)
    if not full.is_file():
        why = "is a folder, not a CSV file" if full.is_dir() else "does not exist"
        raise ScenarioError(f"data file '{full}' {why}", field=_field(field, "path"))
    try:
        header = list(pd.read_csv(full, nrows=0).columns)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ScenarioError(f"cannot read CSV '{full}': {exc}", field=_field(field, "path"))
    for suffix, name in columns.items():
        if name not in header:
            raise ScenarioError(
                f"column '{name}' not found in '{full}'; its columns are: {', '.join(header)}",
                field=_field(field, suffix),
            )
    try:
        frame = pd.read_csv(full, usecols=list(dict.fromkeys(columns.values())))
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ScenarioError(f"cannot read CSV '{full}': {exc}", field=_field(field, "path"))
    if len(frame) == 0:
        raise ScenarioError(f"data file '{full}' has no rows", field=_field(field, "path"))
    return {suffix: frame[name] for suffix, name in columns.items()}


def _numbers(series: pd.Series, full: str, field: str, what: str) -> np.ndarray:
    """Finite floats, or an error that says which row is not."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise ScenarioError(
            f"column '{series.name}' in '{full}' must hold finite numbers ({what}); "
            f"{int(bad.sum())} rows do not, the first is data row {row + 1} "
            f"(value {series.iloc[row]!r})",
            field=field,
        )
    return values


def _token_counts(series: pd.Series, full: str, field: str) -> np.ndarray:
    values = np.rint(_numbers(series, full, field, "token counts"))
    bad = values < 1
    if bad.any():
        row = int(np.argmax(bad))
        raise ScenarioError(
            f"column '{series.name}' in '{full}' must hold token counts >= 1; "
            f"{int(bad.sum())} rows do not, the first is data row {row + 1} "
            f"(value {series.iloc[row]!r}); filter them out of the file",
            field=field,
        )
    return values.astype(np.int64)


def token_distribution(cfg: Any, base_dir: Path = Path("."), field: str = "") -> TokenDistribution:
    """Runtime distribution for a `TokenDist` config; `field` is its dotted path for errors."""
    if isinstance(cfg, FixedTokens):
        return Fixed(cfg.value)
    if isinstance(cfg, UniformTokens):
        return Uniform(cfg.low, cfg.high)
    if isinstance(cfg, LognormalTokens):
        return Lognormal(cfg.median, cfg.sigma, max=cfg.max, min=cfg.min)
    if isinstance(cfg, GeometricTokens):
        return Geometric(cfg.mean)
    if isinstance(cfg, EmpiricalTokens):
        col = _read_csv(cfg.path, base_dir, field, {"column": cfg.column})["column"]
        full = str(_resolve(cfg.path, base_dir))
        values = _numbers(col, full, _field(field, "column"), "token counts")
        if (values < 0).any():
            raise ScenarioError(
                f"column '{cfg.column}' in '{full}' must hold token counts >= 0",
                field=_field(field, "column"),
            )
        return Empirical(values, scale=cfg.scale, source=f"{full}:{cfg.column}")
    raise ScenarioError(f"unknown token distribution {cfg!r}", field=field)


def _trace(cfg: TraceArrival, base_dir: Path, field: str) -> TraceReplay:
    mapping = {
        "columns.arrival_s": cfg.columns.arrival_s,
        "columns.prompt_tokens": cfg.columns.prompt_tokens,
        "columns.output_tokens": cfg.columns.output_tokens,
        "columns.class": cfg.columns.request_class,
    }
    wanted = {k: v for k, v in mapping.items() if v is not None}
    cols = _read_csv(cfg.path, base_dir, field, wanted)
    full = str(_resolve(cfg.path, base_dir))
    times = _numbers(cols["columns.arrival_s"], full, _field(field, "columns.arrival_s"), "seconds")
    tokens = {
        k: _token_counts(cols[k], full, _field(field, k)) if k in cols else None
        for k in ("columns.prompt_tokens", "columns.output_tokens")
    }
    klass = None
    if "columns.class" in cols:
        if cols["columns.class"].isna().any():
            raise ScenarioError(
                f"column '{cfg.columns.request_class}' in '{full}' has empty cells",
                field=_field(field, "columns.class"),
            )
        klass = cols["columns.class"].astype(str).to_numpy(dtype=object)
    try:
        return TraceReplay(
            times,
            tokens["columns.prompt_tokens"],
            tokens["columns.output_tokens"],
            klass,
            time_scale=cfg.time_scale,
            target_rate_per_s=cfg.target_rate_per_s,
            loop=cfg.loop,
            start_s=cfg.start_s,
            source=full,
        )
    except ValueError as exc:
        msg = str(exc)
        where = "start_s" if "start_s" in msg else "columns.arrival_s" if "times" in msg else "path"
        raise ScenarioError(f"trace '{full}': {exc}", field=_field(field, where)) from None


def arrival_process(cfg: Any, base_dir: Path = Path("."), field: str = "",
                    start_hour: float = 0.0) -> ArrivalProcess:
    """Runtime arrival process for an `Arrival` config; `field` is its dotted path for errors.
    `start_hour` is the window's hour of day at t = 0, used unless the arrival sets its own."""
    if isinstance(cfg, PoissonArrival):
        return PoissonProcess(cfg.rate_per_s)
    if isinstance(cfg, DiurnalArrival):
        return DiurnalProcess(
            cfg.mean_rate_per_s,
            peak_to_mean=cfg.peak_to_mean,
            peak_hour=cfg.peak_hour,
            profile=cfg.profile,
            start_hour=start_hour if cfg.start_hour is None else cfg.start_hour,
        )
    if isinstance(cfg, GammaArrival):
        return GammaProcess(cfg.rate_per_s, cfg.cv)
    if isinstance(cfg, MMPPArrival):
        return MMPPProcess(cfg.rates_per_s, cfg.mean_sojourn_s)
    if isinstance(cfg, TraceArrival):
        return _trace(cfg, base_dir, field)
    raise ScenarioError(f"unknown arrival process {cfg!r}", field=field)


def _children(rng: np.random.Generator, k: int) -> list[np.random.Generator]:
    """k independent generators seeded from draws of rng: a pure function of rng's state, so
    generators in the same state give the same children (common random numbers across calls)."""
    seeds = rng.integers(0, 2**63, size=k, dtype=np.int64)
    return [np.random.default_rng(int(s)) for s in seeds]


@dataclass(frozen=True)
class Workload:
    """A workload ready to draw windows: arrival process and, unless the trace has them, the
    token-length distributions."""

    arrival: ArrivalProcess
    prompt_tokens: TokenDistribution | None
    output_tokens: TokenDistribution | None

    @property
    def mean_rate_per_s(self) -> float:
        return self.arrival.mean_rate_per_s

    def requests(
        self, rng: np.random.Generator, duration_s: float, rate_scale: float = 1.0
    ) -> RequestBlock:
        """One window of requests. Arrivals, prompts and outputs use separate child streams, so
        changing one distribution leaves the others' draws alone; the same rng state at two
        rate scales gives common random numbers."""
        arrival_rng, prompt_rng, output_rng = _children(rng, 3)
        klass = None
        if isinstance(self.arrival, TraceReplay):
            times, rows = self.arrival.replay(duration_s, rate_scale)
            trace = self.arrival
            prompt = trace.prompt_tokens[rows] if trace.prompt_tokens is not None else None
            output = trace.output_tokens[rows] if trace.output_tokens is not None else None
            klass = trace.request_class[rows] if trace.request_class is not None else None
        else:
            times = self.arrival.generate(arrival_rng, duration_s, rate_scale)
            prompt = output = None
        n = times.size
        if prompt is None:
            prompt = self.prompt_tokens.sample(prompt_rng, n)
        if output is None:
            output = self.output_tokens.sample(output_rng, n)
        return RequestBlock(
            arrival_s=np.asarray(times, dtype=np.float64),
            prompt_tokens=np.asarray(prompt, dtype=np.int64),
            output_tokens=np.asarray(output, dtype=np.int64),
            request_class=klass,
        )


def compile_workload(
    workload_cfg: WorkloadLike, base_dir: Path = Path("."), field_prefix: str = "",
    start_hour: float = 0.0,
) -> Workload:
    """Check and build the runtime parts of a workload, reading any CSV it names once.

    With a trace, each token length comes from the trace column when one is mapped, and from the
    workload's distribution otherwise; giving both for the same length is an error, so that no
    setting is silently ignored.
    """
    base_dir = Path(base_dir)
    arrival = arrival_process(workload_cfg.arrival, base_dir, _field(field_prefix, "arrival"),
                              start_hour)
    dists: dict[str, TokenDistribution | None] = {}
    for name in ("prompt_tokens", "output_tokens"):
        cfg = getattr(workload_cfg, name, None)
        field = _field(field_prefix, name)
        from_trace = isinstance(arrival, TraceReplay) and getattr(arrival, name) is not None
        if from_trace and cfg is not None:
            raise ScenarioError(
                f"the trace gives {name} (arrival.columns.{name}); remove this distribution, or "
                f"set arrival.columns.{name}: null to sample from it instead",
                field=field,
            )
        if not from_trace and cfg is None:
            why = (
                f"the trace maps no {name} column"
                if isinstance(arrival, TraceReplay)
                else "the arrival process gives only times"
            )
            raise ScenarioError(f"{name} is required: {why}", field=field)
        dists[name] = None if cfg is None else token_distribution(cfg, base_dir, field)
    return Workload(arrival, dists["prompt_tokens"], dists["output_tokens"])


def build_requests(
    workload_cfg: WorkloadLike,
    rng: np.random.Generator,
    duration_s: float,
    rate_scale: float = 1.0,
    base_dir: Path = Path("."),
    field_prefix: str = "",
) -> RequestBlock:
    """One window of requests for a workload config (compile_workload + Workload.requests)."""
    return compile_workload(workload_cfg, base_dir, field_prefix).requests(
        rng, duration_s, rate_scale
    )
