"""The run-folder contract: manifest.json last and atomic, error.json on failure, no stale manifest.

A folder holding manifest.json is a complete run; anything else (a crash in the simulator, a
failure while writing tables, a user error found mid-run) leaves error.json and no manifest.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fleetsim
from fleetsim.cli import main
from fleetsim.errors import FleetsimError, ScenarioError
from fleetsim.results import runfolder

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "serving_quickstart.yaml"


def _scenario(*overrides: str):
    return fleetsim.load_scenario(QUICKSTART, overrides=["serving.duration_s=90", "serving.warmup_s=10", *overrides])


def _break_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetsim.serving.window as window

    def explode(*args, **kwargs):
        raise RuntimeError("simulated crash midway")

    monkeypatch.setattr(window, "run_window", explode)


def _error(run_dir: Path) -> dict:
    return json.loads((run_dir / "error.json").read_text())


def test_simulator_crash_leaves_error_json(tmp_path, monkeypatch):
    _break_simulator(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fleetsim.run(_scenario(), out_dir=tmp_path / "run")
    run_dir = tmp_path / "run"
    assert not (run_dir / "manifest.json").exists()
    err = _error(run_dir)
    assert err["type"] == "RuntimeError" and err["stage"] == "simulate"
    assert err["user_error"] is False
    assert "simulated crash midway" in err["error"]
    assert any("explode" in frame for frame in err["traceback"])
    assert not list(run_dir.glob(".*.tmp"))


def test_simulator_crash_through_cli(tmp_path, monkeypatch, runner):
    """An internal error is not a user error: non-zero exit other than 2, error.json, no manifest."""
    _break_simulator(monkeypatch)
    run_dir = tmp_path / "run"
    result = runner.invoke(main, ["run", str(QUICKSTART), "-o", str(run_dir)])
    assert result.exit_code not in (0, 2)
    assert isinstance(result.exception, RuntimeError)
    assert (run_dir / "error.json").exists() and not (run_dir / "manifest.json").exists()


def test_failure_while_writing_tables(tmp_path, monkeypatch):
    """Fail after the first table is on disk: the folder holds a table but must not look complete."""
    real_write = runfolder.write_table
    written: list[str] = []

    def write_then_fail(path, df):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path.name)
        real_write(path, df)

    monkeypatch.setattr(runfolder, "write_table", write_then_fail)
    run_dir = tmp_path / "run"
    with pytest.raises(OSError):
        fleetsim.run(_scenario(), out_dir=run_dir)
    assert (run_dir / written[0]).exists()
    assert not (run_dir / "manifest.json").exists()
    err = _error(run_dir)
    assert err["stage"] == "write" and "No space left" in err["error"]


def test_user_error_mid_run_is_recorded(tmp_path, monkeypatch, runner, user_error):
    """A user error found only while simulating: exit 2, one line, error.json marked user_error."""
    import fleetsim.serving.window as window

    def refuse(*args, **kwargs):
        raise ScenarioError("trace row 7 has a negative arrival time", field="serving.workloads.chat.arrival")

    monkeypatch.setattr(window, "run_window", refuse)
    run_dir = tmp_path / "run"
    user_error(runner.invoke(main, ["run", str(QUICKSTART), "-o", str(run_dir)]),
               field="serving.workloads.chat.arrival", contains=["negative arrival time"])
    err = _error(run_dir)
    assert err["user_error"] is True and err["type"] == "ScenarioError" and err["stage"] == "simulate"
    assert "traceback" not in err
    assert not (run_dir / "manifest.json").exists()


def test_rerun_removes_stale_manifest_and_error(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    fleetsim.run(_scenario(), out_dir=run_dir)
    assert (run_dir / "manifest.json").exists()

    with monkeypatch.context() as mp:
        _break_simulator(mp)
        with pytest.raises(RuntimeError):
            fleetsim.run(_scenario(), out_dir=run_dir)
    assert not (run_dir / "manifest.json").exists(), "a stale manifest makes a failed run look complete"
    assert (run_dir / "error.json").exists()

    fleetsim.run(_scenario(), out_dir=run_dir)
    assert (run_dir / "manifest.json").exists()
    assert not (run_dir / "error.json").exists(), "a stale error.json contradicts the manifest"


def test_manifest_is_written_last(tmp_path, monkeypatch):
    """When manifest.json is written, every table and summary it lists is already on disk."""
    real = runfolder.commit_manifest
    seen: dict[str, list[str]] = {}

    def spy(run_dir, data):
        seen["present"] = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*"))
        seen["files"] = data["files"]
        assert not (run_dir / "manifest.json").exists()
        real(run_dir, data)

    monkeypatch.setattr(runfolder, "commit_manifest", spy)
    fleetsim.run(_scenario(), out_dir=tmp_path / "run")
    assert set(seen["files"]) <= set(seen["present"])
    assert {"requests.parquet", "events.parquet", "summary.json"} <= set(seen["present"])
    # with plots: after every plot and the report, and it lists them
    fleetsim.run(_scenario(), out_dir=tmp_path / "plotted", plots=True)
    assert set(seen["files"]) <= set(seen["present"])
    assert "report.html" in seen["files"] and any(f.startswith("plots/") for f in seen["files"])
    assert not (tmp_path / "plotted" / runfolder.STAGED).exists()


def test_manifest_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing the manifest leaves neither a manifest nor its temp file."""

    def broken_replace(src, dst):
        raise OSError(5, "I/O error")

    run_dir = runfolder.prepare_run_dir(tmp_path / "run")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        runfolder.write_manifest(run_dir, scenario={}, seed=0, timings={}, files=[], version="x", kind="serving")
    monkeypatch.undo()
    assert list(run_dir.iterdir()) == []


