"""Reliability event records: appended as rows or numpy chunks, returned as equal-length columns."""

from __future__ import annotations

import numpy as np

EVENT_KINDS = ("throttle_start", "throttle_end", "crash", "restart", "repair_done", "lost_for_good")
EVENT_COLUMNS = ("time_s", "pool", "cohort", "replica", "chip", "kind", "temp_c", "detail")


class EventLog:
    """Collects events cheaply; `to_arrays()` builds the columns once, sorted by time (stable).

    `replica` is the unit index within its pool (serving) or node index within its cohort
    (fleet); -1 means the whole cohort. `detail` says how a unit came back ('spare_swap',
    'repaired') or is empty.
    """

    def __init__(self) -> None:
        self._rows: list[tuple] = []
        self._chunks: list[dict[str, np.ndarray]] = []

    def add(
        self,
        time_s: float,
        kind: str,
        *,
        pool: str = "",
        cohort: str = "",
        replica: int = -1,
        chip: str = "",
        temp_c: float = float("nan"),
        detail: str = "",
    ) -> None:
        self._rows.append(
            (float(time_s), pool, cohort, int(replica), chip, kind, float(temp_c), detail)
        )

    def add_many(
        self,
        time_s,
        kind: str,
        *,
        replica,
        temp_c,
        pool: str = "",
        cohort: str = "",
        chip: str = "",
        detail: str = "",
    ) -> None:
        """Vectorised append: one kind, many units."""
        t = np.asarray(time_s, dtype=float)
        if t.size == 0:
            return
        n = t.size
        self._chunks.append(
            {
                "time_s": t.ravel(),
                "pool": np.full(n, pool, dtype=object),
                "cohort": np.full(n, cohort, dtype=object),
                "replica": np.broadcast_to(np.asarray(replica, dtype=np.int64), (n,)).copy(),
                "chip": np.full(n, chip, dtype=object),
                "kind": np.full(n, kind, dtype=object),
                "temp_c": np.broadcast_to(np.asarray(temp_c, dtype=float), (n,)).copy(),
                "detail": np.full(n, detail, dtype=object),
            }
        )

    def __len__(self) -> int:
        return len(self._rows) + sum(len(c["time_s"]) for c in self._chunks)

    def count(self, kind: str) -> int:
        return sum(1 for r in self._rows if r[5] == kind) + sum(
            int(np.count_nonzero(c["kind"] == kind)) for c in self._chunks
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        parts = list(self._chunks)
        if self._rows:
            cols = list(zip(*self._rows))
            parts.append(
                {
                    "time_s": np.array(cols[0], dtype=float),
                    "pool": np.array(cols[1], dtype=object),
                    "cohort": np.array(cols[2], dtype=object),
                    "replica": np.array(cols[3], dtype=np.int64),
                    "chip": np.array(cols[4], dtype=object),
                    "kind": np.array(cols[5], dtype=object),
                    "temp_c": np.array(cols[6], dtype=float),
                    "detail": np.array(cols[7], dtype=object),
                }
            )
        return concat_events(parts)


def empty_events() -> dict[str, np.ndarray]:
    dtypes = {"time_s": float, "replica": np.int64, "temp_c": float}
    return {k: np.array([], dtype=dtypes.get(k, object)) for k in EVENT_COLUMNS}


def concat_events(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join event column dicts and sort by time (stable, so same-time events keep their order)."""
    parts = [p for p in parts if len(p["time_s"])]
    if not parts:
        return empty_events()
    out = {k: np.concatenate([p[k] for p in parts]) for k in EVENT_COLUMNS}
    order = np.argsort(out["time_s"], kind="stable")
    return {k: v[order] for k, v in out.items()}
