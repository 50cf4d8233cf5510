"""What hedging is worth, out of sample (`fleetsim hedge`).

On one planning day each policy chooses today's orders (the first stage); every choice is then
scored on the SAME held-out futures (common random numbers), drawn on streams the planner never
sampled (tag "holdout"), with the best recourse in each future (later orders and the split of
demand chosen knowing that future: the standard out-of-sample test of a two-stage plan):

- stochastic: the first stage of the programme over K sampled futures (expectation, or mean-CVaR
  at each risk-aversion weight: the price-of-security front);
- expected_value: the first stage of the programme over ONE mean future (mean demand of the K
  futures, each channel's most likely state per period);
- each rule policy's orders on the same day (cheapest, security_weighted, domestic_share);
- oracle: wait-and-see, each held-out future solved knowing it (no shared first stage).

VSS = E[cost of the expected-value plan - cost of the stochastic plan] and EVPI = E[cost of the
stochastic plan - oracle cost], both as paired differences over the held-out futures with Student-t
intervals. Costs are the programme's own (capex for the share of a chip's life inside the
horizon, power and opex, the unmet-demand penalty), over the planning horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fleetsim.fleet.optimal.milp import PlanInfeasible, cvar, solve
from fleetsim.fleet.optimal.problem import Problem, order_effects
from fleetsim.fleet.optimal.transform import mean_future, one_future  # noqa: F401 (re-exported)
from fleetsim.rng import stream
from fleetsim.stats import t_interval

RULES = ("cheapest", "security_weighted", "domestic_share")


@dataclass
class Scores:
    """One policy on the held-out futures: per-future figures and today's orders."""

    name: str
    first_orders: np.ndarray            # (O,) replicas ordered today
    cost_usd: np.ndarray                # (N,)
    unmet_share: np.ndarray             # (N,) of demand over the horizon
    stranded_usd: np.ndarray            # (N,) paid for chips never delivered
    risk_weight: float | None = None    # stochastic plans: the mean-CVaR weight
    note: str = ""


def _stranded(pr: Problem, orders: np.ndarray) -> np.ndarray:
    """USD paid (full price x (1 + levy)) for orders a buyer ban stranded, per future."""
    out = np.zeros(pr.K)
    for i, o in enumerate(pr.options):
        if o.kind != "buy":
            continue
        _, delivered, paid = order_effects(pr, o)
        tp = pr.pools[pr.pool_index(o.pool)].chips_per_replica
        unit = o.price_usd_per_chip * tp * (1 + o.levy_share)
        out += (orders[:, i, :] * unit * paid * (1.0 - delivered)).sum(axis=1)
    return out


def score(holdout: Problem, name: str, first: np.ndarray, *, time_limit_s=None, mip_gap=1e-6,
          **kw) -> Scores:
    """Today's orders `first` fixed, the best recourse in each held-out future."""
    pr = holdout.with_(cvar_weight=0.0)
    plan = solve(pr, time_limit_s=time_limit_s, mip_gap=mip_gap, explain=False, fix_first_orders=first)
    D = pr.demand_rps.sum(axis=(1, 2))
    return Scores(name, np.asarray(first, float), plan.cost_by_future_usd.copy(),
                  plan.unmet_rps.sum(axis=(1, 2)) / np.where(D > 0, D, 1.0), _stranded(pr, plan.orders), **kw)


def oracle(holdout: Problem, *, time_limit_s=None, mip_gap=1e-6) -> Scores:
    """Wait-and-see: each held-out future planned knowing it."""
    N = holdout.K
    cost, unmet, strand = np.zeros(N), np.zeros(N), np.zeros(N)
    for k in range(N):
        pk = one_future(holdout, k).with_(cvar_weight=0.0)
        plan = solve(pk, time_limit_s=time_limit_s, mip_gap=mip_gap, explain=False)
        cost[k] = plan.cost_by_future_usd[0]
        D = pk.demand_rps.sum()
        unmet[k] = plan.unmet_rps.sum() / D if D > 0 else 0.0
        strand[k] = _stranded(pk, plan.orders)[0]
    return Scores("oracle", np.full(holdout.O, np.nan), cost, unmet, strand,
                  note="each future planned knowing it (no shared first stage)")


