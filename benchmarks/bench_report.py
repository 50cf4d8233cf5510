"""Warm reference fleet run as a whole process, with plots and report and with --no-plots, and
`fleetsim plot` + `fleetsim report` alone: wall and CPU seconds, interleaved.

    python benchmarks/bench_report.py [--repeat 3] [--python OTHER/.venv/bin/python ...]
    python benchmarks/bench_report.py --smoke   # fleet_small.yaml for one year, one round

Each --python interpreter (default: this one) is timed in turn, round by round, so two checkouts
(e.g. main and a branch) are compared back to back on the same loaded machine. The capacity cache
is warmed once first (the default cache directory), as a planner's second run would find it.
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
SCENARIO = ROOT / "scenarios" / pick("alibaba_2025.yaml", "fleet_small.yaml")
SETS = pick([], ["--set", "fleet.years=1", "--set", "fleet.replications=1"])


def timed(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "CI": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=pick(3, 1))
    ap.add_argument("--python", action="append", default=None)
    a = ap.parse_args()
    pythons = a.python or [sys.executable]
    res: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for py in pythons:  # warm the capacity cache and imports
            subprocess.run([py, "-m", "fleetsim.cli", "run", str(SCENARIO), *SETS, "-o", f"{tmp}/warm", "-q",
                            "--overwrite", "--no-plots"], check=True, stdout=subprocess.DEVNULL)
        for r in range(a.repeat):
            for i, py in enumerate(pythons):
                run = f"{tmp}/run{i}"
                cli = [py, "-m", "fleetsim.cli"]
                res.setdefault((py, "run, plots + report"), []).append(
                    timed(cli + ["run", str(SCENARIO), *SETS, "-o", run, "-q", "--overwrite"]))
                res.setdefault((py, "run --no-plots"), []).append(
                    timed(cli + ["run", str(SCENARIO), *SETS, "-o", run + "n", "-q", "--overwrite", "--no-plots"]))
                res.setdefault((py, "plot + report only"), []).append(
                    tuple(map(sum, zip(timed(cli + ["plot", run]), timed(cli + ["report", run])))))
    for (py, what), v in res.items():
        walls = sorted(w for w, _ in v)
        cpus = sorted(c for _, c in v)
        print(f"{py:45s} {what:22s} wall median {walls[len(walls) // 2]:5.2f} s (min {walls[0]:.2f}), "
              f"CPU median {cpus[len(cpus) // 2]:5.2f} s")


if __name__ == "__main__":
    main()
