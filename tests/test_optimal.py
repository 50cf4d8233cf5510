"""The optimising planner's MILP: Mélange's published toy instance, brute force on small random
instances, constraints never broken, a rule policy never better, hedging, binding constraints."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetsim.fleet.optimal import Option, PlanInfeasible, Pool, Problem, cvar, solve
from fleetsim.rng import stream


# -- Mélange (Griggs et al. 2024), github.com/tyler-griggs/melange-release -----------------------
# melange/config/example.json: A10G $1.01/h, tputs [[2, 1], [5, 2]] req/s; A100-80GB $3.67/h,
# tputs [[20, 20], [40, 20]]; workload_distribution [[0.2, 0.1], [0.5, 0.2]]; 30 req/s; slice
# factor 1. README "Solver Output": {"A10G": 3, "A100-80GB": 1, "cost": 6.7} ($/h).
MELANGE_DIST = [0.2, 0.1, 0.5, 0.2]
MELANGE_TPUT = {"A10G": [2, 1, 5, 2], "A100-80GB": [20, 20, 40, 20]}
MELANGE_COST = {"A10G": 1.01, "A100-80GB": 3.67}


def melange_problem(slice_factor: int = 1) -> Problem:
    classes = ["in1-out1", "in1-out2", "in2-out1", "in2-out2"]
    pools = [Pool(g, g, 1, np.array(t, float)) for g, t in MELANGE_TPUT.items()]
    opts = [Option(f"{g}-rent", "cloud", g, kind="rent", price_usd_per_chip_hour=c)
            for g, c in MELANGE_COST.items()]
    demand = (np.array(MELANGE_DIST) * 30.0)[None, :, None]
    return Problem(classes, pools, opts, hours_per_period=1.0, demand_rps=demand,
                   allow_unmet=False, slice_factor=slice_factor)


def test_melange_published_toy_instance():
    plan = solve(melange_problem(slice_factor=1))
    assert plan.status == "optimal"
    assert plan.first_orders() == {"A10G-rent": 3, "A100-80GB-rent": 1}
    assert plan.objective_usd == pytest.approx(6.70, abs=1e-9)
    assert plan.cost_split_usd["rent"] == pytest.approx(6.70, abs=1e-9)
    # every bucket served wholly by one GPU type (slice factor 1), nothing unmet
    share = plan.served_share[0, :, :, 0]
    assert np.allclose(share.sum(axis=1), 1.0)
    assert set(np.round(share.ravel(), 9)) <= {0.0, 1.0}
    assert plan.unmet_rps.sum() == 0


def test_melange_continuous_split_is_cheaper():
    """Without slices the split is a continuous share (fleetsim's default): 1 A10G + 1 A100."""
    plan = solve(melange_problem(slice_factor=0))
    assert plan.first_orders() == {"A10G-rent": 1, "A100-80GB-rent": 1}
    assert plan.objective_usd == pytest.approx(1.01 + 3.67)


# -- small random instances against brute force -------------------------------------------------
def _capacity(pr: Problem, x: np.ndarray, k: int) -> np.ndarray:
    """(P, T) replicas serving in each period, counted by walking every order (independent code)."""
    cap = np.zeros((pr.P, pr.T))
    if pr.installed is not None:
        cap += pr.installed[k]
    for i, o in enumerate(pr.options):
        p = pr.pool_index(o.pool)
        term = o.min_term_periods if o.kind == "rent" else 10**9
        state = pr.state(o.channel)[k]
        for s in range(pr.T):
            if x[i, s] == 0:
                continue
            transit = state[s + 1 : s + o.lead_periods + 1]
            if "banned" in transit or "buyer_ban" in transit:
                continue
            for t in range(s + o.lead_periods, min(pr.T, s + o.lead_periods + term)):
                cap[p, t] += x[i, s]
    return cap


def _cost_one_class(pr: Problem, x: np.ndarray, k: int) -> float | None:
    """Cost of orders x (O, T) in future k for a ONE-class problem; None if a constraint breaks.

    With one class the best split is to serve min(demand, sum_p goodput_p x replicas_p).
    """
    tp = [pr.pools[pr.pool_index(o.pool)].chips_per_replica for o in pr.options]
    spend = 0.0
    for t in range(pr.T):
        for i, o in enumerate(pr.options):
            if x[i, t] and pr.state(o.channel)[k, t] != "open":
                return None
            if 0 < x[i, t] * tp[i] < o.min_order_chips:
                return None
        for ch, cap in pr.cap_chips.items():
            if sum(x[i, t] * tp[i] for i, o in enumerate(pr.options) if o.channel == ch) > cap[t]:
                return None
        spend += sum(x[i, t] * tp[i] * o.price_usd_per_chip * (1 + o.levy_share)
                     for i, o in enumerate(pr.options) if o.kind == "buy")
        if pr.budget_usd is not None and spend > np.sum(pr.budget_usd[: t + 1]) + 1e-9:
            return None
    cap = _capacity(pr, x, k)
    if pr.site_power_w is not None:
        owned = cap.copy()
        for i, o in enumerate(pr.options):  # rented replicas draw no site power
            if o.kind == "rent":
                owned -= _capacity(pr.with_(options=[o], installed=None), x[i : i + 1], k)
        power = np.array([p.power_w_per_replica for p in pr.pools]) @ owned
        if np.any(power > pr.site_power_w + 1e-9):
            return None
    g = np.array([p.goodput_rps[0] for p in pr.pools])
    unmet = np.maximum(pr.demand_rps[k, 0] - g @ cap, 0.0)
    total = float(pr.penalty()[0] * unmet.sum())
    for i, o in enumerate(pr.options):
        p = pr.pools[pr.pool_index(o.pool)]
        if o.kind == "buy":  # an order whose channel is banned while it travels is refunded
            state = pr.state(o.channel)[k]
            for s in range(pr.T):
                closing = [c for c in state[s + 1 : s + o.lead_periods + 1] if c in ("banned", "buyer_ban")]
                if x[i, s] and not (closing and closing[0] == "banned"):
                    total += x[i, s] * tp[i] * o.price_usd_per_chip * (1 + o.levy_share)
        else:  # a rental is paid from delivery: one cancelled or stranded in transit costs nothing
            state = pr.state(o.channel)[k]
            for s in range(pr.T):
                closing = [c for c in state[s + 1 : s + o.lead_periods + 1] if c in ("banned", "buyer_ban")]
                if x[i, s] and not closing:
                    total += x[i, s] * tp[i] * o.price_usd_per_chip_hour * pr.hours_per_period \
                        * o.min_term_periods * (1 + o.levy_share)
    owned = _capacity(pr.with_(options=[o for o in pr.options if o.kind == "buy"]),
                      x[[i for i, o in enumerate(pr.options) if o.kind == "buy"]], k)
    for j, p in enumerate(pr.pools):
        total += owned[j].sum() * (p.power_usd_per_replica_period + p.opex_usd_per_replica_period)
    return total


def brute_force(pr: Problem, n_max: int) -> float:
    """Enumerate every integer order plan (today's shared, later ones per future)."""
    O, T, K = pr.O, pr.T, pr.K
    wts = pr.weights()
    grid = list(itertools.product(range(n_max + 1), repeat=O))
    rec = list(itertools.product(grid, repeat=T - 1))
    best = math.inf
    for first in grid:
        per_k = np.full((K, len(rec)), np.inf)
        for r, later in enumerate(rec):
            x = np.array([first, *later], float).T  # (O, T)
            for k in range(K):
                c = _cost_one_class(pr, x, k)
                if c is not None:
                    per_k[k, r] = c
        if pr.cvar_weight == 0:
            val = float(wts @ per_k.min(axis=1))
        else:  # CVaR does not decompose: every joint recourse choice
            val = math.inf
            for combo in itertools.product(*[np.flatnonzero(np.isfinite(row)) for row in per_k]):
                costs = per_k[np.arange(K), list(combo)]
                val = min(val, (1 - pr.cvar_weight) * wts @ costs
                          + pr.cvar_weight * cvar(costs, wts, pr.cvar_alpha))
        best = min(best, val)
    return best


@st.composite
def small_problems(draw):
    T, K = 2, draw(st.integers(1, 2))
    pools, opts = [], []
    shared = draw(st.booleans())  # both options through one channel: its cap binds them together
    for j in range(2):
        tp = draw(st.sampled_from([1, 2]))
        pools.append(Pool(f"p{j}", f"chip{j}", tp, np.array([draw(st.sampled_from([3.0, 5.0, 8.0]))]),
                          power_w_per_replica=draw(st.sampled_from([0.0, 100.0])),
                          power_usd_per_replica_period=draw(st.sampled_from([0.0, 0.5]))))
        kind = draw(st.sampled_from(["buy", "buy", "rent"]))
        opts.append(Option(
            f"o{j}", "ch0" if shared else f"ch{j}", f"p{j}", kind=kind,
            price_usd_per_chip=draw(st.sampled_from([1.0, 2.0, 3.5])),
            price_usd_per_chip_hour=draw(st.sampled_from([0.5, 1.0])),
            levy_share=draw(st.sampled_from([0.0, 0.15])),
            lead_periods=draw(st.integers(0, 1)),
            min_order_chips=draw(st.sampled_from([0, 4])),
            min_term_periods=draw(st.integers(1, 2))))
    demand = np.array(draw(st.lists(st.sampled_from([0.0, 4.0, 9.0, 14.0]), min_size=K * T,
                                    max_size=K * T)), float).reshape(K, 1, T)
    states = {}
    if draw(st.booleans()):
        states["ch0"] = np.array(draw(st.lists(st.sampled_from(["open", "banned", "buyer_ban"]),
                                               min_size=K * T, max_size=K * T)), object).reshape(K, T)
        states["ch0"][:, 0] = "open"
    caps = ({"ch0" if shared else "ch1": np.array([draw(st.sampled_from([2.0, 4.0, 100.0]))] * T)}
            if draw(st.booleans()) else {})
    budget = np.array([draw(st.sampled_from([4.0, 8.0, 1e9]))] * T) if draw(st.booleans()) else None
    power = np.array([draw(st.sampled_from([200.0, 1e9]))] * T) if draw(st.booleans()) else None
    return Problem(
        ["c"], pools, opts, hours_per_period=1.0, demand_rps=demand,
        future_weight=np.array(draw(st.sampled_from([[0.5, 0.5], [0.8, 0.2]]))) if K > 1 else None,
        channel_state=states, cap_chips=caps, budget_usd=budget, site_power_w=power,
        unmet_penalty_usd_per_rps_period=np.array([draw(st.sampled_from([0.1, 1.0, 5.0]))]),
        cvar_weight=draw(st.sampled_from([0.0, 0.0, 0.5, 1.0])),
        cvar_alpha=draw(st.sampled_from([0.3, 0.5, 0.9])))


def _check_plan(pr: Problem, plan) -> None:
    """Caps, budget and regime states, recomputed from the orders and the problem's own inputs."""
    tp = np.array([pr.pools[pr.pool_index(o.pool)].chips_per_replica for o in pr.options])
    x = plan.orders
    assert np.allclose(x, np.round(x)) and np.all(x >= -1e-9)
    assert np.allclose(x[:, :, 0], x[0, :, 0])  # today's orders shared by every future
    for k in range(pr.K):
        for i, o in enumerate(pr.options):
            closed = pr.state(o.channel)[k] != "open"
            assert np.all(x[k, i, closed] == 0), "ordered through a closed channel"
            chips = x[k, i] * tp[i]
            assert np.all((chips == 0) | (chips >= o.min_order_chips - 1e-9))
        for ch, cap in pr.cap_chips.items():
            used = sum(x[k, i] * tp[i] for i, o in enumerate(pr.options) if o.channel == ch)
            assert np.all(used <= cap + 1e-6)
        if pr.budget_usd is not None:
            spend = sum(x[k, i] * tp[i] * o.price_usd_per_chip * (1 + o.levy_share)
                        for i, o in enumerate(pr.options) if o.kind == "buy")
            assert np.all(np.cumsum(spend) <= np.cumsum(pr.budget_usd) + 1e-6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems())
def test_milp_equals_brute_force(pr):
    plan = solve(pr, mip_gap=0.0, explain=False)
    _check_plan(pr, plan)
    n_max = int(max(math.ceil(pr.demand_rps.max() / min(p.goodput_rps[0] for p in pr.pools)), 2)) + 2
    assert plan.objective_usd == pytest.approx(brute_force(pr, n_max), rel=1e-5, abs=1e-5)  # HiGHS feasibility tol


def cheapest_rule(pr: Problem) -> np.ndarray:
    """The rule policy: order the lowest cost per goodput, enough for the demand at delivery.

    Cost per goodput = (capex x (1 + levy) or rent over its term, plus power and opex over the
    horizon) per req/s of the pool's best class; within caps, budget and open channels; today's
    order sized on the mean demand over the futures.
    """
    K, O, T = pr.K, pr.O, pr.T
    x = np.zeros((K, O, T))
    tp = np.array([pr.pools[pr.pool_index(o.pool)].chips_per_replica for o in pr.options])
    score = []
    for i, o in enumerate(pr.options):
        p = pr.pools[pr.pool_index(o.pool)]
        unit = (o.price_usd_per_chip * tp[i] if o.kind == "buy"
                else o.price_usd_per_chip_hour * pr.hours_per_period * o.min_term_periods * tp[i])
        unit = unit * (1 + o.levy_share) + T * (p.power_usd_per_replica_period + p.opex_usd_per_replica_period)
        score.append(unit / max(p.goodput_rps.max(), 1e-12))
    def capex(i: int, n: float) -> float:
        o = pr.options[i]
        return n * o.price_usd_per_chip * tp[i] * (1 + o.levy_share) if o.kind == "buy" else 0.0

    for k in range(K):
        spend = 0.0
        if k > 0:
            # Today's orders are shared by every future: future k starts with future 0's and has
            # paid for them. (Leaving their cost out of `spend` let a later order spend past the
            # budget, and the fixed-order solve then raised PlanInfeasible: the flaky failure.)
            x[k, :, 0] = x[0, :, 0]
            spend = sum(capex(i, x[0, i, 0]) for i in range(O))
        for t in range(1 if k > 0 else 0, T):
            for i in np.argsort(score):
                o = pr.options[i]
                p = pr.pools[pr.pool_index(o.pool)]
                arrive = t + o.lead_periods
                if arrive >= T or pr.state(o.channel)[k, t] != "open" or p.goodput_rps.max() <= 0:
                    continue
                if t == 0:
                    dem = pr.demand_rps[:, :, arrive].mean(axis=0)
                else:
                    dem = pr.demand_rps[k, :, arrive]
                have = sum(_capacity(pr, x[k], k)[j, arrive] * pr.pools[j].goodput_rps.max()
                           for j in range(pr.P))
                gap = dem.sum() - have
                if gap <= 0:
                    break
                n = math.ceil(gap / p.goodput_rps.max())
                n = max(n, math.ceil(o.min_order_chips / tp[i]))
                cap = pr.cap_chips.get(o.channel)
                if cap is not None:  # chips left under the channel's cap, in whole replicas of this option
                    used = sum(x[k, j, t] * tp[j] for j, oo in enumerate(pr.options) if oo.channel == o.channel)
                    n = min(n, int((cap[t] - used) // tp[i]))
                if o.kind == "buy" and pr.budget_usd is not None:
                    unit = o.price_usd_per_chip * tp[i] * (1 + o.levy_share)
                    n = min(n, int((np.sum(pr.budget_usd[: t + 1]) - spend) // unit))
                if n <= 0 or n * tp[i] < o.min_order_chips:
                    continue
                x[k, i, t] += n
                spend += capex(i, n)
    return x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_problems())
def test_rule_policy_never_beats_the_milp(pr):
    pr = pr.with_(site_power_w=None)  # the rule ignores site power
    best = solve(pr, mip_gap=0.0, explain=False)
    rule_orders = cheapest_rule(pr)
    rule = solve(pr, fix_orders=rule_orders, mip_gap=0.0, explain=False)
    assert np.allclose(rule.orders, rule_orders)
    assert best.objective_usd <= rule.objective_usd + 1e-5 * max(1.0, abs(rule.objective_usd))


def test_a_broken_cap_is_caught():
    """Guard on the guards: _check_plan and brute force see a cap the MILP was told to ignore.
    Two chips through one channel capped at 4 chips a period; demand needs 6 replicas."""
    pools = [Pool("p", "chip", 1, np.array([1.0])), Pool("q", "chip2", 1, np.array([1.0]))]
    opts = [Option("o", "ch", "p", price_usd_per_chip=1.0), Option("o2", "ch", "q", price_usd_per_chip=1.5)]
    pr = Problem(["c"], pools, opts, 1.0, np.full((1, 1, 1), 6.0), cap_chips={"ch": np.array([4.0])},
                 unmet_penalty_usd_per_rps_period=np.array([10.0]))
    loose = solve(pr.with_(cap_chips={}), explain=False)
    assert sum(loose.first_orders().values()) == 6
    with pytest.raises(AssertionError):
        _check_plan(pr, loose)
    capped = solve(pr, explain=False)
    _check_plan(pr, capped)
    assert capped.first_orders() == {"o": 4}
    assert capped.objective_usd == pytest.approx(brute_force(pr, 7)) == pytest.approx(4.0 + 2 * 10.0)


def test_cvar_buys_for_the_bad_future():
    """Two futures, demand 10 (p = 0.8) or 30 (p = 0.2) req/s, lead 1 and no recourse in time:
    a replica (1 req/s) costs 1, a unit of unmet demand 2. Expectation buys 10 (a marginal
    replica above 10 saves 0.2 x 2 = 0.4 < 1); CVaR at 0.8 looks only at the bad future and buys
    30 (saves 2 > 1). Costs by hand: expectation 10 + 0.2 x 20 x 2 = 18, CVaR 30."""
    pools = [Pool("p", "chip", 1, np.array([1.0]))]
    opts = [Option("o", "ch", "p", price_usd_per_chip=1.0, lead_periods=1)]
    demand = np.zeros((2, 1, 2))
    demand[:, 0, 1] = [10.0, 30.0]
    pr = Problem(["c"], pools, opts, 1.0, demand, future_weight=np.array([0.8, 0.2]),
                 unmet_penalty_usd_per_rps_period=np.array([2.0]), cvar_alpha=0.8)
    e = solve(pr, explain=False)
    assert e.first_orders() == {"o": 10} and e.objective_usd == pytest.approx(18.0)
    c = solve(pr.with_(cvar_weight=1.0), explain=False)
    assert c.first_orders() == {"o": 30} and c.objective_usd == pytest.approx(30.0)
    assert c.cvar_usd == pytest.approx(30.0) and e.cvar_usd == pytest.approx(50.0)


# -- hedging ------------------------------------------------------------------------------------
def hedging_problem(k_futures: int, p_close: float, naive: bool, seed: int = 11) -> Problem:
    """A cheap US channel that is banned from period 1 with probability p_close, and a domestic
    channel at twice the cost per goodput; both deliver after 2 periods; demand 100 req/s from
    period 2. Naive = one future in which the regime never changes."""
    T = 6
    pools = [Pool("us", "h20", 1, np.array([10.0]), us_controlled=True),
             Pool("dom", "ppu", 1, np.array([5.0]), domestic=True)]
    opts = [Option("nv", "nvidia", "us", price_usd_per_chip=1000.0, lead_periods=2),
            Option("th", "t-head", "dom", price_usd_per_chip=1000.0, lead_periods=2)]
    K = 1 if naive else k_futures
    closes = np.zeros(K, bool) if naive else stream(seed, "hedge").random(K) < p_close
    state = np.full((K, T), "open", dtype=object)
    state[closes, 1:] = "banned"
    demand = np.zeros((K, 1, T))
    demand[:, :, 2:] = 100.0
    return Problem(["chat"], pools, opts, 1.0, demand, channel_state={"nvidia": state},
                   unmet_penalty_usd_per_rps_period=np.array([200.0]))


def test_hedging_lowers_expected_unmet_demand():
    K, q = 40, 0.3
    stoch = hedging_problem(K, q, naive=False)
    naive_plan = solve(hedging_problem(K, q, naive=True), explain=False)
    stoch_plan = solve(stoch, explain=False)
    assert naive_plan.first_orders() == {"nv": 10}  # never-changing future: all on the cheap channel
    # score both first-stage decisions on the same sampled futures, each future re-planning later
    scored = {name: solve(stoch, fix_first_orders=pl.orders[0, :, 0], explain=False)
              for name, pl in (("naive", naive_plan), ("hedged", stoch_plan))}
    w = stoch.weights()
    unmet = {n: s.expected_unmet_rps_periods(w) for n, s in scored.items()}
    spend = {n: s.cost_split_usd["capex"] for n, s in scored.items()}
    closes = (stoch.state("nvidia")[:, 1] == "banned").mean()
    assert 0.15 < closes < 0.45
    assert unmet["naive"] == pytest.approx(100.0 * closes)  # the banned futures lose period 2
    assert unmet["hedged"] < unmet["naive"]
    assert unmet["hedged"] == 0.0
    # the price of that security: capex 20 domestic chips instead of 10 US ones in every future
    assert spend["hedged"] - spend["naive"] == pytest.approx(10_000.0 * (1 - closes))
    assert scored["hedged"].objective_usd < scored["naive"].objective_usd


# -- binding constraints, infeasibility, time limit -------------------------------------------------
def _tight(**kw) -> Problem:
    pools = [Pool("p", "chip", 1, np.array([1.0]), power_w_per_replica=500.0)]
    opts = [Option("o", "ch", "p", price_usd_per_chip=1.0)]
    base = dict(unmet_penalty_usd_per_rps_period=np.array([100.0]))
    base.update(kw)
    return Problem(["c"], pools, opts, 1.0, np.full((1, 1, 2), 10.0), **base)


@pytest.mark.parametrize("family, kw", [
    ("budget", {"budget_usd": np.array([3.0, 0.0])}),
    ("caps", {"cap_chips": {"ch": np.array([4.0, 4.0])}}),
    ("power", {"site_power_w": np.array([2500.0, 2500.0])}),
])
def test_penalty_driven_plan_names_its_binding_constraint(family, kw):
    plan = solve(_tight(**kw))
    assert plan.expected_unmet_rps_periods(np.ones(1)) > 0
    assert plan.binding == family
    assert plan.binding_gain_rps_periods > 0


def test_cheap_penalty_is_named_as_such():
    plan = solve(_tight(unmet_penalty_usd_per_rps_period=np.array([0.1])))
    assert plan.first_orders() == {}
    assert plan.binding == "unmet_penalty"


def test_infeasible_plan_names_the_budget():
    with pytest.raises(PlanInfeasible, match="binding constraint: budget"):
        solve(_tight(budget_usd=np.array([3.0, 0.0]), allow_unmet=False))


def _big_problem() -> Problem:
    rng = stream(3, "time-limit")
    K, T, C = 30, 24, 3
    pools = [Pool(f"p{j}", f"c{j}", int(rng.integers(1, 9)), rng.uniform(0.5, 5, C),
                  power_w_per_replica=rng.uniform(500, 5000)) for j in range(6)]
    opts = [Option(f"o{j}", f"ch{j % 4}", f"p{j}", price_usd_per_chip=rng.uniform(1e3, 3e4),
                   lead_periods=int(rng.integers(0, 4)), min_order_chips=int(rng.integers(0, 40)))
            for j in range(6)]
    demand = rng.uniform(50, 400, (K, C, T)).cumsum(axis=2)
    return Problem([f"c{i}" for i in range(C)], pools, opts, 720.0, demand,
                   budget_usd=np.full(T, 2e6), cap_chips={f"ch{i}": np.full(T, 300.0) for i in range(4)},
                   unmet_penalty_usd_per_rps_period=np.full(C, 5e3))


@pytest.mark.parametrize("limit_s", [1.0, 0.02])
def test_time_limit_returns_best_plan_with_gap(limit_s):
    """1 s: HiGHS's incumbent; 0.02 s: no incumbent yet, the rounded-down LP plan."""
    pr = _big_problem()
    plan = solve(pr, time_limit_s=limit_s, mip_gap=0.0, explain=False)
    assert plan.status == "time_limit"
    assert 0 < plan.mip_gap < 1
    _check_plan(pr, plan)


def test_a_presolve_solve_error_is_retried_without_presolve(monkeypatch):
    """HiGHS's presolve fails numerically (status 4) on some badly scaled programmes (the reference
    case's K = 20 x 24 periods: costs USD 1e2 to 5e8, budget rows 3e10), which killed a whole
    rolling hedge run; the same programme solves without presolve, so solve retries that way."""
    import fleetsim.fleet.optimal.milp as m

    real, calls = m.milp, []

    def flaky(*a, options, **kw):
        calls.append(options["presolve"])
        if options["presolve"]:
            from types import SimpleNamespace
            return SimpleNamespace(x=None, status=4, message="(HiGHS Status 4: Solve error)", fun=None)
        return real(*a, options=options, **kw)

    monkeypatch.setattr(m, "milp", flaky)
    plan = solve(melange_problem(slice_factor=1))
    assert calls == [True, False]
    assert plan.first_orders() == {"A10G-rent": 3, "A100-80GB-rent": 1}


def test_a_solve_error_after_the_retry_falls_back_to_the_rounded_lp_plan(monkeypatch):
    """If HiGHS's MIP search still fails numerically (status 4) with and without presolve, solve
    returns the LP relaxation's orders rounded down, scored on the same objective, with status
    "solve_error" and the gap to the LP bound, instead of stopping a whole rolling run."""
    import fleetsim.fleet.optimal.milp as m

    real, calls = m.milp, []

    def failing_mip(c, *a, integrality, bounds, options, **kw):
        search = "mip_rel_gap" in options  # the MIP search (not the LP, nor scoring fixed orders)
        calls.append(search)
        if search:
            from types import SimpleNamespace
            return SimpleNamespace(x=None, status=4, message="(HiGHS Status 4: Solve error)", fun=None)
        return real(c, *a, integrality=integrality, bounds=bounds, options=options, **kw)

    monkeypatch.setattr(m, "milp", failing_mip)
    pr = _big_problem()
    plan = solve(pr, explain=False)
    assert calls[:2] == [True, True]  # with and without presolve
    assert plan.status == "solve_error"
    assert 0 <= plan.mip_gap < 1
    _check_plan(pr, plan)
    assert sum(plan.first_orders().values()) > 0


def test_the_programme_is_scaled_and_scaling_keeps_the_plan(monkeypatch):
    """Every row reaches about 1 at its largest coefficient (powers of two), the objective stays in
    USD (scaled to its largest cost, a large unmet penalty hid a node-day's cost from HiGHS:
    tests/test_token_economics.py's DeepSeek day guards that), and the plan, objective and the budget's
    shadow price are those of the unscaled programme."""
    import fleetsim.fleet.optimal.milp as m

    pr = _tight(budget_usd=np.array([3.0, 0.0]))
    b = m.build(pr)
    top = np.abs(b.A).max(axis=1).toarray().ravel()
    assert np.all((top > 0.7) & (top < 1.42))
    scaled = solve(pr)
    monkeypatch.setattr(m, "_scale_rows", lambda A, lo, hi: (A, lo, hi, np.ones(A.shape[0])))
    plain = solve(pr)
    assert np.array_equal(scaled.orders, plain.orders)
    assert scaled.objective_usd == pytest.approx(plain.objective_usd, rel=1e-9)
    assert scaled.shadow_prices == pytest.approx(plain.shadow_prices, rel=1e-6)


def test_the_reference_hedge_programme_that_stopped_with_status_4_solves():
    """The oracle's plan in one period of the reference case's rolling hedge (K = 1, 24 periods,
    9 pools, 8 options; coefficients 0.95 to 7.9e5, costs USD 1.8e3 to 3.2e9, budget limits to
    3.4e10), pickled where HiGHS stopped with status 4 with and without presolve on the unscaled
    programme: scaled, it solves to optimality in a fraction of a second."""
    import pickle
    from pathlib import Path

    d = pickle.loads((Path(__file__).parent / "data" / "milp_status4_oracle.pkl").read_bytes())
    plan = solve(d["problem"], time_limit_s=d["time_limit_s"], mip_gap=d["mip_gap"], explain=False)
    assert plan.status == "optimal"
    assert plan.objective_usd == pytest.approx(7020972535.66, rel=1e-6)
    assert plan.first_orders() == {"huawei:ascend-910c-gen2:a910c-gen2": 13137}
