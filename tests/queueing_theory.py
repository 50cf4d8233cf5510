"""Known answers for the serving-layer validation: classical queues and batch-means intervals.

Formulas (any queueing text, e.g. Kleinrock vol. 1, Gross & Harris):
- Erlang C: M/M/c mean wait Wq = C(c, a) / (c mu - lambda), a = lambda / mu.
- Erlang B: M/G/c/c blocking probability, insensitive to the service law.
- Pollaczek-Khinchine: M/G/1 mean wait Wq = lambda E[S^2] / (2 (1 - rho)), exact for any service
  law with a finite second moment; M/D/1 and M/M/1 are its special cases.
- Allen-Cunneen: GI/G/c Wq ~ Wq(M/M/c) (ca^2 + cs^2) / 2, an approximation (exact for M/M/c and
  M/G/1); used here only to size the bias of a slightly non-exponential service.
- JSQ: join-the-shortest-queue over c exponential servers, each with its own FCFS queue (what a
  pool with per-replica queues and the `jsq` router is). No closed form; solved as a Markov chain
  on sorted queue-length vectors: `jsq_qbd` (quasi-birth-death, matrix-geometric, truncated only
  in the spread between longest and shortest queue, with an error estimate) for the tests, and
  `jsq_exact` (the whole chain, truncated at K a queue; slow) to cross-check it.
- Batch means: split a stationary output series into b contiguous batches; the batch means are
  nearly independent and normal when each batch is much longer than the series' correlation time,
  so mean +/- t(1 - alpha/2, b - 1) s / sqrt(b) is a confidence interval for the steady-state mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
from scipy import linalg, sparse, stats
from scipy.sparse.linalg import spsolve


# ---- M/M/c, M/G/1 ------------------------------------------------------------------------------
def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/G/c/c with offered load a = lambda E[S] (stable recursion)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c, offered load a = lambda / mu < c."""
    if not 0 <= a < c:
        raise ValueError(f"need 0 <= a < c (got a={a}, c={c})")
    b = erlang_b(c, a)
    rho = a / c
    return b / (1.0 - rho + rho * b)


def mmc_wq(lam: float, mean_s: float, c: int) -> float:
    """Mean wait in queue of M/M/c (Erlang C)."""
    a = lam * mean_s
    return erlang_c(c, a) * mean_s / (c - a)


def pk_wq(lam: float, m1: float, m2: float) -> float:
    """Mean wait in queue of M/G/1 (Pollaczek-Khinchine), E[S] = m1, E[S^2] = m2."""
    rho = lam * m1
    if not 0 <= rho < 1:
        raise ValueError(f"need rho < 1 (got {rho})")
    return lam * m2 / (2.0 * (1.0 - rho))


def md1_wq(lam: float, d: float) -> float:
    """Mean wait in queue of M/D/1: P-K with E[S^2] = d^2."""
    return pk_wq(lam, d, d * d)


def allen_cunneen_wq(lam: float, mean_s: float, c: int, cs2: float, ca2: float = 1.0) -> float:
    """GI/G/c approximation; exact for M/M/c (cs2 = ca2 = 1) and for M/G/1."""
    return mmc_wq(lam, mean_s, c) * (ca2 + cs2) / 2.0


# ---- JSQ over c exponential servers, exact (truncated) CTMC ----------------------------------
@dataclass(frozen=True)
class JSQSolution:
    wq: float  # mean wait in queue of admitted customers
    lq: float  # mean number waiting (not in service)
    p_wait: float  # probability an arrival finds its chosen server busy
    truncated_mass: float  # stationary probability of states with some queue at the cap K
    states: int
    error: float = 0.0  # estimated truncation error of wq (jsq_qbd)


