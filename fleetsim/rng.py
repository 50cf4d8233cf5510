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
