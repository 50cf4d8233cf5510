"""Optimising planner: solve time per period and per whole run for K futures, the price-of-security
front, and rule vs optimal planners on the reference case (scenarios/alibaba_2025.yaml).

    python benchmarks/bench_planner.py              # everything (~10 min on a loaded 2-core box)
    python benchmarks/bench_planner.py --only solve # solve time per period, K = 1, 10, 20, 50
    python benchmarks/bench_planner.py --only front # price-of-security front on the first period
    python benchmarks/bench_planner.py --only runs  # whole runs: rule policies and optimal
    python benchmarks/bench_planner.py --only shock # h20_ban.yaml: naive vs hedged
    python benchmarks/bench_planner.py --only target  # K = 20 monthly, with and without explain

Wall times are noisy (other processes share the cores); windows are switched off (they do not
touch the planner). Solve time = building the MILP + HiGHS + the binding-constraint analysis.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import fleetsim
from fleetsim.fleet.optimal import adapter
from fleetsim.fleet.optimal.milp import solve

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / pick("alibaba_2025.yaml", "fleet_small.yaml")
BASE = ["fleet.windows.enabled=false", *pick([], ["fleet.years=1"])]


def _planner(**kw) -> str:
    return "fleet.planner=" + json.dumps({"kind": "optimal", **kw})


def run(overrides: list[str], path: Path = SCENARIO) -> tuple[dict, float, list[float]]:
    """One whole run: fleet summary, wall seconds, solve seconds per planning call."""
    times: list[float] = []
    real = adapter.solve

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = real(*a, **k)
        times.append(time.perf_counter() - t0)
        return out

    adapter.solve = timed
    try:
        sc = fleetsim.load_scenario(path, overrides=BASE + overrides)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            res = fleetsim.run(sc, out_dir=d)
            wall = time.perf_counter() - t0
    finally:
        adapter.solve = real
    return res.summary["fleet"], wall, times


def first_state():
    """The PlanningState of the reference case's first planning day."""
    got = []
    real = adapter.OptimalPlanner.plan

    class Got(Exception):
        pass

    def grab(self, state):
        got.append(copy.copy(state))
        raise Got

    adapter.OptimalPlanner.plan = grab
    try:
        # one future, in this process: the reference case's 16 would go to a pool of forked
        # workers, where the patched plan and its local exception cannot come back
        run(["fleet.replications=1", _planner(futures=1)])
    except Got:
        pass
    finally:
        adapter.OptimalPlanner.plan = real
    return got[0]


def bench_solve() -> None:
    state = first_state()
    cfg_base = fleetsim.load_scenario(SCENARIO, overrides=[_planner()]).fleet.planner
    print("## Solve time per planning period (first period of alibaba_2025, 12 monthly periods)")
    print("| futures K | variables | integers | rows | solve s | status | MIP gap |")
    print("|---|---|---|---|---|---|---|")
    for K in pick((1, 10, 20, 50), (1,)):
        cfg = cfg_base.model_copy(update={"futures": K})
        pr, _ = adapter.build_problem(state, cfg)
        plan = solve(pr, time_limit_s=cfg.time_limit_s, mip_gap=cfg.mip_gap)
        print(f"| {K} | {plan.n_vars} | {plan.n_int} | {plan.n_rows} | {plan.solve_s:.2f} | "
              f"{plan.status} | {plan.mip_gap:.2g} |")
    print("\n## 36 monthly periods in one problem (the whole horizon at once), K = 20")
    cfg = cfg_base.model_copy(update={"futures": pick(20, 1), "horizon_periods": pick(36, 3)})
    pr, _ = adapter.build_problem(state, cfg)
    plan = solve(pr, time_limit_s=cfg.time_limit_s, mip_gap=cfg.mip_gap)
    print(f"variables {plan.n_vars}, integers {plan.n_int}, rows {plan.n_rows}: {plan.solve_s:.2f} s, "
          f"{plan.status}, gap {plan.mip_gap:.2g}")


