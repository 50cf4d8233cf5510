"""The story's decision criteria, computed (`fleetsim criteria`): "choose the domestic chip when /
choose Nvidia when", each with the threshold the runs give.

Three kinds of threshold, each from the layer that settles it:

1. **Cost sensitivity** (capacity function): the break-even price fraction of the chip (of its
   reference chip's price, at the scenario's performance fraction) below which its cost per Mtok
   at SLO is lower than the alternative's (`decide.cost_frontier`). Its interval: the same
   solve at the ends of both goodput intervals (chip low with alternative high, and the reverse).
2. **Supply security as a ban probability** (fleet runs on common random numbers): two fleets
   from the scenario, both keeping its installed fleet, its demand and everything else: *chip*
   buys only through the chip's channel(s), *versus* only through the alternative's, whose
   scripted regime events are replaced by a random ban cycle (exporter side `banned`) that closes
   with probability p a year (exponential sojourns: mean open days 365.25 / -ln(1 - p), mean
   closed days `ban_days`; the planner's `risk_per_year` is set to p). Over a grid of p the
   paired difference versus - chip, future by future with a 95% t interval, of the cost per Mtok
   of demand (the all-in cost of the tokens served, which the capacity function serves at the
   SLO: depreciation, impairments, power, opex; plus unmet tokens at `unmet_usd_per_mtok`, over
   all demand tokens, so a fleet that buys less does not look cheaper for serving less), of the
   all-in cost per Mtok served alone, and of the unmet-demand share. The threshold is the p where
   the mean difference crosses 0 (linear between grid points); its interval, where the
   interval's ends cross.
3. **Breaking points** (capacity function): for each of the two replica types, the largest
   model (a ladder of dense catalog models from the replica's own model up, each at the
   replica's tp or, where it does not fit, its smallest working tp within a scale-up domain;
   smaller models are not searched: they only serve faster), the longest prompt
   (the prompt distribution's median and cap scaled together) and the tightest TTFT target at
   which the replica still has positive goodput at the SLO. Positive goodput is tested as the
   goodput search tests it first: the share of its request sample meeting the SLO on an idle
   replica reaches the percentile (no window runs, so a probe costs milliseconds); geometric
   bisection to 0.5% on that sample (common random numbers), with a 95% interval from the
   share's Wilson interval (the values where it lies wholly above, or last reaches, the
   percentile).
4. **Heat and crash rate** (the story's chips "overheat and crash under long high load"): a scale
   on the chip's thermal resistance (`r_th_c_per_w`: a hotter die at the same power, so DVFS and
   throttling in every goodput window and a higher Arrhenius and over-temperature hazard) or on
   its crash hazard (`hazard_multiplier`: availability and the fleet's crashes). Two thresholds
   each: the scale at which the chip's fleet stops being cheaper per Mtok of demand than the
   alternative's (paired fleets as in 2, the alternative never banned, bisection on the same
   futures), and the scale at which the chip is dearer per Mtok at SLO than the alternative even
   free (capacity only; crash probes reuse the one goodput search: crash figures are not in the
   search's cache key).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from fleetsim.errors import ScenarioError
from fleetsim.stats import t_interval

MODEL_LADDER = ("qwen2.5-7b", "qwen3-32b", "qwen2.5-72b", "llama-3.1-405b")  # dense, by size
DAYS_PER_YEAR = 365.25


# ---- scenario variants ------------------------------------------------------------------------

def _rebuild(scenario, data: dict):
    from fleetsim.scenario.model import Scenario

    out = Scenario.model_validate(data)
    out._source_path = scenario._source_path
    return out


def _channels_of(scenario, chip: str) -> list[str]:
    return [n for n, ch in scenario.fleet.channels.items() if any(o.chip == chip for o in ch.offers)]


def buying_only(scenario, chip: str, name: str | None = None):
    """The scenario buying new chips only through `chip`'s channel(s); the installed fleet,
    demand, removals, finance and the rest unchanged. Pools of chips neither bought nor installed
    are dropped."""
    d = scenario.model_dump(mode="json", by_alias=True, exclude_unset=True)
    keep = set(_channels_of(scenario, chip))
    if not keep:
        raise ScenarioError(f"no channel offers chip '{chip}'", field="fleet.channels")
    f = d["fleet"]
    # the installed fleet's channels stay (US dependence, removals), closed for new orders
    closed = {b["channel"] for b in f.get("initial_fleet", [])} - keep
    for n in closed:
        ch = f["channels"][n]
        for k in ("initial_state", "initial_importer", "random_cycle"):
            ch.pop(k, None)
        ch["initial_exporter"] = "banned"
        ch["risk_per_year"] = 0.0
    f["channels"] = {n: c for n, c in f["channels"].items() if n in keep | closed}
    installed = {b["chip"] for b in f.get("initial_fleet", [])}
    chips = {chip} | installed
    d["serving"]["pools"] = {n: p for n, p in d["serving"]["pools"].items() if p["chip"] in chips}
    if f.get("capacity"):  # capacity given by hand: only for the pools kept
        f["capacity"] = {n: c for n, c in f["capacity"].items() if n in d["serving"]["pools"]}
    refs = {}
    for role, names in f.get("reference_events", {}).items():
        names = [names] if isinstance(names, str) else names
        kept = [n for n in names if n in keep]  # the closed channels stay closed: no events
        if kept:
            refs[role] = kept if len(kept) > 1 else kept[0]
    f["reference_events"] = refs
    f["events"] = [e for e in f.get("events", []) if e["channel"] in keep]
    fin = f.get("finance", {})
    subs = []
    for s in fin.get("subsidies", []):
        sc = [c for c in s["chips"] if c in chips]
        if sc:
            subs.append({**s, "chips": sc})
    if "subsidies" in fin:
        fin["subsidies"] = subs
    d["name"] = name or f"{scenario.name}-only-{chip}"
    return _rebuild(scenario, d)


def with_ban_probability(scenario, chip: str, p: float, ban_days: float):
    """`chip`'s channels closed at random: a ban (exporter `banned`) with probability `p` a year,
    lasting `ban_days` on average, instead of their scripted regime events."""
    if not 0 <= p < 1:
        raise ScenarioError(f"ban probability {p} must be in [0, 1)", field="criteria --ban-prob")
    d = scenario.model_dump(mode="json", by_alias=True, exclude_unset=True)
    f = d["fleet"]
    names = set(_channels_of(scenario, chip))
    refs = {}
    for role, ns in f.get("reference_events", {}).items():
        ns = [ns] if isinstance(ns, str) else ns
        kept = [n for n in ns if n not in names]
        if kept:
            refs[role] = kept if len(kept) > 1 else kept[0]
    f["reference_events"] = refs
    f["events"] = [e for e in f.get("events", []) if e["channel"] not in names]
    for n in names:
        ch = f["channels"][n]
        for k in ("initial_state", "initial_exporter", "random_cycle"):
            ch.pop(k, None)
        ch["risk_per_year"] = float(p)
        if p > 0:
            ch["random_cycle"] = {"mean_open_days": DAYS_PER_YEAR / -math.log1p(-p),
                                  "mean_closed_days": float(ban_days), "closed_state": "banned"}
    return _rebuild(scenario, d)


# ---- 1. cost sensitivity -----------------------------------------------------------------------

def _relative(scenario, chip: str) -> tuple[str, float, float]:
    rel = (scenario.catalog.chips.get(chip) or {}).get("relative_to") if scenario.catalog.chips else None
    if not isinstance(rel, dict):
        raise ScenarioError(f"chip '{chip}' is not stated relative to another (catalog.chips.{chip}.relative_to)",
                            field=f"catalog.chips.{chip}.relative_to")
    return rel["chip"], float(rel.get("perf_fraction", 1.0)), float(rel.get("price_fraction", 1.0))


def break_even_price(scenario, chip: str, versus: str, cache=None, progress=None) -> dict[str, Any]:
    """Break-even price fraction at the scenario's performance fraction, with its interval from
    both replica types' goodput intervals (power held at the estimate's load)."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.fleet.capacity import replica_capacities
    from fleetsim.sweep.decide import _pool_of, _price, cost_frontier, replica_economics

    ref, perf, price = _relative(scenario, chip)
    costs = cost_frontier(scenario, chip, versus, ref, [perf], [price], cache=cache, progress=progress)
    row = costs.iloc[0]
    chips, models = resolve_catalogs(scenario)
    caps = replica_capacities(scenario, chips, models, cache=cache, progress=progress)
    cp, vp = _pool_of(scenario, chip, "criteria --chip"), _pool_of(scenario, versus, "criteria --versus")
    wl = next(w for (p, w) in caps if p == cp)
    ref_price = _price(scenario, ref, chips)
    v_price = _price(scenario, versus, chips)

    def q_at(c_rps: float, v_rps: float) -> float:
        mine = replica_economics(scenario, cp, dataclasses.replace(caps[(cp, wl)], goodput_rps=c_rps), chips)
        theirs = replica_economics(scenario, vp, dataclasses.replace(caps[(vp, wl)], goodput_rps=v_rps), chips)
        vc = theirs.cost_usd_per_mtok(v_price)
        a = mine.capex_usd_per_year_per_unit_price * ref_price
        if a <= 0 or mine.tokens_per_year <= 0 or not math.isfinite(vc):
            return math.nan
        return (vc * mine.tokens_per_year / 1e6 - mine.fixed_usd_per_year) / a

    c_ci = caps[(cp, wl)].goodput_ci95_rps or (caps[(cp, wl)].goodput_rps,) * 2
    v_ci = caps[(vp, wl)].goodput_ci95_rps or (caps[(vp, wl)].goodput_rps,) * 2
    return {"reference": ref, "perf_fraction": perf, "price_fraction": price,
            "break_even_price_fraction": float(row.break_even_price_fraction),
            "ci95": (q_at(c_ci[0], v_ci[1]), q_at(c_ci[1], v_ci[0])),
            "chip_cost_usd_per_mtok": float(row.chip_cost_usd_per_mtok_at_slo),
            "versus_cost_usd_per_mtok": float(row.versus_cost_usd_per_mtok_at_slo),
            "chip_goodput_rps": caps[(cp, wl)].goodput_rps, "chip_goodput_ci95_rps": tuple(c_ci),
            "chip_availability": float(caps[(cp, wl)].availability),
            "versus_goodput_rps": caps[(vp, wl)].goodput_rps, "versus_goodput_ci95_rps": tuple(v_ci)}


