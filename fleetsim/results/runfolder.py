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


def prepare_run_dir(path: Path, overwrite: bool = True) -> Path:
    """Create the folder, or reuse one that holds only an earlier fleetsim run.

    A folder with files fleetsim did not write is refused (nothing of a user's is ever deleted);
    an earlier finished or failed run is replaced only with `overwrite`, and then only the files
    that run wrote (its manifest's list, the known run files, plots and report) are removed.
    """
    if path.exists() and not path.is_dir():
        raise FleetsimError(f"cannot write the output folder {path}: it is a file; choose another -o")
    if path.is_dir():
        ours, foreign = _classify(path)
        if foreign:
            shown = ", ".join(sorted(foreign)[:5]) + (" ..." if len(foreign) > 5 else "")
            raise FleetsimError(
                f"the output folder {path} holds files that are not a fleetsim run ({shown}): "
                "choose an empty or new folder with -o"
            )
        if ours and not overwrite:
            raise FleetsimError(
                f"the output folder {path} holds an earlier fleetsim run: pass --overwrite to "
                "replace it, or choose another folder with -o"
            )
        for rel in sorted(ours, key=lambda p: -p.count("/")):
            target = path / rel
            if target.is_dir():
                try:
                    target.rmdir()  # only when empty: plots/ after its own files went
                except OSError:
                    pass
            else:
                target.unlink(missing_ok=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise FleetsimError(f"cannot write the output folder {path}: {exc.strerror or exc}") from None
    return path


RUN_FILES = ("manifest.json", "error.json", "summary.json", "scenario.resolved.json",
             "requests.parquet", "events.parquet", "timeline.parquet", "hourly.parquet",
             "ledger.parquet", "orders.parquet", "windows.parquet", "capacity.parquet", "replicates.parquet",
             "quantiles.parquet", "binding.parquet", "report.html")
PLOT_SUFFIXES = (".png", ".svg")


def _classify(path: Path) -> tuple[set[str], set[str]]:
    """(files an earlier fleetsim run wrote, everything else) under `path`, as relative names."""
    listed: set[str] = set()
    manifest = path / "manifest.json"
    if manifest.is_file():
        try:
            listed = set(json.loads(manifest.read_text(encoding="utf-8")).get("files", []))
        except (OSError, ValueError, AttributeError):
            listed = set()
    is_run = manifest.is_file() or (path / "error.json").is_file()
    ours, foreign = set(), set()
    for item in path.rglob("*"):
        rel = item.relative_to(path).as_posix()
        if item.is_dir():
            (ours if rel == "plots" and is_run else foreign).add(rel)
            continue
        name = item.name
        # A finished run names its files in the manifest; a failed one left at most the known names.
        known = (listed | {"manifest.json", "error.json", "report.html"}) if listed else set(RUN_FILES)
        mine = (
            rel in known
            or (rel.startswith(".") and rel.endswith(".tmp"))
            or (rel.startswith("plots/") and rel.count("/") == 1 and name.endswith(PLOT_SUFFIXES))
        )
        (ours if mine and is_run else foreign).add(rel)
    if "plots" in ours and any(f.startswith("plots/") for f in foreign):
        ours.discard("plots")
    return ours, foreign

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
        "error": str(exc) or ("interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__),
        "type": type(exc).__name__,
        "stage": stage,
        "user_error": isinstance(exc, FleetsimError),
        "interrupted": isinstance(exc, KeyboardInterrupt),  # Ctrl-C, or SIGTERM via the CLI
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if not isinstance(exc, FleetsimError):
        data["traceback"] = traceback.format_exception(exc)
    try:
        write_json(run_dir / "error.json", data)
    except OSError:
        pass
