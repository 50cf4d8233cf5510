"""Goodput search cost and seed-to-seed agreement on the serving quickstart (issue 8).

For every (pool, class) of the scenario: the capacity function's wall time at the default
precision (no cache), and across ten root seeds whether the estimates agree within their 95%
intervals. Figures are wall-clock on a shared machine: noisy.

    python benchmarks/bench_goodput.py [scenarios/quickstart.yaml] [seeds=10]
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import itertools
import sys
import time

import fleetsim
from fleetsim.serving import capacity as cap


def main(path: str, n_seeds: int) -> None:
    base = fleetsim.load_scenario(path)
    results: dict[tuple[str, str], list] = {}
    for seed in range(n_seeds):
        coarse = ["serving.goodput.precision=0.3", "serving.goodput.duration_s=30", "serving.goodput.warmup_s=5",
                  "serving.goodput.requests_per_window=100", "serving.goodput.min_windows=3",
                  "serving.goodput.max_windows=5", "serving.goodput.cell_replicas=1"]
        scen = base.with_overrides([f"seed={seed}", *pick([], coarse)])
        for pool, pcfg in scen.serving.pools.items():
            for wname, wl in scen.serving.workloads.items():
                if wl.model != pcfg.model:
                    continue
                t0 = time.perf_counter()
                c = cap.capacity(scen, pool, wname)  # no disk cache; each seed is a new key
                wall = time.perf_counter() - t0
                results.setdefault((pool, wname), []).append((seed, c, wall))
                print(f"seed {seed} {pool}/{wname}: {cap.format_interval(c.goodput_rps, *c.goodput_ci95_rps)}"
                      f" req/s/replica, {c.windows} windows, {wall:.1f} s", flush=True)
    print()
    for (pool, wname), rows in results.items():
        walls = sorted(w for _, _, w in rows)
        ests = [c.goodput_rps for _, c, _ in rows]
        mean = sum(ests) / len(ests)
        if not mean > 0:  # e.g. SLO unreachable even on an idle replica: nothing searched
            print(f"{pool}/{wname}: goodput 0 ({rows[0][1].note}); wall time max {walls[-1]:.1f} s")
            continue
        cover_mean = sum(c.goodput_ci95_rps[0] <= mean <= c.goodput_ci95_rps[1] for _, c, _ in rows)
        pairs = list(itertools.combinations(rows, 2))
        overlap = sum(max(a.goodput_ci95_rps[0], b.goodput_ci95_rps[0])
                      <= min(a.goodput_ci95_rps[1], b.goodput_ci95_rps[1]) for (_, a, _), (_, b, _) in pairs)
        common = max(c.goodput_ci95_rps[0] for _, c, _ in rows) <= min(c.goodput_ci95_rps[1] for _, c, _ in rows)
        print(f"{pool}/{wname}: estimates {min(ests):.4f}..{max(ests):.4f} (spread "
              f"{(max(ests) - min(ests)) / mean:.1%} of the mean), median half-width "
              f"{sorted(0.5 * (c.goodput_ci95_rps[1] - c.goodput_ci95_rps[0]) / c.goodput_rps for _, c, _ in rows)[len(rows) // 2]:.1%}; "
              f"{cover_mean}/{len(rows)} intervals cover the mean of all, {overlap}/{len(pairs)} pairs overlap, "
              f"one point in all intervals: {common}; wall time median {walls[len(walls) // 2]:.1f} s, "
              f"max {walls[-1]:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scenarios/quickstart.yaml",
         int(sys.argv[2]) if len(sys.argv) > 2 else pick(10, 2))
