"""Serving-layer speed: simulated requests per CPU second and events per request.

(a) M/M/3 through the ordinary path: three batch-1 replicas of qwen2.5-7b on H100, Poisson
    arrivals at load 0.8, prompt 1 token, geometric output (mean 500; service cs^2 = 1.001, see
    tests/test_queueing.py), router central (one FCFS queue: M/M/3) and jsq (per-replica queues). Beside it Ciw on the same queue: exponential service with
    the same mean, (i) one node with 3 servers (a central queue: M/M/3, Erlang C) and (ii) three
    1-server nodes behind Ciw's LoadBalancing router (join the node with fewest customers, in
    service included: what fleetsim's jsq pool is). Mean waits
    are printed with their exact values (Erlang C; the JSQ chain of tests/queueing_theory.py).
(b) 64 replicas, continuous batching (max_batch 128, 8192 tokens an iteration), Llama-3.1-70B on
    H100 tp=4 and on T-Head PPU tp=4, chat-like lengths (prompt lognormal median 1000 sigma 1.0
    max 8192, output lognormal median 250 sigma 0.8 max 2048), power-of-two router, at 80% of the
    pool's saturation throughput (found by a saturated 4-replica probe).

Times are CPU seconds of this process (time.process_time, for fleetsim and Ciw alike: the
machine is shared, so wall time measures the other users); each run is repeated `--repeats`
times, interleaved with Ciw's, and the fastest kept. The ratios at the end are fleetsim's
requests per CPU second over Ciw's customers per CPU second (case (b) against Ciw's M/M/3:
Ciw has no continuous batching to run case (b) itself). Events per request: SimPy's events
plus the arrivals the window merges into them (one each).

Run: python benchmarks/bench_serving.py [--profile] [--requests N]. One core; figures, not tests.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from queueing_theory import jsq_qbd, mmc_wq  # noqa: E402

from fleetsim.catalog import load_chips, load_models  # noqa: E402
from fleetsim.kernel import ReplicaKernel  # noqa: E402
from fleetsim.scenario.serving import ServingConfig  # noqa: E402
from fleetsim.serving.metrics import latencies  # noqa: E402
from fleetsim.serving.window import run_window  # noqa: E402

CHIPS, MODELS = load_chips(), load_models()


# ---- (a) M/M/3 ---------------------------------------------------------------------------------
def mm3_config(rate: float, duration: float, router: str = "jsq") -> ServingConfig:
    return ServingConfig.model_validate({
        "duration_s": duration, "warmup_s": 0.05 * duration,
        "workloads": {"w": {"model": "qwen2.5-7b",
                            "arrival": {"kind": "poisson", "rate_per_s": rate},
                            "prompt_tokens": {"kind": "fixed", "value": 1},
                            "output_tokens": {"kind": "geometric", "mean": 500}}},
        "pools": {"p": {"chip": "h100", "model": "qwen2.5-7b", "replicas": 3,
                        "batching": {"max_batch": 1}}},
        "router": {"kind": router},
    })


def mm3_mean_service() -> float:
    """E[S] exactly: s(n) from the kernel, weighted by the geometric law (as in test_queueing)."""
    kernel = ReplicaKernel(CHIPS["h100"], MODELS["qwen2.5-7b"], 1)
    n_max = 40_000
    s = kernel.step_time_s(1, 0, 0.0, 0.5) + np.concatenate(
        [[0.0], np.cumsum(kernel.iteration_time_s(0.0, 1.0, 2.0 + np.arange(n_max - 1)))])
    p = 1 / 500
    pmf = p * (1 - p) ** np.arange(n_max)
    return float(pmf @ s)


def bench_fleetsim_mm3(requests: int, profile: bool, router: str = "jsq"):
    mean_s = mm3_mean_service()
    rate = 0.8 * 3 / mean_s
    duration = requests / rate
    cfg = mm3_config(rate, duration, router)
    run_window(mm3_config(rate, 200 * mean_s), CHIPS, MODELS, 0)  # warm imports and caches
    prof = cProfile.Profile() if profile else None
    t0 = time.process_time()
    if prof:
        prof.enable()
    res = run_window(cfg, CHIPS, MODELS, 1)
    if prof:
        prof.disable()
    wall = time.process_time() - t0
    r = res.requests
    m = r.arrival_s >= cfg.warmup_s
    wait = float(np.nanmean(latencies(res)["queue_s"][m]))
    return {
        "rate": rate, "mean_s": mean_s, "requests": len(r), "wall_s": wall,
        "req_per_s": len(r) / wall, "events_per_req": res.sim_events / len(r), "wait_s": wait,
        "jsq_exact": jsq_qbd(rate, mean_s, 3).wq, "erlang_c": mmc_wq(rate, mean_s, 3),
    }, prof


def bench_ciw(rate: float, mean_s: float, duration: float, jsq: bool):
    import ciw

    exp = ciw.dists.Exponential
    if jsq:  # a zero-time dispatch node, then three 1-server FCFS nodes chosen by JSQ
        net = ciw.create_network(
            arrival_distributions=[exp(rate), None, None, None],
            service_distributions=[ciw.dists.Deterministic(0.0)] + [exp(1 / mean_s)] * 3,
            number_of_servers=[float("inf"), 1, 1, 1],
            routing=ciw.routing.NetworkRouting(routers=[
                # LoadBalancing counts customers in service too (Ciw's JoinShortestQueue does not)
                ciw.routing.LoadBalancing(destinations=[2, 3, 4], tie_break="order"),
                ciw.routing.Leave(), ciw.routing.Leave(), ciw.routing.Leave()]),
        )
    else:
        net = ciw.create_network(arrival_distributions=[exp(rate)],
                                 service_distributions=[exp(1 / mean_s)], number_of_servers=[3])
    ciw.seed(1)  # Ciw's own (global) seeding
    q = ciw.Simulation(net)
    t0 = time.process_time()
    q.simulate_until_max_time(duration)
    wall = time.process_time() - t0
    recs = q.get_all_records()
    served = [rec for rec in recs if rec.node != 1] if jsq else recs
    waits = [rec.waiting_time for rec in served if rec.arrival_date >= 0.05 * duration]
    customers = len(served)
    return {"customers": customers, "wall_s": wall, "cust_per_s": customers / wall,
            "wait_s": float(np.mean(waits))}


# ---- (b) 64 replicas, continuous batching ------------------------------------------------------
CHAT = {"prompt_tokens": {"kind": "lognormal", "median": 1000, "sigma": 1.0, "max": 8192},
        "output_tokens": {"kind": "lognormal", "median": 250, "sigma": 0.8, "max": 2048}}


def chat_config(chip: str, tp: int, replicas: int, rate: float, duration: float, warmup: float):
    return ServingConfig.model_validate({
        "duration_s": duration, "warmup_s": warmup,
        "workloads": {"chat": {"model": "llama-3.1-70b",
                               "arrival": {"kind": "poisson", "rate_per_s": rate}, **CHAT}},
        "pools": {"p": {"chip": chip, "model": "llama-3.1-70b", "tp": tp, "replicas": replicas,
                        "batching": {"max_batch": 128, "max_tokens_per_iter": 8192}}},
        "router": {"kind": "power_of_two"},
    })


def saturation_rate_per_replica(chip: str, tp: int) -> float:
    """Completed requests/s per replica of a 4-replica cell whose queues never empty."""
    kernel = ReplicaKernel(CHIPS[chip], MODELS["llama-3.1-70b"], tp)
    guess = 20.0 * kernel.bandwidth_bps / 1e12 / 10  # generous: keeps every queue non-empty
    cfg = chat_config(chip, tp, 4, 4 * guess, 600.0, 200.0)
    res = run_window(cfg, CHIPS, MODELS, 11)
    f = res.requests.finish_s
    return float(((f > 200.0) & (f <= 600.0)).sum() / 400.0 / 4)


def bench_chat(chip: str, tp: int, requests: int, profile: bool, cap: float | None = None):
    cap = saturation_rate_per_replica(chip, tp) if cap is None else cap
    rate = 0.8 * cap * 64
    duration = requests / rate
    cfg = chat_config(chip, tp, 64, rate, duration, min(120.0, 0.1 * duration))
    prof = cProfile.Profile() if profile else None
    t0 = time.process_time()
    if prof:
        prof.enable()
    res = run_window(cfg, CHIPS, MODELS, 2)
    if prof:
        prof.disable()
    wall = time.process_time() - t0
    from fleetsim.serving.metrics import summarise

    pool = summarise(res)["pools"]["p"]
    return {
        "chip": chip, "tp": tp, "cap_per_replica": cap, "rate": rate, "duration_s": duration,
        "requests": len(res.requests), "wall_s": wall, "req_per_s": len(res.requests) / wall,
        "events_per_req": res.sim_events / len(res.requests),
        "throughput": pool["throughput_req_per_s"], "mean_batch": pool["mean_batch_size"],
        "ttft_p50": pool["ttft_p50_s"], "ttft_p99": pool["ttft_p99_s"],
        "tpot_p50": pool["tpot_p50_s"], "preemptions": pool["preemptions"],
        "unfinished": pool["unfinished"],
    }, prof


def _top(prof: cProfile.Profile, n: int = 15) -> str:
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(n)
    return out.getvalue()


def _best(runs: list[dict], key: str) -> dict:
    return max(runs, key=lambda r: r[key])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=pick(200_000, 500),
                    help="requests per run (default 200,000)")
    ap.add_argument("--repeats", type=int, default=pick(3, 1),
                    help="runs of each case, interleaved; the fastest is kept (default 3)")
    ap.add_argument("--profile", action="store_true", help="print cProfile hot spots of each run")
    ap.add_argument("--skip-ciw", action="store_true")
    args = ap.parse_args()

    runs: dict[str, list] = {"central": [], "jsq": [], "ciw_mm3": [], "ciw_jsq": []}
    prof_a = None
    for rep in range(args.repeats):
        c3, _ = bench_fleetsim_mm3(args.requests, False, "central")
        runs["central"].append(c3)
        a, prof = bench_fleetsim_mm3(args.requests, args.profile and rep == 0)
        prof_a = prof_a or prof
        runs["jsq"].append(a)
        if not args.skip_ciw:
            duration = args.requests / a["rate"]
            runs["ciw_mm3"].append(bench_ciw(a["rate"], a["mean_s"], duration, False))
            runs["ciw_jsq"].append(bench_ciw(a["rate"], a["mean_s"], duration, True))
    c3, a = _best(runs["central"], "req_per_s"), _best(runs["jsq"], "req_per_s")
    print("(a) M/M/3 at load 0.8, batch-1 replicas, "
          f"E[S] = {a['mean_s']:.4f} s, lambda = {a['rate']:.4f}/s; best of {args.repeats}, CPU s")
    print(f"  fleetsim central: {c3['requests']:>8,} requests in {c3['wall_s']:6.2f} s = "
          f"{c3['req_per_s']:>8,.0f} req/s, {c3['events_per_req']:.2f} events/request, "
          f"mean wait {c3['wait_s']:.4f} s (Erlang C {c3['erlang_c']:.4f})")
    print(f"  fleetsim jsq    : {a['requests']:>8,} requests in {a['wall_s']:6.2f} s = "
          f"{a['req_per_s']:>8,.0f} req/s, {a['events_per_req']:.2f} events/request, "
          f"mean wait {a['wait_s']:.4f} s (JSQ exact {a['jsq_exact']:.4f})")
    ciw = {}
    if not args.skip_ciw:
        for key, label, theory in (
                ("ciw_mm3", "Ciw M/M/3       ", f"Erlang C {a['erlang_c']:.4f}"),
                ("ciw_jsq", "Ciw 3 x JSQ     ", f"JSQ exact {a['jsq_exact']:.4f}")):
            c = ciw[key] = _best(runs[key], "cust_per_s")
            print(f"  {label}: {c['customers']:>8,} customers in {c['wall_s']:6.2f} s = "
                  f"{c['cust_per_s']:>8,.0f} cust/s, mean wait {c['wait_s']:.4f} s ({theory})")
        print(f"  ratio central / Ciw M/M/3: {c3['req_per_s'] / ciw['ciw_mm3']['cust_per_s']:.2f}x; "
              f"jsq / Ciw 3 x JSQ: {a['req_per_s'] / ciw['ciw_jsq']['cust_per_s']:.2f}x")
    if prof_a:
        print(_top(prof_a))

    print("(b) 64 replicas, continuous batching, Llama-3.1-70B, chat lengths, 80% of saturation")
    for chip, tp in (("h100", 4), ("t-head-ppu", 4)):
        cap = saturation_rate_per_replica(chip, tp)
        tries = [bench_chat(chip, tp, args.requests, args.profile and i == 0, cap)
                 for i in range(args.repeats)]
        b, prof_b = max(tries, key=lambda t: t[0]["req_per_s"])
        prof_b = tries[0][1]
        vs = (f" = {b['req_per_s'] / ciw['ciw_mm3']['cust_per_s']:.2f}x Ciw's M/M/3 cust/s"
              if ciw else "")
        print(f"  {chip} tp={tp}: saturation {b['cap_per_replica']:.3f} req/s/replica, rate "
              f"{b['rate']:.1f}/s over {b['duration_s']:.0f} s; {b['requests']:,} requests in "
              f"{b['wall_s']:.2f} s = {b['req_per_s']:,.0f} req/s{vs}, {b['events_per_req']:.2f} "
              f"events/request; mean batch {b['mean_batch']:.1f}, TTFT p50/p99 "
              f"{b['ttft_p50']:.3f}/{b['ttft_p99']:.3f} s, TPOT p50 {b['tpot_p50']:.4f} s, "
              f"preemptions {b['preemptions']}, unfinished {b['unfinished']}")
        if prof_b:
            print(_top(prof_b))


if __name__ == "__main__":
    main()
