"""Issue 24's whole-process figures, optionally interleaved with another checkout of fleetsim
(the code before a change) so both are measured back to back under the same machine load.

    python benchmarks/bench_speed.py warm [--runs 3] [--before DIR] [--plots] [--replications R]
        `fleetsim run scenarios/alibaba_2025.yaml --no-plots` as a whole process on a warm
        capacity cache (one unmeasured run first fills it): wall and CPU seconds (user + system,
        this process's children and theirs: forked windows, figures and futures count) per run.
        `--plots`: with plots and report.html (the default of `fleetsim run`); `--replications
        R`: `--set fleet.replications=R` (default: the scenario's own, 16). After the runs,
        every table, plot and summary.json of the two sides is compared byte for byte.
        `--cache DIR`: both sides use this capacity cache (the capacity search is the same code
        on both sides, so one warm cache serves both; default a fresh cache per side).
    python benchmarks/bench_speed.py days [--before DIR] [--replications 3] [--runs 2]
        one future's parts in process, CPU seconds per future (process time) over R futures of
        the reference case on a warm cache: set-up, the fleet's daily step (cohorts, capacity,
        planner: `run_env`), its serving windows, and the tables (needs --cache or a warm
        default cache).
    python benchmarks/bench_speed.py cold [--before DIR] [--precision 0.03]
        the capacity search of every replica type of the reference case from an empty cache:
        CPU seconds (process time, less sensitive to other jobs than wall time), windows and
        the estimate per type, and the total.

    python benchmarks/bench_speed.py --smoke
        `warm` and `days` on fleet_small.yaml for one year, one run (`cold --smoke`: its two types
        at 10%).

DIR is a checkout of fleetsim (e.g. `git worktree add /tmp/before <commit>`); its package is put
first on PYTHONPATH, so the same interpreter and dependencies run both. The load average is
printed before and after: on a shared machine wall times are noisy and say so.

Measured 2026-12-07 11:42-11:47 UTC, load average 8-13 on the 2 shared cores (so wall times are
2-3x the CPU times), before = 014216f, after = branch `speed`, interleaved (this script's logic):
warm --no-plots user CPU 2.63 / 2.67 / 2.62 s before, 1.96 / 1.89 / 1.90 s after (-28%; wall
7.1 / 6.3 / 5.6 s before, 5.6 / 4.0 / 4.1 s after). Cold capacity search at 3%: 281 windows and
24.3 CPU s before, the same windows and estimates and 24.3 CPU s after (the search is unchanged:
1.5 s per type was not reached).

Measured 2026-12-07 14:00-14:10 UTC, load average 14-17, before = e9a79d8 (main), after = branch
`speed2` (fused prefill and decode runs, arrivals merged into the event loop, no SimPy process
per replica): cold capacity search at 3% 35.7 CPU s before, 34.0 CPU s after (-5%), the same
windows (37, 32, 27, 32, 32, 82, 27, 32, 32) and the same estimates and intervals to every digit
(the serving windows are byte-identical): 3.8 s a type, 1.5 s not reached.

Measured 2026-12-07 17:05-17:24 UTC, load average 5-8 on the 2 shared cores (wall about 2.5x CPU;
CPU here counts the forked children), before = 682094d (main), after = branch `speed3` (no
scipy.stats import; a future's serving windows and a run's figures shared with forked
processes; a forked helper imports matplotlib during the simulation and draws plots and report),
`python benchmarks/bench_speed.py warm --before DIR [--replications 1] [--plots] [--runs 2]`, the
same bytes in every table, plot and summary.json:
  R=1 --no-plots   CPU 2.87 / 2.79 / 2.70 s after, 3.39 / 3.32 / 3.44 before (wall 7.3 / 7.1 / 5.5, 8.6 / 8.3 / 8.5)
  R=1 plots        CPU 5.86 / 6.02 / 5.52 s after, 6.20 / 6.19 / 6.08 before (wall 14.9 / 15.1 / 14.0, 15.7 / 16.1 / 15.6)
  R=16 --no-plots  CPU 26.9 / 27.7 s after, 28.6 / 29.8 before (wall 40.5 / 40.8, 43.1 / 45.0)
  R=16 plots       CPU 31.9 / 30.1 s after, 30.5 / 30.6 before (wall 32.2 / 25.8, 31.5 / 30.1)
In a quiet spell (17:27, load average about 1), in process through fleetsim.cli.main, alternating,
the run process's own CPU being the critical path: R=1 --no-plots wall 2.68 / 2.03 / 1.84 s after
(run process 2.0 CPU s + 0.5 in its window child), 2.91 / 2.72 / 2.88 before; R=1 plots wall
5.28 / 3.15 / 3.34 s after (run process 2.0 CPU s; helpers 3.0), 5.12 / 5.29 / 5.04 before. The
forked work pays in wall time only when the second core is free; on a loaded machine the CPU
saved (0.6 s a process, the scipy.stats import) is what remains. At the default R=16 the goals
are out of reach: about 1.4 CPU s a future (two thirds serving windows), 16 futures on 2 cores
is at least 11 s.

Measured 2026-12-07 19:14-19:22 UTC, load average 1.1-2.3 (the last R=16 plots runs up to 11),
before = 61798cc (main), after = branch `futures4` (the fleet's daily step: deferred per-day rows,
the cohort step's slices and one bincount, the crash-rate memo shared by futures), with `--before
DIR --cache DIR`: `days --runs 3`: daily step 0.427 / 0.467 / 0.411 CPU s a future before, 0.357 /
0.340 / 0.337 after (-20%); windows 1.00 / 1.03 / 0.93 before, 1.03 / 0.97 / 0.96 after (serving,
unchanged). Whole processes (same bytes): R=1 --no-plots CPU 2.27 / 2.33 / 2.30 s before, 2.29 /
2.21 / 2.30 after (wall 1.8 both); R=16 --no-plots CPU 24.5 / 24.7 before, 22.3 / 24.8 after (wall
13.1 / 13.2, 13.2 / 19.3); R=1 plots CPU 4.86 / 5.00 before, 4.86 / 4.80 after; R=16 plots CPU
29.4 / 36.6 before, 30.7 / 35.9 after. The figures and their table: docs/fleet.md.

Measured 2026-12-07 23:12 UTC, load average 3.5-5.5, before = 910d21e (futures4 rebased on
d6beb1d), after = branch `futures5` (one ServingReliability for a fleet run's windows, each chip
resolved once), `days --before DIR --replications 2 --runs 2`: windows 0.945 / 0.938 CPU s a
future before, 0.903 / 0.904 after (-4%); per window, reliability set-up 2.25 / 2.55 ms before,
1.34 / 1.32 after; the event loop 21.6 / 21.2 ms before, 21.5 / 21.6 after (unchanged: 87% of a
window's time). Whole processes, R=16 --no-plots, warm: CPU 22.9 / 22.5 s before, 21.5 / 25.7
after (noise; wall 23.6 / 15.8, 22.2 / 121.9 under load). The goal (2.0 s wall for 16 futures)
needs about 4 CPU s on 2 cores: 0.25 a future against about 1.3 today, the event loop alone 0.78.
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / pick("alibaba_2025.yaml", "fleet_small.yaml")
SETS = pick([], ["--set", "fleet.years=1", "--set", "fleet.replications=1"])

COLD = r"""
import sys, time
import fleetsim
from fleetsim.serving import capacity as cap
scen = fleetsim.load_scenario(sys.argv[1]).with_overrides([f"serving.goodput.precision={sys.argv[2]}"])
total = 0.0
for pool in scen.serving.pools:
    t = time.process_time()
    c = cap.capacity(scen, pool, "chat")  # no disk cache: every type is searched
    dt = time.process_time() - t
    total += dt
    print(f"  {pool:<11} {cap.format_interval(c.goodput_rps, *c.goodput_ci95_rps):<26} {c.windows:3d} windows"
          f"  {dt:5.2f} CPU s  {c.note}", flush=True)
