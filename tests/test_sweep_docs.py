"""docs/sweeps.md executes: its sweep file is the shipped one, its commands and snippet run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from fleetsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "sweeps.md").read_text()
FAST = ["--set", "serving.duration_s=40", "--set", "serving.warmup_s=10", "-q"]


def test_doc_sweep_file_is_the_shipped_one():
    block = re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)[0]
    shipped = ROOT / "scenarios" / "sweeps" / "quickstart-capacity.yaml"
    assert yaml.safe_load(block) == yaml.safe_load(shipped.read_text())


def test_doc_commands_run_and_resume(tmp_path, monkeypatch):
    """The tutorial's pool command (shortened windows), then again: all from the store."""
    monkeypatch.chdir(ROOT)
    cmds = [b.strip() for b in re.findall(r"```bash\n(.*?)```", DOC, re.DOTALL)]
    assert cmds[0].startswith("fleetsim sweep ") and "--dask-local 2" in cmds[1]
    args = shlex.split(cmds[0])[1:] + ["-o", str(tmp_path / "doc"), "--workers", "2"] + FAST
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "9 points x 3 seeds = 27 runs; 0 from the store, 27 run, 0 failed" in r.output
    r = CliRunner().invoke(main, args)
    assert "27 from the store, 0 run, 0 failed" in r.output
    assert len(list((tmp_path / "doc" / "plots").glob("*.png"))) == 3


def test_doc_refusal_line_is_what_the_cli_prints(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    quoted = re.search(r"    (error: scenarios/serving_quickstart.yaml.*)", DOC).group(1)
    r = CliRunner().invoke(main, ["sweep", "scenarios/serving_quickstart.yaml", "--param",
                                  "serving.pools.h20.replicas=2,-2", "-o", str(tmp_path / "x"), "-q"])
    line = re.compile(r"serving_quickstart.yaml:\d+,")  # the file's line number may move with edits
    assert r.exit_code == 2 and line.sub("L", r.output.strip()) == line.sub("L", quoted)


def test_doc_python_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    block = re.findall(r"```python\n(.*?)```", DOC, re.DOTALL)[0]
    block = block.replace("outputs/sweeps/python", str(tmp_path / "py"))
    ns: dict = {"__name__": "__main__"}
    exec(compile(block, "docs/sweeps.md", "exec"), ns)  # noqa: S102 (our own doc)
    assert ns["res"].runs == 8 and ns["res"].failed == 0
