"""Interrupts and the files of a run folder: manifest.json only after plots and report, error.json
on any interruption (plotting included), SIGINT when the process started with it ignored, and
--overwrite removing only what the earlier run lists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from signal_helpers import signal_a_simulating_run

from fleetsim import api
from fleetsim.cli import main
from fleetsim.results import runfolder

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "scenarios" / "serving_quickstart.yaml"
SHORT = ["--set", "serving.duration_s=30", "--set", "serving.warmup_s=5"]


def _run(*args: str):
    return CliRunner().invoke(main, ["run", str(SERVING), *SHORT, "-q", *args])


@pytest.mark.parametrize("stage", ["plot", "report"])
def test_interrupt_while_plotting_leaves_error_json_not_a_manifest(tmp_path, monkeypatch, stage):
    out = tmp_path / "run"

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, stage, interrupted)
    r = _run("-o", str(out))
    assert r.exit_code == 130 and "interrupted" in r.output
    err = json.loads((out / "error.json").read_text())
    assert err["interrupted"] is True and err["stage"] == stage
    assert not (out / "manifest.json").exists() and not (out / runfolder.STAGED).exists()
    assert "summary.json" in err["files"]
    monkeypatch.undo()
    r = CliRunner().invoke(main, ["report", str(out)])
    assert r.exit_code == 2 and "not a finished fleetsim run" in r.output
    # the interrupted folder is replaced with --overwrite (it lists its files)
    assert _run("-o", str(out), "--overwrite").exit_code == 0
    assert (out / "manifest.json").is_file() and not (out / "error.json").exists()


def test_a_staged_manifest_is_a_run_only_to_the_process_that_staged_it(tmp_path):
    """Killed (SIGKILL) while plotting: the staged manifest of a dead process is not a run."""
    out = tmp_path / "run"
    out.mkdir()
    runfolder.write_json(out / runfolder.STAGED, {"kind": "serving", "files": [], "staged_by_pid": os.getpid() + 1})
    assert runfolder.read_manifest(out) is None
    runfolder.write_json(out / runfolder.STAGED, {"kind": "serving", "files": [], "staged_by_pid": os.getpid()})
    assert runfolder.read_manifest(out) == {"kind": "serving", "files": []}


def test_manifest_lists_plots_and_report(tmp_path):
    out = tmp_path / "run"
    assert _run("-o", str(out)).exit_code == 0
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert "report.html" in files and {f"plots/{p.name}" for p in (out / "plots").iterdir()} <= set(files)
    assert not (out / runfolder.STAGED).exists()


def test_overwrite_keeps_a_users_file_in_plots(tmp_path):
    out = tmp_path / "run"
    assert _run("-o", str(out)).exit_code == 0
    mine = out / "plots" / "my_annotated.png"
    mine.write_bytes(b"mine")
    r = _run("-o", str(out), "--overwrite")
    assert r.exit_code == 2 and "plots/my_annotated.png" in r.output, r.output
    assert mine.read_bytes() == b"mine" and (out / "manifest.json").is_file()
    mine.unlink()
    assert _run("-o", str(out), "--overwrite").exit_code == 0


def test_plots_drawn_later_are_listed_and_replaced(tmp_path):
    """`fleetsim plot|report` on a --no-plots run adds what they draw to its manifest."""
    out = tmp_path / "run"
    assert _run("-o", str(out), "--no-plots").exit_code == 0
    assert CliRunner().invoke(main, ["plot", str(out)]).exit_code == 0
    assert CliRunner().invoke(main, ["report", str(out)]).exit_code == 0
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert "report.html" in files and any(f.startswith("plots/") for f in files)
    assert _run("-o", str(out), "--overwrite", "--no-plots").exit_code == 0
    assert not (out / "plots").exists() and not (out / "report.html").exists()


def test_sigint_stops_a_run_started_with_sigint_ignored(tmp_path):
    """A background job of a non-interactive shell starts with SIGINT ignored (SIG_IGN is
    inherited across exec); the CLI installs its own handler, so SIGINT still stops it."""
    rc, out, err = signal_a_simulating_run(tmp_path, signal.SIGINT,
                                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert rc == 130, err
    data = json.loads((out / "error.json").read_text())
    assert data["interrupted"] is True and data["stage"] == "simulate"


def _first_future_quick(seed: int) -> int:
    """A stand-in for a future: the first returns at once, the others run for half a minute."""
    if seed != 0:
        time.sleep(30)
    return seed


def test_an_interrupt_stops_the_futures_in_flight(monkeypatch):
    """Ctrl-C during a fleet's futures pool stopped only after the futures in flight finished (the
    pool's exit waited for them: 4.7 s on the reference case, a whole future per worker, minutes on
    a long fleet). Now the workers are terminated and joined, and the interrupt goes on at once."""
    import multiprocessing

    from fleetsim.fleet import futures

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the futures pool forks")
    monkeypatch.setattr(futures, "_worker_run", _first_future_quick)
    gen = futures._pool_map(None, {}, {}, {}, None, [0, 1, 2, 3], 2)
    assert next(gen) == 0
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt)
    assert time.monotonic() - t0 < 10
    assert not multiprocessing.active_children()


def _init_after_a_ctrl_c(*args) -> None:
    """A worker's initializer, run after a Ctrl-C reached the worker between its fork and its own
    initializer (the process group's SIGINT, in the instant the pool starts)."""
    from fleetsim.fleet import futures

    os.kill(os.getpid(), signal.SIGINT)
    futures._real_worker_init(*args)


def test_a_ctrl_c_as_the_workers_are_forked_is_not_theirs(monkeypatch, capfd):
    """A Ctrl-C that reached a worker before its initializer ignored SIGINT raised inside it (a
    traceback, and a broken pool); the workers are now forked with SIGINT blocked until then."""
    import multiprocessing

    from fleetsim.fleet import futures

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the futures pool forks")
    monkeypatch.setattr(futures, "_worker_run", _first_future_quick)
    monkeypatch.setattr(futures, "_real_worker_init", futures._worker_init, raising=False)
    monkeypatch.setattr(futures, "_worker_init", _init_after_a_ctrl_c)
    gen = futures._pool_map(None, {}, {}, {}, None, [0, 1, 2, 3], 2)
    assert next(gen) == 0
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt)
    assert "Traceback" not in capfd.readouterr().err


