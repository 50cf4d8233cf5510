"""The planning MILP, built as sparse arrays and solved by HiGHS through scipy.optimize.milp.

Variables (K futures, O options, P pools, C classes, T periods; period 0 is shared by all futures):
  x[k,o,t]  replicas ordered (buy) or rentals started (rent) through option o in period t, integer
            in the first `integer_periods` periods;
  b[k,o,t]  1 if that order is placed (only for options with a minimum order);
  v[k,c,p,t] share of class c's demand served by pool p, in slices of 1/S (S = slice_factor; S=1
            continuous share, or integer slices in Mélange's formulation);
  w[k,c,t]  share of class c's demand left unmet;
  eta, xi[k] the CVaR auxiliaries (Rockafellar and Uryasev 2000: CVaR = min eta + E[(cost-eta)+]/(1-alpha)).

Constraints, per future and period: demand split (sum_p v/S + w = 1), capacity at the SLO
(sum_c demand * v/S / goodput <= installed + delivered orders still alive), allocation caps per
channel, minimum orders, the capex budget (cumulative when unspent budget carries over), site
power and racks for owned replicas, the domestic share of served demand.

Cost of a future: capex (price x (1 + levy), refunded when cancelled, weighted for end effects),
rent (hourly price x hours x minimum term, paid only for a rental delivered), power and other opex of owned replicas installed,
and the unmet-demand penalty. Objective: (1-w) E[cost] + w CVaR_alpha[cost].
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, csr_matrix

from fleetsim.errors import FleetsimError
from fleetsim.fleet.optimal.problem import Problem, order_effects

#: constraint families a solve can be relaxed by, to name the one that binds
FAMILIES = ("budget", "caps", "power", "racks", "domestic_share", "regime", "lead_time")

_COST_PARTS = ("capex", "rent", "power", "opex", "unmet_penalty")


class PlanInfeasible(FleetsimError):
    """No plan meets the hard constraints; the message names the binding family."""


@dataclass
class Plan:
    """The optimiser's answer for one planning period (and its recourse in every future)."""

    # "optimal"; "time_limit" (best plan found, see mip_gap); "solve_error" (HiGHS failed
    # numerically: the LP relaxation's orders rounded down, mip_gap against the LP bound)
    status: str
    orders: np.ndarray  # (K, O, T) replicas ordered / rentals started
    served_share: np.ndarray  # (K, C, P, T)
    unmet_rps: np.ndarray  # (K, C, T)
    objective_usd: float
    cost_split_usd: dict[str, float]  # expected cost per part over the horizon
    cost_by_future_usd: np.ndarray  # (K,)
    cvar_usd: float  # CVaR_alpha of the future costs (reported whatever the objective)
    solve_s: float
    mip_gap: float
    binding: str | None = None  # constraint family that causes unmet demand / infeasibility
    binding_gain_rps_periods: float = 0.0  # unmet demand (req/s x periods, expected) it removes
    shadow_prices: dict[str, float] = field(default_factory=dict)  # limit -> USD per unit (shadow_prices)
    option_names: list[str] = field(default_factory=list)
    n_vars: int = 0
    n_int: int = 0
    n_rows: int = 0

    def first_orders(self) -> dict[str, int]:
        """Replicas to order NOW per option (shared by every future), zeros dropped."""
        return {n: int(round(v)) for n, v in zip(self.option_names, self.orders[0, :, 0]) if v > 0.5}

    def expected_unmet_rps_periods(self, weights: np.ndarray) -> float:
        return float(np.einsum("k,kct->", weights, self.unmet_rps))


@dataclass
class _Built:
    c: np.ndarray
    A: csr_matrix
    lo: np.ndarray
    hi: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integrality: np.ndarray
    cost_rows: csr_matrix  # (K, n) cost of each future, linear part
    cost_const: np.ndarray  # (K,)
    part_rows: dict[str, csr_matrix]  # part -> (K, n)
    part_const: dict[str, np.ndarray]
    xcol: np.ndarray  # (K, O, T)
    vcol: np.ndarray  # (K, C, P, T), -1 where absent
    wcol: np.ndarray  # (K, C, T), -1 where absent
    dual_rows: dict[str, np.ndarray] = field(default_factory=dict)  # rows priced per limit
    row_scale: np.ndarray | None = None  # each row of A, lo, hi was divided by this (_scale_rows)