def first_stage(pr: Problem, *, time_limit_s=None, mip_gap=1e-6) -> np.ndarray:
    return solve(pr, time_limit_s=time_limit_s, mip_gap=mip_gap, explain=False).orders[0, :, 0].copy()


def evaluate(sample: Problem, holdout: Problem, *, risk_weights=(), rules: dict[str, np.ndarray] | None = None,
             time_limit_s=None, mip_gap=1e-6) -> list[Scores]:
    """Every policy scored on `holdout` (futures the plans never saw). `sample` is the planner's
    own K futures; its cvar_alpha and cvar_weight give the stochastic plan (risk_weights: more
    stochastic plans, the front)."""
    kw = dict(time_limit_s=time_limit_s, mip_gap=mip_gap)
    out = [score(holdout, "stochastic", first_stage(sample, **kw), risk_weight=sample.cvar_weight, **kw),
           score(holdout, "expected_value", first_stage(mean_future(sample).with_(cvar_weight=0.0), **kw), **kw)]
    for w in risk_weights:
        out.append(score(holdout, f"stochastic cvar w={w:g}", first_stage(sample.with_(cvar_weight=float(w)), **kw),
                         risk_weight=float(w), **kw))
    for name, x in (rules or {}).items():
        try:
            out.append(score(holdout, name, x, **kw))
        except PlanInfeasible:
            out.append(Scores(name, x, *(np.full(holdout.K, np.nan) for _ in range(3)),
                              note="its orders break a limit of the programme (cap, budget or site)"))
    out.append(oracle(holdout, **kw))
    return out


#: per-future differences below this share of the costs are the solver's tolerance, not a value
SOLVER_TOLERANCE = 1e-6


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b over the same futures, with its 95% t-interval; a future's difference within
    the solver's tolerance (SOLVER_TOLERANCE of its cost, the MIP gap asked for) counts as 0."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    d[np.abs(d) <= SOLVER_TOLERANCE * np.maximum(np.abs(a), np.abs(b))] = 0.0
    return t_interval(d)


def cvar_interval(x: np.ndarray, alpha: float, seed: int, draws: int = 2000) -> tuple[float, float, float]:
    """CVaR_alpha of the held-out costs and a 95% bootstrap percentile interval (own stream)."""
    x = np.asarray(x, float)
    if np.isnan(x).any():
        return math.nan, math.nan, math.nan
    n = len(x)
    w = np.full(n, 1.0 / n)
    est = cvar(x, w, alpha)
    if n < 2:
        return est, math.nan, math.nan
    idx = stream(seed, "hedge", "bootstrap").integers(0, n, (draws, n))
    s = -np.sort(-x[idx], axis=1)  # each resample, worst first
    tail = 1.0 - alpha
    take = np.minimum(1.0 / n, np.maximum(tail - np.arange(n) / n, 0.0))
    boot = s @ take / tail
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return est, float(lo), float(hi)


def summarise(scores: list[Scores], alpha: float, seed: int) -> dict[str, Any]:
    """Per policy: expected cost, unmet share, CVaR and stranded money with 95% intervals; VSS
    and EVPI as paired differences."""
    by = {s.name: s for s in scores}
    pol = {}
    for s in scores:
        pol[s.name] = {
            "expected_cost_usd": t_interval(s.cost_usd),
            "unmet_share": t_interval(s.unmet_share),
            "cvar_cost_usd": cvar_interval(s.cost_usd, alpha, seed),
            "stranded_usd": t_interval(s.stranded_usd),
            "risk_weight": s.risk_weight,
            "note": s.note,
        }
    sp, ev, orc = by["stochastic"], by["expected_value"], by["oracle"]
    out = {"policies": pol, "vss_usd": paired(ev.cost_usd, sp.cost_usd),
           "evpi_usd": paired(sp.cost_usd, orc.cost_usd), "cvar_alpha": alpha}
    front = [s for s in scores if s.risk_weight is not None]
    out["front"] = [{"policy": s.name, "risk_weight": s.risk_weight, **{k: pol[s.name][k] for k in
                    ("expected_cost_usd", "cvar_cost_usd", "unmet_share", "stranded_usd")}}
                    for s in sorted(front, key=lambda s: s.risk_weight)]
    return out


@dataclass
class HedgeSetup:
    """The planning day's problems: the planner's K futures and N held-out ones."""

    sample: Problem
    holdout: Problem
    meta: list = field(default_factory=list)
    rules: dict[str, np.ndarray] = field(default_factory=dict)
    state: Any = None


