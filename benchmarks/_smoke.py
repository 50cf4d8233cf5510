"""Smoke mode for the benchmarks: `--smoke` (or FLEETSIM_BENCH_SMOKE=1) runs each script on the
smallest case it has, in seconds, so tests/test_benchmarks.py can run every script in CI and none
can rot. The figures a smoke run prints measure nothing; run without it for those.

Imported first by each script (the script's folder is on sys.path): it takes `--smoke` out of
sys.argv, so the script's own argument parsing never sees it.
"""

from __future__ import annotations

import os
import sys

SMOKE = "--smoke" in sys.argv or os.environ.get("FLEETSIM_BENCH_SMOKE") == "1"
while "--smoke" in sys.argv:
    sys.argv.remove("--smoke")
if SMOKE:
    print("(smoke mode: smallest cases, figures measure nothing)", flush=True)


def pick(full, smoke):
    """`full` normally, `smoke` in smoke mode."""
    return smoke if SMOKE else full
