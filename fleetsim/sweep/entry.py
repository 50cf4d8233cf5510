"""The sweep package's entry points (`fleetsim sweep`, and notebooks): `sweep`, `seek` and `decide`.

They live here, above `fleetsim.api` (a sweep runs whole scenarios through it), so `api` never
imports `sweep`: imports only go downward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fleetsim.scenario.model import Scenario
from fleetsim.sweep.runner import run_sweep
from fleetsim.sweep.seek import parse_target
from fleetsim.sweep.seek import seek as run_seek


def sweep(
    scenario: str | Path,
    *,
    params: dict[str, list[Any]] | None = None,
    ranges: dict[str, str] | None = None,
    sample: int | None = None,
    seeds: int | None = None,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    sweep_file: str | Path | None = None,
    out_dir: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    metric: str | None = None,
    heatmap: Sequence[str] | None = None,
    quiet: bool = True,
    retry_failed: bool = False,
    log: Callable[[str], None] | None = None,
    independent: bool | None = None,
    baseline: int | None = None,
):
    """Sweep a scenario file over `--set` paths (`fleetsim sweep`); returns a SweepResult.

        sweep("scenarios/serving_quickstart.yaml", params={"serving.pools.h20.replicas": [2, 4]},
                  ranges={"serving.workloads.chat.arrival.rate_per_s": "3:6:3"}, seeds=3)

    """
    from fleetsim.sweep import spec as sp

    base = sp.load_sweep_file(sweep_file) if sweep_file is not None else sp.SweepSpec()
    rng = {p: sp._range_from_text(v, f"range '{p}'") if isinstance(v, str) else v
           for p, v in (ranges or {}).items()}
    spec = sp.merge(base, dict(params or {}), rng, sample=sample, seeds=seeds, seed=seed,
                    base_overrides=list(overrides), metric=metric,
                    heatmap=list(heatmap) if heatmap else None,
                    paired=None if independent is None else not independent, baseline=baseline)
    if out_dir is None:  # a fixed folder per sweep file or scenario, so a rerun resumes there
        stem = Path(sweep_file).stem if sweep_file is not None else Path(scenario).stem
        out_dir = Path("outputs") / "sweeps" / stem
    return run_sweep(scenario, spec, out_dir, workers=workers, scheduler=scheduler,
                     dask_local=dask_local, quiet=quiet, retry_failed=retry_failed, log=log)


def seek(
    scenario: str | Path,
    path: str,
    target: str,
    *,
    bracket: tuple[float, float] | None = None,
    seeds: int = 1,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    rel_tol: float = 0.01,
    max_probes: int = 30,
    log: Callable[[str], None] | None = None,
):
    """Goal seek (`fleetsim sweep SCENARIO --seek PATH --target 'METRIC<=X'`): the boundary value of
    PATH for the target, by bisection on common random numbers; returns a SeekResult.

        seek("scenarios/fleet_small.yaml", "fleet.budget.total_usd", "unmet_demand_share<=0.01")
    """

    if out_dir is None:
        out_dir = Path("outputs") / "sweeps" / f"{Path(scenario).stem}-seek"
    return run_seek(scenario, path, parse_target(target), out_dir, bracket=bracket, seeds=seeds, seed=seed,
                    overrides=list(overrides), rel_tol=rel_tol, max_probes=max_probes, log=log)


def decide(scenario: Scenario, chip: str, versus: str, reference: str | None, perfs: Sequence[float],
           prices: Sequence[float], out_dir: str | Path | None = None,
           progress: Callable[[str], None] | None = None, **fleet: Any) -> dict[str, Any]:
    """Break-even frontier of `chip` against `versus` (fleetsim.sweep.decide), capacity cached
    (`fleetsim decide`); `futures=F` (and bans, crashes, tornado, workers, scheduler, dask_local,
    log) adds the fleet-level frontier (fleetsim.sweep.frontier)."""
    from fleetsim.results.cache import ResultCache
    from fleetsim.sweep.decide import decide as run_decide

    return run_decide(scenario, chip, versus, reference, list(perfs), list(prices),
                      out_dir=Path(out_dir) if out_dir is not None else None, cache=ResultCache(),
                      progress=progress, **fleet)


def criteria(scenario: Scenario, chip: str, versus: str, ban_probs: Sequence[float], *, futures: int = 8,
             ban_days: float = 240.0, steps: int = 4, out_dir: str | Path | None = None,
             progress: Callable[[str], None] | None = None,
             log: Callable[[str], None] | None = None, unmet_usd_per_mtok: float = 10.0) -> dict[str, Any]:
    """The story's decision criteria with their thresholds (fleetsim.sweep.criteria,
    `fleetsim criteria`); with `out_dir`, criteria.csv (the decision table) and ban.parquet."""
    from fleetsim.results.cache import ResultCache
    from fleetsim.sweep.criteria import criteria as run_criteria
    from fleetsim.sweep.criteria import criteria_table

    out = run_criteria(scenario, chip, versus, list(ban_probs), futures=futures, ban_days=ban_days,
                       steps=steps, cache=ResultCache(), progress=progress, log=log,
                       unmet_usd_per_mtok=unmet_usd_per_mtok)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        criteria_table(out).to_csv(out_dir / "criteria.csv", index=False)
        out["ban"]["table"].to_parquet(out_dir / "ban.parquet", index=False)
        for axis in ("crash", "heat"):
            if f"{axis}_fleet" in out:
                out[f"{axis}_fleet"]["table"].to_parquet(out_dir / f"{axis}.parquet", index=False)
                out[f"{axis}_price"]["table"].to_parquet(out_dir / f"{axis}_price.parquet", index=False)
    return out
