"""docs/analysis.md, the scenario comments and the backtest (issue 19) against the runs.

The full runs (16 futures of five scenarios, the criteria search, the sensitivity runs) take
tens of CPU minutes, so `python benchmarks/analysis_doc.py --write` keeps every future's figures
in docs/analysis_runs.json. The fast tests check that the page, the scenario comments and the
backtest state what that file holds; the slow one reruns future 0 of every shipped scenario
(one future, windows off: windows measure, they do not steer) and checks the file's future 0, so
a code change that moves the runs fails here until the file is regenerated.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

import fleetsim

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("analysis_doc", ROOT / "benchmarks" / "analysis_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


AD = _script()
DATA = json.loads(AD.DATA.read_text())


def test_page_is_what_the_script_renders():
    """A figure on the page that the runs file does not give fails here: rerun
    `python benchmarks/analysis_doc.py --render` (or --write to rerun the runs)."""
    assert AD.DOC.read_text() == AD.render(DATA)


def _mean_ci(values, scale, digits):
    m, lo, hi = AD.t_interval([v * scale for v in values])
    return tuple(round(x, digits) for x in (m, lo, hi))


COMMENT = re.compile(r"capex USD (?P<c>-?[\d.]+) B \((?P<clo>-?[\d.]+) to (?P<chi>-?[\d.]+)\), unmet demand "
                     r"(?P<u>-?[\d.]+)% \((?P<ulo>-?[\d.]+) to (?P<uhi>-?[\d.]+)\)")


@pytest.mark.parametrize("name", AD.SCENARIOS)
def test_scenario_comment_states_the_run(name):
    """Each shipped scenario's header says what its run gives: capex and unmet demand with their
    intervals (16 futures), as the runs file holds them."""
    text = (ROOT / "scenarios" / f"{name}.yaml").read_text()
    m = COMMENT.search(re.sub(r"\n#\s*", " ", text))
    assert m, f"scenarios/{name}.yaml: no 'capex USD X B (lo to hi), unmet demand Y% (lo to hi)' comment"
    run = DATA["scenarios"][name]
    assert tuple(float(m[k]) for k in ("c", "clo", "chi")) == _mean_ci(run["capex_usd_total"], 1e-9, 1), name
    assert tuple(float(m[k]) for k in ("u", "ulo", "uhi")) == _mean_ci(run["unmet_demand_share"], 100, 1), name


def test_derated_comment_states_the_paired_difference():
    text = re.sub(r"\n#\s*", " ", (ROOT / "scenarios" / "alibaba_2025_derated.yaml").read_text())
    m = re.search(r"capex ([-+][\d.]+) B \(([-+][\d.]+) to ([-+][\d.]+)\).* and ([\d.]+) points \(([\d.]+) to "
                  r"([\d.]+)\) more demand unmet", text)
    assert m
    S = DATA["scenarios"]
    diff = lambda k, sc: [(b - a) * sc for a, b in zip(S["alibaba_2025"][k], S["alibaba_2025_derated"][k])]  # noqa: E731
    assert tuple(float(m[k]) for k in (1, 2, 3)) == _mean_ci(diff("capex_usd_total", 1e-9), 1, 2)
    assert tuple(float(m[k]) for k in (4, 5, 6)) == _mean_ci(diff("unmet_demand_share", 100), 1, 1)


def test_reference_comment_on_the_initial_load_and_budget():
    """The demand comment (initial demand against the installed H20s' goodput) and the budget
    comment are what the run gives."""
    text = re.sub(r"\n\s*#\s*", " ", (ROOT / "scenarios" / "alibaba_2025.yaml").read_text())
    load = AD.initial_load(DATA)
    m = re.search(r"(\d+)% of the initial H20 fleet's goodput at SLO \((\d+)% at the diurnal peak\)", text)
    assert m and (int(m[1]), int(m[2])) == (round(load["mean_share"] * 100), round(load["peak_share"] * 100))
    run = DATA["scenarios"]["alibaba_2025"]
    m = re.search(r"budget binds in (\d+) of .* USD ([\d.]+) B \(([\d.]+) to ([\d.]+)\) of it unspent", text)
    assert m, "no budget comment"
    assert int(m[1]) == round(max(run["budget_bound_periods"]))
    assert tuple(float(m[k]) for k in (2, 3, 4)) == _mean_ci(run["budget_unspent_usd"], 1e-9, 1)


# the words a scenario comment uses for each unmet-demand cause of the runs file
CAUSE_WORDS = {"fab_output": "fab output", "no_offer": "no open offer"}


@pytest.mark.parametrize("name", AD.SCENARIOS)
def test_scenario_comment_on_what_leaves_demand_unmet(name):
    """A header that names the largest cause of unmet demand in the representative future gives
    that cause and its share as the runs file has them; 'USD X B (lo to hi) of the budget stays
    unspent' is the mean over the futures with its interval."""
    text = re.sub(r"\n\s*#\s*", " ", (ROOT / "scenarios" / f"{name}.yaml").read_text())
    run = DATA["scenarios"][name]
    m = re.search(r"(\d+)% of the unmet demand in the representative future", text)
    if m:
        top = max(run["unmet_causes"], key=lambda c: c["share"])
        assert int(m[1]) == round(top["share"] * 100), name
        assert CAUSE_WORDS[top["cause"]] in text[max(0, m.start() - 60):m.start()], (name, top["cause"])
    m = re.search(r"USD ([\d.]+) B \(([\d.]+) to ([\d.]+)\) of the budget stays unspent", text)
    if m:
        assert tuple(float(m[k]) for k in (1, 2, 3)) == _mean_ci(run["budget_unspent_usd"], 1e-9, 1), name
    assert "of the budget stays unspent" not in text or m, f"{name}: unspent budget without its interval"


def test_backtest_figures():
    """The backtest's figures are the run's: 2025 capex (mean over futures) against Alibaba's
    reported four quarters, and the H20 bought before the April 2025 rule against Nvidia's quarter."""
    bt = AD.backtest(DATA)
    run = DATA["scenarios"]["alibaba_2025"]
    assert bt["run_capex_2025_usd"][0] == pytest.approx(sum(run["capex_usd_by_year.2025"]) / run["futures"])
    assert bt["alibaba_capex_4q_usd"] == pytest.approx(120e9 * 53.1 / 380)
    assert bt["capex_ratio"] == pytest.approx(bt["run_capex_2025_usd"][0] / bt["alibaba_capex_4q_usd"])
    assert bt["cap_share_of_q1fy26_rate"] == pytest.approx(40000 * 3 / (4.6e9 / 13500))
    # the scenario comment on the H20 cap states the share the backtest computes
    text = re.sub(r"\n\s*#\s*", " ", (ROOT / "scenarios" / "alibaba_2025.yaml").read_text())
    m = re.search(r"ASSUMPTION: (\d+)% of Nvidia's China H20 sales rate in the quarter "
                  r"to 2025-04-27 \((\d+)% of the 2024 rate", text)
    assert m and (int(m[1]), int(m[2])) == (round(bt["cap_share_of_q1fy26_rate"] * 100),
                                            round(bt["cap_share_of_2024_rate"] * 100))


@pytest.mark.slow
def test_runs_file_is_what_the_code_gives_today(lasting_results_dir, monkeypatch):
    """Future 0 of every shipped scenario, rerun now, equals the runs file's future 0."""
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(lasting_results_dir))
    for name in AD.SCENARIOS:
        sc = AD._load(name, ["fleet.replications=1", "fleet.windows.enabled=false"])
        s = fleetsim.run(sc).summary["fleet"]
        run = DATA["scenarios"][name]
        for key in ("capex_usd_total", "unmet_demand_share", "all_in_cost_usd_per_mtok", "budget_unspent_usd"):
            assert s[key] == pytest.approx(run[key][0], rel=1e-9), (name, key)
        assert s["capex_usd_by_year"]["2025"] == pytest.approx(run["capex_usd_by_year.2025"][0], rel=1e-9), name
