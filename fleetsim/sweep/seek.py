"""Goal seek: the smallest (or largest) value of one `--set` path that meets a target on a metric,
by bisection on common random numbers.

`fleetsim sweep SCENARIO --seek fleet.budget.total_usd --target 'unmet_demand_share<=0.01'`
runs the scenario at the two ends of a bracket, keeps the end that meets the target and the one
that does not, and halves the interval between them until it is narrower than the tolerance.
Every probe runs the same replicate seeds (a fleet's `fleet.seed`, a serving scenario's seed:
SeedSequence children of the root seed keyed by the sought path, never by the probed value), so
two probes differ only in the value: the metric is then a deterministic function of it, and
bisection is sound wherever that function is monotone. The answer is the end of the final
bracket that meets the target, printed with the bracket.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetsim.errors import FleetsimError
from fleetsim.sweep.spec import SweepError, override_strings, point_seed

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Target:
    """`metric OP value`, for example unmet_demand_share<=0.01."""

    metric: str
    op: str
    value: float

    def met(self, x: float) -> bool:
        return not math.isnan(x) and _OPS[self.op](x, self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_target(text: str) -> Target:
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(<=|>=|<|>)\s*(\S+)\s*", text or "")
    if m is None:
        raise SweepError(f"--target takes METRIC<=VALUE (or >=, <, >), for example "
                         f"'unmet_demand_share<=0.01'; got '{text}'")
    try:
        value = float(m.group(3))
    except ValueError:
        raise SweepError(f"--target '{text}': '{m.group(3)}' is not a number") from None
    if not math.isfinite(value):
        raise SweepError(f"--target '{text}': the value must be finite")
    return Target(m.group(1), m.group(2), value)


@dataclass
class Probe:
    value: float
    metric: float  # mean over the replicates
    replicates: list[float]
    met: bool
    from_store: bool


@dataclass
class SeekResult:
    path: str
    target: Target
    probes: list[Probe]
    answer: float
    bracket: tuple[float, float]  # (fails the target, meets it), in the order of the path's values
    out_dir: Path
    seeds: int
    root_seed: int
    converged: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        fail, ok = self.bracket
        tail = "" if self.converged else " (stopped at --max-probes before the tolerance)"
        return (f"answer: {self.path} = {_fmt(self.answer)} meets {self.target} "
                f"(bracket: {_fmt(fail)} fails, {_fmt(ok)} meets; {len(self.probes)} probes, "
                f"{self.seeds} seed(s) each, common random numbers){tail}\noutputs: {self.out_dir}")


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def value_at(data: Any, path: str) -> Any:
    from fleetsim.scenario.loader import child, split_set_path

    node = data
    for key in split_set_path(path, data):
        node = child(node, key)
    return node


def seek(
    scenario_path: str | Path,
    path: str,
    target: Target,
    out_dir: str | Path,
    *,
    bracket: tuple[float, float] | None = None,
    seeds: int = 1,
    seed: int | None = None,
    overrides: list[str] | None = None,
    rel_tol: float = 0.01,
    max_probes: int = 30,
    log: Callable[[str], None] | None = None,
) -> SeekResult:
    """Bisect `path` between the bracket's ends for the boundary of `target` (see module doc)."""
    from fleetsim import api
    from fleetsim.sweep.runner import _with_seed, refuse_fleet_overridden, run_point
    from fleetsim.sweep.store import PointStore, content_key

    overrides = list(overrides or [])
    base = api.load_scenario(scenario_path, overrides)
    if path in ("seed", "fleet.seed"):
        raise SweepError(f"'{path}' cannot be sought: it is the replicate seed (use --seeds K)")
    refuse_fleet_overridden([path], base, str(scenario_path))
    data = base.model_dump(mode="json", by_alias=True)
    now = value_at(data, path)
    if isinstance(now, bool) or not isinstance(now, (int, float)) and now is not None:
        raise SweepError(f"--seek needs a numeric field; '{path}' holds {now!r}",
                         file=str(scenario_path), field=path)
    integer = isinstance(now, int)
    if bracket is None:
        if not now or now <= 0:
            raise SweepError(f"'{path}' is {now!r} in the scenario: give --bracket LO:HI",
                             file=str(scenario_path), field=path)
        bracket = (now / 4, now * 4)
    lo, hi = bracket
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise SweepError(f"--bracket needs finite LO < HI, got {lo:g}:{hi:g}")
    if integer:
        lo, hi = math.floor(lo), math.ceil(hi)
    root = seed if seed is not None else base.seed
    # One seed per replicate for every probe: keyed by the path, never by the value (CRN).
    rep_seeds = [point_seed(root, {"seek": path}, r) for r in range(seeds)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = PointStore(out)
    probes: list[Probe] = []

    def probe(v: float) -> Probe:
        v = int(round(v)) if integer else float(f"{v:.12g}")
        try:
            scen = api.load_scenario(scenario_path, [*overrides, *override_strings({path: v})])
        except FleetsimError as exc:
            raise SweepError(f"seek probe {path}={v}: {exc.message}", file=exc.file or str(scenario_path),
                             field=exc.field, line=exc.line) from None
        vals, cached = [], True
        for s in rep_seeds:
            sc = _with_seed(scen, s)
            key = content_key(sc)
            row = store.get(key)
            if row is None:
                cached = False
                row = run_point({"key": key, "seed": s, "scenario": sc})
                store.put(row)
            if row.get("status") != "ok":
                raise SweepError(f"seek probe {path}={v} failed: {row.get('error')}")
            if target.metric not in row:
                metrics = sorted(k for k in row if k not in ("key", "seed", "status", "error", "wall_s",
                                                             "cpu_s", "traceback"))
                raise SweepError(f"--target metric '{target.metric}' is not a metric of this scenario; "
                                 f"metrics: {', '.join(metrics)}")
            vals.append(float(row[target.metric]))
        mean = float(sum(vals) / len(vals))
        p = Probe(v, mean, vals, target.met(mean), cached)
        probes.append(p)
        if log:
            log(f"probe {len(probes)}: {path}={_fmt(v)} -> {target.metric} {mean:.6g} "
                f"{'meets' if p.met else 'fails'} {target}{' (from the store)' if cached else ''}")
        return p

    a, b = probe(lo), probe(hi)
    if a.met == b.met:
        word = "meets" if a.met else "fails"
        raise SweepError(f"the target {target} {word} at both ends of the bracket "
                         f"{path}={_fmt(lo)}:{_fmt(hi)} ({target.metric} {a.metric:.4g} and {b.metric:.4g}); "
                         "give a --bracket LO:HI with the target met at one end only")
    fail, ok = (a.value, b.value) if b.met else (b.value, a.value)
    converged = False
    while len(probes) < max_probes:
        width = abs(ok - fail)
        if (integer and width <= 1) or (not integer and width <= rel_tol * max(abs(ok), abs(fail))):
            converged = True
            break
        mid = (ok + fail) / 2
        if integer:
            mid = math.floor(mid)
        p = probe(mid)
        if p.met:
            ok = p.value
        else:
            fail = p.value
    res = SeekResult(path, target, probes, ok, (fail, ok), out, seeds, root, converged)
    (out / "seek.json").write_text(json.dumps({
        "scenario": str(Path(scenario_path).resolve()), "path": path, "target": str(target),
        "set": overrides, "root_seed": root, "replicate_seeds": rep_seeds, "rel_tol": rel_tol,
        "probes": [{"value": p.value, target.metric: p.metric, "replicates": p.replicates, "met": p.met}
                   for p in probes],
        "answer": ok, "bracket": {"fails": fail, "meets": ok}, "converged": converged,
    }, indent=2) + "\n")
    return res
