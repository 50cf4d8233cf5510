"""Issue 12 at the CLI: interrupts, -o safety, physics in validation, memory limits, derived facts,
the catalog's YAML example, progress, and the plot/report/compare commands."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from signal_helpers import signal_a_simulating_run

import fleetsim
from fleetsim import api
from fleetsim.cli import CATALOG_EXAMPLE, main
from fleetsim.errors import FleetsimError

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "scenarios" / "serving_quickstart.yaml"
SHORT = ["--set", "serving.duration_s=40", "--set", "serving.warmup_s=10"]


def _invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


# ---- interrupts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_leaves_error_json_marked_interrupted(tmp_path, sig, code):
    rc, out, err = signal_a_simulating_run(tmp_path, sig)
    assert rc == code, err
    data = json.loads((out / "error.json").read_text())
    assert data["interrupted"] is True and data["stage"] == "simulate"
    assert not (out / "manifest.json").exists()
    assert "interrupted" in err and "Traceback" not in err


# ---- -o safety ---------------------------------------------------------------------------------


def test_out_refuses_a_folder_of_user_files(tmp_path):
    (tmp_path / "summary.json").write_text("mine")
    (tmp_path / "notes.txt").write_text("mine too")
    for extra in ([], ["--overwrite"]):
        res = _invoke("run", str(SERVING), "-o", str(tmp_path), "-q", "--no-plots", *SHORT, *extra)
        assert res.exit_code == 2 and "not a fleetsim run" in res.output
    assert (tmp_path / "summary.json").read_text() == "mine"
    assert (tmp_path / "notes.txt").read_text() == "mine too"


def test_out_refuses_an_earlier_run_without_overwrite(tmp_path):
    out = tmp_path / "run"
    assert _invoke("run", str(SERVING), "-o", str(out), "-q", *SHORT).exit_code == 0
    first = (out / "manifest.json").read_text()
    res = _invoke("run", str(SERVING), "-o", str(out), "-q", "--no-plots", *SHORT)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "manifest.json").read_text() == first
    res = _invoke("run", str(SERVING), "-o", str(out), "-q", "--no-plots", "--overwrite", *SHORT, "--seed", "9")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["seed"] == 9
    assert not (out / "plots").exists() and not (out / "report.html").exists()  # the old run's, removed


def test_overwrite_keeps_a_users_file_beside_a_run(tmp_path):
    out = tmp_path / "run"
    assert _invoke("run", str(SERVING), "-o", str(out), "-q", "--no-plots", *SHORT).exit_code == 0
    (out / "plots").mkdir()
    (out / "plots" / "my_chart.xlsx").write_text("mine")
    res = _invoke("run", str(SERVING), "-o", str(out), "-q", "--no-plots", "--overwrite", *SHORT)
    assert res.exit_code == 2 and "my_chart.xlsx" in res.output
    assert (out / "plots" / "my_chart.xlsx").read_text() == "mine" and (out / "manifest.json").exists()


def test_out_onto_a_failed_run_is_replaced_with_overwrite(tmp_path):
    (tmp_path / "error.json").write_text(json.dumps({"error": "x"}))
    res = _invoke("run", str(SERVING), "-o", str(tmp_path), "-q", "--no-plots", "--overwrite", *SHORT)
    assert res.exit_code == 0 and not (tmp_path / "error.json").exists()


# ---- physics in validation -------------------------------------------------------------------------


def _scenario_file(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(SERVING.read_text())
    edit(data)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _error(path: Path) -> str:
    res = _invoke("validate", str(path))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return res.output


def test_prompts_beyond_the_context_are_refused(tmp_path):
    def edit(d):
        d["serving"]["workloads"]["chat"]["prompt_tokens"] = {"kind": "uniform", "low": 30000, "high": 40000}
    out = _error(_scenario_file(tmp_path, edit))
    assert "context" in out and "serving.workloads.chat.prompt_tokens" in out


def test_tp_beyond_a_node_is_refused(tmp_path):
    def edit(d):
        d["serving"]["pools"]["h20"]["tp"] = 64
    out = _error(_scenario_file(tmp_path, edit))
    assert "scale-up domain" in out and "tp <= 8" in out and "serving.pools.h20.tp" in out


def test_all_pools_at_zero_are_refused(tmp_path):
    def edit(d):
        for p in d["serving"]["pools"].values():
            p["replicas"] = 0
    assert "every pool has replicas: 0" in _error(_scenario_file(tmp_path, edit))


def test_does_not_fit_names_a_tp_that_works(tmp_path):
    def edit(d):
        d["serving"]["pools"]["h20"]["tp"] = 1
    out = _error(_scenario_file(tmp_path, edit))
    tp = int(out.split("tp=")[-1].split()[0])
    def fixed(d):
        d["serving"]["pools"]["h20"]["tp"] = tp
    res = _invoke("validate", str(_scenario_file(tmp_path, fixed)))
    assert res.exit_code == 0, (out, res.output)


def test_reliability_run_size_is_checked_before_the_start(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text(yaml.safe_dump({"name": "big", "reliability": {"cohort_run": {"days": 36500, "cohorts": [
        {"name": "a", "chip": "h100", "count": 100_000_000, "utilisation": 0.5}]}}}))
    out = _error(p)  # a refusal naming the limit (exit 2) is itself the proof that nothing ran
    assert "limit" in out


def test_validate_prints_derived_facts():
    res = _invoke("validate", str(SERVING))
    assert res.exit_code == 0
    out = res.output
    assert "GB per chip" in out and "KV cache" in out and "saturation about" in out
    assert "placeholders used" in out and "t-head-ppu" in out


@pytest.mark.parametrize("kind", ["chips", "models"])
def test_catalog_yaml_example_loads(kind, tmp_path):
    res = _invoke(kind)
    assert CATALOG_EXAMPLE[kind].strip() in res.output
    fragment = yaml.safe_load(CATALOG_EXAMPLE[kind].split(":\n", 1)[1])
    data = yaml.safe_load(SERVING.read_text()) | fragment
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    fleetsim.load_scenario(p)


# ---- progress -----------------------------------------------------------------------------------------


class _Recorder:
    def __init__(self):
        self.messages, self.updates = [], []

    def __call__(self, msg):
        self.messages.append(msg)

    def update(self, label, done, total):
        self.updates.append((label, done, total))


def test_progress_changes_nothing_and_reaches_the_end():
    scen = fleetsim.load_scenario(SERVING, ["serving.duration_s=40", "serving.warmup_s=10"])
    rec = _Recorder()
    a = fleetsim.run(scen, progress=rec)
    b = fleetsim.run(scen)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert rec.updates and rec.updates[-1][1] == rec.updates[-1][2] == 40


def test_progress_is_quiet_in_ci(tmp_path):
    res = CliRunner().invoke(main, ["run", str(SERVING), "-o", str(tmp_path / "r"), "--no-plots", *SHORT],
                             env={"CI": "1"})
    assert res.exit_code == 0 and res.stderr == ""
    assert "requests (after" in res.stdout  # the summary still prints


# ---- plot / report / compare commands ---------------------------------------------------------


def test_plot_report_compare_commands(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _invoke("run", str(SERVING), "-o", str(a), "-q", "--no-plots", *SHORT).exit_code == 0
    assert not (a / "plots").exists()
    res = _invoke("plot", str(a))
    assert res.exit_code == 0 and (a / "plots" / "latency_cdf.png").is_file()
    res = _invoke("report", str(a))
    assert res.exit_code == 0 and (a / "report.html").is_file()
    assert _invoke("run", str(SERVING), "-o", str(b), "-q", *SHORT, "--seed", "3").exit_code == 0
    res = _invoke("compare", str(a), str(b), "-o", str(tmp_path / "c.html"))
    assert res.exit_code == 0 and (tmp_path / "c.html").is_file()
    assert _invoke("plot", str(tmp_path / "nothing")).exit_code == 2


def test_cli_reaches_results_only_through_api():
    text = (REPO / "fleetsim" / "cli.py").read_text()
    assert "fleetsim.results" not in text and "fleetsim.report" not in text
    with pytest.raises(FleetsimError):
        api.report(REPO / "scenarios")


def test_fleet_progress_changes_nothing():
    scen = fleetsim.load_scenario(REPO / "scenarios" / "fleet_small.yaml", ["fleet.years=1",
                                                                           "fleet.budget.schedule=[1.0]"])
    rec = _Recorder()
    a = fleetsim.run(scen, progress=rec)
    b = fleetsim.run(scen)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    assert any(u[0].startswith("fleet") and u[1] == u[2] for u in rec.updates)


def test_overwrite_never_deletes_a_file_the_run_did_not_list(tmp_path):
    out = tmp_path / "run"
    assert _invoke("run", str(SERVING), "-o", str(out), "-q", "--no-plots", *SHORT).exit_code == 0
    (out / "orders.parquet").write_text("a user's file with a fleetsim-like name")
    res = _invoke("run", str(SERVING), "-o", str(out), "-q", "--no-plots", "--overwrite", *SHORT)
    assert res.exit_code == 2 and "orders.parquet" in res.output
    assert (out / "orders.parquet").read_text().startswith("a user's file")


def test_every_yaml_snippet_in_the_chip_notes_loads(tmp_path):
    """The catalog's notes suggest scenario fragments in backticks: each must be valid YAML that a
    scenario accepts (one carried a stray quote)."""
    import re

    out = _invoke("chips").output
    snippets = [s for s in re.findall(r"`([^`]*relative_to:[^`]*)`", out)]
    assert snippets
    for s in snippets:
        fragment = yaml.safe_load(s)
        data = yaml.safe_load(SERVING.read_text())
        data["catalog"] = {"chips": {"t-head-ppu": fragment}}
        p = tmp_path / "s.yaml"
        p.write_text(yaml.safe_dump(data))
        fleetsim.load_scenario(p)


def test_fleet_window_size_is_checked_before_the_start():
    with pytest.raises(FleetsimError, match="fleet serving window could simulate"):
        fleetsim.load_scenario(REPO / "scenarios" / "quickstart.yaml", ["fleet.windows.duration_s=1e7"])
    fleetsim.load_scenario(REPO / "scenarios" / "quickstart.yaml")  # the shipped one passes


def test_rejection_reasons_count_like_the_headline(tmp_path):
    """An overloaded pool with a queue limit rejects: the reasons add up to the rejected count."""
    res = _invoke("run", str(SERVING), "-o", str(tmp_path / "r"), "--no-plots", *SHORT,
                  "--set", "serving.pools.h20.queue_limit=0", "--set", "serving.pools.domestic.queue_limit=0",
                  "--set", "serving.workloads.chat.arrival.rate_per_s=40")
    assert res.exit_code == 0, res.output
    import re

    rejected = int(re.search(r"\+ (\d+) rejected", res.output).group(1))
    line = next(ln for ln in res.output.splitlines() if ln.startswith("rejected by reason (after warm-up)"))
    assert rejected > 0 and sum(int(n) for n in re.findall(r" (\d+)", line)) == rejected
    assert "chips" in res.output and "of saturation" in res.output


def test_plots_and_report_drawn_by_a_forked_helper_are_the_same_bytes(tmp_path, monkeypatch):
    """api.run(plots=True): a helper forked at the start draws the plots and the report (the
    run's staged manifest read as its own); the files are those of one process, and a helper
    that dies leaves the work to the run, which then does it itself."""
    from fleetsim import forked
    from fleetsim.report import plots

    monkeypatch.setenv("FLEETSIM_FORK", "1")  # the suite's conftest sets 0; this probe needs the helper
    if forked.fork_workers() < 2:
        pytest.skip("one CPU or no fork: no helper")
    scen = fleetsim.load_scenario(REPO / "scenarios" / "fleet_small.yaml",
                                  ["fleet.years=1", "fleet.replications=1", "fleet.windows.every_days=120"])
    real = plots.draw_all
    pids = tmp_path / "pids"
    monkeypatch.setattr(plots, "draw_all", lambda d, svg=False: (
        pids.open("a").write(f"{os.getpid()}\n"), real(d, svg))[1])
    out = {}
    for mode in ("helper", "helper dies"):
        if mode == "helper dies":
            monkeypatch.setattr(api, "_import_report", lambda: os._exit(3))
        pids.write_text("")
        res = fleetsim.run(scen, tmp_path / mode.replace(" ", "_"), plots=True)
        drew = {int(x) for x in pids.read_text().split()}
        assert drew == ({os.getpid()} if mode == "helper dies" else drew - {os.getpid()}) and drew
        d = res.run_dir
        assert (d / "manifest.json").is_file() and not (d / ".manifest.staged.json").exists()
        files = json.loads((d / "manifest.json").read_text())["files"]
        assert "report.html" in files and any(f.startswith("plots/") for f in files)
        out[mode] = {f: (d / f).read_bytes() for f in files if f != "report.html"}
    assert out["helper"] == out["helper dies"]
