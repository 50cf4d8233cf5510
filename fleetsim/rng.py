"""Named random streams from one root seed: adding a stream never shifts another's draws.

At the bottom of the package (serving, reliability and fleet all draw from it).
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *names: str | int) -> np.random.Generator:
    """An independent generator for the process called `names` under the run's root `seed`."""
    key = [n if isinstance(n, int) else zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def child_seed(seed: int, *names: str | int) -> int:
    """A 63-bit integer root for the child `names` of `seed` (a SeedSequence child, keyed by name
    and number, never by position in a list): future r of a fleet run is child_seed(root, "future", r)."""
    key = [n if isinstance(n, int) else zlib.crc32(str(n).encode()) for n in names]
    ss = np.random.SeedSequence(entropy=seed, spawn_key=key)
    return int(ss.generate_state(1, np.uint64)[0]) >> 1


# A Poisson quantile is searched within this many standard deviations (plus as many counts) of
# the mean: the mass left outside is below 1e-14 for any mean.
_POISSON_SPAN = 8.0


def poisson_from_uniform(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Poisson(lam) counts by inversion of uniforms `u` (elementwise): the least k with
    P(X <= k) >= u. Lets each element's count come from its own keyed stream (a cohort's
    uniforms, drawn ahead) while the transform runs on all elements at once; exact to the
    double precision of the probabilities (the pmf within +-8 sd of the mean, normalised)."""
    u = np.asarray(u, dtype=float)
    lam = np.asarray(lam, dtype=float)
    out = np.zeros(u.shape, dtype=np.int64)
    pos = (lam > 0) & (u > np.exp(-lam))  # u <= P(X = 0): none
    if not pos.any():
        return out
    lp, up = lam[pos], u[pos]
    sd = np.sqrt(lp)
    lo = np.maximum(0.0, np.floor(lp - _POISSON_SPAN * (sd + 1.0)))
    width = int(np.max(np.ceil(lp + _POISSON_SPAN * (sd + 1.0)) - lo)) + 1
    k = lo[:, None] + np.arange(1, width)[None, :]
    # log pmf(k) - log pmf(lo) = sum over j in (lo, k] of log(lam / j), then normalised
    logp = np.concatenate((np.zeros((len(lp), 1)), np.cumsum(np.log(lp)[:, None] - np.log(k), axis=1)), axis=1)
    cdf = np.cumsum(np.exp(logp - logp.max(axis=1, keepdims=True)), axis=1)
    cdf /= cdf[:, -1:]
    idx = np.minimum((cdf < up[:, None]).sum(axis=1), width - 1)
    out[pos] = lo.astype(np.int64) + idx
    return out