def _children(pid: int) -> int:
    """How many child processes `pid` has (Linux /proc; 2 where that cannot be read)."""
    try:
        return len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return 2


def test_ctrl_c_on_a_futures_pool_prints_no_traceback(tmp_path):
    """Ctrl-C reaches the whole process group: the forked future workers inherited the CLI's
    SIGINT/SIGTERM handlers and printed a traceback each (and the pool's manager thread a third)
    after 'interrupted'. Now the parent alone handles it and stops the workers."""
    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    # without $CI: CI quiets progress, and the pool's start is told by its progress line (with CI
    # set the wait below ran to the run's end, and the interrupt found no process)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetsim.cli", "run", str(REPO / "scenarios" / "fleet_small.yaml"),
             "-o", str(out), "--no-plots", "--set", "fleet.replications=48"],
            stdout=subprocess.DEVNULL, stderr=err, text=True, start_new_session=True,
            env={**env, "FLEETSIM_FUTURE_WORKERS": "2", "FLEETSIM_CACHE_DIR": str(tmp_path / "cache")})
    try:
        deadline = time.monotonic() + 120
        # the pool has started (its line) and forked its 2 workers (the only children then): the
        # interrupt reaches them, whether or not they are inside a future yet (they are forked
        # with SIGINT blocked until they ignore it)
        while not ("futures on 2 processes" in log.read_text() and _children(proc.pid) >= 2) \
                and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # 48 futures take about 10 s on two cores: a run that ended already failed
        assert proc.poll() is None, f"the run ended before the interrupt (rc {proc.returncode}):\n" + log.read_text()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert proc.returncode == 130, text
    assert "Traceback" not in text and text.rstrip().endswith("interrupted"), text
    assert json.loads((out / "error.json").read_text())["stage"] == "simulate"
