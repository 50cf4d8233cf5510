"""Disaggregated serving cost (issue 22): simulation speed and goodput-search time of a
prefill/decode type against colocated ones, and each type's cost per million output tokens at
the SLO on scenarios/disaggregated.yaml.

1. Requests simulated per wall second: a window of one PD unit (the scenario's ratio and chips)
   against a colocated window of as many H20 instances, the same arrivals (goal: at least 0.8x).
2. Capacity-function wall time (default precision, no cache) of each type; the PD type's against
   the colocated H20's (goal: at most 2x).
3. Cost per Mtok at SLO of each type: chips per replica (unit) x catalog price_usd amortised
   over AMORTISE_YEARS, plus power at POWER_USD_PER_KWH x PUE, over derated output tokens.
   Wall times are on a shared machine: noisy.

    python benchmarks/bench_disagg.py [scenarios/disaggregated.yaml]
"""

from __future__ import annotations

import sys
import time

import fleetsim
from fleetsim.catalog import load_chips
from fleetsim.serving import capacity as cap

AMORTISE_YEARS, POWER_USD_PER_KWH, PUE = 4.0, 0.08, 1.3


def window_speed(scen) -> tuple[float, float]:
    sv = scen.serving
    pd = {k: v for k, v in sv.pools.items() if k in ("prefill_910b", "decode_h20")}
    h = pd["prefill_910b"].handoff
    pd["prefill_910b"] = pd["prefill_910b"].model_copy(update={"replicas": h.prefill_per_unit})
    pd["decode_h20"] = pd["decode_h20"].model_copy(update={"replicas": h.decode_per_unit})
    n = h.prefill_per_unit + h.decode_per_unit
    co = {"colocated_h20": sv.pools["colocated_h20"].model_copy(update={"replicas": n})}
    out = []
    for pools in (pd, co):  # an hour of traffic, best of three (a shared machine)
        s = scen.model_copy(update={"serving": sv.model_copy(update={"pools": pools, "duration_s": 3600.0})})
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            res = fleetsim.run(s)
            best = min(best, time.perf_counter() - t0)
        out.append(len(res.requests) / best)
    return out[0], out[1]


def main(path: str) -> None:
    scen = fleetsim.load_scenario(path)
    pd_rps, co_rps = window_speed(scen)
    print(f"window: PD unit {pd_rps:,.0f} req/s simulated per wall s, colocated H20 {co_rps:,.0f}: "
          f"{pd_rps / co_rps:.2f}x")
    chips = load_chips(scen.catalog.chips)
    times = {}
    print(f"{'type':<28} {'chips':>5} {'goodput req/s (95% CI)':>28} {'search s':>9} {'USD/Mtok':>9}")
    for pool in [p for p, pc in scen.serving.pools.items() if pc.role != "decode"]:
        t0 = time.perf_counter()
        c = cap.capacity(scen, pool, "chat")
        times[pool] = time.perf_counter() - t0
        capex = chips[c.chip].price_usd * c.tp * c.prefill_per_unit
        if c.role == "prefill":
            capex += chips[c.decode_chip].price_usd * c.decode_tp * c.decode_per_unit
        usd_per_h = capex / (AMORTISE_YEARS * 8766.0) + c.power_w_per_replica / 1000.0 * PUE * POWER_USD_PER_KWH
        tok_per_h = c.effective_goodput_rps * c.output_tokens_per_request * 3600.0
        usd_mtok = usd_per_h / tok_per_h * 1e6 if tok_per_h > 0 else float("inf")
        name = pool if c.role != "prefill" else f"{pool}+{c.decode_pool}"
        ci = f"{c.goodput_rps:.3f} [{c.goodput_ci95_rps[0]:.3f}, {c.goodput_ci95_rps[1]:.3f}]"
        print(f"{name:<28} {c.chips_per_replica:>5} {ci:>28} {times[pool]:>9.1f} {usd_mtok:>9.3f}")
    pd = next(p for p in times if scen.serving.pools[p].role == "prefill")
    print(f"search time PD / colocated H20: {times[pd] / times['colocated_h20']:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scenarios/disaggregated.yaml")
