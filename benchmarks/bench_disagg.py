"""Disaggregated serving cost (issue 22): simulation speed and goodput-search time of a
prefill/decode type against colocated ones, and each type's cost per million output tokens at
the SLO on scenarios/disaggregated.yaml.

1. Requests simulated per wall second: a window of one PD unit (the scenario's ratio and chips)
   against a colocated window of as many H20 instances, the same arrivals (goal: at least 0.8x).
2. Capacity-function CPU time (default precision, no cache) of each type; the PD type's against
   the colocated H20's (goal: at most 2x).
3. Cost per Mtok at SLO of each type: chips per replica (unit) x catalog price_usd amortised
   over AMORTISE_YEARS, plus power at POWER_USD_PER_KWH x PUE, over derated output tokens.
   Wall times are on a shared machine: noisy.
4. The scenario's fleet (a year, its futures) with every type on offer (the planner picks and
   buys the PD type per role), with only the PD type, and with only one colocated type, with
   the H20 channel capped as in the scenario and uncapped: cost per Mtok served at SLO and unmet
   share, and the difference of each against colocated H20 paired on the same futures (the
   same seeds: common random numbers), with 95% intervals.

    python benchmarks/bench_disagg.py [scenarios/disaggregated.yaml]
    python benchmarks/bench_disagg.py --write    # also keep 3. and 4. in docs/disagg_runs.json and
                                                 # rewrite the blocks docs/serving.md and docs/fleet.md
                                                 # render from it (benchmarks/doc_tables.py)
    python benchmarks/bench_disagg.py --smoke    # seconds: hand-given capacities, short windows

The runs take about 17 minutes (a cold capacity cache), too long for the test suite: --write keeps
the deterministic figures (goodput, cost per Mtok, every future's cost and unmet share; no wall
times) in docs/disagg_runs.json, and tests/test_docs.py checks that the pages' blocks are what
benchmarks/doc_tables.py renders from that file. Rerun with --write after a change to the
capacity search or the fleet, so the file and the pages follow the code.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

from _smoke import SMOKE, pick

import numpy as np

import fleetsim
from fleetsim.catalog import load_chips
from fleetsim.serving import capacity as cap
from fleetsim.stats import t_interval

# the fleet comparison's offers: channel -> pools, per variant (None: the scenario's)
VARIANTS = {
    "all types (planner picks)": None,
    "PD only (910B prefill + H20 decode)": {"huawei": ["prefill_910b"], "nvidia-h20": ["decode_h20"]},
    "colocated H20 only": {"huawei": [], "nvidia-h20": ["colocated_h20"]},
    "colocated 910B only": {"huawei": ["colocated_910b"], "nvidia-h20": []},
}
BASELINE = "colocated H20 only"
# smoke mode: the role and colocated rates by hand (req/s per instance, from a full run's
# capacity.parquet), so no goodput search runs
SMOKE_CAPACITY = {"prefill_910b": 0.728, "decode_h20": 5.68, "colocated_910b": 0.117, "colocated_h20": 0.804}

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
        s = scen.model_copy(update={"fleet": None,
                                    "serving": sv.model_copy(update={"pools": pools, "duration_s": 3600.0})})
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            res = fleetsim.run(s)
            best = min(best, time.process_time() - t0)
        out.append(len(res.requests) / best)
    return out[0], out[1]


def variant(scen, offers: dict | None, capped: bool):
    f = scen.fleet
    chans = {}
    for n, ch in f.channels.items():
        upd = {}
        if offers is not None:
            keep = [o for o in ch.offers if o.pool in offers.get(n, [])]
            if not keep:
                continue
            upd["offers"] = keep
        if not capped:
            upd["cap_per_month"] = None
        chans[n] = ch.model_copy(update=upd)
    # a channel left with no offers is dropped: the initial fleet's channel stays (it sells nothing)
    for c in f.initial_fleet:
        if c.channel not in chans:
            chans[c.channel] = f.channels[c.channel].model_copy(update={"cap_per_month": 0})
    return scen.model_copy(update={"fleet": f.model_copy(update={"channels": chans})})


def fleet_comparison(scen, record: dict | None = None) -> None:
    if SMOKE:  # hand-given capacities, two futures, no windows: seconds
        from fleetsim.scenario.fleet import GivenCapacity

        given = {p: {"chat": GivenCapacity(goodput_rps=r, output_tokens_per_request=212.0)}
                 for p, r in SMOKE_CAPACITY.items()}
        scen = scen.model_copy(update={"fleet": scen.fleet.model_copy(update={
            "capacity": given, "replications": 2, "years": 0.5,
            "windows": scen.fleet.windows.model_copy(update={"enabled": False})})})
    R = scen.fleet.replications
    for capped in pick((True, False), (True,)):
        print(f"\nfleet, {R} futures, H20 channel {'capped as in the scenario' if capped else 'uncapped'}:")
        print(f"{'offered':<38} {'USD/Mtok at SLO (95% CI)':>26} {'unmet share':>12} "
              f"{'chips bought by pool':<60}")
        rows = {}
        for name, offers in VARIANTS.items():
            res = fleetsim.run(variant(scen, offers, capped))
            rep = res.replicates
            rows[name] = rep
            if record is not None:  # every future's figures: the pages' intervals come from these
                bought = res.orders.groupby("pool")["count_chips"].sum() if len(res.orders) else {}
                record.setdefault("capped" if capped else "uncapped", {})[name] = {
                    "seed": [int(x) for x in rep["seed"]],
                    "cost_usd_per_mtok": [float(x) for x in rep["cost_usd_per_mtok"]],
                    "unmet_demand_share": [float(x) for x in rep["unmet_demand_share"]],
                    "chips_bought": {str(k): int(v) for k, v in dict(bought).items()}}
            m, lo, hi = t_interval(rep["cost_usd_per_mtok"])
            bought = res.orders.groupby("pool")["count_chips"].sum().to_dict() if len(res.orders) else {}
            print(f"{name:<38} {m:>8.3f} [{lo:.3f}, {hi:.3f}] {rep['unmet_demand_share'].mean():>11.2%}  "
                  f"{bought}")
        base = rows[BASELINE]
        for name, rep in rows.items():
            if name == BASELINE:
                continue
            assert (rep["seed"].to_numpy() == base["seed"].to_numpy()).all()  # the same futures
            d = rep["cost_usd_per_mtok"].to_numpy() - base["cost_usd_per_mtok"].to_numpy()
            u = rep["unmet_demand_share"].to_numpy() - base["unmet_demand_share"].to_numpy()
            m, lo, hi = t_interval(d)
            mu, lou, hiu = t_interval(u)
            print(f"  {name} - {BASELINE}: USD/Mtok {m:+.3f} [{lo:+.3f}, {hi:+.3f}], "
                  f"unmet {mu:+.2%} [{lou:+.2%}, {hiu:+.2%}] (paired)")


def main(path: str, write: bool = False) -> None:
    scen = fleetsim.load_scenario(path)
    record: dict = {"scenario": path, "date": dt.date.today().isoformat(), "types": [], "fleet": {},
                    "amortise_years": AMORTISE_YEARS, "power_usd_per_kwh": POWER_USD_PER_KWH, "pue": PUE}
    if SMOKE:
        fleet_comparison(scen)
        return
    pd_rps, co_rps = window_speed(scen)
    print(f"window: PD unit {pd_rps:,.0f} req/s simulated per CPU s, colocated H20 {co_rps:,.0f}: "
          f"{pd_rps / co_rps:.2f}x")
    chips = load_chips(scen.catalog.chips)
    times = {}
    print(f"{'type':<28} {'chips':>5} {'goodput req/s (95% CI)':>28} {'CPU s':>7} {'wall s':>7} {'USD/Mtok':>9}")
    for pool in [p for p, pc in scen.serving.pools.items() if pc.role != "decode"]:
        t0, c0 = time.perf_counter(), time.process_time()
        c = cap.capacity(scen, pool, "chat")
        times[pool] = time.process_time() - c0  # CPU s: the machine is shared
        wall = time.perf_counter() - t0
        capex = chips[c.chip].price_usd * c.tp * c.prefill_per_unit
        if c.role == "prefill":
            capex += chips[c.decode_chip].price_usd * c.decode_tp * c.decode_per_unit
        usd_per_h = capex / (AMORTISE_YEARS * 8766.0) + c.power_w_per_replica / 1000.0 * PUE * POWER_USD_PER_KWH
        tok_per_h = c.effective_goodput_rps * c.output_tokens_per_request * 3600.0
        usd_mtok = usd_per_h / tok_per_h * 1e6 if tok_per_h > 0 else float("inf")
        name = pool if c.role != "prefill" else f"{pool}+{c.decode_pool}"
        ci = f"{c.goodput_rps:.3f} [{c.goodput_ci95_rps[0]:.3f}, {c.goodput_ci95_rps[1]:.3f}]"
        print(f"{name:<28} {c.chips_per_replica:>5} {ci:>28} {times[pool]:>7.1f} {wall:>7.1f} {usd_mtok:>9.3f}")
        record["types"].append({"pool": pool, "name": name, "role": c.role, "chips": int(c.chips_per_replica),
                                "goodput_rps": float(c.goodput_rps),
                                "goodput_ci95_rps": [float(x) for x in c.goodput_ci95_rps],
                                "windows": int(c.windows), "usd_per_mtok": float(usd_mtok)})
    pd = next(p for p in times if scen.serving.pools[p].role == "prefill")
    print(f"search CPU time PD / colocated H20: {times[pd] / times['colocated_h20']:.2f}x (goal: at most 2x)")
    fleet_comparison(scen, record["fleet"])
    if write:
        import doc_tables

        doc_tables.PD_RUNS.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {doc_tables.PD_RUNS.relative_to(doc_tables.ROOT)}")
        doc_tables.write(set(doc_tables.PD_TABLES))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    main(args[0] if args else "scenarios/disaggregated.yaml", write="--write" in sys.argv[1:])
