"""`planner: {kind: optimal}`: the fleet's PlanningState -> a Problem over K sampled futures -> orders.

Re-solved every planning period with the fleet as it then stands (rolling horizon): today's orders
(shared by every future) are placed, the recourse is thrown away and re-planned next period.

Units in the Problem built here: rates are output tokens/s (the fleet's unit; demand is the
forecast diurnal PEAK per period, goodput the EFFECTIVE tokens/s per installed replica per class),
periods are `period_days` long. Futures:
- demand: the forecast x (1 + headroom) x exp(W), W a Gaussian random walk with the scenario's
  `forecast_error.sigma_per_year` (the planner's belief about its own forecast error);
- regime, per the planner's `knows` mode (see _regime_futures): by default the regime model only:
  today's channel states, random cycles (fleetsim.fleet.regime), scripted events that carry a
  `probability` (drawn per future), announced events, plus a closure per the channel's
  `risk_per_year` belief (a closed channel stays closed over the horizon: `banned` when its orders
  are cancelled, `buyer_ban` when they are stranded). Scripted events without a probability are
  surprises: only the realised world has them. `knows: oracle` plans on the one realised future.
  futures = 1 is the naive planner: today's regime never changes (bar announcements), demand = forecast.
Each future draws from its own fleetsim.rng stream (seed, "optimal", period, future).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fleetsim.errors import FleetsimError
from fleetsim.fleet.optimal.milp import Plan, PlanInfeasible, solve
from fleetsim.fleet.optimal.problem import Option, Pool, Problem
from fleetsim.fleet.planner import OrderRequest, PlanningState, register
from fleetsim.rng import stream

_CLOSED = ("licence_required", "banned", "buyer_ban")


def _us_chips(state: PlanningState) -> set[str]:
    return {off.chip for ch in state.channels.values() if ch.us_controlled for off in ch.offers}


def _walk(state: PlanningState, channels: list[str], out: dict[str, np.ndarray], k: int,
          transitions, today: int, per: int, T: int) -> None:
    """Walk both sides of each channel from today's states through `transitions` into future k."""
    from fleetsim.fleet.regime import combined_state

    sides = {n: [getattr(state.channels[n], "exporter_state", None) or "open",
                 getattr(state.channels[n], "importer_state", None) or "open"] for n in channels}
    for tr in sorted(transitions, key=lambda tr: (tr.day, tr.seq)):
        if tr.day <= today or (tr.exporter is None and tr.importer is None) or tr.channel not in out:
            continue
        sd = sides[tr.channel]
        sd[0], sd[1] = tr.exporter or sd[0], tr.importer or sd[1]
        t = int(math.ceil((tr.day - today) / per))
        if t < T:
            out[tr.channel][k, t:] = combined_state(*sd)


def _known(tr, today: int, realised_keys: set | None) -> bool:
    """An announced scripted event the planner knows for certain today: it happens in the world."""
    return (tr.announced_day is not None and tr.announced_day <= today
            and (realised_keys is None or tr.key in realised_keys))


def _regime_futures(state: PlanningState, channels: list[str], K: int, T: int, per: int,
                    seed: int, sc, knows: str = "model", tag: str = "optimal") -> dict[str, np.ndarray]:
    """(K, T) regime state per channel and period, as the planner's `knows` mode allows.

    model: the regime model only: random cycles (the planner's own streams), a closure per
    channel's risk_per_year, each scripted event with a `probability` drawn per future, and
    announced events (announced_on <= today) as the world has them; other scripted events are
    surprises. scripted: also the scripted events without a probability, as certain. oracle: one
    future, the realised regime (state.realised_transitions). `tag` names the streams (the
    planner's "optimal"; `fleetsim hedge` draws held-out futures under another tag)."""
    out = {n: np.full((K, T), state.channels[n].state, dtype=object) for n in channels}
    fleet = getattr(sc, "fleet", None)
    today = (state.today - fleet.start).days if fleet is not None else 0
    realised = getattr(state, "realised_transitions", None)
    if knows == "oracle":
        if realised is not None:
            for k in range(K):
                _walk(state, channels, out, k, realised, today, per, T)
        return out
    realised_keys = None if realised is None else {tr.key for tr in realised
                                                   if tr.origin != "random" and getattr(tr, "happened", True)}
    if K == 1:  # the naive planner: today's regime, plus what has been announced
        if fleet is not None:
            from fleetsim.fleet.regime import build_transitions

            known = [tr for tr in build_transitions(fleet, np.random.default_rng(0))
                     if tr.origin != "random" and (_known(tr, today, realised_keys) or (
                         knows == "scripted" and tr.probability is None))]
            _walk(state, channels, out, 0, known, today, per, T)
        return out
    for k in range(K):
        rng = stream(seed, tag, state.period, k)
        if fleet is not None:
            from fleetsim.fleet.regime import build_transitions

            trs = []
            # each channel side's cycle and each event from its own stream (adding one shifts no other's)
            for tr in build_transitions(fleet, rng, lambda n, side, k=k: stream(seed, tag, state.period, k,
                                                                                "cycle", n, side)):
                if tr.origin == "random" or _known(tr, today, realised_keys) or (
                        knows == "scripted" and tr.probability is None):
                    trs.append(tr)
                elif tr.probability is not None and (tr.announced_day is None or tr.announced_day > today):
                    if stream(seed, tag, state.period, k, "event", *tr.key).random() < tr.probability:
                        trs.append(tr)
            _walk(state, channels, out, k, trs, today, per, T)
        for n in channels:
            ch = state.channels[n]
            if ch.risk_per_year <= 0:
                continue
            p_close = 1.0 - math.exp(-ch.risk_per_year * per / 365.0)
            hit = np.flatnonzero(stream(seed, tag, state.period, k, "risk", n).random(T - 1) < p_close)
            if len(hit):
                strand = fleet is not None and fleet.channels[n].on_ban == "strand"
                out[n][k, hit[0] + 1:] = "buyer_ban" if strand else "banned"
    return out


