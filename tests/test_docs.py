"""Docs that execute: the README's scenario and Python snippets must keep working."""

from __future__ import annotations

import re
from pathlib import Path

import fleetsim

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_scenario_validates(tmp_path):
    block = re.findall(r"```yaml\n(.*?)```", README, re.S)[0]
    path = tmp_path / "readme.yaml"
    path.write_text(block)
    assert fleetsim.load_scenario(path).name == "serving_quickstart"


def test_readme_python_snippet_runs(monkeypatch):
    block = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["result"].requests is not None


def test_readme_commands_are_two_single_lines():
    """The two set-up commands at the top: one line each, venv + install + run."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)[:2]
    assert len(blocks) == 2
    assert all(len(b.strip().splitlines()) == 1 for b in blocks)
    assert "fleetsim run scenarios/quickstart.yaml" in blocks[0]
    assert "pytest" in blocks[1]
