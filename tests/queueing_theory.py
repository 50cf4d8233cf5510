"""Known answers for the serving-layer validation: classical queues and batch-means intervals.

Formulas (any queueing text, e.g. Kleinrock vol. 1, Gross & Harris):
- Erlang C: M/M/c mean wait Wq = C(c, a) / (c mu - lambda), a = lambda / mu.
- Erlang B: M/G/c/c blocking probability, insensitive to the service law.
- Pollaczek-Khinchine: M/G/1 mean wait Wq = lambda E[S^2] / (2 (1 - rho)), exact for any service
  law with a finite second moment; M/D/1 and M/M/1 are its special cases.
- Allen-Cunneen: GI/G/c Wq ~ Wq(M/M/c) (ca^2 + cs^2) / 2, an approximation (exact for M/M/c and
  M/G/1); used here only to size the bias of a slightly non-exponential service.
- JSQ: join-the-shortest-queue over c exponential servers, each with its own FCFS queue (what a
  pool with per-replica queues and the `jsq` router is), solved exactly as a continuous-time Markov
  chain on sorted queue-length vectors, truncated at K per queue (the truncated mass is returned).
- Batch means: split a stationary output series into b contiguous batches; the batch means are
  nearly independent and normal when each batch is much longer than the series' correlation time,
  so mean +/- t(1 - alpha/2, b - 1) s / sqrt(b) is a confidence interval for the steady-state mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
from scipy import sparse, stats
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


def jsq_wq(lam: float, mean_s: float, c: int, tol: float = 1e-9, cap: int = 8) -> JSQSolution:
    """`jsq_exact` with the cap raised until the mass at the cap is below tol."""
    while True:
        sol = jsq_exact(lam, 1.0 / mean_s, c, cap)
        if sol.truncated_mass < tol:
            return sol
        cap = int(cap * 1.5) + 1


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
    if size < 2:
        raise ValueError(f"need at least {2 * batches} observations (got {len(x)})")
    bm = x[: size * batches].reshape(batches, size).mean(axis=1)
    return _interval(bm, level)


def batch_means_ratio(num: np.ndarray, den: np.ndarray, level: float = 0.99) -> BatchMeans:
    """Interval for the ratio of two per-batch sums (e.g. a time average over batches of time)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    return _interval(num / den, level, mean=num.sum() / den.sum())


def _interval(bm: np.ndarray, level: float, mean: float | None = None) -> BatchMeans:
    b = len(bm)
    m = float(bm.mean()) if mean is None else float(mean)
    s = float(bm.std(ddof=1))
    t = float(stats.t.ppf(0.5 + level / 2.0, b - 1))
    d = bm - bm.mean()
    lag1 = float((d[:-1] @ d[1:]) / (d @ d)) if (d @ d) > 0 else 0.0
    return BatchMeans(mean=m, half_width=t * s / math.sqrt(b), batches=b, lag1=lag1)
