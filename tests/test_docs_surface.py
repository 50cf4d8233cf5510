"""References in the docs that point somewhere: the README's command table, the recipe for a chip
known only relative to another, and no citations of documents the repository does not have."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from fleetsim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_command_table_lists_every_command():
    readme = (ROOT / "README.md").read_text()
    table = "\n".join(ln for ln in readme.splitlines() if ln.startswith("| `fleetsim "))
    missing = [c for c in main.commands if f"fleetsim {c}" not in table]
    assert not missing, f"README's command table lacks {missing}"


def test_docs_cite_no_missing_documents():
    """'CONTRACTS' was a planning document that never shipped; neither the docs nor the code's
    docstrings and comments (12 of them did) may send readers there."""
    for page in (ROOT / "docs").glob("*.md"):
        assert "CONTRACTS" not in page.read_text(), page.name
    word = "CONTRACTS"
    code = [p for d in ("fleetsim", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py")
            if word in p.read_text() and p.name != "test_docs_surface.py"]
    assert not code, [str(p.relative_to(ROOT)) for p in code]


def test_relative_chip_recipe_is_where_the_index_points():
    index = (ROOT / "docs" / "README.md").read_text()
    assert "30-50%" in index and 'kernel.md\'s "A chip known only relative to another"' in index.replace("\n  ", " ")
    kernel = (ROOT / "docs" / "kernel.md").read_text()
    section = kernel.split("## A chip known only relative to another", 1)[1].split("\n## ", 1)[0]
    shipped = yaml.safe_load((ROOT / "scenarios" / "examples" / "relative_chip.yaml").read_text())
    block = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[0])
    assert block["catalog"]["chips"]["x-30pct"] == shipped["catalog"]["chips"]["x-30pct"]
    r = CliRunner().invoke(main, ["validate", str(ROOT / "scenarios" / "examples" / "relative_chip.yaml")])
    assert r.exit_code == 0, r.output
    printed = [ln.strip() for ln in r.output.splitlines()]
    quoted = [ln.strip() for ln in section.splitlines() if ln.startswith("    pool ")]
    assert len(quoted) == 3 and all(q in printed for q in quoted), (quoted, r.output)
    # the ratios the text states, from the printed saturation throughputs
    sat = [float(re.search(r"saturation about ([\d,]+)", q).group(1).replace(",", "")) for q in quoted]
    assert (round(100 * sat[1] / sat[0]), round(100 * sat[2] / sat[0])) == (34, 55)
    assert "34% and 55% of the H100" in " ".join(section.split())
