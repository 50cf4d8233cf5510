"""The CLI end to end: help and version, `run` and its run folder, seeds, --set, TOML, the real script.

Runs use the quickstart (five simulated minutes, well under a second of simulation); the module
runs it once into a shared folder and the tests read that folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import fleetsim
from fleetsim.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = REPO_ROOT / "scenarios" / "serving_quickstart.yaml"

REQUEST_COLUMNS = [
    "request_id", "window", "class", "model", "pool", "chip", "replica", "arrival_s", "admitted_s",
    "first_token_s", "finish_s", "prompt_tokens", "output_tokens", "status", "attempts", "queue_s",
    "ttft_s", "tpot_s", "e2e_s",
]


def _run(out_dir: Path, *extra: str) -> Any:
    result = CliRunner().invoke(main, ["run", str(QUICKSTART), "-o", str(out_dir), *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The quickstart run once for the module: (run folder, CliRunner result)."""
    root = tmp_path_factory.mktemp("quick")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEETSIM_CACHE_DIR", str(root / "cache"))
        mp.delenv("CI", raising=False)  # progress is quiet in CI; this run checks where it goes
        result = _run(root / "run")
    return root / "run", result


def _requests(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "requests.parquet")


# ---------------------------------------------------------------------------------------------
# Version and help


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"fleetsim, version {fleetsim.__version__}"


