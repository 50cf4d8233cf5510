"""`fleetsim hedge` on the reference case: VSS and EVPI with their intervals and the time it takes
(warm capacity cache; CPU seconds beside wall, since the machine is shared). Prints figures;
asserts nothing.

    python benchmarks/bench_hedge.py [K=10] [N=40] [horizon=12]          # first-stage test
    python benchmarks/bench_hedge.py 5 4 12 --rolling                     # whole rolling runs (minutes)

The reference case's rolling figure quoted in docs/planner.md (K=20, 30 futures, 24 periods, with
every future's costs kept) comes from `python benchmarks/planner_doc.py --write hedge`.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import resource
import sys
import time
from pathlib import Path

from fleetsim import api
from fleetsim.results.rounding import format_interval

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rolling = "--rolling" in sys.argv
    K, N, T = (int(a) for a in (args + ["10", "40", "12"][len(args):])[:3])
    path = ROOT / "scenarios" / pick("alibaba_2025.yaml", "fleet_small.yaml")
    K, N, T = pick((K, N, T), (3, 4, 4))
    sc = api.load_scenario(path)
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    out = api.hedge(sc, futures=K, holdout=N, risk_weights=[0.0, 1.0], horizon_periods=T, rolling=rolling)
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    s = out["summary"]
    print(f"{path.name}: K={K} N={N} horizon={T} periods {'rolling' if rolling else 'first stage'}")
    print(f"VSS  {format_interval(*s['vss_usd'], kind='usd')}")
    print(f"EVPI {format_interval(*s['evpi_usd'], kind='usd')}")
    print(f"time: {cpu:.1f} s CPU (this process), {time.perf_counter() - t0:.1f} s wall; "
          f"hedge itself {out['timings_s']['hedge']:.1f} s wall")


if __name__ == "__main__":
    main()
