"""Every benchmark script runs, in its smoke mode (`--smoke`: the smallest case, seconds), so a
renamed field or a moved function breaks CI instead of the next person who measures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
SCRIPTS = [s for s in ALL if "from _smoke import" in (ROOT / "benchmarks" / s).read_text()]
# Scripts that landed (other branches) after the smoke mode: to be given one (import _smoke and
# shrink their cases); listed so a new script without it is noticed.
NO_SMOKE_YET: set[str] = set()


def test_every_benchmark_has_a_smoke_mode_or_is_listed():
    assert len(SCRIPTS) >= 12 and {"bench_reliability.py", "bench_decide.py"} <= set(SCRIPTS)
    assert set(ALL) - set(SCRIPTS) <= NO_SMOKE_YET, set(ALL) - set(SCRIPTS) - NO_SMOKE_YET


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_smoke_mode(script):
    env = {**os.environ, "CI": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    if script == "bench_planner.py":
        # its full case (the reference scenario, 16 futures) runs futures on a process pool, its
        # smoke case would not: force the pool so a helper that cannot cross it fails here
        env["FLEETSIM_FUTURE_WORKERS"] = "2"
    r = subprocess.run([sys.executable, f"benchmarks/{script}", "--smoke"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{script} --smoke failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    assert "smoke mode" in r.stdout
    assert len(r.stdout.splitlines()) >= 2, r.stdout  # it printed figures, not just the banner
