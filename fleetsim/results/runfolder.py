"""The run-folder contract: tables, summary, then manifest.json last and atomically.

A folder with `manifest.json` is a complete run; a failed run leaves `error.json` instead, so an
interrupted or failed run never looks complete.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from fleetsim.errors import FleetsimError

KEY_PACKAGES = ("simpy", "numpy", "pandas", "pyarrow", "pydantic", "scipy", "matplotlib")


def default_run_dir(name: str, root: Path = Path("outputs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{name}-{stamp}"
    i = 1
    while path.exists():
        path = root / f"{name}-{stamp}-{i}"
        i += 1
    return path


def prepare_run_dir(path: Path) -> Path:
    """Create (or reuse) the folder; a stale manifest/error from an earlier run is removed first."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise FleetsimError(f"cannot write the output folder {path}: {exc.strerror or exc}") from None
    # Everything an earlier run may have left: a reused folder holds only this run's outputs.
    for stale in (*RUN_FILES, *(f".{name}.tmp" for name in RUN_FILES)):
        (path / stale).unlink(missing_ok=True)
    return path


RUN_FILES = ("manifest.json", "error.json", "summary.json", "scenario.resolved.json",
             "requests.parquet", "events.parquet", "timeline.parquet", "hourly.parquet",
             "ledger.parquet", "orders.parquet", "windows.parquet", "capacity.parquet")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def write_table(path: Path, df: pd.DataFrame) -> None:
    """Parquet via pyarrow, written to a temp name then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, engine="pyarrow", index=False)
    os.replace(tmp, path)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_manifest(run_dir: Path, *, scenario: dict[str, Any], seed: int, timings: dict[str, float],
                   files: list[str], version: str, kind: str) -> None:
    write_json(run_dir / "manifest.json", {
        "fleetsim_version": version,
        "kind": kind,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "versions": package_versions(),
        "command": sys.argv,
        "timings_s": timings,
        "files": files,
        "scenario": scenario,
    })


def write_error(run_dir: Path, exc: BaseException, stage: str) -> None:
    """Record why a run failed, where the manifest would have been."""
    data = {
        "error": str(exc),
        "type": type(exc).__name__,
        "stage": stage,
        "user_error": isinstance(exc, FleetsimError),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if not isinstance(exc, FleetsimError):
        data["traceback"] = traceback.format_exception(exc)
    try:
        write_json(run_dir / "error.json", data)
    except OSError:
        pass
