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
    listed: set[str] | None = None  # what the earlier run says it wrote (its manifest, or error.json)
    manifest = path / "manifest.json"
    for record in (manifest, path / "error.json"):
        if record.is_file():
            try:
                files = json.loads(record.read_text(encoding="utf-8")).get("files")
                listed = set(files) if isinstance(files, list) else None
            except (OSError, ValueError, AttributeError):
                listed = None
            break
    is_run = manifest.is_file() or (path / "error.json").is_file()
    ours, foreign = set(), set()
    for item in path.rglob("*"):
        rel = item.relative_to(path).as_posix()
        if item.is_dir():
            (ours if rel == "plots" and is_run else foreign).add(rel)
            continue
        name = item.name
        # A run names the files it wrote (manifest.json, or error.json when it failed): only those
        # are its own, so a user's file in plots/ is not. A run from before error.json listed its
        # files left at most the known names and plots.
        if listed is not None:
            known = listed | {"manifest.json", "error.json", STAGED}
            legacy_plot = False
        else:
            known = set(RUN_FILES) | {STAGED}
            legacy_plot = rel.startswith("plots/") and rel.count("/") == 1 and name.endswith(PLOT_SUFFIXES)
        mine = rel in known or (rel.startswith(".") and rel.endswith(".tmp")) or legacy_plot
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


STAGED = ".manifest.staged.json"
# processes whose staged manifests this process reads as its own: itself, and the run that forked
# it to draw its plots and report (fleetsim.api's helper calls adopt_staged)
_STAGERS: set[int] = set()


def adopt_staged(pid: int) -> None:
    """Read run folders staged by process `pid` as this process's own (a helper drawing them)."""
    _STAGERS.add(pid)


def write_manifest(run_dir: Path, *, scenario: dict[str, Any], seed: int, timings: dict[str, float],
                   files: list[str], version: str, kind: str) -> None:
    """Write manifest.json now (the run folder is complete)."""
    commit_manifest(run_dir, manifest_data(scenario=scenario, seed=seed, timings=timings, files=files,
                                           version=version, kind=kind))


def stage_manifest(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """The manifest of a run whose plots and report are still to come: written as a staged file
    that only this process reads as a run (`read_manifest`), so another process, or a later
    `fleetsim report`, never takes a folder interrupted while plotting for a finished run."""
    data = manifest_data(**fields)
    write_json(run_dir / STAGED, {**data, "staged_by_pid": os.getpid()})
    return data


def commit_manifest(run_dir: Path, data: dict[str, Any]) -> None:
    """manifest.json, atomically, last: the run folder is complete; the staged copy goes."""
    write_json(run_dir / "manifest.json", data)
    (run_dir / STAGED).unlink(missing_ok=True)


def add_to_manifest(run_dir: Path, paths: list[Path]) -> None:
    """`fleetsim plot|report` on a finished run: its manifest lists the plots and page drawn
    (inside the folder), so a later --overwrite knows them as the run's own. A staged manifest
    (a run still drawing) is left to that run, which lists them itself."""
    manifest = Path(run_dir) / "manifest.json"
    if not manifest.is_file():
        return
    root = Path(run_dir).resolve()
    rel = []
    for p in paths:
        try:
            rel.append(Path(p).resolve().relative_to(root).as_posix())
        except ValueError:
            continue  # a report written elsewhere (-o) is not the run's
    data = json.loads(manifest.read_text(encoding="utf-8"))
    files = list(data.get("files", []))
    new = [r for r in rel if r not in files]
    if new:
        data["files"] = files + new
        write_json(manifest, data)


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """manifest.json of a finished run, or this process's staged manifest (plots and report
    being drawn; or that of the run it helps, adopt_staged); None otherwise. Raises OSError/ValueError for an unreadable file."""
    path = Path(run_dir)
    if (path / "manifest.json").is_file():
        return json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    staged = path / STAGED
    if staged.is_file() and not (path / "error.json").is_file():
        data = json.loads(staged.read_text(encoding="utf-8"))
        if data.pop("staged_by_pid", None) in (os.getpid(), *_STAGERS):
            return data
    return None


def manifest_data(*, scenario: dict[str, Any], seed: int, timings: dict[str, float],
                  files: list[str], version: str, kind: str) -> dict[str, Any]:
    return {
        "fleetsim_version": version,
        "kind": kind,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "versions": package_versions(),
        "command": sys.argv,
        "timings_s": timings,
        "files": list(files),
        "scenario": scenario,
    }


def write_error(run_dir: Path, exc: BaseException, stage: str) -> None:
    """Record why a run failed, where the manifest would have been, with the files written so
    far (so `--overwrite` later removes those and nothing else)."""
    # prepare_run_dir refused any file not of a run, so what is here now is this run's
    written = sorted(p.relative_to(run_dir).as_posix() for p in Path(run_dir).rglob("*")
                     if p.is_file() and (p.parent == Path(run_dir) and p.name in RUN_FILES
                                         or p.parent == Path(run_dir) / "plots" and p.name.endswith(PLOT_SUFFIXES)))
    (Path(run_dir) / STAGED).unlink(missing_ok=True)
    data = {
        "error": str(exc) or ("interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__),
        "type": type(exc).__name__,
        "stage": stage,
        "user_error": isinstance(exc, FleetsimError),
        "interrupted": isinstance(exc, KeyboardInterrupt),  # Ctrl-C, or SIGTERM via the CLI
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": [f for f in written if f != "error.json"],
    }
    if not isinstance(exc, FleetsimError):
        data["traceback"] = traceback.format_exception(exc)
    try:
        write_json(run_dir / "error.json", data)
    except OSError:
        pass
