"""Replicated futures: what R futures cost, and how the cost grows with R.

    python benchmarks/bench_futures.py [--skip-reference | --only-reference] [--rs 1,2,4,8,16]
                                       [--ref-rs 1,8,32] [--smoke]

Prints, each a fresh `fleetsim run` process:
- the quickstart at its default fleet.replications, cold (empty capacity cache) and warm, with
  plots and report like the README's command (goals: 15 s cold, 8 s warm);
- the quickstart's wall and CPU seconds against R (warm, no plots), then how time grows with R:
  the least-squares line cpu = fixed + per-future x R and each point's distance from it;
- the reference case (scenarios/alibaba_2025.yaml), warm, in one process at each of --ref-rs
  (the same line), then 32 futures with plots on the automatic process pool (goal: 60 s).
`--smoke`: a half-year quickstart at R = 1 and 2 only (tests/test_benchmarks.py runs it).
Figures on a shared machine are noisy (other jobs load the CPU): CPU seconds are the steadier.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run(scenario: str, cache: Path, sets: list[str] = (), plots: bool = True,
        env_extra: dict | None = None) -> tuple[float, float]:
    """(wall s, cpu s over the process and its workers) of one `fleetsim run` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FLEETSIM_CACHE_DIR": str(cache), "CI": "1", **(env_extra or {})}
        cmd = [sys.executable, "-m", "fleetsim.cli", "run", str(ROOT / "scenarios" / scenario), "-o",
               str(Path(tmp) / "run"), "-q", *[a for s in sets for a in ("--set", s)]]
        if not plots:
            cmd.append("--no-plots")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def growth(label: str, rows: list[tuple[int, float, float]]) -> None:
    """How CPU time grows with R: the least-squares line and each point's distance from it."""
    if len(rows) < 2:
        return
    R = np.array([r for r, _, _ in rows], dtype=float)
    cpu = np.array([c for _, _, c in rows])
    per, fixed = np.polyfit(R, cpu, 1)
    print(f"{label}: cpu ~ {fixed:.1f} s + {per:.2f} s x R (least squares over R = "
          f"{', '.join(str(int(r)) for r in R)})")
    for r, c in zip(R, cpu):
        fit = fixed + per * r
        print(f"  R={int(r):3d}: cpu {c:6.1f} s, line {fit:6.1f} s ({(c - fit) / fit:+.0%}), "
              f"{c / r:.2f} s a future")


def main() -> None:
    from fleetsim.scenario.fleet import DEFAULT_REPLICATIONS

    ap = argparse.ArgumentParser()
    ap.add_argument("--rs", default=pick("1,2,4,8,16", "1,2"))
    ap.add_argument("--ref-rs", default="1,8,32")
    ap.add_argument("--skip-reference", action="store_true", default=SMOKE)
    ap.add_argument("--only-reference", action="store_true")
    args = ap.parse_args()
    short = ["fleet.years=0.5"] if SMOKE else []
    one = {"FLEETSIM_FUTURE_WORKERS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        if not args.only_reference:
            if SMOKE:
                run("quickstart.yaml", cache, ["fleet.replications=1", *short], plots=False)  # warm the cache
            else:
                w, c = run("quickstart.yaml", cache)
                print(f"quickstart, default R={DEFAULT_REPLICATIONS}, cold cache: wall {w:.1f} s, cpu {c:.1f} s (goal 15 s)")
                w, c = run("quickstart.yaml", cache)
                print(f"quickstart, default R={DEFAULT_REPLICATIONS}, warm cache: wall {w:.1f} s, cpu {c:.1f} s (goal 8 s)")
            rows = []
            for R in [int(x) for x in args.rs.split(",") if x]:
                w, c = run("quickstart.yaml", cache, [f"fleet.replications={R}", *short], plots=False,
                           env_extra=one)
                rows.append((R, w, c))
                print(f"quickstart{' (half a year)' if SMOKE else ''}, R={R:3d}, warm, no plots, one "
                      f"process: wall {w:6.1f} s, cpu {c:6.1f} s")
            growth("quickstart", rows)
        if not args.skip_reference:
            run("alibaba_2025.yaml", cache, ["fleet.replications=1"], plots=False)  # warm the cache
            rows = []
            for R in [int(x) for x in args.ref_rs.split(",") if x]:
                w, c = run("alibaba_2025.yaml", cache, [f"fleet.replications={R}"], plots=False, env_extra=one)
                rows.append((R, w, c))
                print(f"alibaba_2025, R={R:3d}, warm, no plots, one process: wall {w:6.1f} s, cpu {c:6.1f} s")
            growth("alibaba_2025", rows)
            w, c = run("alibaba_2025.yaml", cache, ["fleet.replications=32"])
            print(f"alibaba_2025, R=32, warm cache, plots and report, automatic pool: wall {w:.1f} s, "
                  f"cpu {c:.1f} s over all processes (goal 60 s wall; fleetsim/fleet/futures.py)")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