print(f"  total {total:.1f} CPU s")
"""


DAYS = r"""
import os, sys, time
os.environ["FLEETSIM_FUTURE_WORKERS"] = "1"  # this process only: the parts are timed here
from fleetsim import api
from fleetsim.fleet import sim as S
from fleetsim.fleet.capacity import replica_capacities, seasonal_capacities
from fleetsim.fleet.futures import future_seeds
from fleetsim.fleet.windows import window_runner
from fleetsim.progress import run_env
from fleetsim.results.cache import ResultCache
sc = api.load_scenario(sys.argv[1], sys.argv[3:])
R = int(sys.argv[2])
chips, models = api.resolve_catalogs(sc)
cache = ResultCache()
caps = replica_capacities(sc, chips, models, cache=cache)
grid = seasonal_capacities(sc, chips, models, cache=cache)
root = sc.fleet.seed if sc.fleet.seed is not None else sc.seed
wr = window_runner(chips, models)
from fleetsim.serving import health as H, window as W
part = dict.fromkeys(("event loop", "reliability set-up"), 0.0)
def _timing(mod, name, key):  # the windows' parts: process time inside these calls
    f = getattr(mod, name, None)
    def g(*a, **k):
        c = time.process_time()
        try:
            return f(*a, **k)
        finally:
            part[key] += time.process_time() - c
    if f is not None:
        setattr(mod, name, g)
