"""Pin the continuous-batching goodput that tests/test_goodput_coverage.py checks coverage of.

Pooled SLO attainment (sum met / sum judged) of many independent windows per rate, without any
fitted model; the crossing of the SLO percentile between two rates gives the pinned answer.

    python benchmarks/pin_goodput.py 2.30,2.38,2.46,2.54 400     # about 10 minutes on one core
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_goodput_coverage import CHIPS, MODELS, cb_case  # noqa: E402

from fleetsim.serving.goodput import _cell  # noqa: E402
from fleetsim.serving.metrics import latencies, slo_met  # noqa: E402
from fleetsim.serving.window import build_kernels, compile_workloads, run_window  # noqa: E402


def main(rates: list[float], windows: int) -> None:
    cfg, gcfg, _ = cb_case()
    cell = _cell(cfg.pools["p"], cfg.workloads["w"], gcfg, "w", "p", "jsq")
    kernels, workloads = build_kernels(cell, CHIPS, MODELS), compile_workloads(cell, Path("."))
    base = workloads["w"].mean_rate_per_s
    t0 = time.perf_counter()
    for rate in rates:
        met_total = judged_total = 0
        per_window = []
        for j in range(100_000, 100_000 + windows):
            res = run_window(cell, CHIPS, MODELS, 777, rate_scale=rate * gcfg.cell_replicas / base,
                             window=j, kernels=kernels, workloads=workloads)
            met, judged = slo_met(res, latencies(res))
            m = res.requests.arrival_s >= cell.warmup_s
            k, n = int((met & m).sum()), int((judged & m).sum())
            met_total += k
            judged_total += n
            per_window.append(k / n)
        a = np.array(per_window)
        print(f"rate {rate:.3f} req/s/replica: pooled attainment {met_total / judged_total:.5f} "
              f"(window mean {a.mean():.5f} +- {a.std(ddof=1) / np.sqrt(len(a)):.5f} s.e.), "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    if SMOKE and len(sys.argv) < 3:
        sys.argv[1:] = ["2.38", "2"]
    main([float(r) for r in sys.argv[1].split(",")], int(sys.argv[2]))