def test_output_folder_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FleetsimError, match="cannot write the output folder"):
        runfolder.prepare_run_dir(blocker / "run")


def test_no_folder_for_an_invalid_scenario(tmp_path, runner):
    run_dir = tmp_path / "run"
    result = runner.invoke(main, ["run", str(QUICKSTART), "-o", str(run_dir), "--set", "serving.warmup_s=900"])
    assert result.exit_code == 2
    assert not run_dir.exists()


def test_default_run_dir_never_reuses_a_folder(tmp_path):
    first = runfolder.default_run_dir("quick", root=tmp_path)
    first.mkdir(parents=True)
    second = runfolder.default_run_dir("quick", root=tmp_path)
    assert second != first and second.name.startswith(first.name)


def test_write_json_takes_numpy_and_paths(tmp_path):
    path = tmp_path / "x.json"
    runfolder.write_json(path, {"n": np.int64(3), "x": np.float32(0.5), "p": Path("a/b")})
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "p": "a/b"}


def test_api_run_without_folder_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = fleetsim.run(_scenario())
    assert result.run_dir is None and isinstance(result.requests, pd.DataFrame)
    assert list(tmp_path.iterdir()) == []


def test_scenario_error_is_a_fleetsim_error():
    assert issubclass(ScenarioError, FleetsimError)


# ---------------------------------------------------------------------------------------------
# Formerly known gaps, now fixed: keep them fixed.


def test_json_files_follow_the_umask(tmp_path):
    run_dir = tmp_path / "run"
    fleetsim.run(_scenario(), out_dir=run_dir)
    table_mode = stat.S_IMODE((run_dir / "requests.parquet").stat().st_mode)
    for name in ("manifest.json", "summary.json"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == table_mode, name


def test_empty_events_table_keeps_string_columns(tmp_path):
    """Runs without events must write the same schema as runs with them (readers concat folders)."""
    run_dir = tmp_path / "run"
    fleetsim.run(_scenario(), out_dir=run_dir)
    events = pd.read_parquet(run_dir / "events.parquet")
    assert len(events) == 0
    for col in ("pool", "chip", "kind", "detail"):
        values = events[col].cat.categories if isinstance(events[col].dtype, pd.CategoricalDtype) else events[col]
        assert not pd.api.types.is_float_dtype(values.dtype), (col, events[col].dtype)