_timing(W, "_simulate", "event loop")
_timing(H, "WindowHealth", "reliability set-up")
t = dict.fromkeys(("set-up", "days", "windows", "tables"), 0.0)
n_win = 0
for s in future_seeds(root, R):
    c0 = time.process_time()
    sim = S._FleetSim(sc, chips, models, caps, wr, s)
    sim.caps_grid = grid or {}
    sim.prepare()
    sim.start_processes()
    c1 = time.process_time()
    run_env(sim.env, sim.n_days, None)
    c2 = time.process_time()
    w = sim._run_windows(None) if sim.window_snaps else None
    n_win += len(sim.window_snaps)
    c3 = time.process_time()
    sim._result(w)
    c4 = time.process_time()
    for k, v in zip(t, (c1 - c0, c2 - c1, c3 - c2, c4 - c3)):
        t[k] += v
print("; ".join(f"{k} {v / R:.3f}" for k, v in t.items()) + f" CPU s a future (R={R}, {sim.n_days} days)")
part["other set-up and rows"] = t["windows"] - sum(part.values())
print("  windows: " + "; ".join(f"{k} {1e3 * v / max(n_win, 1):.2f}" for k, v in part.items())
      + f" CPU ms a window ({n_win} windows)")
"""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _env(before: str | None, cache: str) -> dict:
    env = dict(os.environ, FLEETSIM_CACHE_DIR=cache)
    if before:
        env["PYTHONPATH"] = before + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _timed(cmd: list[str], env: dict) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _same_bytes(a: Path, b: Path) -> list[str]:
    """Files of run folder `a` (tables, plots, summary) that differ from `b`'s (report.html and
    manifest.json carry the folder name and creation time, so they are left out)."""
    names = [p.relative_to(a) for p in sorted(a.rglob("*")) if p.is_file()
             and p.name not in ("report.html", "manifest.json")]
    return [str(n) for n in names if not (b / n).is_file() or (a / n).read_bytes() != (b / n).read_bytes()]


def warm(runs: int, before: str | None, plots: bool = False, replications: int | None = None,
         cache: str | None = None) -> None:
    fleetsim = str(Path(sys.executable).with_name("fleetsim"))
    sides = [("after", None)] + ([("before", before)] if before else [])
    sets = SETS + (["--set", f"fleet.replications={replications}"] if replications else [])
    flags = ["-q", "--overwrite"] + ([] if plots else ["--no-plots"])
    label = f"warm {'plots+report' if plots else '--no-plots'}" + (f" R={replications}" if replications else "")
    with tempfile.TemporaryDirectory() as tmp:
        caches = {name: cache or os.path.join(tmp, f"cache-{name}") for name, _ in sides}
        outs = {name: os.path.join(tmp, f"run-{name}") for name, _ in sides}
        for name, src in sides:  # fill each side's capacity cache (not measured)
            subprocess.run([fleetsim, "run", str(SCENARIO), *sets, "-o", outs[name], *flags],
                           env=_env(src, caches[name]), check=True, stdout=subprocess.DEVNULL)
        rows: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in sides}
        for _ in range(runs):
            for name, src in reversed(sides):
                load = _load()
                rows[name].append((*_timed([fleetsim, "run", str(SCENARIO), *sets, "-o", outs[name], *flags],
                                           _env(src, caches[name])), load))
        if before:
            diff = _same_bytes(Path(outs["after"]), Path(outs["before"]))
            print(f"same bytes as before: {'yes' if not diff else 'NO: ' + ', '.join(diff)}")
    for name, vals in rows.items():
        walls = ", ".join(f"{w:.2f}" for w, _, _ in vals)
        cpus = ", ".join(f"{u:.2f}" for _, u, _ in vals)
        loads = "; ".join(ld for _, _, ld in vals)
        print(f"{name:<7} {label}: wall s {walls}; CPU s {cpus} (load average at each start: {loads})")


def days(runs: int, before: str | None, replications: int, cache: str | None) -> None:
    """One future's parts in process (DAYS), the two sides alternating."""
    sides = [("after", None)] + ([("before", before)] if before else [])
    env_cache = cache or os.environ.get("FLEETSIM_CACHE_DIR") or os.path.expanduser("~/.cache/fleetsim")
    for _ in range(runs):
        for name, src in reversed(sides):
            load = _load()
            out = subprocess.run([sys.executable, "-c", DAYS, str(SCENARIO), str(replications), *SETS[1::2]],
                                 env=_env(src, env_cache), check=True, capture_output=True, text=True,
                                 cwd=tempfile.gettempdir())  # not ROOT: the cwd would shadow PYTHONPATH
            print(f"{name:<7} {out.stdout.strip()} (load average {load})", flush=True)


