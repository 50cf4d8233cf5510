"""Value of hedging out of sample (fleetsim.fleet.optimal.hedge) on a case worked by hand.

Two periods. Demand: none in period 0, 10 req/s in period 1. Two replica types, each serving
1 req/s per replica and costing o = USD 200 a period to run once owned:
- A, through a US channel, USD 1,000 a replica, lead 0; in period 1 the channel is banned with
  probability q (then nothing can be ordered there);
- B, domestic, USD 3,000 a replica, lead 0, always open.
Unmet demand costs USD 1e6 per req/s-period, so demand is always served.

First-stage choices (per replica, x 10 replicas):
- buy A now: 1,000 + 2 x 200 = 1,400 whatever happens (it runs in both periods);
- wait: if open, buy A in period 1: 1,000 + 200 = 1,200; if banned, buy B: 3,000 + 200 = 3,200;
  expected (1 - q) 1,200 + q 3,200 = 1,200 + 2,000 q.
Buying now is best when 1,400 < 1,200 + 2,000 q, i.e. above the break-even q* = 0.1.

At q = 0.3 (the planner's sample: 10 futures, 3 banned): the stochastic plan buys 10 A now
(cost 14,000). The expected-value plan sees one mean future whose most likely period-1 state is
open, so it waits: expected cost 10 x (1,200 + 600) = 18,000. The oracle buys now only when it
knows the ban comes: 0.7 x 12,000 + 0.3 x 14,000 = 12,600. So VSS = 18,000 - 14,000 = 4,000 and
EVPI = 14,000 - 12,600 = 1,400. Per held-out future: VSS is -2,000 (open) or +18,000 (banned),
so its mean is -2,000 + 20,000 q_hat; EVPI is 2,000 (open) or 0, mean 2,000 (1 - q_hat).
At q = 0.05 < q* both plans wait and coincide: VSS = 0 exactly.
With mean-CVaR weight 1 at alpha 0.9 and q = 0.05, waiting's CVaR is the worst 10% of mass:
(0.05 x 32,000 + 0.05 x 12,000) / 0.1 = 22,000 > 14,000: the risk-averse plan buys now, paying
1,000 more in expectation (14,000 against 13,000) for a lower CVaR: the price of security.
"""

from __future__ import annotations

import numpy as np
import pytest

from fleetsim.fleet.optimal.hedge import evaluate, mean_future, summarise
from fleetsim.fleet.optimal.problem import Option, Pool, Problem
from fleetsim.rng import stream

PRICE_A, PRICE_B, OPEX, N_REP = 1000.0, 3000.0, 200.0, 10


def _problem(banned: np.ndarray, cvar_weight: float = 0.0) -> Problem:
    """One future per entry of `banned` (True: the US channel is banned in period 1)."""
    K = len(banned)
    D = np.zeros((K, 1, 2))
    D[:, 0, 1] = N_REP
    pools = [Pool("a", "chip-a", 1, np.array([1.0]), opex_usd_per_replica_period=OPEX, us_controlled=True),
             Pool("b", "chip-b", 1, np.array([1.0]), opex_usd_per_replica_period=OPEX, domestic=True)]
    options = [Option("us:chip-a:a", "us", "a", price_usd_per_chip=PRICE_A),
               Option("dom:chip-b:b", "dom", "b", price_usd_per_chip=PRICE_B)]
    state = np.full((K, 2), "open", dtype=object)
    state[np.asarray(banned, bool), 1] = "banned"
    return Problem(classes=["chat"], pools=pools, options=options, hours_per_period=720.0, demand_rps=D,
                   channel_state={"us": state}, unmet_penalty_usd_per_rps_period=np.array([1e6]),
                   cvar_alpha=0.9, cvar_weight=cvar_weight)


def _sample(q: float, K: int) -> np.ndarray:
    """The planner's K futures with exactly round(q K) bans (its belief, no sampling noise)."""
    b = np.zeros(K, bool)
    b[: int(round(q * K))] = True
    return b


def _holdout(q: float, n: int = 200) -> np.ndarray:
    return stream(19, "test", "holdout", int(q * 100)).random(n) < q


def _by(scores):
    return {s.name: s for s in scores}


def test_stochastic_plan_buys_now_above_break_even_and_values_match_hand():
    q = 0.3
    hold = _holdout(q)
    scores = evaluate(_problem(_sample(q, 10)), _problem(hold))
    by = _by(scores)
    assert by["stochastic"].first_orders.tolist() == [N_REP, 0]      # 10 A now
    assert by["expected_value"].first_orders.tolist() == [0, 0]      # waits
    assert np.allclose(by["stochastic"].cost_usd, 14000)
    out = summarise(scores, 0.9, seed=19)
    qh = hold.mean()
    vss, evpi = out["vss_usd"], out["evpi_usd"]
    # out of sample: exactly the hand formulas at the held-out ban share ...
    assert vss[0] == pytest.approx(-2000 + 20000 * qh)
    assert evpi[0] == pytest.approx(2000 * (1 - qh))
    # ... and the hand values (at q itself) inside their 95% intervals
    assert vss[1] <= 4000 <= vss[2]
    assert evpi[1] <= 1400 <= evpi[2]
    # oracle <= stochastic <= expected value, so VSS >= 0 and EVPI >= 0 (within the intervals)
    cost = {k: out["policies"][k]["expected_cost_usd"][0] for k in ("oracle", "stochastic", "expected_value")}
    assert cost["oracle"] <= cost["stochastic"] <= cost["expected_value"]
    assert vss[2] >= 0 and evpi[2] >= 0 and vss[0] > 0 and evpi[0] > 0
    # in sample (the planner's own futures as the held-out set): the hand values exactly
    ins = summarise(evaluate(_problem(_sample(q, 10)), _problem(_sample(q, 10))), 0.9, seed=19)
    assert ins["vss_usd"][0] == pytest.approx(4000)
    assert ins["evpi_usd"][0] == pytest.approx(1400)
    # nothing is stranded: a ban with lead 0 never catches an order in transit
    assert np.all(by["stochastic"].stranded_usd == 0)


def test_below_break_even_the_plans_coincide_and_vss_is_zero():
    q = 0.05
    scores = evaluate(_problem(_sample(q, 20)), _problem(_holdout(q)), risk_weights=[1.0])
    by = _by(scores)
    assert by["stochastic"].first_orders.tolist() == by["expected_value"].first_orders.tolist() == [0, 0]
    out = summarise(scores, 0.9, seed=19)
    assert out["vss_usd"][0] == 0.0 and out["vss_usd"][1] == out["vss_usd"][2] == 0.0
    assert out["evpi_usd"][0] >= 0
    # the front: full CVaR weight buys now (hand: CVaR of waiting 22,000 > 14,000) and pays for it
    cv = by["stochastic cvar w=1"]
    assert cv.first_orders.tolist() == [N_REP, 0]
    front = out["front"]
    assert [r["risk_weight"] for r in front] == [0.0, 1.0]
    assert front[1]["expected_cost_usd"][0] > front[0]["expected_cost_usd"][0]
    assert front[1]["cvar_cost_usd"][0] < front[0]["cvar_cost_usd"][0]


def test_mean_future_takes_mean_demand_and_most_likely_state():
    pr = _problem(np.array([True, False, False]))
    pr = pr.with_(demand_rps=pr.demand_rps * np.array([1.0, 2.0, 3.0])[:, None, None])
    m = mean_future(pr)
    assert m.K == 1
    assert m.demand_rps[0, 0, 1] == pytest.approx(N_REP * 2.0)
    assert m.state("us")[0].tolist() == ["open", "open"]