class _Rows:
    """Triplet accumulator for constraint rows."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.n = 0

    def block(self, n: int, lo, hi) -> int:
        start = self.n
        self.n += n
        self.lo.append(np.broadcast_to(np.asarray(lo, float), (n,)).copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, float), (n,)).copy())
        return start

    def add(self, rows, cols, vals) -> None:
        rows, cols, vals = np.broadcast_arrays(np.asarray(rows), np.asarray(cols), np.asarray(vals, float))
        keep = (cols >= 0) & (vals != 0)
        self.r.append(rows[keep].ravel())
        self.c.append(cols[keep].ravel())
        self.v.append(vals[keep].ravel())


def build(problem: Problem, relax: frozenset[str] = frozenset(), lp: bool = False) -> _Built:
    """Assemble the MILP (or its LP relaxation) with the named constraint families removed."""
    pr = problem
    pr.check()
    K, C, T, P, O = pr.K, pr.C, pr.T, pr.P, pr.O
    S = max(int(pr.slice_factor), 1)
    D = np.asarray(pr.demand_rps, float)
    g = np.array([p.goodput_rps for p in pr.pools], float)  # (P, C)
    tp = np.array([pr.pools[pr.pool_index(o.pool)].chips_per_replica for o in pr.options], float)
    opool = np.array([pr.pool_index(o.pool) for o in pr.options], int)
    buy = np.array([o.kind == "buy" for o in pr.options])
    n_int = T if pr.integer_periods is None else min(int(pr.integer_periods), T)
    installed = np.zeros((K, P, T)) if pr.installed is None else np.asarray(pr.installed, float)
    rented = np.zeros((K, P, T)) if pr.rented is None else np.asarray(pr.rented, float)

    # ---- per-option order effects ------------------------------------------------------------
    lead = np.array([0 if "lead_time" in relax else o.lead_periods for o in pr.options], int)
    orderable = np.ones((K, O, T), bool)
    delivered = np.ones((K, O, T))
    paid = np.ones((K, O, T))
    removal = np.full((K, O), T, int)
    if "regime" not in relax:
        for i, o in enumerate(pr.options):
            orderable[:, i], delivered[:, i], paid[:, i] = order_effects(pr, o)
            if o.channel in pr.removal_period:
                removal[:, i] = np.minimum(np.asarray(pr.removal_period[o.channel], int), T)
    life = np.array([T + 1 if o.kind == "buy" else o.min_term_periods for o in pr.options], int)
    # alive[k,o,s,t]: share of an order placed at s serving in t
    s_idx = np.arange(T)[:, None]
    t_idx = np.arange(T)[None, :]
    alive = np.zeros((K, O, T, T))
    for i in range(O):
        win = (t_idx >= s_idx + lead[i]) & (t_idx < s_idx + lead[i] + life[i])
        alive[:, i] = win[None] & (t_idx[None] < removal[:, i, None, None])
        alive[:, i] *= delivered[:, i, :, None]

    # upper bound on any one order: serve all peak demand from that pool alone
    peak = D.max(axis=(0, 2))  # (C,)
    need = np.zeros(O)
    for i in range(O):
        gp = g[opool[i]]
        if np.any(gp > 0):
            need[i] = np.ceil(np.sum(np.where(gp > 0, peak / np.where(gp > 0, gp, 1), 0.0))) + 1
            need[i] = max(need[i], np.ceil(pr.options[i].min_order_chips / tp[i]))
    for i, o in enumerate(pr.options):
        cap = pr.cap_chips.get(o.channel)
        if cap is not None and "caps" not in relax:
            need[i] = min(need[i], np.floor(np.max(cap) / tp[i]))

    # ---- columns -------------------------------------------------------------------------------
    lb: list[float] = []
    ub: list[float] = []
    integ: list[int] = []

    def new(n: int, lo, hi, is_int) -> np.ndarray:
        start = len(lb)
        lb.extend(np.broadcast_to(lo, (n,)).tolist())
        ub.extend(np.broadcast_to(hi, (n,)).tolist())
        integ.extend([int(bool(is_int))] * n)
        return np.arange(start, start + n)

    xcol = np.full((K, O, T), -1, int)
    bcol = np.full((K, O, T), -1, int)
    for i, o in enumerate(pr.options):
        has_min = o.min_order_chips > tp[i]
        for t in range(T):
            is_int = (t < n_int) and not lp
            if t == 0:
                ok = orderable[:, i, 0].all() and need[i] > 0
                xcol[:, i, 0] = new(1, 0.0, need[i] if ok else 0.0, is_int)[0]
                if has_min and t < n_int:
                    bcol[:, i, 0] = new(1, 0.0, 1.0, not lp)[0]
            else:
                hi = np.where(orderable[:, i, t] & (delivered[:, i, t] > 0), need[i], 0.0)
                xcol[:, i, t] = new(K, 0.0, hi, is_int)
                if has_min and t < n_int:
                    bcol[:, i, t] = new(K, 0.0, 1.0, not lp)
    vcol = np.full((K, C, P, T), -1, int)
    routed = np.array([not p.serves_with for p in pr.pools])  # decode sides take no demand of their own
    serveable = (g.T > 0)[None, :, :, None] & (D > 0)[:, :, None, :] & routed[None, None, :, None]  # (K,C,P,T)
    nv = int(serveable.sum())
    vcol[serveable] = new(nv, 0.0, float(S), pr.slice_factor > 0 and not lp)
    wcol = np.full((K, C, T), -1, int)
    nw = int((D > 0).sum())
    wcol[D > 0] = new(nw, 0.0, 1.0 if pr.allow_unmet else 0.0, False)
    use_cvar = pr.cvar_weight > 0
    if use_cvar:
        eta = new(1, -np.inf, np.inf, False)[0]
        xi = new(K, 0.0, np.inf, False)
    n = len(lb)

    # ---- costs per future -----------------------------------------------------------------------
    parts = {p: ([], [], []) for p in _COST_PARTS}  # (future, col, value)
    pconst = {p: np.zeros(K) for p in _COST_PARTS}
    run_usd = np.array([p.power_usd_per_replica_period for p in pr.pools])
    opx_usd = np.array([p.opex_usd_per_replica_period for p in pr.pools])
    kk = np.arange(K)

    def cost(part: str, fut, col, val) -> None:
        fut, col, val = np.broadcast_arrays(np.asarray(fut), np.asarray(col), np.asarray(val, float))
        parts[part][0].append(fut.ravel())
        parts[part][1].append(col.ravel())
        parts[part][2].append(val.ravel())

    for i, o in enumerate(pr.options):
        for s in range(T):
            col = xcol[:, i, s]
            if o.kind == "buy":
                w = 1.0 if o.capex_weight is None else float(np.asarray(o.capex_weight)[s])
                unit = o.price_usd_per_chip * tp[i] * (1 + o.levy_share) * w
                cost("capex", kk, col, unit * paid[:, i, s])
                served = alive[:, i, s, :].sum(axis=1)  # replica-periods alive (K,)
                cost("power", kk, col, run_usd[opool[i]] * served)
                cost("opex", kk, col, opx_usd[opool[i]] * served)
            else:
                unit = (
                    o.price_usd_per_chip_hour * pr.hours_per_period * o.min_term_periods * tp[i]
                    * (1 + o.levy_share)
                )
                cost("rent", kk, col, unit * delivered[:, i, s])  # paid from delivery, as in the fleet
    pconst["power"] += np.einsum("kpt,p->k", installed, run_usd)
    pconst["opex"] += np.einsum("kpt,p->k", installed, opx_usd)
    pen = pr.penalty()
    m = D > 0
    kw, cw, tw = np.nonzero(m)
    cost("unmet_penalty", kw, wcol[m], pen[cw] * D[m])

    part_rows = {}
    for p, (f, c_, v) in parts.items():
        if f:
            f, c_, v = np.concatenate(f), np.concatenate(c_), np.concatenate(v)
            keep = c_ >= 0
            part_rows[p] = coo_matrix((v[keep], (f[keep], c_[keep])), shape=(K, n)).tocsr()
        else:
            part_rows[p] = csr_matrix((K, n))
    cost_rows = sum(part_rows.values())
    cost_const = sum(pconst.values())

    wts = pr.weights()
    lam = pr.cvar_weight
    cvec = (1 - lam) * np.asarray(cost_rows.T @ wts).ravel()
    # eta and xi are in units of `unit` USD, so a CVaR row's coefficients stay within ~1e3 of
    # each other (HiGHS's MIP search called such rows infeasible at USD 1e9 against 1)
    big = max(float(np.abs(cost_rows.data).max()) if cost_rows.nnz else 1.0, float(np.abs(cost_const).max()), 1.0)
    unit = 10.0 ** max(0, int(np.floor(np.log10(big))) - 2)
    if use_cvar:
        cvec[eta] += lam * unit
        cvec[xi] += lam * unit * wts / (1 - pr.cvar_alpha)

    # ---- constraints -------------------------------------------------------------------------------
    R = _Rows()
    dual_rows: dict[str, np.ndarray] = {}  # budget, power, racks, cap:<channel> -> rows priced (shadow_prices)
    # demand split: sum_p v/S + w = 1
    ks, cs, ts = np.nonzero(m)
    r0 = R.block(len(ks), 1.0, 1.0)
    rows = r0 + np.arange(len(ks))
    for p in range(P):
        R.add(rows, vcol[ks, cs, p, ts], 1.0 / S)
    R.add(rows, wcol[ks, cs, ts], 1.0)
    # capacity: sum_c D v / (S g) - sum alive x (owned: x (1 - spare)) <= installed (1 - spare) + rented
    own = 1.0 - float(pr.spare_share)  # owned replicas serve net of spares; rented ones in full
    r0 = R.block(K * P * T, -np.inf, (installed * own + rented).ravel())
    cap_row = r0 + np.arange(K * P * T).reshape(K, P, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        load = np.where(g.T[None, :, :, None] > 0, D[:, :, None, :] / (S * g.T[None, :, :, None]), 0.0)
    kx, cx, px, tx = np.nonzero(vcol >= 0)
    R.add(cap_row[kx, px, tx], vcol[kx, cx, px, tx], load[kx, cx, px, tx])
    for j, p in enumerate(pr.pools):  # a decode side carries its prefill pool's load at its own rate
        if p.serves_with:
            q = pr.pool_index(p.serves_with)
            sel = px == q
            with np.errstate(divide="ignore", invalid="ignore"):
                lj = np.where(g[j][cx[sel]] > 0, D[kx[sel], cx[sel], tx[sel]] / (S * g[j][cx[sel]]), 1e9)
            R.add(cap_row[kx[sel], j, tx[sel]], vcol[kx[sel], cx[sel], q, tx[sel]], lj)
    for i in range(O):
        for s in range(T):
            a = alive[:, i, s, :]  # (K, T)
            R.add(cap_row[:, opool[i], :], xcol[:, i, s][:, None], -a * (own if buy[i] else 1.0))
    # allocation caps per channel and period (chips)
    if "caps" not in relax:
        for ch, cap in pr.cap_chips.items():
            members = [i for i, o in enumerate(pr.options) if o.channel == ch]
            if not members:
                continue
            cap = np.broadcast_to(np.asarray(cap, float), (T,))
            r0 = R.block(1, -np.inf, cap[0])
            dual_rows[f"cap:{ch}"] = np.array([r0])
            for i in members:
                R.add(r0, xcol[0, i, 0], tp[i])
            if T > 1:
                r0 = R.block(K * (T - 1), -np.inf, np.tile(cap[1:], K))
                rows = r0 + np.arange(K * (T - 1)).reshape(K, T - 1)
                for i in members:
                    R.add(rows, xcol[:, i, 1:], tp[i])
    # minimum order: x*tp >= min*b, x <= ub*b
    for i, o in enumerate(pr.options):
        if o.min_order_chips <= tp[i]:
            continue
        pairs = {}  # order column -> its on/off column (period 0 is one pair for every future)
        for k in range(K):
            for t in range(n_int):
                pairs[xcol[k, i, t]] = bcol[k, i, t]
        cx_, cb_ = np.array(list(pairs.keys())), np.array(list(pairs.values()))
        r0 = R.block(len(cx_), 0.0, np.inf)
        rows = r0 + np.arange(len(cx_))
        R.add(rows, cx_, tp[i])
        R.add(rows, cb_, -float(o.min_order_chips))
        r0 = R.block(len(cx_), -np.inf, 0.0)
        rows = r0 + np.arange(len(cx_))
        R.add(rows, cx_, 1.0)
        R.add(rows, cb_, -max(need[i], 1.0))
    # budget on committed capex (cumulative if it carries over)
    if pr.budget_usd is not None and "budget" not in relax:
        bud = np.broadcast_to(np.asarray(pr.budget_usd, float), (T,))
        rhs = np.cumsum(bud) if pr.budget_carry_over else bud
        r0 = R.block(K * T, -np.inf, np.tile(rhs, K))
        rows = r0 + np.arange(K * T).reshape(K, T)
        # one more USD now: with carry-over it raises every later row's cumulative limit too
        dual_rows["budget"] = (rows if pr.budget_carry_over else rows[:, :1]).ravel().copy()
        for i, o in enumerate(pr.options):
            if o.kind != "buy":
                continue
            unit = o.price_usd_per_chip * tp[i] * (1 + o.levy_share)
            for s in range(T):
                tt = np.arange(s, T) if pr.budget_carry_over else np.array([s])
                R.add(rows[:, tt], xcol[:, i, s][:, None], unit)
    # site power and racks (owned replicas only)
    for fam, limit, per in (
        ("power", pr.site_power_w, np.array([p.power_w_per_replica for p in pr.pools])),
        ("racks", pr.site_racks, np.array([p.racks_per_replica for p in pr.pools])),
    ):
        if limit is None or fam in relax:
            continue
        lim = np.broadcast_to(np.asarray(limit, float), (T,))
        used = np.einsum("kpt,p->kt", installed, per)
        r0 = R.block(K * T, -np.inf, np.maximum(lim[None, :] - used, 0.0).ravel())
        rows = r0 + np.arange(K * T).reshape(K, T)
        dual_rows[fam] = rows.ravel().copy()  # one more W (rack) for the rest of the horizon
        for i in range(O):
            if not buy[i] or per[opool[i]] == 0:
                continue
            for s in range(T):
                R.add(rows, xcol[:, i, s][:, None], per[opool[i]] * alive[:, i, s, :])
    # domestic share of served demand: share * served - domestic served <= 0
    if pr.domestic_share_min > 0 and "domestic_share" not in relax:
        t0 = int(pr.domestic_share_from_period)
        if t0 < T:
            dom = np.array([p.domestic for p in pr.pools], float)
            r0 = R.block(K * (T - t0), -np.inf, 0.0)
            rows = r0 + np.arange(K * (T - t0)).reshape(K, T - t0)
            sel = tx >= t0
            coef = D[kx, cx, tx] / S * (pr.domestic_share_min - dom[px])
            R.add(rows[kx[sel], tx[sel] - t0], vcol[kx[sel], cx[sel], px[sel], tx[sel]], coef[sel])
    # CVaR: cost_k(x) - eta - xi_k <= -const_k
    if use_cvar:
        r0 = R.block(K, -np.inf, -cost_const / unit)
        cr = cost_rows.tocoo()
        R.add(r0 + cr.row, cr.col, cr.data / unit)
        R.add(r0 + kk, eta, -1.0)
        R.add(r0 + kk, xi, -1.0)

    rr = np.concatenate(R.r) if R.r else np.zeros(0, int)
    cc = np.concatenate(R.c) if R.c else np.zeros(0, int)
    vv = np.concatenate(R.v) if R.v else np.zeros(0)
    A = coo_matrix((vv, (rr, cc)), shape=(R.n, n)).tocsr()
    lo_r = np.concatenate(R.lo) if R.lo else np.zeros(0)
    hi_r = np.concatenate(R.hi) if R.hi else np.zeros(0)
    A, lo_r, hi_r, row_scale = _scale_rows(A, lo_r, hi_r)
    return _Built(
        c=cvec,  # in USD: divided by its largest cost (a USD 1e6/Mtok unmet penalty on DeepSeek's
        # day), a node-day's USD 384 fell below HiGHS's tolerances; the rows' scaling alone solves
        # the status-4 programme
        A=A,
        lo=lo_r,
        hi=hi_r,
        lb=np.array(lb),
        ub=np.array(ub),
        integrality=np.array(integ),
        cost_rows=cost_rows,
        cost_const=cost_const,
        part_rows=part_rows,
        part_const=pconst,
        xcol=xcol,
        vcol=vcol,
        wcol=wcol,
        dual_rows=dual_rows,
        row_scale=row_scale,
    )


def _scale_rows(A: csr_matrix, lo: np.ndarray, hi: np.ndarray):
    """Divide each row (and its bounds) by the power of two nearest its largest coefficient.

    The programme mixes budget rows in USD (coefficients to 5e8, limits to 3e10) with capacity
    and split rows near 1; HiGHS applies absolute tolerances (1e-7 primal, 1e-6 integrality) and
    on the reference case's rolling hedge its MIP search stopped with status 4 ("Solve error")
    with and without presolve. Rows scaled to coefficients within [0.7, 1.4] of 1 at the top keep
    the same feasible set (powers of two divide exactly) and let it solve."""
    if A.shape[0] == 0 or A.nnz == 0:
        return A, lo, hi, np.ones(A.shape[0])
    big = np.zeros(A.shape[0])
    np.maximum.at(big, np.repeat(np.arange(A.shape[0]), np.diff(A.indptr)), np.abs(A.data))
    sc = np.where(big > 0, 2.0 ** np.round(np.log2(np.where(big > 0, big, 1.0))), 1.0)
    A = csr_matrix(A.multiply(1.0 / sc[:, None]))
    return A, lo / sc, hi / sc, sc


def _run(b: _Built, time_limit_s: float | None, mip_gap: float | None,
         fix_x: np.ndarray | None = None, fix_first: np.ndarray | None = None):
    """HiGHS on the built (row- and objective-scaled) problem; a numerical failure (status 4,
    "Solve error", seen on the unscaled reference case's K = 20 x 24-period programme, whose
    costs span USD 1e2 to 5e8 and whose budget rows reach 3e10) is retried once without
    presolve; what still fails falls back to the rounded LP plan in `solve`."""
    res = _run_once(b, time_limit_s, mip_gap, fix_x, fix_first, presolve=True)
    if res.x is None and res.status == 4:
        res = _run_once(b, time_limit_s, mip_gap, fix_x, fix_first, presolve=False)
    return res


def _run_once(b: _Built, time_limit_s: float | None, mip_gap: float | None,
              fix_x: np.ndarray | None, fix_first: np.ndarray | None, presolve: bool):
    lb, ub = b.lb.copy(), b.ub.copy()
    if fix_x is not None:
        cols = b.xcol.ravel()
        vals = np.asarray(fix_x, float).ravel()
        lb[cols] = vals
        ub[cols] = vals
    if fix_first is not None:
        cols = b.xcol[0, :, 0]
        lb[cols] = ub[cols] = np.asarray(fix_first, float)
    opts = {"disp": False, "presolve": bool(presolve)}
    if time_limit_s is not None:
        opts["time_limit"] = float(time_limit_s)
    if mip_gap is not None:
        opts["mip_rel_gap"] = float(mip_gap)
    cons = [LinearConstraint(b.A, b.lo, b.hi)] if b.A.shape[0] else []
    return milp(b.c, constraints=cons, integrality=b.integrality, bounds=Bounds(lb, ub), options=opts)


def _unmet(problem: Problem, b: _Built, x: np.ndarray) -> np.ndarray:
    D = problem.demand_rps
    u = np.zeros_like(D, dtype=float)
    m = b.wcol >= 0
    u[m] = x[b.wcol[m]] * D[m]
    return u


def solve(
    problem: Problem,
    *,
    time_limit_s: float | None = 60.0,
    mip_gap: float | None = 1e-4,
    explain: bool = True,
    fix_orders: np.ndarray | None = None,
    fix_first_orders: np.ndarray | None = None,
) -> Plan:
    """Solve the planning problem; name the binding constraint family when demand goes unmet.

    `fix_orders` (K, O, T) evaluates a given plan: its orders are fixed and only the split (and
    unmet demand) is optimised, so any policy's plan is scored on this same objective.
    """
    t0 = time.perf_counter()
    b = build(problem)
    res = _run(b, time_limit_s, mip_gap, fix_orders, fix_first_orders)
    solve_s = time.perf_counter() - t0
    K, C, P, T, O = problem.K, problem.C, problem.P, problem.T, problem.O
    names = [o.name for o in problem.options]
    lp_bound = None
    solve_error = res.x is None and res.status == 4
    if res.x is None and res.status in (1, 4) and problem.allow_unmet and fix_orders is None:
        # time limit before HiGHS found a plan, or a numerical failure of its MIP search that
        # the row scaling and the retry without presolve did not cure (status 4, never seen on
        # a scaled programme): round the LP relaxation's orders down (every
        # cap, budget and site row has non-negative order coefficients, so that stays feasible),
        # drop orders below their minimum, and score that plan; the LP optimum bounds the gap
        bl = build(problem, lp=True)
        rl = _run(bl, None, None, None, fix_first_orders)  # an LP: no time limit
        if rl.x is not None:
            lp_bound = float(rl.fun)  # USD
            xs = np.floor(rl.x[bl.xcol] + 1e-9)
            tpv = np.array([problem.pools[problem.pool_index(o.pool)].chips_per_replica
                            for o in problem.options], float)
            mins = np.array([o.min_order_chips for o in problem.options], float)
            xs[xs * tpv[None, :, None] < mins[None, :, None]] = 0.0
            xs[:, :, 0] = xs[0, :, 0]
            res = _run(b, None, None, xs, None)
            if res.x is not None:
                res.status = 4 if solve_error else 1
    if res.x is None:
        binding = _explain_infeasible(problem, time_limit_s) if explain else None
        if res.status == 2 or binding is not None:
            raise PlanInfeasible(
                "no plan meets the constraints"
                + (f"; binding constraint: {binding} (relaxing it makes the plan feasible)" if binding else "")
            )
        raise FleetsimError(f"planner MILP stopped without a plan: {res.message}")
    xv = np.array(res.x, dtype=float)
    # HiGHS meets integrality to a tolerance (1e-6): snap integer variables to whole numbers, so
    # orders are whole chips and every figure below is computed from the plan actually placed.
    whole = b.integrality.astype(bool)
    xv[whole] = np.round(xv[whole])
    orders = xv[b.xcol]
    share = np.zeros((K, C, P, T))
    mv = b.vcol >= 0
    share[mv] = xv[b.vcol[mv]] / max(int(problem.slice_factor), 1)
    unmet = _unmet(problem, b, xv)
    wts = problem.weights()
    by_future = np.asarray(b.cost_rows @ xv).ravel() + b.cost_const
    split = {
        p: float(wts @ (np.asarray(b.part_rows[p] @ xv).ravel() + b.part_const[p])) for p in _COST_PARTS
    }
    status = {0: "optimal", 4: "solve_error"}.get(res.status, "time_limit")
    gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
    if lp_bound is not None:
        fun = float(res.fun)
        gap = float((fun - lp_bound) / max(abs(fun), 1e-9))
    plan = Plan(
        status=status,
        orders=orders,
        served_share=share,
        unmet_rps=unmet,
        objective_usd=0.0,
        cost_split_usd=split,
        cost_by_future_usd=by_future,
        cvar_usd=cvar(by_future, wts, problem.cvar_alpha),
        solve_s=solve_s,
        mip_gap=gap,
        option_names=names,
        n_vars=len(b.c),
        n_int=int(b.integrality.sum()),
        n_rows=b.A.shape[0],
    )
    lam = problem.cvar_weight
    plan.objective_usd = float((1 - lam) * (wts @ by_future) + lam * plan.cvar_usd)
    if explain and fix_orders is None and fix_first_orders is None and plan.expected_unmet_rps_periods(wts) > 1e-9:
        plan.binding, plan.binding_gain_rps_periods = _explain_unmet(problem, plan, time_limit_s)
    if fix_orders is None and fix_first_orders is None:
        plan.shadow_prices = shadow_prices(b, xv)
    plan.solve_s = time.perf_counter() - t0
    return plan


def shadow_prices(b: _Built, xv: np.ndarray) -> dict[str, float]:
    """What one more unit of each limit would save, in expected USD, summed over the futures:
    budget, USD per USD released now (carried over when the budget carries over); a channel's
    cap, USD per chip of this period's allocation; site power and racks, USD per W (rack) from
    now to the horizon.

    scipy's milp returns no duals for a MIP, so this solves an LP with scipy.optimize.linprog
    (method 'highs') and reads the marginals of the period-0 rows: the MILP's on/off (minimum
    order) variables fixed at its solution, the order counts relaxed to continuous (fixing them
    too would leave the budget, cap and power rows with nothing free, every price 0). So these
    are the prices of the chosen plan's structure with divisible orders, near but not equal to
    the MILP's. The orders' upper bounds (which repeat the caps) are lifted so the cap rows carry
    the price. A limit that does not bind is 0."""
    from scipy.optimize import linprog

    if not b.dual_rows or b.A.shape[0] == 0:
        return {}
    lb, ub = b.lb.copy(), b.ub.copy()
    onoff = b.integrality.astype(bool) & (b.lb >= 0) & (b.ub <= 1)
    lb[onoff] = ub[onoff] = xv[onoff]
    ub[b.xcol[b.xcol >= 0]] = np.inf  # the orders' bounds repeat the caps: let the cap rows price them
    eq = np.isfinite(b.lo) & np.isfinite(b.hi) & (b.lo == b.hi)
    up = np.isfinite(b.hi) & ~eq
    dn = np.isfinite(b.lo) & ~eq
    A = b.A.tocsr()
    from scipy.sparse import vstack
    A_ub = vstack([A[up], -A[dn]]).tocsr()
    b_ub = np.concatenate([b.hi[up], -b.lo[dn]])
    res = linprog(b.c, A_ub=A_ub if A_ub.shape[0] else None, b_ub=b_ub if A_ub.shape[0] else None,
                  A_eq=A[eq] if eq.any() else None, b_eq=b.hi[eq] if eq.any() else None,
                  bounds=np.column_stack([lb, ub]), method="highs")
    if res.status != 0:
        return {}
    dual = np.zeros(b.A.shape[0])
    mu = np.asarray(res.ineqlin.marginals) if A_ub.shape[0] else np.zeros(0)
    dual[np.nonzero(up)[0]] += mu[: int(up.sum())]
    dual[np.nonzero(dn)[0]] -= mu[int(up.sum()):]
    if eq.any():
        dual[np.nonzero(eq)[0]] += np.asarray(res.eqlin.marginals)
    if b.row_scale is not None:
        dual = dual / b.row_scale  # back to USD per unit of each row's own limit
    return {k: float(max(0.0, -dual[rows].sum())) for k, rows in sorted(b.dual_rows.items())}


def cvar(costs: np.ndarray, weights: np.ndarray, alpha: float) -> float:
    """CVaR_alpha of a discrete distribution: mean of the worst (1-alpha) probability mass."""
    order = np.argsort(costs)[::-1]
    c, w = np.asarray(costs)[order], np.asarray(weights)[order]
    tail = 1.0 - alpha
    take = np.minimum(w, np.maximum(tail - (np.cumsum(w) - w), 0.0))
    return float(c @ take / tail)


def _lp_unmet(problem: Problem, relax: frozenset[str], time_limit_s) -> float | None:
    b = build(problem, relax=relax, lp=True)
    res = _run(b, time_limit_s, None)
    if res.x is None:
        return None
    return float(problem.weights() @ _unmet(problem, b, res.x).sum(axis=(1, 2)))


def _active_families(pr: Problem) -> list[str]:
    """Only the families the problem has (relaxing an absent one changes nothing)."""
    on = {
        "budget": pr.budget_usd is not None,
        "caps": bool(pr.cap_chips),
        "power": pr.site_power_w is not None,
        "racks": pr.site_racks is not None,
        "domestic_share": pr.domestic_share_min > 0,
        "regime": bool(pr.removal_period) or any(
            np.any(np.asarray(s, dtype=object) != "open") for s in pr.channel_state.values()),
        "lead_time": any(o.lead_periods > 0 for o in pr.options),
    }
    return [f for f in FAMILIES if on[f]]


def _explain_unmet(problem: Problem, plan: Plan, time_limit_s) -> tuple[str, float]:
    """Relax each constraint family in turn (LP relaxation): the one that removes most unmet binds."""
    base = _lp_unmet(problem, frozenset(), time_limit_s)
    if base is None:
        base = plan.expected_unmet_rps_periods(problem.weights())
    best, gain = "unmet_penalty", 0.0  # capacity would cost more than the penalty
    for fam in _active_families(problem):
        u = _lp_unmet(problem, frozenset({fam}), time_limit_s)
        if u is not None and base - u > gain + 1e-9 * max(base, 1.0):
            best, gain = fam, base - u
    return best, gain


def _explain_infeasible(problem: Problem, time_limit_s) -> str | None:
    for fam in _active_families(problem):
        b = build(problem, relax=frozenset({fam}), lp=True)
        if _run(b, time_limit_s, None).x is not None:
            return fam
    return None
