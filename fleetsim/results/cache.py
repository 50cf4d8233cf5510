"""On-disk cache of computed results (goodput per replica type), keyed by a content hash."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CACHE_ENV = "FLEETSIM_CACHE_DIR"


def default_cache_dir() -> Path:
    """$FLEETSIM_CACHE_DIR, else ~/.cache/fleetsim/goodput."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "fleetsim" / "goodput"


class ResultCache:
    """JSON files named by key. A missing, unreadable or read-only cache only costs time."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(value))
            os.replace(tmp, self.path(key))
        except OSError:
            pass