def build_problem(state: PlanningState, config, tag: str = "optimal", futures: int | None = None,
                  knows: str | None = None) -> tuple[Problem, list[tuple[str, str, str, int]]]:
    """The Problem for today, and per option its (channel, chip, pool, tp, rental term days or None)
    to turn plans into orders. A rent channel's offers become the problem's rental options
    (lead and minimum term rounded up to whole periods; the fleet then rents for that many days).
    `tag`, `futures` and `knows` override the streams' name, the number of futures and the
    knowledge mode (fleetsim.fleet.optimal.hedge draws held-out futures with them)."""
    sc = state.scenario
    fleet = getattr(sc, "fleet", None)
    seed = int(getattr(sc, "seed", 0) or 0)
    per = int(config.period_days)
    T = int(config.horizon_periods)
    knows = knows or getattr(config, "knows", "model")
    oracle = knows == "oracle" and getattr(state, "realised_peak_tokens_per_s", None) is not None
    K = 1 if oracle else int(futures if futures is not None else config.futures)
    classes = list(state.forecast_peak_tokens_per_s)
    C = len(classes)
    us = _us_chips(state)
    pool_names = list(state.pools)
    life_periods = state.life_years * 365.0 / per

    pools = []
    for pn in pool_names:
        ps = state.pools[pn]
        g = np.zeros(C)
        for ci, c in enumerate(classes):
            cap = ps.capacity.get(c)
            if cap is not None and state.class_model.get(c) == ps.model:
                g[ci] = cap.effective_tokens_per_s
        pools.append(Pool(pn, ps.chip, ps.tp, g, power_w_per_replica=ps.power_mw_per_replica * 1e6,
                          racks_per_replica=float(ps.tp), us_controlled=ps.chip in us,
                          domestic=ps.chip not in us,
                          serves_with=ps.partner if ps.role == "decode" else ""))

    commission = getattr(fleet, "commissioning_days", 0) if fleet is not None else 0
    options, meta = [], []
    opex_by_pool: dict[str, float] = {}
    lead_by_pool: dict[str, int] = {}
    caps = {}
    for n in sorted(state.channels):
        ch = state.channels[n]
        L = int(math.ceil((ch.lead_time_days + commission) / per))
        cfg = fleet.channels[n] if fleet is not None else None
        per_period = (cfg.cap_per_month * per / 30.0) if cfg is not None and cfg.cap_per_month is not None \
            else ch.remaining_cap_chips
        cap = np.full(T, per_period, float)
        cap[0] = ch.remaining_cap_chips if ch.orderable else 0.0
        if np.all(np.isfinite(cap)):
            caps[n] = cap
        for off in ch.offers:
            if off.pool not in state.pools:
                continue
            tp = state.pools[off.pool].tp
            if getattr(ch, "kind", "buy") == "rent":  # the problem's rental option: hourly, a minimum term
                Lr = int(math.ceil(ch.lead_time_days / per))
                term = max(1, int(math.ceil(max(ch.min_term_days, 1) / per)))
                options.append(Option(f"{n}:{off.chip}:{off.pool}", n, off.pool, kind="rent",
                                      price_usd_per_chip_hour=off.rent_usd_per_chip_hour, levy_share=ch.levy,
                                      lead_periods=Lr, min_term_periods=term,
                                      min_order_chips=ch.min_order_chips if ch.min_order_chips > 1 else 0))
                meta.append((n, off.chip, off.pool, tp, term * per))
                continue
            unit = off.price_usd_per_chip + off.levy_usd_per_chip + off.overhead_usd_per_chip
            weight = np.clip((T - np.arange(T) - L) / life_periods, 0.0, 1.0)  # capex inside the horizon
            options.append(Option(f"{n}:{off.chip}:{off.pool}", n, off.pool, kind="buy",
                                  price_usd_per_chip=unit, lead_periods=L,
                                  min_order_chips=ch.min_order_chips if ch.min_order_chips > 1 else 0,
                                  capex_weight=weight))
            meta.append((n, off.chip, off.pool, tp, None))
            opex_by_pool[off.pool] = max(opex_by_pool.get(off.pool, 0.0),
                                         off.lifetime_opex_usd_per_chip * tp / life_periods)
            lead_by_pool[off.pool] = min(lead_by_pool.get(off.pool, 10**6), L)
    pools = [Pool(p.name, p.chip, p.chips_per_replica, p.goodput_rps, p.power_w_per_replica,
                  p.racks_per_replica, 0.0, opex_by_pool.get(p.name, 0.0), p.domestic, p.us_controlled,
                  p.serves_with)
             for p in pools]

    # demand futures (K, C, T)
    seen = state.realised_peak_tokens_per_s if oracle else state.forecast_peak_tokens_per_s
    fc = np.array([[seen[c][min(t, len(seen[c]) - 1)] for t in range(T)] for c in classes], float) \
        * (1.0 + config.headroom)
    D = np.repeat(fc[None], K, axis=0)
    if K > 1 and fleet is not None:
        for ci, c in enumerate(classes):
            sig = fleet.demand[c].forecast_error.sigma_per_year if c in fleet.demand else 0.0
            if sig > 0:
                rng = stream(seed, tag, "demand", state.period, c)
                steps = rng.standard_normal((K, T)) * sig * math.sqrt(per / 365.0)
                steps[:, 0] = 0.0
                D[:, ci, :] *= np.exp(np.cumsum(steps, axis=1))

    # the fleet as it stands: installed now, on order from the pool's shortest lead
    P = len(pool_names)
    inst = np.zeros((K, P, T))
    for j, pn in enumerate(pool_names):
        ps = state.pools[pn]
        inst[:, j, :] = ps.installed_replicas
        inst[:, j, min(lead_by_pool.get(pn, 1), T - 1) if T > 1 else 0:] += ps.on_order_replicas
    power_now = sum((state.pools[pn].installed_replicas + state.pools[pn].on_order_replicas)
                    * pools[j].power_w_per_replica for j, pn in enumerate(pool_names))
    chips_now = sum((state.pools[pn].installed_replicas + state.pools[pn].on_order_replicas)
                    * state.pools[pn].tp for pn in pool_names)
    # running rentals: replicas serving through the whole of each period
    rent = np.zeros((K, P, T))
    for pn, first, last, chips in getattr(state, "rentals", []):
        j = pool_names.index(pn)
        for t in range(T):
            if first <= t * per and last >= (t + 1) * per:
                rent[:, j, t] += chips / state.pools[pn].tp
    site_power = None if not math.isfinite(state.site_power_mw_left) else \
        np.full(T, max(state.site_power_mw_left, 0.0) * 1e6 + power_now)
    site_racks = None if not math.isfinite(state.site_chips_left) else \
        np.full(T, max(state.site_chips_left, 0.0) + chips_now)

    budget = None
    if not state.overrun_allowed:
        budget = np.zeros(T)
        budget[0] = max(state.budget_left_usd, 0.0)
        later = max(state.budget_total_left_usd - budget[0], 0.0)
        if fleet is not None and later > 0:
            b = fleet.budget
            years = int(math.ceil(fleet.years - 1e-9))
            shares = [1.0 / years] * years if b.schedule == "even" else list(b.schedule)
            today = (state.today - fleet.start).days
            for y in range(1, years):
                t = int(math.ceil((y * 365 - today) / per))
                if 0 < t < T:
                    budget[t] += shares[y] * b.total_usd
            budget[1:] = np.minimum(np.cumsum(budget)[1:], state.budget_total_left_usd) - np.cumsum(budget)[:-1]
            budget = np.maximum(budget, 0.0)

    channels = sorted({o.channel for o in options})
    states = _regime_futures(state, channels, K, T, per, seed, sc, knows, tag)
    penalty = np.full(C, config.unmet_penalty_usd_per_mtok * per * 86400.0 / 1e6)
    problem = Problem(
        classes=classes, pools=pools, options=options, hours_per_period=per * 24.0, demand_rps=D,
        channel_state=states, cap_chips=caps, installed=inst, rented=rent, budget_usd=budget,
        site_power_w=site_power, site_racks=site_racks,
        domestic_share_min=getattr(config, "domestic_share_min", 0.0),
        spare_share=state.spare_fraction,  # owned chips held as spares serve nothing
        domestic_share_from_period=max([o.lead_periods for o in options] or [0]),
        unmet_penalty_usd_per_rps_period=penalty,
        cvar_alpha=config.cvar_alpha, cvar_weight=getattr(config, "risk_weight", 1.0) if config.risk == "cvar" else 0.0,
        integer_periods=getattr(config, "integer_periods", 1),
        slice_factor=getattr(config, "slice_factor", 0))
    return problem, meta


