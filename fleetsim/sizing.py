"""How long a run will take and how much memory it will need, estimated before it starts.

A serving window holds every request in memory until the window ends, so its cost is its
request count: arrivals = rate x duration. A fleet's serving windows run on a cell of
`fleet.windows.cell_replicas` replicas whose arrival rate is the fleet's demand per replica at
that hour: when the fleet is short of demand (budget or supply caps), each cell replica gets
demand / capacity times its share, and the window simulates that many times more requests
(they queue and stay in memory). The estimate bounds the fleet's capacity at each window date
from above (the initial fleet, plus what the budget released by then buys at the best price
per token, within the channels' caps, bans ignored), so the overload it uses is a lower bound.

Per-request and per-day costs are measurements on the shared two-core machine (2026-12-07):
serving windows 6-180 us a request (busy and queueing windows are the cheap end), fleet windows
with thermal state about 36 us (the issue-23 case: 10.75 GB and 531 s of windows for about 15 M
requests), about 700 bytes a request at the peak; cohort runs 6-9 us an event (benchmarks/
bench_reliability.py). The estimate takes the dear end: it is meant to refuse in time, not to
forecast to the second.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from fleetsim.errors import ScenarioError

S_PER_REQUEST = 40e-6          # wall seconds a simulated request (serving and fleet windows)
BYTES_PER_REQUEST = 800.0      # peak memory a request held by its window
S_PER_FLEET_DAY = 2e-3         # the fleet's daily step, per replica type
BASE_BYTES = 250e6             # the interpreter, numpy, pandas, the catalogs
S_PER_CHIP_DAY = 1e-7          # a reliability cohort run (crashes and repairs as events)
BYTES_PER_COHORT_CHIP = 64.0   # per-node state of a cohort run
WARN_TIME_S = 600.0            # past this, a warning with what to change


def memory_limit_bytes() -> float:
    """The memory a run may need before it is refused: $FLEETSIM_MAX_MEMORY_GB (default 4 GB)."""
    try:
        gb = float(os.environ.get("FLEETSIM_MAX_MEMORY_GB", "4"))
    except ValueError:
        gb = 4.0
    return gb * 1e9


@dataclass
class SizeEstimate:
    """Wall time and peak memory of a run, by part, with what would shrink it."""

    time_s: float = 0.0
    peak_bytes: float = BASE_BYTES
    parts: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    field_path: str | None = None  # the field whose change helps most

    def add(self, what: str, time_s: float, peak_bytes: float) -> None:
        self.time_s += time_s
        self.peak_bytes = max(self.peak_bytes, BASE_BYTES + peak_bytes)
        self.parts.append(f"{what}: about {_dur(time_s)}, {peak_bytes / 1e9:.2g} GB")

    def text(self) -> str:
        return (f"size estimate: about {_dur(self.time_s)} and {self.peak_bytes / 1e9:.2g} GB at the peak "
                f"(limit {memory_limit_bytes() / 1e9:.3g} GB, FLEETSIM_MAX_MEMORY_GB); "
                + "; ".join(self.parts))


def _dur(s: float) -> str:
    if s < 90:
        return f"{s:.2g} s"
    if s < 5400:
        return f"{s / 60:.2g} min"
    return f"{s / 3600:.3g} h"


def estimate(scenario: Any, chips: dict, models: dict) -> SizeEstimate:
    """Time and memory of `scenario`'s run (serving window, fleet, cohort run), before it starts."""
    est = SizeEstimate()
    serving = scenario.serving
    if scenario.fleet is not None and serving is not None:
        _fleet(est, scenario, chips, models)
    elif serving is not None:
        from fleetsim.serving.window import built_parts

        _, _, _, workloads = built_parts(scenario)
        n = sum(w.mean_rate_per_s for w in workloads.values()) * serving.duration_s
        est.add(f"serving window ({n:.3g} requests)", n * S_PER_REQUEST, n * BYTES_PER_REQUEST)
        est.advice.append("shorten serving.duration_s or lower the arrival rates")
        est.field_path = "serving.duration_s"
    rel = scenario.reliability
    if rel is not None and rel.cohort_run is not None:
        run = rel.cohort_run
        chip_days = sum(c.count * (run.days - c.start_day) for c in run.cohorts)
        n_chips = sum(c.count for c in run.cohorts)
        est.add(f"cohort run ({chip_days:.3g} chip-days)", chip_days * S_PER_CHIP_DAY,
                n_chips * BYTES_PER_COHORT_CHIP + run.days * 24 * 8 * 16 * len(run.cohorts))
        if est.field_path is None:
            est.advice.append("model a representative sample of the chips and scale the counts")
            est.field_path = "reliability.cohort_run.cohorts"
    return est