# ---- 2. supply security as a ban probability ---------------------------------------------------

def crossing(x, y) -> float:
    """First x where y rises through 0, linear between points; -inf if y > 0 at the first
    point already, +inf if it never does (NaN where y is NaN there)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(y) and np.isfinite(y).any():  # rounding noise around an exact tie counts as 0
        y = np.where(np.abs(y) <= 1e-12 * max(1.0, float(np.nanmax(np.abs(y)))), 0.0, y)
    if not len(y) or np.isnan(y[0]):
        return math.nan
    if y[0] > 0:
        return -math.inf
    for i in range(1, len(x)):
        if np.isnan(y[i]):
            return math.nan
        if y[i] > 0:
            return float(x[i - 1] + (x[i] - x[i - 1]) * (0 - y[i - 1]) / (y[i] - y[i - 1]))
    return math.inf


def _futures(scenario) -> pd.DataFrame:
    import fleetsim

    res = fleetsim.run(scenario)
    return res.replicates.sort_values("future").reset_index(drop=True)


METRICS = ("cost_usd_per_demand_mtok", "all_in_cost_usd_per_mtok", "unmet_demand_share", "capex_usd_total",
           "impairment_usd")
UNMET_USD_PER_MTOK = 10.0  # the optimal planner's default unmet penalty (PlannerConfig), an ASSUMPTION


def _priced(rep: pd.DataFrame, unmet_usd_per_mtok: float) -> pd.DataFrame:
    """Cost per Mtok of demand: the all-in cost of what was served plus unmet tokens at a price,
    over all demand, so a fleet that buys less does not look cheaper for serving less."""
    served, demand = rep["served_mtok"].to_numpy(float), rep["demand_mtok"].to_numpy(float)
    cost = rep["all_in_cost_usd_per_mtok"].to_numpy(float) * served + unmet_usd_per_mtok * (demand - served)
    return rep.assign(cost_usd_per_demand_mtok=cost / demand)


def ban_threshold(scenario, chip: str, versus: str, ban_probs: list[float], futures: int = 8,
                  ban_days: float = 240.0, windows: bool = False,
                  unmet_usd_per_mtok: float = UNMET_USD_PER_MTOK,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Paired fleets (chip-only vs versus-only buying) over the versus channel's ban probability:
    the table and the probability above which the chip's fleet is cheaper per Mtok, and above
    which it leaves less demand unmet."""
    over = [f"fleet.replications={futures}"] + ([] if windows else ["fleet.windows.enabled=false"])
    base = scenario.with_overrides(over)
    mine = _priced(_futures(buying_only(base, chip)), unmet_usd_per_mtok)
    if log:
        log(f"... {chip}-only fleet: {futures} futures")
    rows = []
    for p in ban_probs:
        theirs = _priced(_futures(with_ban_probability(buying_only(base, versus), versus, p, ban_days)),
                         unmet_usd_per_mtok)
        if log:
            log(f"... {versus}-only fleet at ban probability {p:.2f}/yr: {futures} futures")
        row: dict[str, Any] = {"ban_probability_per_year": float(p)}
        for m in METRICS:
            d = theirs[m].to_numpy(float) - mine[m].to_numpy(float)
            row[f"{versus}_{m}"], row[f"{versus}_{m}_lo"], row[f"{versus}_{m}_hi"] = t_interval(theirs[m])
            row[f"{chip}_{m}"], row[f"{chip}_{m}_lo"], row[f"{chip}_{m}_hi"] = t_interval(mine[m])
            row[f"diff_{m}"], row[f"diff_{m}_lo"], row[f"diff_{m}_hi"] = t_interval(d)
        rows.append(row)
    table = pd.DataFrame(rows)
    p = table.ban_probability_per_year
    out: dict[str, Any] = {"table": table, "futures": futures, "ban_days": ban_days,
                           "unmet_usd_per_mtok": unmet_usd_per_mtok}
    for key, m in (("cost", "cost_usd_per_demand_mtok"), ("served_cost", "all_in_cost_usd_per_mtok"),
                   ("unmet", "unmet_demand_share")):
        # the upper end of the interval crosses first (its difference rises with p)
        out[f"{key}_threshold"] = crossing(p, table[f"diff_{m}"])
        out[f"{key}_threshold_ci95"] = (crossing(p, table[f"diff_{m}_hi"]), crossing(p, table[f"diff_{m}_lo"]))
    return out