def plan_record(state: PlanningState, problem: Problem, plan: Plan) -> dict[str, Any]:
    """One row of the plan-per-period report (deterministic: no wall time)."""
    w = problem.weights()
    served = np.einsum("k,kcpt,kct->p", w, plan.served_share, problem.demand_rps)
    us = np.array([p.us_controlled for p in problem.pools])
    total_demand = float(np.einsum("k,kct->", w, problem.demand_rps))
    return {
        "date": state.today.isoformat(),
        "status": plan.status,
        "orders_replicas": plan.first_orders(),
        "objective_usd": plan.objective_usd,
        "cost_split_usd": plan.cost_split_usd,
        "expected_unmet_share": plan.expected_unmet_rps_periods(w) / total_demand if total_demand else 0.0,
        "us_dependence_share": float(served[us].sum() / served.sum()) if served.sum() > 0 else 0.0,
        "binding": plan.binding,
        "shadow_prices": plan.shadow_prices,
        "mip_gap": round(plan.mip_gap, 4),
        "futures": problem.K,
    }


def price_of_security(state: PlanningState, problem: Problem, weights, config) -> list[dict[str, Any]]:
    """The same planning problem at each mean-CVaR weight: cost against unmet demand and US dependence."""
    from fleetsim.fleet.optimal.milp import cvar

    rows = []
    for w in weights:
        pr = problem.with_(cvar_weight=float(w))
        plan = solve(pr, time_limit_s=config.time_limit_s, mip_gap=config.mip_gap, explain=False)
        rec = plan_record(state, pr, plan)
        wts = pr.weights()
        rows.append({"risk_weight": float(w), "cvar_alpha": pr.cvar_alpha,
                     "expected_cost_usd": float(wts @ plan.cost_by_future_usd),
                     "cvar_cost_usd": cvar(plan.cost_by_future_usd, wts, pr.cvar_alpha),
                     "expected_unmet_share": rec["expected_unmet_share"],
                     "us_dependence_share": rec["us_dependence_share"],
                     "orders_replicas": rec["orders_replicas"]})
    return rows


