"""Routing cost at scale: requests simulated per wall second for every router at 256 and 2,048
replicas (issue 8: jsq, least_tokens and central within 2x of power_of_two), and SimPy events
per request with chunked prefill (512-token budget, 4k-token prompts). Wall-clock figures on a
shared machine: noisy.

    python benchmarks/bench_routers.py [requests=40000]
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import sys
import time

from fleetsim.catalog import load_chips, load_models
from fleetsim.scenario.serving import ServingConfig
from fleetsim.serving.window import run_window

CHIPS, MODELS = load_chips(), load_models()
ROUTERS = ["power_of_two", "round_robin", "jsq", "least_tokens", "central"]


def config(replicas: int, rate: float, duration: float, router: str, prompt: dict, budget: int,
           chunked: bool) -> ServingConfig:
    return ServingConfig.model_validate({
        "duration_s": duration, "warmup_s": 0.0,
        "workloads": {"w": {"model": "llama-3.1-8b", "arrival": {"kind": "poisson", "rate_per_s": rate},
                            "prompt_tokens": prompt,
                            "output_tokens": {"kind": "lognormal", "median": 200, "sigma": 0.8, "max": 2048}}},
        "pools": {"p": {"chip": "h100", "model": "llama-3.1-8b", "replicas": replicas,
                        "batching": {"max_batch": 64, "max_tokens_per_iter": budget,
                                     "chunked_prefill": chunked}}},
        "router": {"kind": router},
    })


def main(requests: int) -> None:
    chat = {"kind": "lognormal", "median": 600, "sigma": 0.8, "max": 8192}
    for replicas in pick((256, 2048), (16,)):
        rate = 4.0 * replicas  # about 40% of an H100's chat capacity per replica
        duration = requests / rate
        for router in pick(ROUTERS, ROUTERS[:2]):
            cfg = config(replicas, rate, duration, router, chat, 8192, True)
            t0 = time.perf_counter()
            res = run_window(cfg, CHIPS, MODELS, seed=1)
            wall = time.perf_counter() - t0
            print(f"{replicas:5d} replicas  {router:13s} {len(res.requests) / wall:9.0f} req/s wall "
                  f"({len(res.requests)} requests, {wall:.1f} s)", flush=True)
    long_prompts = {"kind": "fixed", "value": 4096}
    cfg = config(8, 4.0, pick(600.0, 20.0), "jsq", long_prompts, 512, True)
    res = run_window(cfg, CHIPS, MODELS, seed=1)
    print(f"chunked prefill, 512-token budget, 4k prompts: {res.sim_events / len(res.requests):.2f} "
          f"SimPy events per request ({len(res.requests)} requests)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else pick(40_000, 500))
