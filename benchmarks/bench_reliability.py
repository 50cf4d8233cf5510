"""Reliability speed figures (and, with --stress, the cooling-stress table for the docs).

    python benchmarks/bench_reliability.py            # timings
    python benchmarks/bench_reliability.py --stress   # effective capacity vs cooling factor

Prints: cohort-run wall time by fleet size (the cost follows failures, not chips), PoolHealth
advance cost per call by pool size, and RepairShop crashes per second.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import argparse
import time

import numpy as np
import simpy

from fleetsim.catalog.reliability import chip_reliability
from fleetsim.reliability import PoolHealth, RepairShop, run_reliability
from fleetsim.scenario.reliability import HallConfig, ReliabilityConfig, RepairConfig


def _best(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_cohorts() -> None:
    print("cohort run: one H100 cohort at busy 0.9, 25 +/- 3 C hall (best of 3)")
    print(f"{'chips':>9} {'days':>5} {'wall_s':>8} {'crashes':>8} {'events':>8} {'us/event':>9}")
    for days in pick((54, 365), (10,)):
        for n in pick((5_000, 50_000, 500_000), (500,)):
            cfg = ReliabilityConfig.model_validate(
                {
                    "halls": {"default": {"ambient_c": 25, "daily_swing_c": 6}},
                    "cohort_run": {
                        "days": days,
                        "cohorts": [{"chip": "h100", "count": n, "utilisation": 0.9}],
                    },
                }
            )
            wall, res = _best(lambda cfg=cfg: run_reliability(cfg, {}, np.random.default_rng(1)), pick(3, 1))
            ev = len(res.events["time_s"])
            print(
                f"{n:>9} {days:>5} {wall:>8.3f} {res.summary['crashes']:>8} {ev:>8} {1e6 * wall / max(ev, 1):>9.1f}"
            )


def bench_pool_health() -> None:
    print("\nPoolHealth.advance (domestic chip, hot hall so the governor works), per call")
    p = chip_reliability("ascend-910b")
    hall = HallConfig(ambient_c=32, daily_swing_c=6, cooling_factor=1.3)
    for n in pick((16, 128, 1024), (16,)):
        ph = PoolHealth(p, hall, n, 8, np.random.default_rng(0), 12.0, initial_utilisation=0.8)
        u = np.random.default_rng(1).uniform(0.5, 1.0, n)
        steps = pick(2000, 20)
        t0 = time.perf_counter()
        for k in range(steps):
            ph.advance(15.0 * k, 15.0, u)
        per = (time.perf_counter() - t0) / steps
        print(
            f"  {n:>5} replicas: {1e6 * per:8.1f} us/call; a 900 s window at 15 s steps: {60 * per * 1e3:6.2f} ms"
        )


def bench_repair_shop() -> None:
    env = simpy.Environment()
    shop = RepairShop(env, RepairConfig(technicians=20), np.random.default_rng(0), n_chips=100_000)
    n = pick(20_000, 200)

    def crashes():
        for i in range(n):
            env.process(shop.repair(i, 8))
            yield env.timeout(30.0)

    env.process(crashes())
    t0 = time.perf_counter()
    env.run()
    wall = time.perf_counter() - t0
    print(
        f"\nRepairShop: {n} crashes in {wall:.3f} s ({n / wall:,.0f} crashes/s); outcomes {shop.counts}"
    )


def stress_table() -> None:
    """Effective capacity = availability x mean clock, by cooling factor (reliability-only)."""
    print("cooling stress: 4,096 chips at busy 0.8 for 90 days, hall 28 +/- 3 C, seed 1")
    print(
        f"{'chip':>12} {'cooling':>7} {'mean_T_C':>8} {'throttled':>9} {'clock':>6} {'crash/chip-yr':>13} "
        f"{'avail':>7} {'eff_cap':>7}"
    )
    for chip in pick(("h100", "ascend-910b"), ("h100",)):
        for cooling in pick((1.0, 1.2, 1.4, 1.6), (1.2,)):
            cfg = ReliabilityConfig.model_validate(
                {
                    "halls": {
                        "default": {"ambient_c": 28, "daily_swing_c": 6, "cooling_factor": cooling}
                    },
                    "cohort_run": {
                        "days": pick(90, 5),
                        "cohorts": [{"chip": chip, "count": pick(4096, 64), "utilisation": 0.8}],
                    },
                }
            )
            s = run_reliability(cfg, {}, np.random.default_rng(1)).summary
            c = next(iter(s["cohorts"].values()))
            eff = c["availability_mean"] * c["mean_clock"]
            print(
                f"{chip:>12} {cooling:>7.1f} {c['mean_temp_c']:>8.1f} {c['throttled_share']:>9.3f} "
                f"{c['mean_clock']:>6.3f} {c['crashes_per_chip_year']:>13.3f} {c['availability_mean']:>7.4f} {eff:>7.4f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stress", action="store_true", help="print the cooling-stress table instead")
    args = ap.parse_args()
    if args.stress or SMOKE:
        stress_table()
        if not SMOKE:
            return
    bench_cohorts()
    bench_pool_health()
    bench_repair_shop()


if __name__ == "__main__":
    main()