@register("optimal")
class OptimalPlanner:
    """The rolling two-stage stochastic MILP planner (see fleetsim.fleet.optimal.milp)."""

    def __init__(self, config) -> None:
        self.config = config
        self.log: list[dict[str, Any]] = []
        self.front: list[dict[str, Any]] = []
        self.solve_s: list[float] = []

    def plan(self, state: PlanningState) -> list[OrderRequest]:
        problem, meta = build_problem(state, self.config)
        if getattr(self.config, "plan_on", "futures") == "mean_future" and problem.K > 1:
            from fleetsim.fleet.optimal.transform import mean_future

            problem = mean_future(problem).with_(cvar_weight=0.0)  # one future: no tail to weigh
        self.last_shadow_prices: dict[str, float] = {}
        if not problem.options:
            return []
        try:
            plan = solve(problem, time_limit_s=self.config.time_limit_s, mip_gap=self.config.mip_gap,
                         explain=getattr(self.config, "explain", True))
        except PlanInfeasible as e:  # cannot happen with unmet demand allowed; kept for the record
            raise FleetsimError(f"{state.today}: {e.message}", field="fleet.planner") from None
        self.solve_s.append(plan.solve_s)
        self.last_shadow_prices = dict(plan.shadow_prices)
        self.log.append(plan_record(state, problem, plan))
        weights = getattr(self.config, "front_risk_weights", None)
        if weights and not self.front:
            self.front = price_of_security(state, problem, weights, self.config)
        out = []
        for (ch, chip, pool, tp, term), n in zip(meta, plan.orders[0, :, 0]):
            n = int(round(n))
            if n > 0:
                out.append(OrderRequest(ch, chip, n * tp, pool, term_days=term))
        return out

    def report(self) -> dict[str, Any]:
        """summary.json `fleet.planner_report`: the plan per period (solve times are in the benchmark)."""
        out = {"kind": "optimal", "futures": self.config.futures, "knows": getattr(self.config, "knows", "model"),
               "risk": self.config.risk,
               "plans": self.log}
        if self.front:
            out["price_of_security"] = self.front
        return out
