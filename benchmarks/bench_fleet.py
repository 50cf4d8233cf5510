"""Fleet-layer speed on scenarios/alibaba_2025.yaml: wall time with a warm and a cold capacity
cache, at 10x the fleet, against the horizon (1, 3, 10 years) and the number of serving windows,
and peak memory (max RSS of the child process). Each case runs in its own process. Prints
figures; asserts nothing. Figures on a shared machine are noisy.

    python benchmarks/bench_fleet.py            # every case
    python benchmarks/bench_fleet.py --quick    # warm, cold and 10x only
    python benchmarks/bench_fleet.py --warm-only  # everything but the cold-cache case

Targets (issue 10, one core): <= 20 s warm for the reference case (3 years, daily steps,
monthly windows); 10x the fleet <= 1.5x the time.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / pick("alibaba_2025.yaml", "fleet_small.yaml")

CHILD = r"""
import json, os, resource, sys, tempfile, time
import yaml
import fleetsim
from fleetsim.api import load_scenario
case = json.loads(sys.argv[1])
path = case["path"]
if "years" in case:  # edit the file itself: dates are checked against the new horizon
    data = yaml.safe_load(open(path))
    data["fleet"]["years"] = case["years"]
    if case["years"] > 3:
        data["fleet"]["budget"]["total_usd"] = float(data["fleet"]["budget"]["total_usd"]) * case["years"] / 3
    if case["years"] < 3:  # roadmap generations start after a one-year horizon: leave them out
        for ch in data["fleet"]["channels"].values():
            ch.pop("roadmap", None)
    tmp = os.path.join(os.path.dirname(path), f".bench-{os.getpid()}.yaml")
    with open(tmp, "w") as fh:
        yaml.safe_dump(data, fh)
    try:
        sc = load_scenario(tmp)
    finally:
        os.unlink(tmp)
else:
    sc = load_scenario(path)
f = sc.fleet
k = case.get("scale", 1.0)
if k != 1.0:  # k x the fleet: demand, initial chips, channel caps, budget and site power
    for d in f.demand.values():
        d.tokens_per_s *= k
    for c in f.initial_fleet:
        c.count = int(c.count * k)
    for ch in f.channels.values():
        if ch.cap_per_month is not None:
            ch.cap_per_month *= k
        if ch.cap_per_quarter:
            ch.cap_per_quarter = {q: v * k for q, v in ch.cap_per_quarter.items()}
        if ch.fab is not None:
            ch.fab.dies_per_quarter = {q: v * k for q, v in ch.fab.dies_per_quarter.items()}
    f.budget.total_usd *= k
    if f.site.power_mw is not None:
        f.site.power_mw *= k
if "windows_every" in case:
    if case["windows_every"] == 0:
        f.windows.enabled = False
    else:
        f.windows.every_days = case["windows_every"]
t0 = time.perf_counter()
res = fleetsim.run(sc)
wall = time.perf_counter() - t0
s = res.summary["fleet"]
peak = sum(s["fleet_mix_end"].values())
tl = res.timeline
peak_chips = int(tl.groupby("date")["installed"].sum().max())
print(json.dumps({"wall_s": wall, "capacity_s": res.timings_s["capacity"],
                  "simulate_s": res.timings_s["simulate"], "peak_chips": peak_chips,
                  "windows": s.get("windows", 0), "days": s["days"],
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(case: dict, cache: str | None = None) -> dict:
    env = dict(os.environ)
    if cache is not None:
        env["FLEETSIM_CACHE_DIR"] = cache
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"path": str(SCENARIO), **case})],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(label: str, r: dict) -> None:
    print(f"{label:<28} wall {r['wall_s']:6.2f} s  (capacity {r['capacity_s']:5.2f} s, simulate "
          f"{r['simulate_s']:5.2f} s)  days {r['days']:5d}  windows {r['windows']:4d}  peak chips "
          f"{r['peak_chips']:>10,}  max RSS {r['max_rss_mb']:5.0f} MB")


def main() -> None:
    quick = "--quick" in sys.argv
    if SMOKE:  # one warm case of the small fleet, one year
        show("smoke (fleet_small, 1 y)", run({"years": 1}))
        return
    if "--warm-only" not in sys.argv:
        with tempfile.TemporaryDirectory() as cold:
            show("cold capacity cache", run({}, cache=cold))
    run({})  # make sure the default cache is warm
    base = run({})
    show("warm (reference, 3 y)", base)
    big = run({"scale": 10.0})
    show("warm, 10x fleet", big)
    print(f"{'10x / 1x wall time':<28} {big['wall_s'] / base['wall_s']:.2f}")
    if quick:
        return
    for years in (1, 10):  # 1 y: without the roadmap (its generations start in 2026); 3 y above
        show(f"warm, horizon {years} y", run({"years": years}))
    for every in (0, 90, 30, 7):
        show(f"warm, windows every {every or '-'} d", run({"windows_every": every}))


if __name__ == "__main__":
    main()