def bench_front() -> None:
    state = first_state()
    cfg_base = fleetsim.load_scenario(SCENARIO, overrides=[_planner()]).fleet.planner
    print("## Price-of-security front (first planning period, K = 20 futures, 12 months)")
    print("| risk | expected cost USD B | CVaR90 cost USD B | expected unmet share | "
          "US dependence share | ordered now (replicas) |")
    print("|---|---|---|---|---|---|")
    rows = [("expectation", {"risk": "expectation"})]
    rows += [(f"mean-CVaR0.9, weight {w}", {"risk": "cvar", "cvar_alpha": 0.9, "risk_weight": w})
             for w in (0.25, 0.5, 0.75, 1.0)]
    rows += [(f"CVaR {a}", {"risk": "cvar", "cvar_alpha": a}) for a in (0.5, 0.95)]
    rows += [(f"expectation, domestic >= {s}", {"risk": "expectation", "domestic_share_min": s})
             for s in (0.7, 0.9)]
    for label, upd in rows:
        cfg = cfg_base.model_copy(update={"futures": 20, **upd})
        pr, _ = adapter.build_problem(state, cfg)
        plan = solve(pr, time_limit_s=cfg.time_limit_s, mip_gap=cfg.mip_gap)
        rec = adapter.plan_record(state, pr, plan)
        w = pr.weights()
        from fleetsim.fleet.optimal import cvar

        print(f"| {label} | {w @ plan.cost_by_future_usd / 1e9:.2f} | "
              f"{cvar(plan.cost_by_future_usd, w, 0.9) / 1e9:.2f} | {rec['expected_unmet_share']:.4f} | "
              f"{rec['us_dependence_share']:.3f} | {rec['orders_replicas']} |")


def bench_runs() -> None:
    print("## Whole runs of alibaba_2025 (3 years, monthly planning, windows off)")
    print("| planner | capex USD B | unmet share | US dependence mean | US dependence end | "
          "cost USD/Mtok | run s | solve s total | solve s max |")
    print("|---|---|---|---|---|---|---|---|---|")
    cases = [
        ("cheapest", ["fleet.planner={kind: cheapest, period_days: 30, horizon_days: 180, headroom: 0.1}"]),
        ("security_weighted (shipped)", []),
        ("domestic_share 0.7", ["fleet.planner={kind: domestic_share, period_days: 30, horizon_days: 180, "
                                "headroom: 0.1, target_share: 0.7}"]),
        ("optimal K=1 (naive)", [_planner(futures=1)]),
        ("optimal K=10", [_planner(futures=10)]),
        ("optimal K=20", [_planner(futures=20)]),
        ("optimal K=20, explain off", [_planner(futures=20, explain=False)]),
        ("optimal K=20 CVaR 0.9", [_planner(futures=20, risk="cvar", cvar_alpha=0.9)]),
        ("optimal K=50", [_planner(futures=50)]),
    ]
    for label, ov in cases:
        s, wall, times = run(ov)
        st = f"{sum(times):.1f} | {max(times):.2f}" if times else "- | -"
        print(f"| {label} | {s['capex_usd_total'] / 1e9:.1f} | {s['unmet_demand_share']:.2g} | "
              f"{s['us_dependence_share_mean']:.3f} | {s['us_dependence_share_end']:.3f} | "
              f"{s['cost_usd_per_mtok']:.2f} | {wall:.0f} | {st} |", flush=True)


def bench_shock() -> None:
    """The value of hedging when the shock comes: scenarios/h20_ban.yaml (H20 banned for good)."""
    path = SCENARIO.parent / "h20_ban.yaml"
    print("## h20_ban.yaml: naive (K=1, regime never changes) vs hedged planners")
    print("| planner | capex USD B | unmet share | peak unmet share | US dependence mean | cost USD/Mtok | run s |")
    print("|---|---|---|---|---|---|---|")
    for label, ov in (
        ("security_weighted (shipped)", []),
        ("optimal K=1 (naive)", [_planner(futures=1)]),
        ("optimal K=20", [_planner(futures=20)]),
        ("optimal K=20 mean-CVaR0.9 w=0.5", [_planner(futures=20, risk="cvar", risk_weight=0.5)]),
    ):
        s, wall, _ = run(ov, path)
        print(f"| {label} | {s['capex_usd_total'] / 1e9:.1f} | {s['unmet_demand_share']:.2g} | "
              f"{s['peak_unmet_share']:.2g} | {s['us_dependence_share_mean']:.3f} | "
              f"{s['cost_usd_per_mtok']:.2f} | {wall:.0f} |", flush=True)


def bench_target() -> None:
    """The issue's target: the reference case, K = 20, re-solved monthly, <= 60 s of solving."""
    print("| case | run s | solve s total | plans | solve s max |")
    print("|---|---|---|---|---|")
    for label, ov in (("K=20", [_planner(futures=20)]), ("K=20, explain off", [_planner(futures=20, explain=False)])):
        s, wall, times = run(ov)
        print(f"| {label} | {wall:.0f} | {sum(times):.1f} | {len(times)} | {max(times):.2f} |", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["solve", "front", "runs", "shock", "target"])
    a = ap.parse_args()
    if SMOKE and a.only is None:
        a.only = "solve"
    np.set_printoptions(precision=3)
    for name, fn in (("solve", bench_solve), ("front", bench_front), ("runs", bench_runs),
                     ("shock", bench_shock), ("target", bench_target)):
        if a.only in (None, name):
            fn()
            print()