def jsq_exact(lam: float, mu: float, c: int, cap: int) -> JSQSolution:
    """JSQ with c identical exponential servers, each FCFS with its own queue, ties to any.

    State: the multiset of the c queue lengths (customers in service included), kept as a
    non-decreasing tuple with entries <= cap. An arrival joins a shortest queue (blocked only when
    every queue holds cap); each non-empty queue completes at rate mu. The stationary law solves
    pi Q = 0; Wq follows from Little's law on the waiting customers.
    """
    states = np.array(list(combinations_with_replacement(range(cap + 1), c)), dtype=np.int64)
    n = len(states)
    radix = cap + 1
    weights = radix ** np.arange(c - 1, -1, -1, dtype=np.int64)
    codes = states @ weights  # lexicographic order = sorted order of combinations_with_replacement
    assert np.all(np.diff(codes) > 0)

    rows, cols, vals = [], [], []
    # arrival: increment the last position holding the minimum (keeps the tuple sorted)
    mins = states[:, 0]
    m_pos = (states == mins[:, None]).sum(axis=1) - 1
    ok = mins < cap
    tgt = codes[ok] + weights[m_pos[ok]]
    rows.append(np.nonzero(ok)[0])
    cols.append(np.searchsorted(codes, tgt))
    vals.append(np.full(ok.sum(), lam))
    # departure: for each distinct positive value v (first position i), rate mu * multiplicity
    for i in range(c):
        first = states[:, i] > 0
        if i > 0:
            first &= states[:, i - 1] < states[:, i]
        mult = (states == states[:, [i]]).sum(axis=1)
        idx = np.nonzero(first)[0]
        rows.append(idx)
        cols.append(np.searchsorted(codes, codes[idx] - weights[i]))
        vals.append(mu * mult[idx])
    r = np.concatenate(rows)
    cc = np.concatenate(cols)
    v = np.concatenate(vals).astype(float)
    q = sparse.csr_matrix((v, (r, cc)), shape=(n, n))
    out = np.asarray(q.sum(axis=1)).ravel()
    q = (q - sparse.diags(out)).tocsc()
    # pi Q = 0, sum pi = 1: solve Q^T pi = 0 with the last equation replaced by normalisation
    a = q.T.tolil()
    a[n - 1, :] = np.ones(n)
    rhs = np.zeros(n)
    rhs[n - 1] = 1.0
    pi = spsolve(a.tocsc(), rhs)
    pi = np.maximum(pi, 0.0)
    pi /= pi.sum()
    waiting = np.maximum(states - 1, 0).sum(axis=1)
    lq = float(pi @ waiting)
    blocked = float(pi[mins == cap].sum())
    lam_eff = lam * (1.0 - blocked)
    return JSQSolution(
        wq=lq / lam_eff,
        lq=lq,
        p_wait=float(pi[mins > 0].sum()) / (1.0 - blocked),
        truncated_mass=float(pi[states[:, -1] == cap].sum()),
        states=n,
    )