def rule_first_stage(state, meta, make_planner: Callable, configs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each rule policy's orders on the planning day, as replicas per option of the programme."""
    index = {(ch, chip, pool): i for i, (ch, chip, pool, _tp, _term) in enumerate(meta)}
    out = {}
    for name, cfg in configs.items():
        x = np.zeros(len(meta))
        for req in make_planner(cfg).plan(state):
            i = index.get((req.channel, req.chip, req.pool))
            if i is not None:
                x[i] += math.floor(req.count_chips / meta[i][3])
        out[name] = x
    return out


def planning_state(scenario, chips: dict, models: dict, caps: dict, caps_grid: dict | None = None,
                   day: int = 0):
    """The fleet's PlanningState on planning day `day` (days from the start), as the planner would
    see it: day 0 is the initial fleet, nothing simulated; a later day is the fleet's realised
    world (fleet seed) simulated up to it under the scenario's own planner."""
    from fleetsim.fleet.sim import _FleetSim

    got = {}

    class _Capture:
        def plan(self, state):
            got["state"] = state
            return []

    sim = _FleetSim(scenario, chips, models, caps, None)
    sim.caps_grid = caps_grid or {}
    sim.prepare(windows=False)
    if day > 0:  # the same processes as a run (_FleetSim.run), stopped before that day's plan
        sim.start_processes()
        sim.env.run(until=day + 0.2)
    sim.planner = _Capture()
    sim._plan(day)
    return got["state"]


def optimal_config(scenario, futures: int, horizon_periods: int | None, risk_alpha: float | None = None):
    """The optimal planner's settings for the hedge: the scenario's own if it uses `optimal`, else
    the defaults at the scenario planner's period (horizon: its lead + horizon days, >= 12 periods)."""
    from fleetsim.scenario.fleet import OptimalPlannerConfig

    pl = scenario.fleet.planner
    upd: dict[str, Any] = {"futures": int(futures), "knows": "model", "explain": False,
                           "front_risk_weights": None}
    if risk_alpha is not None:
        upd["cvar_alpha"] = float(risk_alpha)
    if pl.kind == "optimal":
        cfg = pl.model_copy(update=upd)
    else:
        per = pl.period_days
        T = max(12, int(math.ceil((getattr(pl, "horizon_days", 180) + 120) / per)))
        cfg = OptimalPlannerConfig(period_days=per, horizon_periods=T, headroom=0.0, **upd)
    if horizon_periods is not None:
        cfg = cfg.model_copy(update={"horizon_periods": int(horizon_periods)})
    return cfg


def rule_configs(scenario) -> dict[str, Any]:
    """Each rule policy: the scenario's own settings where it uses that rule, else its defaults at
    the scenario planner's period, horizon and headroom."""
    from fleetsim.scenario.fleet import (CheapestPlannerConfig, DomesticSharePlannerConfig,
                                         SecurityWeightedPlannerConfig)

    pl = scenario.fleet.planner
    base = {"period_days": pl.period_days, "horizon_days": getattr(pl, "horizon_days", 180),
            "headroom": getattr(pl, "headroom", 0.1)}
    out = {}
    for cls in (CheapestPlannerConfig, SecurityWeightedPlannerConfig, DomesticSharePlannerConfig):
        kind = cls.model_fields["kind"].default
        out[kind] = pl if pl.kind == kind else cls(**base)
    return out


def setup(scenario, chips: dict, models: dict, caps: dict, caps_grid: dict | None, *, futures: int,
          holdout: int, horizon_periods: int | None = None, world: str = "scripted",
          cvar_alpha: float | None = None, day: int = 0) -> HedgeSetup:
    """The planning day's problems: the planner's K futures (its regime model, streams "optimal")
    and N held-out futures (streams "holdout"; `world`: model = drawn from the planner's own regime
    model, scripted = that model plus the scripted events as the world has them), and each rule
    policy's orders on that day."""
    from fleetsim.fleet.optimal.adapter import build_problem
    from fleetsim.fleet.planner import make_planner

    state = planning_state(scenario, chips, models, caps, caps_grid, day)
    cfg = optimal_config(scenario, futures, horizon_periods, cvar_alpha)
    sample, meta = build_problem(state, cfg)
    hold, _ = build_problem(state, cfg, tag="holdout", futures=holdout, knows=world)
    rules = rule_first_stage(state, meta, make_planner, rule_configs(scenario))
    return HedgeSetup(sample, hold, meta, rules, state)


def rolling_policies(scenario, futures: int, risk_weights=(), horizon_periods: int | None = None,
                     cvar_alpha: float | None = None) -> tuple[dict[str, tuple[Any, float | None]], float]:
    """The planner settings of every policy `rolling` scores (name -> (config, mean-CVaR weight))
    and the unmet penalty (USD per Mtok) its costs use."""
    base = optimal_config(scenario, futures, horizon_periods, cvar_alpha)
    policies: dict[str, tuple[Any, float | None]] = {
        "stochastic": (base, 0.0),
        "expected_value": (base.model_copy(update={"plan_on": "mean_future"}), None)}
    for w in risk_weights:
        policies[f"stochastic cvar w={w:g}"] = (base.model_copy(update={"risk": "cvar", "risk_weight": float(w)}),
                                                 float(w))
    policies.update({k: (v, None) for k, v in rule_configs(scenario).items()})
    policies["oracle"] = (base.model_copy(update={"knows": "oracle", "futures": 1}), None)
    return policies, float(base.unmet_penalty_usd_per_mtok)


def rolling_scenario(scenario, planner, holdout: int):
    """The fleet run a policy is scored on: its planner, `holdout` futures, serving windows off."""
    fl = scenario.fleet.model_copy(update={"planner": planner, "replications": int(holdout),
                                           "windows": scenario.fleet.windows.model_copy(update={"enabled": False})})
    return scenario.model_copy(update={"fleet": fl})


def rolling_costs(rep: dict[str, list], penalty_usd_per_mtok: float) -> dict[str, np.ndarray]:
    """Per future of a fleet run (its replicates): cost (the run's all-in ledger + the unmet
    penalty x unmet Mtok), unmet share, stranded USD, and the two parts of the cost (ledger USD,
    unmet Mtok)."""
    n = len(rep["future"])
    get = lambda k: np.asarray(rep.get(k, [0.0] * n), float)
    served, demand = get("served_mtok"), get("demand_mtok")
    ledger = sum(get(f"ledger_usd_by_kind.{k}") for k in ("depreciation", "power", "opex", "rental", "impairment"))
    unmet_mtok = np.maximum(demand - served, 0.0)
    return {"cost_usd": ledger + penalty_usd_per_mtok * unmet_mtok, "unmet_share": get("unmet_demand_share"),
            "stranded_usd": get("stranded_usd"), "ledger_usd": ledger, "unmet_mtok": unmet_mtok}


def rolling(scenario, chips: dict, models: dict, caps: dict, caps_grid: dict | None, *, futures: int,
            holdout: int, risk_weights=(), horizon_periods: int | None = None, cvar_alpha: float | None = None,
            progress: Callable[[str], None] | None = None) -> tuple[list[Scores], float]:
    """Whole rolling runs instead of one planning day: each policy plans every period through the
    fleet's N futures (fleet.replications = N, the same seeds for every policy: common random
    numbers; the world's own events, cycles and demand). Policies: stochastic (K futures, `knows:
    model`), expected_value (`plan_on: mean_future`: each period, the optimiser on the mean of
    its K futures, as the first-stage test's expected-value plan),
    mean-CVaR at each weight, oracle (`knows: oracle`), the rule policies. Cost of a future: the
    run's all-in cost (depreciation, impairments, power, opex, rentals) + the optimiser's unmet
    penalty x unmet Mtok. Returns the scores and the penalty used."""
    from fleetsim.fleet.futures import run_futures

    policies, pen = rolling_policies(scenario, futures, risk_weights, horizon_periods, cvar_alpha)
    out = []
    for name, (cfg, w) in policies.items():
        if progress:
            progress(f"hedge --rolling: {name}, {holdout} futures")
        fut = run_futures(rolling_scenario(scenario, cfg, holdout), chips, models, caps, None, caps_grid=caps_grid)
        c = rolling_costs(fut.replicates, pen)
        out.append(Scores(name, np.full(0, np.nan), c["cost_usd"], c["unmet_share"], c["stranded_usd"],
                          risk_weight=w, note="" if name != "oracle" else "plans knowing each future"))
    return out, pen