@pytest.mark.parametrize("command", [None, *sorted(main.commands)])
def test_help_shows_an_example(command, runner):
    """Every command's --help (and the group's) carries an 'Example:' with a fleetsim command line."""
    args = ([command] if command else []) + ["--help"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Example:" in text
    example = text.split("Example:", 1)[1].strip().splitlines()[0].strip()
    assert example.startswith("fleetsim" + (f" {command}" if command else " ")), example


def test_short_help_flag(runner):
    assert runner.invoke(main, ["-h"]).exit_code == 0


# ---------------------------------------------------------------------------------------------
# `run`: the run folder


def test_run_writes_complete_folder(quick_run):
    run_dir, _ = quick_run
    for name in ("manifest.json", "summary.json", "requests.parquet", "events.parquet"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "error.json").exists()
    assert not list(run_dir.glob(".*.tmp")), "temp files left behind"


def test_manifest_contents(quick_run):
    run_dir, _ = quick_run
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["fleetsim_version"] == fleetsim.__version__
    assert m["seed"] == 7
    assert m["kind"] == "serving"
    # the resolved scenario: the file plus every default, enough to rerun it
    resolved = fleetsim.load_scenario(QUICKSTART).model_dump(mode="json")
    assert m["scenario"] == resolved
    assert m["scenario"]["serving"]["router"] == {"kind": "least_tokens"}
    for pkg in ("python", "numpy", "pandas", "pyarrow", "pydantic", "simpy"):
        assert m["versions"][pkg] and m["versions"][pkg] != "not installed", pkg
    assert m["timings_s"]["total"] > 0 and m["timings_s"]["simulate"] > 0
    assert set(m["files"]) >= {"requests.parquet", "events.parquet", "summary.json"}
    assert all((run_dir / f).is_file() for f in m["files"])


def test_requests_table_contract(quick_run):
    run_dir, _ = quick_run
    df = _requests(run_dir)
    assert len(df) > 100
    missing = [c for c in REQUEST_COLUMNS if c not in df.columns]
    assert not missing, missing
    assert df.request_id.is_unique
    assert set(df["pool"].dropna().astype(str)) <= {"h20", "domestic", ""}
    assert set(df["chip"].dropna().astype(str)) <= {"h20", "t-head-ppu", ""}
    assert set(df["status"].astype(str)) <= {"completed", "rejected", "unfinished"}
    done = df[df.status == "completed"]
    # timestamps are causal for every completed request
    assert (done.arrival_s <= done.admitted_s).all()
    assert (done.admitted_s <= done.first_token_s).all()
    assert (done.first_token_s <= done.finish_s).all()
    assert (done.ttft_s > 0).all() and (done.e2e_s >= done.ttft_s).all()
    assert df.arrival_s.max() < 300


def test_summary_accounts_for_every_request(quick_run):
    run_dir, _ = quick_run
    summary = json.loads((run_dir / "summary.json").read_text())
    df = _requests(run_dir)
    req = summary["requests"]
    assert req["arrived"] == len(df) == req["completed"] + req["rejected"] + req["unfinished"]
    counts = df.status.astype(str).value_counts()
    assert req["completed"] == counts.get("completed", 0)
    assert req["rejected"] == counts.get("rejected", 0)
    assert set(summary["classes"]) == {"chat"} and set(summary["pools"]) == {"h20", "domestic"}


def test_events_table_columns(quick_run):
    run_dir, _ = quick_run
    events = pd.read_parquet(run_dir / "events.parquet")
    assert {"time_s", "window", "pool", "replica", "chip", "kind", "temp_c", "detail"} <= set(events.columns)


def test_run_prints_summary_and_outputs_line(quick_run):
    run_dir, result = quick_run
    out = result.stdout
    assert re.search(r"requests \(after 60 s warm-up; \d+ warm-up arrivals not counted\): \d+ arrived = "
                     r"\d+ completed \+ \d+ rejected \+ \d+ unfinished", out)
    lines = out.splitlines()
    class_header = next(ln for ln in lines if ln.startswith("class "))
    assert "TTFT p95 s / target" in class_header and "SLO attained / needed" in class_header
    assert any(ln.startswith("chat ") for ln in lines)
    assert any(ln.startswith("pool ") for ln in lines)
    assert any(ln.startswith("h20 ") for ln in lines) and any(ln.startswith("domestic ") for ln in lines)
    assert lines[-2] == f"outputs: {run_dir}"
    assert lines[-1] == f"report: {run_dir / 'report.html'}"
    assert "serving window" in result.stderr  # progress goes to stderr, not into the table


def test_quiet_prints_only_the_folder(tmp_path, runner):
    result = runner.invoke(main, ["run", str(QUICKSTART), "-o", str(tmp_path / "q"), "-q"])
    assert result.exit_code == 0
    assert result.stdout == f"outputs: {tmp_path / 'q'}\n"
    assert result.stderr == ""


def test_same_seed_gives_identical_requests(quick_run, tmp_path):
    run_dir, _ = quick_run
    _run(tmp_path / "again")
    pd.testing.assert_frame_equal(_requests(run_dir), _requests(tmp_path / "again"))


def test_seed_option_changes_requests(quick_run, tmp_path):
    run_dir, _ = quick_run
    _run(tmp_path / "seed8", "--seed", "8")
    other = _requests(tmp_path / "seed8")
    assert not _requests(run_dir).equals(other)
    assert not (_requests(run_dir).arrival_s.head(50).to_numpy() == other.arrival_s.head(50).to_numpy()).all()
    m = json.loads((tmp_path / "seed8" / "manifest.json").read_text())
    assert m["seed"] == 8 and m["scenario"]["seed"] == 8


def test_set_override_takes_effect(tmp_path):
    _run(tmp_path / "short", "--set", "serving.duration_s=120", "--set", "serving.pools.h20.replicas=2")
    m = json.loads((tmp_path / "short" / "manifest.json").read_text())
    assert m["scenario"]["serving"]["duration_s"] == 120
    assert m["scenario"]["serving"]["pools"]["h20"]["replicas"] == 2
    df = _requests(tmp_path / "short")
    assert df.arrival_s.max() < 120
    used = df[df.pool == "h20"].replica.unique()
    assert len(used) <= 2


def test_default_output_folder(tmp_path, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["run", str(QUICKSTART), "-q"])
    assert result.exit_code == 0, result.output
    folders = list((tmp_path / "outputs").glob("serving_quickstart-*"))
    assert len(folders) == 1 and (folders[0] / "manifest.json").is_file()
    assert result.stdout.strip() == f"outputs: {Path('outputs') / folders[0].name}"


# ---------------------------------------------------------------------------------------------
# `validate`, TOML, catalogs


def test_validate_ok(runner):
    result = runner.invoke(main, ["validate", str(QUICKSTART)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ") and "quickstart" in result.stdout


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Plain data -> TOML: scalars first, then one [table] per mapping (enough for scenarios)."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = ("\n".join(lines) + "\n") if lines else ""
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k)
            out += f"\n[{name}]\n" + _to_toml(v, name)
    return out


def test_toml_scenario_loads_like_yaml(tmp_path, runner):
    data = yaml.safe_load(QUICKSTART.read_text())
    path = tmp_path / "quickstart.toml"
    path.write_text(_to_toml(data), encoding="utf-8")
    from_toml = fleetsim.load_scenario(path)
    from_yaml = fleetsim.load_scenario(QUICKSTART)
    assert from_toml.model_dump() == from_yaml.model_dump()
    assert from_toml.base_dir == tmp_path
    assert runner.invoke(main, ["validate", str(path)]).exit_code == 0


def test_toml_error_names_file_and_field(tmp_path, runner, user_error):
    data = yaml.safe_load(QUICKSTART.read_text())
    data["serving"]["duraton_s"] = 5
    path = tmp_path / "typo.toml"
    path.write_text(_to_toml(data), encoding="utf-8")
    user_error(runner.invoke(main, ["validate", str(path)]), file=path, field="serving.duraton_s",
               contains=["did you mean 'duration_s'"])


@pytest.mark.parametrize("kind", ["chips", "models"])
def test_catalog_commands(kind, runner):
    result = runner.invoke(main, [kind, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    key, expected = ("chip", {"h20", "t-head-ppu"}) if kind == "chips" else ("model", {"qwen2.5-72b"})
    assert expected <= {r[key] for r in rows}


# ---------------------------------------------------------------------------------------------
# The installed console script, for real


def _console_script() -> str:
    here = Path(sys.executable).parent / ("fleetsim.exe" if os.name == "nt" else "fleetsim")
    found = str(here) if here.exists() else shutil.which("fleetsim")
    assert found, "the `fleetsim` console script is not installed (pip install -e .)"
    return found


def test_console_script_subprocess(tmp_path):
    """One real process: exit codes, one error line, no traceback, from outside the repo."""
    script = _console_script()
    ok = subprocess.run([script, "validate", str(QUICKSTART)], capture_output=True, text=True,
                        cwd=tmp_path, timeout=600)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ")

    broken = tmp_path / "broken.yaml"
    broken.write_text(QUICKSTART.read_text().replace("  duration_s: 300", "  duraton_s: 300"))
    bad = subprocess.run([script, "validate", str(broken)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr + bad.stdout
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {broken}:")
    assert "serving.duraton_s" in lines[0] and "did you mean 'duration_s'" in lines[0]
