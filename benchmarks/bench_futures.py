"""Replicated futures: what R futures cost.

    python benchmarks/bench_futures.py [--skip-reference | --only-reference] [--rs 1,2,4,8,16]

Prints, each a fresh `fleetsim run` process (plots and report included, like the README's command):
- the quickstart at its default fleet.replications, cold (empty capacity cache) and warm;
- the quickstart's wall and CPU seconds against R (warm), and the seconds per extra future;
- the reference case (scenarios/alibaba_2025.yaml) with 32 futures, warm (goal: 60 s), on the
  automatic process pool and in one process.
Figures on a shared machine are noisy (other jobs load the CPU): CPU seconds are the steadier.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(scenario: str, cache: Path, sets: list[str] = (), plots: bool = True) -> tuple[float, float]:
    """(wall s, cpu s) of one `fleetsim run` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FLEETSIM_CACHE_DIR": str(cache), "CI": "1"}
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


def main() -> None:
    from fleetsim.scenario.fleet import DEFAULT_REPLICATIONS

    ap = argparse.ArgumentParser()
    ap.add_argument("--rs", default="1,2,4,8,16")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--only-reference", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        if args.only_reference:
            args.rs = ""
        w, c = run("quickstart.yaml", cache) if not args.only_reference else (0.0, 0.0)
        if not args.only_reference:
            print(f"quickstart, default R={DEFAULT_REPLICATIONS}, cold cache: wall {w:.1f} s, cpu {c:.1f} s (goal 15 s)")
            w, c = run("quickstart.yaml", cache)
            print(f"quickstart, default R={DEFAULT_REPLICATIONS}, warm cache: wall {w:.1f} s, cpu {c:.1f} s (goal 8 s)")
        rows = []
        for R in [int(x) for x in args.rs.split(",") if x]:
            w, c = run("quickstart.yaml", cache, [f"fleet.replications={R}"], plots=False)
            rows.append((R, w, c))
            print(f"quickstart, R={R:3d}, warm, no plots: wall {w:6.1f} s, cpu {c:6.1f} s")
        if len(rows) >= 2:
            (r0, _, c0), (r1, _, c1) = rows[0], rows[-1]
            print(f"quickstart: {(c1 - c0) / (r1 - r0):.2f} cpu s per extra future")
        if not args.skip_reference:
            run("alibaba_2025.yaml", cache, ["fleet.replications=1"], plots=False)  # warm the cache
            w, c = run("alibaba_2025.yaml", cache, ["fleet.replications=32"])
            print(f"alibaba_2025, R=32, warm cache: wall {w:.1f} s, cpu {c:.1f} s over all processes "
                  f"(goal 60 s; futures on a pool when long: fleetsim/fleet/futures.py)")
            os.environ["FLEETSIM_FUTURE_WORKERS"] = "1"
            w, c = run("alibaba_2025.yaml", cache, ["fleet.replications=32"])
            print(f"alibaba_2025, R=32, warm cache, one process: wall {w:.1f} s, cpu {c:.1f} s")
            del os.environ["FLEETSIM_FUTURE_WORKERS"]
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
