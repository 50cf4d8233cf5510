"""Docs that execute: the README's scenario and Python snippets must keep working."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


# ---- docs that cannot drift: generated tables (benchmarks/doc_tables.py) ------------------------

def _doc_tables():
    import importlib.util
    import sys

    if str(ROOT / "benchmarks") not in sys.path:  # the script imports benchmarks/_smoke.py
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("doc_tables", ROOT / "benchmarks" / "doc_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


DOC_TABLES = _doc_tables()
BLOCKS = [(page.name, name, body) for page, bs in DOC_TABLES.pages().items() for name, body in bs]


def test_every_generated_block_has_its_script_and_is_filled():
    """Each marker names a generator, each generator has a page, and no block is left empty."""
    names = [n for _, n, _ in BLOCKS]
    assert set(names) == set(DOC_TABLES.TABLES), (names, list(DOC_TABLES.TABLES))
    assert all(body.strip() for _, _, body in BLOCKS)
    assert {"planner.md", "validation.md"} <= {p for p, _, _ in BLOCKS}


@pytest.fixture(scope="module")
def shared_cache(lasting_results_dir):
    """One capacity cache for every generated table (the planners and both planner tables share
    replica types), lasting across test runs: its keys hash the scenario and the capacity code."""
    return lasting_results_dir


@pytest.mark.slow
@pytest.mark.parametrize("page,name,body", BLOCKS, ids=[f"{p}:{n}" for p, n, _ in BLOCKS])
def test_generated_block_matches_what_its_script_gives(page, name, body, shared_cache, monkeypatch):
    """A figure in docs/ that the code no longer gives fails here: rerun
    `python benchmarks/doc_tables.py --write` (and read what changed) to update the page."""
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(shared_cache))
    assert DOC_TABLES.TABLES[name]() == body, f"docs/{page}: block {name} drifted from the code"


@pytest.mark.parametrize("name", DOC_TABLES.PD_TABLES)
def test_pd_figures_are_the_bench_runs_file(name):
    """docs/serving.md's PD search figures and docs/fleet.md's cost per Mtok at SLO against the
    colocated pools are rendered from docs/disagg_runs.json (benchmarks/bench_disagg.py --write:
    17 minutes of runs, too long for a test), with no simulation: fast, unlike the check above."""
    body = [b for _, n, b in BLOCKS if n == name]
    assert body == [DOC_TABLES.TABLES[name]()], (
        f"block {name} differs from docs/disagg_runs.json: rerun `python benchmarks/bench_disagg.py --write`")
    runs = DOC_TABLES._pd_runs()
    seeds = {tuple(v["seed"]) for rows in runs["fleet"].values() for v in rows.values()}
    assert len(seeds) == 1  # every variant on the same futures: the differences are paired


def test_pd_prefix_rows_are_the_runs_file_and_its_first_windows_rerun():
    """docs/validation.md's DistServe and prefix-cache rows come from docs/pd_prefix_runs.json
    (benchmarks/validate_pd_prefix.py --write, 80-110 CPU s); the summary table at the top quotes
    the same ratios; the prefix row's first pair of windows, rerun, gives the file's figures."""
    import json

    import validate_pd_prefix as vpp  # on sys.path through _doc_tables()

    d = json.loads(DOC_TABLES.PD_PREFIX_RUNS.read_text())
    r, q = d["distserve"], d["prefix"]
    text = (ROOT / "docs" / "validation.md").read_text()
    top = text.split("\n## ")[0]
    assert f"| {r['ratio']:.2f}x [{r['ratio_ci'][0]:.2f}, {r['ratio_ci'][1]:.2f}], " \
           f"{r['ratio'] / 2.08 - 1:+.0%}".replace("+-", "-") in top
    assert f"| {q['ratio']:.3f}x [{q['ratio_ci'][0]:.3f}, {q['ratio_ci'][1]:.3f}], " \
           f"{q['ratio'] / 1.407 - 1:+.0%}".replace("+-", "-") in top
    assert q["windows"] == len(q["base_rps_per_window"]) == len(q["cached_rps_per_window"])
    assert vpp.prefix_window(0, q["duration_s"]) == (q["base_rps_per_window"][0], q["cached_rps_per_window"][0])