def _saturation(chips: dict, models: dict, pool: Any, serving: Any) -> tuple[float, float]:
    """(requests/s, output tokens/s) of one replica of `pool` at a full batch (the kernel's
    offline throughput on its workloads' median lengths); (0, 0) when it cannot be built."""
    from fleetsim.errors import FleetsimError
    from fleetsim.kernel.latency import ReplicaKernel
    from fleetsim.kernel.throughput import offline_throughput

    try:
        k = ReplicaKernel(chips[pool.chip], models[pool.model], pool.tp, pool.precision)
    except (FleetsimError, KeyError):
        return 0.0, 0.0
    best_rps, best_tps = 0.0, 0.0
    for wl in serving.workloads.values():
        if wl.model != pool.model:
            continue
        prompt = float(getattr(wl.prompt_tokens, "median", None) or 512)
        output = float(getattr(wl.output_tokens, "median", None) or 128)
        ss = offline_throughput(k, prompt, output, pool.batching.max_batch)
        best_rps = max(best_rps, ss.output_tokens_per_s / output)
        best_tps = max(best_tps, ss.output_tokens_per_s)
    return best_rps, best_tps


def _fleet(est: SizeEstimate, scenario: Any, chips: dict, models: dict) -> None:
    import numpy as np

    from fleetsim.fleet import demand as dem

    f, serving = scenario.fleet, scenario.serving
    days = f.days
    est.add(f"fleet days ({days} x {len(serving.pools)} replica types)",
            days * len(serving.pools) * S_PER_FLEET_DAY, days * len(serving.pools) * 400.0)
    win = f.windows
    if win is None or not win.enabled:
        return
    wdays = list(range(win.every_days - 1, days, win.every_days))
    if win.max_windows is not None:
        wdays = wdays[: win.max_windows]
    if not wdays:
        return
    sat = {name: _saturation(chips, models, pool, serving) for name, pool in serving.pools.items()}
    cell_rps = max((r for r, _ in sat.values()), default=0.0) * win.cell_replicas
    # demand at each window's hour (the daily peak: windows default to the peak hour)
    t = np.array(wdays, dtype=float)
    from fleetsim.fleet.tokens import base_tokens_per_s, class_tokens

    tokens = class_tokens(scenario)
    peak = sum(dem.forecast(d, f, days, base_tokens_per_s(d, tokens[c]))[wdays] * d.peak_to_mean
               for c, d in f.demand.items())
    cap = _capacity_bound(scenario, chips, sat, t)
    overload = np.where(cap > 0, peak / np.maximum(cap, 1e-300), np.inf)
    overload = np.clip(overload, 1.0, 1e12)
    # twice the cell's saturation rate at least (a fleet just short of demand), times the overload
    per_window = 2.0 * cell_rps * overload * win.duration_s
    total = float(per_window.sum())
    worst = float(per_window.max())
    est.add(f"{len(wdays)} fleet serving windows (up to {worst:.3g} requests each; demand up to "
            f"{float(overload.max()):.3g}x what the budget and caps can buy)",
            total * S_PER_REQUEST, worst * BYTES_PER_REQUEST)
    if float(overload.max()) > 2.0:
        est.advice.append(
            f"the fleet can serve at most 1/{float(overload.max()):.3g} of demand by its last window "
            "(budget, supply caps), so each window's cell queues that many times its capacity: lower "
            "fleet.demand (tokens_per_s, growth_per_year), raise fleet.budget.total_usd, or shorten "
            "fleet.windows.duration_s")
        est.field_path = "fleet.demand"
    else:
        est.advice.append("shorten fleet.windows.duration_s, lower cell_replicas, or run fewer windows "
                          "(every_days, max_windows, enabled: false)")
        est.field_path = "fleet.windows.duration_s"


