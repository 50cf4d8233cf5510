"""`fleetsim decide` at decision scale: the reference case's fleet-level break-even frontier.

    python benchmarks/bench_decide.py [--perf 10] [--price 10] [--futures 8] [--workers N]
                                      [--warm] [--profile]

Runs the fleet-level frontier of the T-Head PPU against the H20 on scenarios/alibaba_2025.yaml
(perf 0.2-0.6 of an H100 x price 0.2-2.0 of its price, F futures a point, the scenario's own
regime, catalog crash rate) on the local process pool, from a cold capacity cache (a fresh
FLEETSIM_CACHE_DIR) unless --warm. Goal (issue 24): the 10 x 10 grid with 8 futures at most 10
minutes on the 2-core machine.

Prints wall and CPU seconds (this process plus its workers) of the two phases (capacity
searches: one task per replica type; points: one task per point, its futures in one process),
CPU seconds per future, an extrapolation of a smaller grid to 10 x 10 x 8 and the frontier itself
(where the PPU enters). --profile runs one point's futures under cProfile in this process
(after the grid, capacity warm) and prints where a future's time goes by module.
On a shared machine wall time depends on the load: CPU seconds are the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _smoke import SMOKE, pick

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def smoke_scenario():
    """A one-year two-chip fleet with capacities given by hand (no capacity search): seconds."""
    from fleetsim.scenario.model import Scenario

    return Scenario.model_validate({
        "name": "bench-decide-smoke", "seed": 0,
        "catalog": {"chips": {"x1": {"relative_to": {"chip": "h100", "perf_fraction": 0.5, "price_fraction": 0.5},
                                     "name": "half an H100", "vendor": "test", "year": 2025,
                                     "supply_channel": "test", "memory_type": "HBM3", "hbm_gb": 80,
                                     "interconnect_gbps": 450, "tdp_w": 700}}},
        "serving": {"duration_s": 60, "warmup_s": 10,
                    "workloads": {"chat": {"model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 1},
                                           "prompt_tokens": {"kind": "fixed", "value": 100},
                                           "output_tokens": {"kind": "fixed", "value": 100}}},
                    "pools": {"ref": {"chip": "h100", "model": "qwen2.5-7b", "tp": 1, "replicas": 1},
                              "new": {"chip": "x1", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}}},
        "fleet": {"start": "2025-01-01", "years": 1, "demand": {"chat": {"tokens_per_s": 1000.0}},
                  "channels": {"a": {"offers": [{"chip": "h100", "price_usd": 20000}]},
                               "b": {"offers": [{"chip": "x1"}]}},
                  "planner": {"kind": "cheapest"}, "budget": {"total_usd": 1e9},
                  "windows": {"enabled": False},
                  "capacity": {"ref": {"chat": {"goodput_rps": 4.0, "output_tokens_per_request": 100}},
                               "new": {"chat": {"goodput_rps": 2.0, "output_tokens_per_request": 100}}}}})


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def profile_point(scenario, grid, perf: float, price: float) -> None:
    """cProfile of one point's futures in this process: time by module."""
    import cProfile
    import pstats

    from fleetsim.sweep.frontier import point_overrides, run_frontier_point

    sc = scenario.with_overrides(point_overrides(scenario, grid, perf, price, None, 1.0))
    prof = cProfile.Profile()
    c0 = time.process_time()
    prof.enable()
    row = run_frontier_point({"key": "profile", "scenario": sc, "chip": grid.chip, "versus": grid.versus})
    prof.disable()
    cpu = time.process_time() - c0
    assert row["status"] == "ok", row["error"]
    st = pstats.Stats(prof)
    by_mod: dict[str, float] = {}
    for (file, _line, _fn), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
        p = file.replace("\\", "/")
        if "/fleetsim/" in p:
            key = "fleetsim/" + p.split("/fleetsim/", 1)[1]
        elif "site-packages/" in p:
            key = p.split("site-packages/", 1)[1].split("/", 1)[0]
        else:
            key = "python/builtins"
        by_mod[key] = by_mod.get(key, 0.0) + tt
    total = sum(by_mod.values())
    print(f"profile: one point, {grid.futures} futures, {cpu:.1f} s CPU ({cpu / grid.futures:.2f} s a future); "
          "own time by module:")
    for k, v in sorted(by_mod.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {k:<44} {v:6.2f} s  {v / total:5.1%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--perf", type=int, default=10)
    ap.add_argument("--price", type=int, default=10)
    ap.add_argument("--futures", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--warm", action="store_true", help="keep the user's capacity cache")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    import numpy as np

    from fleetsim import api
    from fleetsim.sweep.executors import SerialExecutor, default_workers
    from fleetsim.sweep.frontier import FrontierGrid, fleet_frontier

    n_perf, n_price, F = pick((args.perf, args.price, args.futures), (2, 2, 2))
    tmp = tempfile.TemporaryDirectory()
    if not args.warm or SMOKE:
        os.environ["FLEETSIM_CACHE_DIR"] = str(Path(tmp.name) / "cache")  # cold: workers inherit it
    if SMOKE:
        scenario, chip, versus, ref = smoke_scenario(), "x1", "h100", "h100"
    else:
        scenario = api.load_scenario(ROOT / "scenarios" / "alibaba_2025.yaml")
        chip, versus, ref = "t-head-ppu", "h20", "h100"
    grid = FrontierGrid(chip, versus, ref, [round(float(x), 4) for x in np.linspace(0.2, 0.6, n_perf)],
                        [round(float(x), 4) for x in np.linspace(0.2, 2.0, n_price)], futures=F)
    workers = args.workers or default_workers()
    print(f"decide frontier: {grid.chip} vs {grid.versus}, {n_perf} x {n_price} points x {F} futures "
          f"({n_perf * n_price * F} fleet futures + {F} without the chip), "
          f"{'warm' if args.warm and not SMOKE else 'cold'} capacity cache, "
          f"{'this process' if SMOKE else f'{workers} worker processes'}", flush=True)
    c0, k0, t0 = time.process_time(), children_cpu(), time.perf_counter()
    out = fleet_frontier(scenario, grid, Path(tmp.name) / "out",
                         executor=SerialExecutor() if SMOKE else None, workers=workers,
                         log=lambda m: print("  " + m, flush=True))
    wall = time.perf_counter() - t0
    cpu = (time.process_time() - c0) + (children_cpu() - k0)
    tm = out["times"]
    n_fut = (n_perf * n_price + 1) * F
    print(f"total: {wall:.1f} s wall, {cpu:.1f} s CPU (this process + workers); goal 600 s wall for 10 x 10 x 8")
    print(f"  capacity phase: {tm['capacity_wall_s']:.1f} s wall, {tm['capacity_cpu_s']:.1f} s CPU in workers")
    print(f"  points phase:   {tm['points_wall_s']:.1f} s wall, {tm['points_cpu_s']:.1f} s CPU in workers "
          f"({tm['points_cpu_s'] / n_fut:.2f} s CPU a future incl. its point's set-up)")
    rest = wall - tm["capacity_wall_s"] - tm["points_wall_s"]
    print(f"  the rest (planning and validating {n_perf * n_price + 1} scenarios, tables, plots): {rest:.1f} s wall")
    if (n_perf, n_price, F) != (10, 10, 8) and not SMOKE:
        # capacity: the 9 shared types once plus one chip type per perf value; points: per future
        per_fut = tm["points_cpu_s"] / n_fut
        chip_search = tm["capacity_cpu_s"] / (len(scenario.serving.pools) + n_perf - 1)
        cap_full = tm["capacity_cpu_s"] + (10 - n_perf) * chip_search
        pts_full = per_fut * 101 * 8
        print(f"  extrapolated to 10 x 10 x 8: capacity {cap_full:.0f} s CPU + points {pts_full:.0f} s CPU "
              f"= {cap_full + pts_full:.0f} s CPU, {(cap_full + pts_full) / workers + rest:.0f} s wall on "
              f"{workers} idle cores (plus the rest)")
    print(out["text"])
    if args.profile and not SMOKE:
        profile_point(scenario, grid, 0.4, 0.5)
    tmp.cleanup()


if __name__ == "__main__":
    main()