def _qbd_stable(a0: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> bool:
    """Neuts' drift condition: the level drifts down, pi_A a0 1 < pi_A a2 1, A = a0 + a1 + a2."""
    a = (a0 + a1 + a2).T.copy()
    a[-1, :] = 1.0
    rhs = np.zeros(len(a))
    rhs[-1] = 1.0
    pa = linalg.solve(a, rhs)
    return float(pa @ a0.sum(1)) < float(pa @ a2.sum(1))


def jsq_qbd_spread(lam: float, mu: float, c: int, spread: int) -> JSQSolution | None:
    """JSQ as a quasi-birth-death chain: level = shortest queue m, phase = the other queues'
    excess over m (a sorted pattern with entries <= spread). No cap on the level: for m >= 1 the
    blocks do not depend on m, so pi_{m+1} = pi_m R (matrix-geometric; R from G by logarithmic
    reduction, Latouche & Ramaswami 1993). The only truncation is the spread: a completion at a
    shortest queue that would make max - min exceed `spread` is suppressed; `truncated_mass` is the
    stationary probability of spread == `spread`, and the result converges as spread grows.
    None when the truncation makes the chain unstable (suppressed completions push rho past 1).
    """
    pats = np.array([(0,) + t for t in combinations_with_replacement(range(spread + 1), c - 1)],
                    dtype=np.int64)
    n = len(pats)
    index = {tuple(p): i for i, p in enumerate(pats.tolist())}
    a0, a1, a2 = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    local_dep = np.zeros((n, n))  # completions at queues above the minimum (level unchanged)
    for i, p in enumerate(pats.tolist()):
        k = p.count(0)  # queues at the minimum
        q = list(p)
        if k == 1:  # the only shortest queue grows: the minimum rises to m + 1
            q = [0] + [x - 1 for x in p[1:]]
            a0[i, index[tuple(q)]] += lam
        else:
            q[k - 1] = 1
            a1[i, index[tuple(q)]] += lam
        for j in range(c):
            if j > 0 and p[j - 1] == p[j]:
                continue
            mult = p.count(p[j])
            if p[j] > 0:
                q = list(p)
                q[j] -= 1
                local_dep[i, index[tuple(q)]] += mu * mult
            elif p[-1] < spread:  # a shortest queue completes: minimum falls to m - 1
                q = [0] + [x + 1 for x in p[1:]]
                a2[i, index[tuple(q)]] += mu * mult
    b1 = a1 + local_dep  # level 0: idle servers do not complete
    a1 = a1 + local_dep
    a1[np.diag_indices(n)] -= a0.sum(1) + a1.sum(1) + a2.sum(1)
    b1[np.diag_indices(n)] -= a0.sum(1) + b1.sum(1)
    if not _qbd_stable(a0, a1, a2):
        return None
    # G: minimal solution of a2 + a1 G + a0 G^2 = 0, by logarithmic reduction
    inv = linalg.inv(-a1)
    h0, h2 = inv @ a0, inv @ a2
    g, t = h2.copy(), h0.copy()
    eye = np.eye(n)
    for _ in range(100):
        m = linalg.inv(eye - h0 @ h2 - h2 @ h0)
        h0, h2 = m @ h0 @ h0, m @ h2 @ h2
        g = g + t @ h2
        t = t @ h0
        if np.abs(t).sum(axis=1).max() < 1e-15:
            break
    r = a0 @ linalg.inv(-(a1 + a0 @ g))
    # boundary: [pi0 pi1] [[b1, a0], [a2, a1 + R a2]] = 0 with the normalisation
    i_r = linalg.inv(eye - r)
    mat = np.block([[b1, a0], [a2, a1 + r @ a2]]).T
    mat[-1, :] = np.concatenate([np.ones(n), i_r.sum(axis=1)])
    rhs = np.zeros(2 * n)
    rhs[-1] = 1.0
    x = linalg.solve(mat, rhs)
    pi0, pi1 = x[:n], x[n:]
    # waiting customers: level 0 sum max(p - 1, 0); level m >= 1: c (m - 1) + sum p
    lq = float(pi0 @ np.maximum(pats - 1, 0).sum(axis=1)
               + pi1 @ (c * (r @ i_r @ i_r).sum(axis=1) + i_r @ pats.sum(axis=1)))
    at_cap = pats[:, -1] == spread
    return JSQSolution(
        wq=lq / lam,
        lq=lq,
        p_wait=float((pi1 @ i_r).sum()),  # an arrival waits iff the shortest queue is busy
        truncated_mass=float(pi0[at_cap].sum() + (pi1 @ i_r)[at_cap].sum()),
        states=n,
    )


def jsq_qbd(lam: float, mean_s: float, c: int, rel_tol: float = 2e-3) -> JSQSolution:
    """Exact JSQ mean wait: `jsq_qbd_spread` with the spread raised until the truncation error,
    estimated by geometric extrapolation of the last two changes of Wq, is below rel_tol x Wq.
    (From spread 3 on the changes fall geometrically, by a factor 0.05-0.2 a step; checked against
    the full chain `jsq_exact` for c = 3.) The estimate is returned as `error`.
    """
    mu = 1.0 / mean_s
    if c == 1:
        rho = lam * mean_s
        return JSQSolution(rho * mean_s / (1 - rho), rho * rho / (1 - rho), rho, 0.0, 1)
    sols: list[JSQSolution] = []
    spread = 3  # below 3 the changes are not yet geometric and would fool the error estimate
    while True:
        sol = jsq_qbd_spread(lam, mu, c, spread)
        spread += 1
        if sol is None:
            continue
        sols.append(sol)
        if len(sols) >= 3:
            d1 = abs(sols[-2].wq - sols[-3].wq)
            d2 = abs(sols[-1].wq - sols[-2].wq)
            q = min(d2 / d1, 0.5) if d1 > 0 else 0.0
            err = d2 * q / (1.0 - q)
            if err < rel_tol * sol.wq:
                return JSQSolution(sol.wq, sol.lq, sol.p_wait, sol.truncated_mass, sol.states, err)


# ---- batch means -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchMeans:
    mean: float
    half_width: float
    batches: int
    lag1: float  # lag-1 autocorrelation of the batch means (should be near 0)

    @property
    def lo(self) -> float:
        return self.mean - self.half_width

    @property
    def hi(self) -> float:
        return self.mean + self.half_width

    def contains(self, x: float) -> bool:
        return self.lo <= x <= self.hi

    @property
    def rel_half_width(self) -> float:
        return self.half_width / abs(self.mean) if self.mean else math.inf


def batch_means(x: np.ndarray, batches: int = 25, level: float = 0.99) -> BatchMeans:
    """Confidence interval for the mean of a stationary series (warm-up already removed)."""
    x = np.asarray(x, dtype=float)
    size = len(x) // batches
    if size < 1:
        raise ValueError(f"need at least {batches} observations (got {len(x)})")
    bm = x[: size * batches].reshape(batches, size).mean(axis=1)
    return _interval(bm, level)


def _interval(bm: np.ndarray, level: float) -> BatchMeans:
    b = len(bm)
    m = float(bm.mean())
    s = float(bm.std(ddof=1))
    t = float(stats.t.ppf(0.5 + level / 2.0, b - 1))
    d = bm - bm.mean()
    lag1 = float((d[:-1] @ d[1:]) / (d @ d)) if (d @ d) > 0 else 0.0
    return BatchMeans(mean=m, half_width=t * s / math.sqrt(b), batches=b, lag1=lag1)