# ---- 3. breaking points ------------------------------------------------------------------------

def _goodput(scenario, pool: str, workload: str, cache, progress) -> float:
    """Goodput per replica at the SLO; NaN where it is positive but the search gave no figure."""
    from fleetsim.serving.capacity import capacity

    try:
        c = capacity(scenario, pool, workload, cache=cache, progress=progress)
    except ScenarioError:  # does not fit, context too long: no goodput
        return 0.0
    if math.isfinite(c.goodput_rps):
        return float(c.goodput_rps)
    # the search could not fit a rate: positive goodput iff an idle replica meets the SLO
    pct = scenario.serving.workloads[workload].slo.percentile / 100.0
    return math.nan if c.zero_load_attainment >= pct else 0.0


def _idle(scenario, pool: str, workload: str) -> dict[str, float]:
    """Idle attainment of the goodput search's own request sample, with its Wilson 95% interval
    (fleetsim.serving.goodput.idle_attainment): positive goodput iff it reaches the percentile."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.errors import FleetsimError
    from fleetsim.serving.goodput import idle_attainment
    from fleetsim.stats import wilson_interval

    sv = scenario.serving
    try:
        chips, models = resolve_catalogs(scenario)
        k, n = idle_attainment(sv.pools[pool], sv.workloads[workload], sv.goodput, chips, models, scenario.seed,
                               scenario.base_dir, sv.router.kind, workload, pool, sv.start_hour)
    except FleetsimError:  # does not fit, context too long: nothing meets the SLO
        k, n = 0, 1
    lo, hi = wilson_interval(k, n)
    return {"share": k / n, "lo": lo, "hi": hi, "n": n}


def _bisect(ok: Callable[[float], bool], good: float, bad: float, steps: int = 60,
            rel_tol: float = 0.0) -> tuple[float, float]:
    """Geometric bisection between a passing and a failing value: (last passing, first failing),
    stopping after `steps` or once the two are within `rel_tol` of each other."""
    for _ in range(steps):
        if abs(math.log(bad / good)) <= math.log1p(rel_tol):
            break
        mid = math.sqrt(good * bad)
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good, bad


def _fits(chip, model, tp: int, precision: str) -> bool:
    from fleetsim.errors import FleetsimError
    from fleetsim.kernel.latency import ReplicaKernel, allowed_tp

    allowed = allowed_tp(model)
    if allowed is not None and tp not in allowed:
        return False
    try:
        ReplicaKernel(chip, model, tp, precision)
    except FleetsimError:
        return False
    return True


BREAK_REL_TOL = 0.005  # resolution of a breaking point (probes cost milliseconds: no window runs)


def _edge(probe: Callable[[float], dict], good: float, bad: float, rel_tol: float) -> dict[str, Any]:
    """Where positive goodput stops between `good` (passing) and `bad` (failing): the estimate
    (the sample's idle attainment reaches the percentile `pct` of the probe) and its 95% interval:
    from the last value whose attainment interval lies wholly above the percentile to the last
    whose interval still reaches it. The probes share one request sample (same seed and window:
    common random numbers), so attainment is monotone in the value and bisection is exact."""
    out: dict[str, Any] = {}
    for name, key in (("estimate", "share"), ("sure", "lo"), ("maybe", "hi")):
        ok = lambda v, key=key: probe(v)[key] >= probe(v)["pct"]  # noqa: E731
        if not ok(good):
            out[name] = (None, good)   # fails already at the passing end
        elif ok(bad):
            out[name] = (bad, None)    # passes even at the failing end
        else:
            out[name] = _bisect(ok, good, bad, rel_tol=rel_tol)
    return out


def breaking_points(scenario, pool: str, steps: int = 4, cache=None, progress=None,
                    models_ladder: tuple[str, ...] = MODEL_LADDER, rel_tol: float = BREAK_REL_TOL) -> dict[str, Any]:
    """Largest model, longest prompt median and tightest TTFT target at which one replica of
    `pool` still has positive goodput at the SLO, each with its bracket (the bisection's last
    passing and first failing value) and its 95% interval (`_edge`). Positive goodput is tested
    exactly as the goodput search tests it first, on an idle replica, so no window is simulated
    (the full search near a breaking point needs hundreds of windows: its rate is tiny and its
    attainment curve steep). `steps` is kept for the callers; the bisection stops at `rel_tol`."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.checks import _working_tp

    sv = scenario.serving
    pcfg = sv.pools[pool]
    wname = next(w for w, wl in sv.workloads.items() if wl.model == pcfg.model)
    wl = sv.workloads[wname]
    pct = wl.slo.percentile / 100.0
    chips, models = resolve_catalogs(scenario)
    pos = lambda a: a["share"] >= pct  # noqa: E731
    base_idle = _idle(scenario, pool, wname)
    out: dict[str, Any] = {"pool": pool, "chip": pcfg.chip, "workload": wname, "percentile": pct,
                           "goodput_rps": _goodput(scenario, pool, wname, cache, progress),
                           "idle_attainment": base_idle}

    def memo(make):
        seen: dict[float, dict] = {}

        def probe(v: float) -> dict:
            if v not in seen:
                seen[v] = _idle(make(v), pool, wname) | {"pct": pct}
            return seen[v]
        return probe

    # model size: the ladder, each model at its smallest working tp within a scale-up domain
    ladder = []
    own = models[pcfg.model].total_params_b or 0.0
    for m in models_ladder:
        if (models[m].total_params_b or 0.0) < own:  # smaller than the replica's own model: not searched
            continue                                  # (a smaller model only serves faster)
        tp = _working_tp(chips[pcfg.chip], models[m], pcfg.precision)
        if tp is not None and tp < pcfg.tp:  # no narrower than the scenario's replica (more chips only help)
            tp = pcfg.tp if _fits(chips[pcfg.chip], models[m], pcfg.tp, pcfg.precision) else tp
        a = {"share": 0.0, "lo": 0.0, "hi": 0.0, "n": 0}
        if tp is not None:
            sc = scenario.with_overrides([f"serving.pools.{pool}.model={m}", f"serving.pools.{pool}.tp={tp}",
                                          f"serving.workloads.{wname}.model={m}"])
            a = _idle(sc, pool, wname)
        ladder.append({"model": m, "params_b": float(models[m].total_params_b or math.nan), "tp": tp,
                       "idle_attainment": a["share"], "idle_attainment_ci95": (a["lo"], a["hi"]),
                       "positive": bool(pos(a))})
    passing = [r for r in ladder if r["positive"]]
    failing = [r for r in ladder if not r["positive"] and (not passing or r["params_b"] > passing[-1]["params_b"])]
    out["model"] = {"largest": passing[-1]["model"] if passing else None,
                    "first_failing": failing[0]["model"] if failing else None, "ladder": ladder}

    # prompt length: the median (and cap) scaled by k
    pt = wl.prompt_tokens
    med = float(getattr(pt, "median", None) or getattr(pt, "value", None) or 0.0)
    cap = getattr(pt, "max", None)
    ctx = float(models[pcfg.model].max_context_tokens)
    out_max = float(getattr(wl.output_tokens, "max", None) or getattr(wl.output_tokens, "value", None) or 0.0)

    def prompt_sc(k: float):
        if getattr(pt, "kind", "") == "fixed":
            return scenario.with_overrides([f"serving.workloads.{wname}.prompt_tokens.value={int(med * k)}"])
        ov = [f"serving.workloads.{wname}.prompt_tokens.median={med * k!r}"]
        if cap is not None:
            ov.append(f"serving.workloads.{wname}.prompt_tokens.max={int(min(cap * k, ctx - out_max))}")
        return scenario.with_overrides(ov)

    k_max = max((ctx - out_max) / max(float(cap or med), 1.0), 1.0) if med > 0 else 1.0
    if not pos(base_idle) or med <= 0:
        out["prompt"] = {"median_tokens": None, "bracket": (None, med), "ci95": (None, None),
                         "note": "no goodput at the scenario's prompts"}
    else:
        e = _edge(memo(prompt_sc), 1.0, k_max, rel_tol)
        tok = lambda k: None if k is None else med * k  # noqa: E731
        g, b = e["estimate"]
        out["prompt"] = {"median_tokens": tok(g), "bracket": (tok(g), tok(b)),
                         "ci95": (tok(e["sure"][0]), tok(e["maybe"][0])),
                         "note": "positive goodput up to the model's context" if b is None else ""}

    # TTFT target: the tightest at which goodput stays positive
    ttft = float(wl.slo.ttft_s)
    ttft_sc = lambda t: scenario.with_overrides([f"serving.workloads.{wname}.slo.ttft_s={t!r}"])  # noqa: E731
    lo = ttft / 64.0
    if not pos(base_idle):
        out["ttft"] = {"tightest_s": None, "bracket": (ttft, None), "ci95": (None, None),
                       "note": "no goodput at the scenario's target"}
    else:
        e = _edge(memo(ttft_sc), ttft, lo, rel_tol)
        g, b = e["estimate"]
        out["ttft"] = {"tightest_s": g if b is not None else lo, "bracket": (b, g),
                       "ci95": (e["maybe"][0], e["sure"][0]),
                       "note": f"positive goodput even at {lo:.3g} s" if b is None else ""}
    return out


# ---- 4. heat and crash rate: where the chip stops being the right choice ----------------------

STRESS_AXES = {
    "crash": ("hazard_multiplier", "crash rate (x the catalog's hazard)", 100.0),
    "heat": ("r_th_c_per_w", "thermal resistance (x the catalog's: a hotter die at the same power)", 4.0),
}


def stress_overrides(scenario, chip: str, axis: str, scale: float) -> list[str]:
    """`reliability.chips.CHIP.<param> = scale x` the value the run resolves (catalog, then the
    scenario's own override). Crash: the hazard multiplier (the fleet's crashes and the capacity's
    availability). Heat: the thermal resistance, so the die runs hotter at the same power: DVFS
    and hardware throttling slow the replica in every goodput window, and the hotter die raises
    the crash hazard (Arrhenius, the over-temperature knee, extended high load)."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.reliability import resolve_chip
    from fleetsim.scenario.reliability import ReliabilityConfig

    if axis not in STRESS_AXES:
        raise ScenarioError(f"unknown stress axis '{axis}'; allowed: {', '.join(STRESS_AXES)}", field="criteria")
    if not scale > 0:
        raise ScenarioError(f"stress scale {scale} must be > 0", field="criteria")
    chips, _ = resolve_catalogs(scenario)
    rel = scenario.reliability if scenario.reliability is not None else ReliabilityConfig()
    param = STRESS_AXES[axis][0]
    base = float(getattr(resolve_chip(rel, chip, chips), param))
    return [f"reliability.chips.{chip}.{param}={base * float(scale)!r}"]


def stress_threshold(scenario, chip: str, versus: str, axis: str, futures: int = 8, ban_prob: float = 0.0,
                     ban_days: float = 240.0, steps: int = 4, scale_max: float | None = None,
                     unmet_usd_per_mtok: float = UNMET_USD_PER_MTOK, cache=None, progress=None,
                     versus_runs: pd.DataFrame | None = None,
                     log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The scale of `axis` (crash or heat, STRESS_AXES) on `chip` at which its fleet stops being
    cheaper per Mtok of demand than `versus`'s (both fleets as in `ban_threshold`, the versus
    channel closing with probability `ban_prob` a year; the same futures at every probe: common
    random numbers). Geometric bisection from 1 to `scale_max` on the sign of the paired mean
    difference, `steps` probes at most, stopping early once the difference's interval holds 0 at
    both ends of the bracket (the futures cannot place the crossing more finely). The threshold
    is the crossing of the mean difference, linear in log scale between the probes that bracket
    it; its interval is where the interval's ends cross (`crossing` over all probes, ordered).
    Each probe also gives the capacity-only figures: the chip's goodput, availability and
    break-even price fraction at that stress."""
    over = [f"fleet.replications={futures}", "fleet.windows.enabled=false"]
    base = scenario.with_overrides(over)
    if axis not in STRESS_AXES:
        raise ScenarioError(f"unknown stress axis '{axis}'; allowed: {', '.join(STRESS_AXES)}", field="criteria")
    s_max = float(scale_max or STRESS_AXES[axis][2])
    if versus_runs is None:
        versus_runs = _futures(with_ban_probability(buying_only(base, versus), versus, ban_prob, ban_days))
    theirs = _priced(versus_runs, unmet_usd_per_mtok)
    probes: dict[float, dict[str, Any]] = {}

    def probe(s: float) -> dict[str, Any]:
        if s in probes:
            return probes[s]
        sc = base.with_overrides(stress_overrides(base, chip, axis, s))
        mine = _priced(_futures(buying_only(sc, chip)), unmet_usd_per_mtok)
        row: dict[str, Any] = {"scale": float(s)}
        for m in ("cost_usd_per_demand_mtok", "unmet_demand_share"):
            d = theirs[m].to_numpy(float) - mine[m].to_numpy(float)
            row[f"{chip}_{m}"], row[f"{chip}_{m}_lo"], row[f"{chip}_{m}_hi"] = t_interval(mine[m])
            row[f"diff_{m}"], row[f"diff_{m}_lo"], row[f"diff_{m}_hi"] = t_interval(d)
        try:
            pr = break_even_price(sc, chip, versus, cache=cache, progress=progress)
            row |= {"break_even_price_fraction": pr["break_even_price_fraction"],
                    "break_even_ci95_lo": pr["ci95"][0], "break_even_ci95_hi": pr["ci95"][1],
                    "chip_availability": pr["chip_availability"],
                    "chip_goodput_rps": pr["chip_goodput_rps"]}
        except ScenarioError:  # the chip is not stated relative to another: no break-even price
            pass
        probes[s] = row
        if log:
            log(f"... {chip} {axis} x{s:.3g}: {versus}-only minus {chip}-only "
                f"{row['diff_cost_usd_per_demand_mtok']:+.3f} USD/Mtok of demand")
        return row

    key = "diff_cost_usd_per_demand_mtok"
    holds0 = lambda r: r[f"{key}_lo"] <= 0 <= r[f"{key}_hi"]  # noqa: E731
    good, bad = 1.0, s_max
    note = ""
    if not probe(good)[key] > 0:
        note = f"{versus}-only fleet already no dearer at the catalog's figure"
    elif probe(bad)[key] > 0:
        note = f"{chip}-only fleet still cheaper at {s_max:g}x"
    else:
        for _ in range(max(steps - 2, 0)):
            if holds0(probe(good)) and holds0(probe(bad)):
                break  # both ends indistinguishable from a tie: finer probes only chase noise
            mid = math.sqrt(good * bad)
            if probe(mid)[key] > 0:
                good = mid
            else:
                bad = mid
    table = pd.DataFrame([probes[s] for s in sorted(probes)])
    x = np.log(table.scale.to_numpy(float))
    # the chip's advantage falls with the stress: crossing() looks for a rise, so negate
    cross = lambda col: crossing(x, -table[col].to_numpy(float))  # noqa: E731
    ex = lambda v: v if not math.isfinite(v) else float(math.exp(v))  # noqa: E731
    thr = ex(cross(key))
    lo, hi = ex(cross(f"{key}_lo")), ex(cross(f"{key}_hi"))
    return {"axis": axis, "label": STRESS_AXES[axis][1], "param": STRESS_AXES[axis][0], "scale_max": s_max,
            "ban_probability_per_year": float(ban_prob), "futures": futures, "table": table,
            "threshold": thr, "threshold_ci95": (lo, hi), "bracket": (good, bad) if not note else (None, None),
            "note": note, "unmet_usd_per_mtok": unmet_usd_per_mtok}


def stress_break_even(scenario, chip: str, versus: str, axis: str, target: float = 0.0,
                      scale_max: float | None = None, rel_tol: float = 0.02, steps: int = 12,
                      cache=None, progress=None) -> dict[str, Any]:
    """Capacity only: the scale of `axis` on `chip` at which its break-even price fraction
    (`break_even_price`, cost per Mtok at SLO equal to `versus`'s) falls to `target` (0: the chip
    is dearer per Mtok even free). Bisection in log scale to `rel_tol`; its interval is where the
    break-even interval's ends reach the target. A crash probe reuses the chip's one goodput search
    (crashes are out of the search's windows and its cache key); a heat probe is a new search."""
    s_max = float(scale_max or STRESS_AXES[axis][2])
    probes: dict[float, dict[str, Any]] = {}

    def probe(s: float) -> dict[str, Any]:
        if s not in probes:
            sc = scenario.with_overrides(stress_overrides(scenario, chip, axis, s))
            pr = break_even_price(sc, chip, versus, cache=cache, progress=progress)
            probes[s] = {"scale": float(s), "break_even_price_fraction": pr["break_even_price_fraction"],
                         "lo": pr["ci95"][0], "hi": pr["ci95"][1], "chip_availability": pr["chip_availability"],
                         "chip_goodput_rps": pr["chip_goodput_rps"],
                         "chip_goodput_ci95_rps": pr["chip_goodput_ci95_rps"]}
        return probes[s]

    out: dict[str, Any] = {"axis": axis, "target": target, "scale_max": s_max}
    for name, key in (("estimate", "break_even_price_fraction"), ("low", "lo"), ("high", "hi")):
        ok = lambda v, key=key: probe(v)[key] > target  # noqa: E731
        if not ok(1.0):
            out[name] = (None, 1.0)
        elif ok(s_max):
            out[name] = (s_max, None)
        else:
            out[name] = _bisect(ok, 1.0, s_max, steps=steps, rel_tol=rel_tol)
    out["table"] = pd.DataFrame([probes[s] for s in sorted(probes)])
    return out


# ---- all together ------------------------------------------------------------------------------

def criteria(scenario, chip: str, versus: str, ban_probs: list[float], futures: int = 8,
             ban_days: float = 240.0, steps: int = 4, cache=None, progress=None,
             log: Callable[[str], None] | None = None,
             unmet_usd_per_mtok: float = UNMET_USD_PER_MTOK) -> dict[str, Any]:
    """Every threshold of the decision table (see the module doc)."""
    from fleetsim.results.cache import ResultCache
    from fleetsim.sweep.decide import _pool_of

    if scenario.fleet is None:
        raise ScenarioError("criteria needs a fleet scenario", field="fleet")
    cache = cache if cache is not None else ResultCache()
    out = {"scenario": scenario.name, "chip": chip, "versus": versus,
           "price": break_even_price(scenario, chip, versus, cache=cache, progress=progress)}
    if log:
        log("... break-even price")
    out["ban"] = ban_threshold(scenario, chip, versus, ban_probs, futures=futures, ban_days=ban_days,
                               unmet_usd_per_mtok=unmet_usd_per_mtok, log=log)
    for who, c in (("chip_breaks", chip), ("versus_breaks", versus)):
        out[who] = breaking_points(scenario, _pool_of(scenario, c, f"criteria --{who}"), steps=steps,
                                   cache=cache, progress=progress)
        if log:
            log(f"... breaking points of {c}")
    out.update(stress_criteria(scenario, chip, versus, futures=futures, ban_days=ban_days, steps=steps,
                               unmet_usd_per_mtok=unmet_usd_per_mtok, cache=cache, progress=progress, log=log))
    return out


def stress_criteria(scenario, chip: str, versus: str, futures: int = 8, ban_days: float = 240.0,
                    steps: int = 4, unmet_usd_per_mtok: float = UNMET_USD_PER_MTOK, cache=None, progress=None,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Heat and crash rate as breaking points: per axis the fleet threshold (`stress_threshold`,
    the versus channel never banned: the case least favourable to the chip) and the capacity-only
    one (`stress_break_even`: where the chip is dearer per Mtok at SLO even free)."""
    out: dict[str, Any] = {}
    base = scenario.with_overrides([f"fleet.replications={futures}", "fleet.windows.enabled=false"])
    theirs = _futures(with_ban_probability(buying_only(base, versus), versus, 0.0, ban_days))
    for axis in STRESS_AXES:
        out[f"{axis}_fleet"] = stress_threshold(scenario, chip, versus, axis, futures=futures, ban_prob=0.0,
                                                ban_days=ban_days, steps=steps, unmet_usd_per_mtok=unmet_usd_per_mtok,
                                                cache=cache, progress=progress, versus_runs=theirs, log=log)
        out[f"{axis}_price"] = stress_break_even(scenario, chip, versus, axis, cache=cache, progress=progress)
        if log:
            log(f"... {axis} breaking points of {chip}")
    return out


def _p(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == -math.inf:
        return "below the grid"
    if x == math.inf:
        return "above the grid"
    return f"{x:.2f}"


def _when(x: float, hi: float) -> str:
    """'p > x' in words, where x may lie outside the grid."""
    if x == -math.inf:
        return "at any ban probability (already at p = 0)"
    if x == math.inf:
        return f"never up to p = {hi:.2f}"
    return f"p > {_p(x)}"


def _pint(lo: float, hi: float) -> str:
    if lo == -math.inf and hi == math.inf:
        return "the difference's interval holds 0 at every p of the grid: not distinguishable"
    return f"[{_p(lo)}, {_p(hi)}]"


def _num(x, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def decision_rows(out: dict[str, Any]) -> list[dict[str, str]]:
    """The decision table: one row per criterion, what the runs give for each side."""
    chip, versus = out["chip"], out["versus"]
    pr, ban = out["price"], out["ban"]
    cb, vb = out["chip_breaks"], out["versus_breaks"]
    grid = ban["table"].ban_probability_per_year
    q, (qlo, qhi) = pr["break_even_price_fraction"], pr["ci95"]
    rows = [
        {"criterion": "cost sensitivity (price, replica cost per Mtok at SLO)",
         "choose_chip": (f"{chip} price < {_num(q, '{:.2f}')} x {pr['reference']} (95%: {_num(qlo, '{:.2f}')} to "
                         f"{_num(qhi, '{:.2f}')}); the scenario has {pr['price_fraction']:.2f}" if q > 0 else
                         f"never: dearer per Mtok even free (solved price {_num(q, '{:.2f}')} x {pr['reference']}, 95%: "
                         f"{_num(qlo, '{:.2f}')} to {_num(qhi, '{:.2f}')}; its server share, power and opex alone "
                         f"exceed the {versus}'s whole cost)"),
         "choose_versus": f"{'at any price' if not q > 0 else chip + ' price above that'}; at the scenario's price {chip} "
                          f"{_num(pr['chip_cost_usd_per_mtok'])} vs {versus} {_num(pr['versus_cost_usd_per_mtok'])} USD/Mtok"},
        {"criterion": f"supply security: {versus} ban probability a year (fleet cost per Mtok of demand, "
                      f"unmet at USD {ban.get('unmet_usd_per_mtok', UNMET_USD_PER_MTOK):g}/Mtok)",
         "choose_chip": f"{_when(ban['cost_threshold'], grid.max())} (95%: {_pint(*ban['cost_threshold_ci95'])})",
         "choose_versus": f"otherwise (grid {grid.min():.2f} to {grid.max():.2f}, {ban['futures']} futures, "
                          f"bans last {ban['ban_days']:.0f} days)"},
        {"criterion": f"supply security: {versus} ban probability a year (fleet cost per Mtok served)",
         "choose_chip": f"{_when(ban['served_cost_threshold'], grid.max())} (95%: {_pint(*ban['served_cost_threshold_ci95'])})",
         "choose_versus": "otherwise (a fleet serving less looks cheaper here: read with the unmet row)"},
        {"criterion": f"supply security: {versus} ban probability a year (unmet demand)",
         "choose_chip": f"{_when(ban['unmet_threshold'], grid.max())} (95%: {_pint(*ban['unmet_threshold_ci95'])})",
         "choose_versus": "otherwise"},
    ]
    for key, label, unit in (() if cb is None or vb is None else
                             (("model", "model size", ""), ("prompt", "prompt median", " tokens"),
                              ("ttft", "TTFT target", " s"))):
        def txt(b):
            if key == "model":
                m = b["model"]
                return f"up to {m['largest'] or 'none'} (fails: {m['first_failing'] or 'none in the ladder'})"
            if key == "prompt":
                p = b["prompt"]
                lo, hi = p["bracket"]
                c = p.get("ci95") or (None, None)
                return (f"up to {_num(p['median_tokens'], '{:,.0f}')}{unit} (95%: {_num(c[0], '{:,.0f}')} to "
                        f"{_num(c[1], '{:,.0f}')}; fails at {_num(hi, '{:,.0f}')}{unit}) {p['note']}").strip()
            t = b["ttft"]
            lo, hi = t["bracket"]
            c = t.get("ci95") or (None, None)
            return (f"down to {_num(t['tightest_s'])}{unit} (95%: {_num(c[0])} to {_num(c[1])}; fails at "
                    f"{_num(lo)}{unit}) {t['note']}").strip()
        rows.append({"criterion": f"breaking point: {label} (positive goodput at SLO)",
                     "choose_chip": f"{chip}: {txt(cb)}", "choose_versus": f"{versus}: {txt(vb)}"})
    for axis in STRESS_AXES:
        fl, pr = out.get(f"{axis}_fleet"), out.get(f"{axis}_price")
        if fl is None or pr is None:
            continue
        lo, hi = fl["threshold_ci95"]
        upto = lambda t: ("at every scale to" if t.startswith("beyond") else "up to") + " " + t.replace("beyond ", "")  # noqa: E731
        fleet_txt = (f"fleet cheaper per Mtok of demand {upto(_scale(fl['threshold'], fl['scale_max']))} "
                     f"(95%: {_scale(lo, fl['scale_max'])} to {_scale(hi, fl['scale_max'])}; {fl['futures']} futures, "
                     f"{versus} never banned)")
        e, plo, phi = pr["estimate"], pr["low"], pr["high"]
        price_txt = (f"replica cost per Mtok at SLO below the {versus}'s at some price "
                     f"{upto(_scale(None, pr['scale_max'], e))} "
                     f"(95%: {_scale(plo[0], pr['scale_max'], plo)} to {_scale(phi[0], pr['scale_max'], phi)})")
        rows.append({"criterion": f"breaking point: {chip} {fl['label']}",
                     "choose_chip": f"{fleet_txt}; {price_txt}",
                     "choose_versus": f"above those scales (the {chip}-only fleet dearer; the {chip} dearer per Mtok "
                                      f"at SLO even free)"})
    return rows


def _scale(x, s_max: float, bracket=None) -> str:
    """A stress scale in words ('x2.5'); `bracket` (last passing, first failing) from a bisection."""
    if bracket is not None:
        gone = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731 (NaN: from JSON)
        if gone(bracket[0]):
            return "x1 (fails at the catalog's figure)"
        if gone(bracket[1]):
            return f"beyond x{s_max:g}"
        x = bracket[0]
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == -math.inf:
        return "x1 (already at the catalog's figure)"
    if x == math.inf:
        return f"beyond x{s_max:g}"
    return f"x{x:.3g}"


def criteria_text(out: dict[str, Any]) -> str:
    chip, versus = out["chip"], out["versus"]
    lines = [f"decision criteria for {chip} against {versus} ({out['scenario']}):",
             f"  {'criterion':<62} | choose {chip} when | choose {versus} when"]
    for r in decision_rows(out):
        lines.append(f"  {r['criterion']:<62} | {r['choose_chip']} | {r['choose_versus']}")
    t = out["ban"]["table"]
    lines.append(f"  fleet runs ({versus}-only minus {chip}-only, paired futures; mean and 95% interval):")
    for r in t.itertuples():
        lines.append(f"    p={r.ban_probability_per_year:.2f}/yr: cost/Mtok of demand {r.diff_cost_usd_per_demand_mtok:+.2f} "
                     f"({r.diff_cost_usd_per_demand_mtok_lo:+.2f}..{r.diff_cost_usd_per_demand_mtok_hi:+.2f}) USD, "
                     f"unmet {r.diff_unmet_demand_share * 100:+.1f} ({r.diff_unmet_demand_share_lo * 100:+.1f}.."
                     f"{r.diff_unmet_demand_share_hi * 100:+.1f}) points")
    for axis in STRESS_AXES:
        if f"{axis}_fleet" not in out:
            continue
        lines.append(f"  {chip} {out[f'{axis}_fleet']['label']}, {versus} never banned (paired futures):")
        for r in out[f"{axis}_fleet"]["table"].itertuples():
            be = getattr(r, "break_even_price_fraction", math.nan)
            lines.append(f"    x{r.scale:.3g}: cost/Mtok of demand {r.diff_cost_usd_per_demand_mtok:+.2f} "
                         f"({r.diff_cost_usd_per_demand_mtok_lo:+.2f}..{r.diff_cost_usd_per_demand_mtok_hi:+.2f}) USD; "
                         f"{chip} availability {getattr(r, 'chip_availability', math.nan):.3f}, break-even price {be:.3f}")
    return "\n".join(lines)


def criteria_table(out: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(decision_rows(out))
