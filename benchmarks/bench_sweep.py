"""Sweep throughput: points per minute on the process pool with 1 and 2 workers, and on a Dask
LocalCluster (2 worker processes), for a small serving scenario and a small fleet scenario.

    python benchmarks/bench_sweep.py            # both scenarios
    python benchmarks/bench_sweep.py --serving  # serving only (about a minute)

"CPU s" per run staying flat while "wall s" per run grows at 2 workers means the runs did not
slow each other down: the cores were time-shared with other work on the machine.
"Workers busy" is the share of the batch's wall time the workers spent inside runs: the
runner's own dispatch overhead, whatever else loads the machine.

Each executor is started and warmed (one trivial task per worker) before the clock starts, so
the figure is runs per minute in steady state; start-up time is printed beside it. Scaling
efficiency = rate(2 workers) / (2 x rate(1 worker)). Load average is printed before and after:
on a shared machine the figures are noisy and say so.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import argparse
import os
import time
from pathlib import Path

from fleetsim.sweep.executors import DaskExecutor, ProcessPool
from fleetsim.sweep.runner import resolve_points, run_point
from fleetsim.sweep.spec import SweepSpec

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "serving": (ROOT / "scenarios" / "serving_quickstart.yaml", SweepSpec(
        params={"serving.pools.h20.replicas": [2, 4, 6], "serving.workloads.chat.arrival.rate_per_s": [3.0, 5.0, 7.0, 9.0]},
        seeds=2, base_overrides=["serving.duration_s=600", "serving.warmup_s=60"])),
    "fleet": (ROOT / "scenarios" / "fleet_small.yaml", SweepSpec(
        params={"fleet.demand.chat.growth_per_year": [0.5, 1.0, 1.5], "fleet.planner.headroom": [0.0, 0.1, 0.2, 0.3]},
        seeds=1, base_overrides=["fleet.years=1"])),
}


def warm(executor) -> None:
    """Workers up, fleetsim imported, before the clock starts."""
    list(executor.map_unordered(_warm, range(executor.workers * 2)))


def _warm(x: int) -> int:
    import fleetsim.api
    import fleetsim.sweep.metrics  # noqa: F401

    time.sleep(0.2)  # long enough that every worker gets one
    return x


def timed(executor, tasks) -> tuple[float, float]:
    """(wall s of the batch, mean wall s and CPU s of one run inside its worker)."""
    t0 = time.perf_counter()
    rows = list(executor.map_unordered(run_point, tasks))
    wall = time.perf_counter() - t0
    bad = [r["error"] for r in rows if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"failed runs: {bad[:3]}")
    return wall, sum(r["wall_s"] for r in rows) / len(rows), sum(r["cpu_s"] for r in rows) / len(rows)


def bench(case: str) -> None:
    path, spec = CASES[case]
    _, points, tasks = resolve_points(path, spec)
    tasks = [{k: t[k] for k in ("key", "seed", "scenario")} for t in tasks]
    print(f"\n{case}: {path.name}, {len(points)} points x {spec.seeds} seeds = {len(tasks)} runs "
          f"(load average before: {os.getloadavg()[0]:.1f})")
    rates = {}
    makers = (("pool, 1 worker", lambda: ProcessPool(1)), ("pool, 2 workers", lambda: ProcessPool(2)),
              ("dask LocalCluster, 2 workers", lambda: DaskExecutor(local_workers=2)))
    for label, make in pick(makers, makers[:1]):
        t0 = time.perf_counter()
        ex = make()
        warm(ex)
        start = time.perf_counter() - t0
        try:
            wall, per_run, cpu = timed(ex, tasks)
        finally:
            ex.close()
        rates[label] = len(tasks) / wall * 60
        busy = per_run * len(tasks) / (ex.workers * wall)
        print(f"  {label:30s} {rates[label]:7.1f} runs/min  ({wall:6.1f} s for {len(tasks)} runs; "
              f"one run {per_run:.2f} s wall, {cpu:.2f} s CPU in its worker; workers busy {busy:.0%}; start-up {start:4.1f} s)")
    if SMOKE:
        return
    eff = rates["pool, 2 workers"] / (2 * rates["pool, 1 worker"])
    dask_over = rates["pool, 2 workers"] / rates["dask LocalCluster, 2 workers"] - 1
    print(f"  scaling efficiency, 2 workers vs 1: {eff:.0%} (target >= 85%; a run slower in its worker "
          "at 2 workers than at 1 means the cores were busy with other work)")
    print(f"  Dask LocalCluster overhead vs process pool (2 workers): {dask_over:+.0%} wall time per run")
    print(f"  load average after: {os.getloadavg()[0]:.1f} (2 cores shared; figures are noisy)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serving", action="store_true", help="serving scenario only")
    ap.add_argument("--fleet", action="store_true", help="fleet scenario only")
    args = ap.parse_args()
    if SMOKE:  # two points of each case, pool of one worker
        for case, (path, spec) in CASES.items():
            spec.params = {p: v[:2] for p, v in list(spec.params.items())[:1]}
            spec.seeds = 1
            spec.base_overrides = [o for o in spec.base_overrides if "duration" not in o] + (
                ["serving.duration_s=20", "serving.warmup_s=5"] if case == "serving" else [])
    for case in [c for c in CASES if not (args.serving or args.fleet) or getattr(args, c)]:
        bench(case)
