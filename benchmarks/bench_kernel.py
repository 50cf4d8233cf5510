"""Latency-kernel speed: rows/s of iteration_time_s at several array sizes, microseconds per
call at size 1, step_time_s and decode_run. Prints figures; asserts nothing.

    python benchmarks/bench_kernel.py
Targets (issue 3, one core): >= 10M rows/s at 1M rows; <= 30 us per call at size 1.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import time

import numpy as np

from fleetsim.catalog import load_chips, load_models
from fleetsim.kernel import ReplicaKernel


def best_of(fn, reps: int, rounds: int = 5) -> float:
    """Best mean seconds per call over `rounds` rounds of `reps` calls (least noisy)."""
    reps, rounds = pick((reps, rounds), (max(1, reps // 1000), 1))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main() -> None:
    chips, models = load_chips(), load_models()
    rng = np.random.default_rng(0)
    cases = [
        ("h100 qwen2.5-72b tp4 bf16", ReplicaKernel(chips["h100"], models["qwen2.5-72b"], 4)),
        ("h20 qwen3-235b tp8 fp8 (MoE)", ReplicaKernel(chips["h20"], models["qwen3-235b-a22b"], 8, "fp8")),
    ]
    for label, k in cases:
        print(f"== {label}")
        print(f"{'rows':>10} {'us/call':>12} {'Mrows/s':>10}")
        for n in pick((1, 64, 4096, 1_000_000), (1, 4096)):
            p = rng.integers(0, 2048, n).astype(float)
            d = rng.integers(0, 256, n).astype(float)
            c = d * rng.uniform(100, 4000, n)
            reps = max(1, 200_000 // n) if n < 1_000_000 else 3
            s = best_of(lambda: k.iteration_time_s(p, d, c), reps)
            print(f"{n:>10,} {s * 1e6:>12.2f} {n / s / 1e6:>10.2f}")
        s = best_of(lambda: k.iteration_time_s(512.0, 32.0, 32_000.0), 20_000)
        print(f"iteration_time_s, scalar arguments: {s * 1e6:.2f} us/call")
        s = best_of(lambda: k.step_time_s(512.0, 32.0, 32_000.0), 100_000)
        print(f"step_time_s: {s * 1e6:.2f} us/call")
        s = best_of(lambda: k.decode_run(48, 48 * 1500.0), 50_000)
        print(f"decode_run construction: {s * 1e6:.2f} us/call")
        run = k.decode_run(48, 48 * 1500.0)
        s = best_of(lambda: run.time_for_steps(10_000), 100_000)
        print(f"DecodeRun.time_for_steps: {s * 1e6:.2f} us/call")
        t = run.time_for_steps(777)
        s = best_of(lambda: run.steps_within(t), 50_000)
        print(f"DecodeRun.steps_within: {s * 1e6:.2f} us/call")


if __name__ == "__main__":
    main()
