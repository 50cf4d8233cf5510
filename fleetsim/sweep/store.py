"""Result store of a sweep: one Parquet file per finished run, named by a content hash.

The key hashes the resolved scenario (seed included), the folder its relative paths
resolve against and the package's source and data files, so an unchanged run is found again and
never rerun, and a changed one (any field, the seed, any code edit) gets a new file. Files are written to a
temporary name and renamed, so a killed sweep leaves whole files or none.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fleetsim import __version__

# Bump when headline_metrics changes what a stored row holds: old rows are then recomputed.
METRICS_VERSION = 2


def content_key(scenario: Any) -> str:
    """sha256 (first 24 hex digits) of the resolved scenario, its base folder and the code."""
    # the package's own files, hashed as the goodput cache does
    from fleetsim.serving.goodput import source_digest

    blob = json.dumps({"scenario": scenario.model_dump(mode="json"), "base_dir": str(scenario.base_dir),
                       "fleetsim": __version__, "code": source_digest(), "metrics": METRICS_VERSION},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class PointStore:
    """`<sweep folder>/points/<key>.parquet`, one row each: key, seed, status, error, wall_s,
    cpu_s, metrics (float columns)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "points"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.parquet"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            rows = pq.read_table(p).to_pylist()
        except (OSError, pa.ArrowException):
            return None  # unreadable: treated as not run
        return rows[0] if rows else None

    def put(self, row: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{row['key']}.{os.getpid()}.tmp"
        pq.write_table(pa.Table.from_pylist([row]), tmp)
        os.replace(tmp, self.path(row["key"]))
