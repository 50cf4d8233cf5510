"""docs/planner.md's minutes-long figures (benchmarks/planner_doc.py) against their runs file.

The rolling hedge (six policies x 30 fleet futures, the optimiser on 20 futures x 24 periods) and
decide's ban, crash and tornado axes (99 points) take CPU minutes, so `python
benchmarks/planner_doc.py --write` keeps every future's figures in docs/planner_runs.json and the
page's blocks are rendered from that file alone. The fast tests check that the page is what the
file renders and that the figures quoted are the file's own (VSS and EVPI paired on the same
futures); the slow one reruns future 0 of two hedge policies and of decide's base point today and
compares them with the file, so a code change that moves the runs fails here until the file is
regenerated.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("planner_doc", ROOT / "benchmarks" / "planner_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PD = _script()
DATA = json.loads(PD.DATA.read_text())
PAGE = (ROOT / "docs" / "planner.md").read_text()


def _block(name: str) -> str:
    m = re.search(rf"<!-- generated: {name} [^\n]*-->\n(.*?)<!-- end generated: {name} -->", PAGE, re.S)
    assert m, f"docs/planner.md has no block {name}"
    return m[1]


@pytest.mark.parametrize("name", sorted(PD.BLOCKS))
def test_page_block_is_what_the_runs_file_renders(name):
    assert _block(name) == PD.BLOCKS[name](DATA), (
        f"docs/planner.md block {name} differs from docs/planner_runs.json: "
        "python benchmarks/planner_doc.py --render")


def test_hedge_block_claims_a_value_only_beyond_its_interval():
    """VSS and EVPI are called a saving or a cost only when their interval leaves 0 out: the
    block's wording follows the paired intervals of the file (and of a file whose oracle costs
    1 B less in every future, where EVPI is clearly positive)."""
    nums = PD.hedge_numbers(DATA["hedge"])
    text = PD.render_hedge(DATA)
    for name, (_, lo, hi) in (("VSS", nums["vss"]), ("EVPI", nums["evpi"])):
        assert (f"{name} is indistinguishable from 0" in text) == (lo <= 0 <= hi), name
    doctored = json.loads(json.dumps(DATA))
    o = doctored["hedge"]["policies"]["oracle"]
    o["cost_usd"] = [c - 1e9 for c in doctored["hedge"]["policies"]["stochastic"]["cost_usd"]]
    text = PD.render_hedge(doctored)
    assert "EVPI is indistinguishable from 0" not in text
    assert "EVPI: perfect foresight of the regime and of demand would save the optimiser USD 1" in text


def test_runs_file_is_paired_on_common_futures():
    """Every hedge policy ran the same futures (one row each, no NaN), the oracle never strands
    money, and the page's VSS and EVPI are the paired differences the file gives."""
    h = DATA["hedge"]
    n = h["settings"]["holdout"]
    assert len(h["seeds"]) == n
    for name, p in h["policies"].items():
        assert all(len(v) == n and all(x is not None for x in v) for v in p.values()), name
    assert max(h["policies"]["oracle"]["stranded_usd"]) == 0.0
    nums = PD.hedge_numbers(h)
    sp, ev = np.array(h["policies"]["stochastic"]["cost_usd"]), np.array(h["policies"]["expected_value"]["cost_usd"])
    assert nums["vss"][0] == pytest.approx(float(np.mean(ev - sp)), rel=1e-9, abs=1e-3)
    from fleetsim.results.rounding import format_interval
    assert f"**VSS** (expected-value plan minus stochastic plan) = {format_interval(*nums['vss'], kind='usd')}" \
        in _block("planner-hedge")


def test_decide_runs_file_covers_the_axes():
    d = DATA["decide"]
    s = d["settings"]
    f = d["frontier"]
    assert len(f["perf_fraction"]) == len(s["perfs"]) * len(s["bans"]) * len(s["crashes"])
    assert {None if b is None else b for b in f["ban_probability_per_year"]} == set(s["bans"])
    assert len(d["tornado"]["input"]) >= 7
    assert len(d["base_futures"]["seed"]) == s["futures"]
    dd = DATA["dated"]
    assert dd["points"]["ban_probability_per_year"] == [b for b in dd["settings"]["bans"]
                                                        for _ in dd["settings"]["prices"]] * len(dd["settings"]["perfs"])
    assert all(x is not None for x in dd["points"]["fleet_cost_change_usd_per_mtok"])


@pytest.mark.slow
def test_runs_file_is_what_the_code_gives_today(lasting_results_dir, monkeypatch):
    """Future 0 of the expected-value and security-weighted policies of the rolling hedge, and
    of decide's base point, rerun now, equal the runs file's future 0."""
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(lasting_results_dir))
    from fleetsim import api
    from fleetsim.fleet.capacity import replica_capacities, seasonal_capacities
    from fleetsim.fleet.futures import run_futures
    from fleetsim.fleet.optimal import hedge as hg
    from fleetsim.results.cache import ResultCache
    from fleetsim.sweep.frontier import plan_points, run_frontier_point

    h = DATA["hedge"]
    s = h["settings"]
    sc = PD.hedge_scenario()
    chips, models = api.resolve_catalogs(sc)
    cache = ResultCache()
    caps = replica_capacities(sc, chips, models, cache=cache)
    grid = seasonal_capacities(sc, chips, models, cache=cache)
    policies, pen = hg.rolling_policies(sc, s["futures"], (), s["horizon_periods"])
    for name in ("expected_value", "security_weighted"):
        fut = run_futures(hg.rolling_scenario(sc, policies[name][0], 1), chips, models, caps, None, caps_grid=grid)
        assert fut.seeds[0] == h["seeds"][0]
        got = hg.rolling_costs(fut.replicates, pen)
        for key in ("cost_usd", "unmet_share", "stranded_usd", "ledger_usd", "unmet_mtok"):
            assert got[key][0] == pytest.approx(h["policies"][name][key][0], rel=1e-9, abs=1e-9), (name, key)

    d = DATA["decide"]
    g = PD.decide_grid()
    perf0, price0 = PD.decide_base(sc)
    plan = plan_points(sc, g, [{"perf": perf0, "price": price0, "ban": None, "crash": 1.0, "role": "tornado_base"}])
    one = plan.scenarios[0].with_overrides(["fleet.replications=1"])
    row = run_frontier_point({"key": "x", "scenario": one, "chip": g.chip, "versus": g.versus})
    assert row["status"] == "ok", row["error"]
    fu = json.loads(row["futures_json"])
    assert fu["seed"][0] == d["base_futures"]["seed"][0]
    for key in ("chip_capacity_share_end", "cost_usd_per_mtok", "chip_capex_share"):
        want = d["base_futures"][key][0]
        assert fu[key][0] == pytest.approx(want, rel=1e-9) or (math.isnan(fu[key][0]) and want is None), key