def _capacity_bound(scenario: Any, chips: dict, sat: dict, t: Any) -> Any:
    """Output tokens/s the fleet could have on days `t`, at most: the initial fleet plus what the
    budget released by then buys at the best price per token/s, within each channel's caps, with
    every channel open; rent channels unbounded."""
    import numpy as np

    f, serving = scenario.fleet, scenario.serving
    per_chip = {}  # chip -> best output tokens/s per chip
    for name, pool in serving.pools.items():
        tps = sat[name][1] / max(pool.tp, 1)
        per_chip[pool.chip] = max(per_chip.get(pool.chip, 0.0), tps)
    base = sum(c.count * per_chip.get(c.chip, 0.0) for c in f.initial_fleet)
    years = max(1, int(math.ceil(f.years - 1e-9)))
    shares = [1.0 / years] * years if f.budget.schedule == "even" else list(f.budget.schedule)
    offers = []  # (USD per token/s, token/s per chip, channel)
    for ch_name, ch in f.channels.items():
        for off in ch.offers:
            tps = per_chip.get(off.chip, 0.0)
            if tps <= 0:
                continue
            if ch.kind == "rent":
                return np.full(len(t), np.inf)  # a rent channel has no budget: no bound
            price = off.price_usd or getattr(chips.get(off.chip), "price_usd", None)
            if not price:
                continue
            offers.append((price * (1 + ch.levy) / tps, tps, ch_name))
    offers.sort()
    out = []
    for day in t:
        released = sum(shares[: min(len(shares), int(day // 365) + 1)]) * f.budget.total_usd
        months = day / 30.44 + 1
        left, cap = released, base
        for usd_per_tps, tps, ch_name in offers:
            ch = f.channels[ch_name]
            limit = math.inf
            if ch.cap_per_month is not None:
                limit = ch.cap_per_month * months
            if ch.cap_per_quarter:
                limit = min(limit, sum(ch.cap_per_quarter.values()))
            chips_bought = min(left / (usd_per_tps * tps), limit)
            cap += chips_bought * tps
            left -= chips_bought * usd_per_tps * tps
            if left <= 0:
                break
        out.append(cap)
    return np.array(out)


def check(scenario: Any, chips: dict, models: dict) -> SizeEstimate:
    """Refuse a run whose estimated peak memory is past the limit, naming what to change."""
    est = estimate(scenario, chips, models)
    limit = memory_limit_bytes()
    if est.peak_bytes > limit:
        raise ScenarioError(
            f"this run would need about {est.peak_bytes / 1e9:.3g} GB of memory and {_dur(est.time_s)} "
            f"(limit {limit / 1e9:.3g} GB; set FLEETSIM_MAX_MEMORY_GB to change it): "
            f"{'; '.join(est.parts)}. To shrink it: {'; '.join(est.advice) or 'shorten the run'}",
            field=est.field_path)
    return est


def warnings(est: SizeEstimate) -> list[str]:
    """Lines to print before a long run starts."""
    if est.time_s <= WARN_TIME_S:
        return []
    return [f"this run may take about {_dur(est.time_s)} ({'; '.join(est.parts)}); to shorten it: "
            f"{'; '.join(est.advice)}"]