def cold(before: str | None, precision: float) -> None:
    sides = ([("before", before)] if before else []) + [("after", None)]
    for name, src in sides:
        with tempfile.TemporaryDirectory() as cache:
            print(f"{name}: cold capacity search at precision {precision:.0%}", flush=True)
            # cwd not ROOT: `python -c` puts the cwd first on sys.path, ahead of PYTHONPATH, so
            # run from this checkout the "before" side imported this checkout's package
            subprocess.run([sys.executable, "-c", COLD, str(SCENARIO), str(precision)],
                           env=_env(src, cache), check=True, cwd=tempfile.gettempdir())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["warm", "cold", "days"], nargs="?" if SMOKE else None)
    ap.add_argument("--runs", type=int, default=pick(3, 1))
    ap.add_argument("--before", help="a fleetsim checkout to measure interleaved with this one")
    ap.add_argument("--precision", type=float, default=pick(0.03, 0.1))
    ap.add_argument("--plots", action="store_true", help="warm: with plots and report.html")
    ap.add_argument("--replications", type=int, help="warm: --set fleet.replications=R; days: R (3)")
    ap.add_argument("--cache", help="warm, days: this capacity cache for both sides")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or (os.path.join(tmp, "cache") if SMOKE else None)  # smoke: days reuses warm's
        if args.what in ("warm", None):
            warm(args.runs, args.before, args.plots or SMOKE, args.replications, cache)
        if args.what == "days" or SMOKE:
            days(args.runs, args.before, args.replications or pick(3, 1), cache)
    if args.what == "cold":
        cold(args.before, args.precision)
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
