"""Cold-cache time of the README's first command (`fleetsim run scenarios/quickstart.yaml`),
plots and report included: wall and CPU seconds of a fresh process with an empty goodput cache.

    python benchmarks/bench_quickstart.py [--repeat 3]

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

ROOT = Path(__file__).resolve().parents[1]


def once() -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FLEETSIM_CACHE_DIR": str(Path(tmp) / "cache"), "CI": "1"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        scenario = pick("quickstart.yaml", "fleet_small.yaml")  # smoke: given capacity, no searches
        subprocess.run([sys.executable, "-m", "fleetsim.cli", "run", str(ROOT / "scenarios" / scenario),
                        "-o", str(Path(tmp) / "run"), "-q", *pick([], ["--set", "fleet.years=1", "--no-plots"])],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert (Path(tmp) / "run" / pick("report.html", "summary.json")).is_file()
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=pick(3, 1))
    n = ap.parse_args().repeat
    runs = [once() for _ in range(n)]
    for i, (w, c) in enumerate(runs, 1):
        print(f"run {i}: wall {w:.1f} s, cpu {c:.1f} s (cold cache, plots and report)")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
