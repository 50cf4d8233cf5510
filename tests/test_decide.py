"""`fleetsim decide` (issue 19): the break-even frontier of a chip against an alternative.

A chip identical to its reference (relative_to h100 with perf 1 and price 1, the same capacity,
power, channel terms and finance) costs exactly what the reference costs per Mtok at the SLO, so
its break-even price fraction is 1.0; at half the performance (half the goodput given by hand)
the capex part must halve with the fixed costs' share: q* = (2 C_ref T/2 - F) / (a) worked below.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fleetsim.cli import main
from fleetsim.scenario.model import Scenario
from fleetsim.sweep.decide import decide, replica_economics

ROOT = Path(__file__).resolve().parents[1]


def twin(goodput_x: float = 4.0) -> Scenario:
    return Scenario.model_validate({
        "name": "twin", "seed": 0,
        "catalog": {"chips": {"x1": {"relative_to": {"chip": "h100", "perf_fraction": 1.0, "price_fraction": 1.0},
                                     "name": "twin of the H100", "vendor": "test", "year": 2025,
                                     "supply_channel": "test", "memory_type": "HBM3", "hbm_gb": 80,
                                     "interconnect_gbps": 450, "tdp_w": 700}}},
        "serving": {"duration_s": 60, "warmup_s": 10,
                    "workloads": {"chat": {"model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 1},
                                           "prompt_tokens": {"kind": "fixed", "value": 100},
                                           "output_tokens": {"kind": "fixed", "value": 100}}},
                    "pools": {"ref": {"chip": "h100", "model": "qwen2.5-7b", "tp": 1, "replicas": 1},
                              "new": {"chip": "x1", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}}},
        "fleet": {"start": "2025-01-01", "years": 1,
                  "demand": {"chat": {"tokens_per_s": 1000.0}},
                  "channels": {"a": {"offers": [{"chip": "h100", "price_usd": 20000}]},
                               "b": {"offers": [{"chip": "x1"}]}},
                  "planner": {"kind": "cheapest"}, "budget": {"total_usd": 1e9},
                  "finance": {"server_overhead_usd_per_node": 80000, "other_opex_usd_per_chip_year": 500},
                  "windows": {"enabled": False},
                  "capacity": {"ref": {"chat": {"goodput_rps": 4.0, "output_tokens_per_request": 100,
                                                "power_w_per_replica": 600}},
                               "new": {"chat": {"goodput_rps": goodput_x, "output_tokens_per_request": 100,
                                                "power_w_per_replica": 600}}}}})


def test_identical_chip_breaks_even_at_the_same_price():
    sc = twin()
    out = decide(sc, "x1", "h100", "h100", [1.0], [0.5, 1.0, 1.5])
    front = out["frontier"].iloc[0]
    assert front.break_even_price_fraction == pytest.approx(1.0, rel=1e-12)
    c = out["costs"]
    at_one = c[c.price_fraction == 1.0].iloc[0]
    assert at_one.chip_cost_usd_per_mtok_at_slo == pytest.approx(at_one.versus_cost_usd_per_mtok_at_slo, rel=1e-12)
    assert (c[c.price_fraction < 1].chip_cost_usd_per_mtok_at_slo < at_one.versus_cost_usd_per_mtok_at_slo).all()


def test_half_the_goodput_by_hand():
    """Per replica-year: capex a = price / 5 years; fixed F = 80,000 / 8 / 5 + power + 500 with
    power = 0.6 kW x 8,766 h x 1.2 x 0.08; tokens T = 400 tok/s x 3,600 x 8,766 (the H100), half
    that for the chip. Equal cost per Mtok: (q 20,000 / 5 + F) / (T / 2) = (20,000 / 5 + F) / T,
    so q = ((4,000 + F) / 2 - F) / 4,000."""
    sc = twin(goodput_x=2.0)
    F = 80000 / 8 / 5 + 0.6 * 8766 * 1.2 * 0.08 + 500
    q = ((4000 + F) / 2 - F) / 4000
    out = decide(sc, "x1", "h100", "h100", [1.0], [1.0])
    assert out["frontier"].iloc[0].break_even_price_fraction == pytest.approx(q, rel=1e-12)


def test_cli_prints_the_frontier_and_refuses_a_bad_grid(tmp_path):
    path = tmp_path / "twin.yaml"
    import yaml

    path.write_text(yaml.safe_dump(twin().model_dump(mode="json", exclude_none=True)))
    r = CliRunner().invoke(main, ["decide", str(path), "--chip", "x1", "--versus", "h100",
                                  "--perf", "0.5:1:2", "--price", "0.5:1.5:3", "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "break-even" in r.output and (tmp_path / "out" / "frontier.png").is_file()
    r = CliRunner().invoke(main, ["decide", str(path), "--chip", "nope", "--versus", "h100"])
    assert r.exit_code == 2 and "no serving pool uses chip 'nope'" in r.output


# -- the fleet-level frontier (fleetsim.sweep.frontier) ---------------------------------------
# The twin's fleet: a cheapest planner buying for 1,000 tok/s of demand from two channels, the
# H100 at USD 20,000 and x1 (the same capacity, power and terms) at q x 20,000. Two futures a
# point, in this process (SerialExecutor): a few seconds a test.

def _fleet(sc, prices, **kw):
    from fleetsim.sweep.executors import SerialExecutor

    return decide(sc, "x1", "h100", "h100", [1.0], prices, futures=2, executor=SerialExecutor(), **kw)


def test_fleet_frontier_of_an_identical_chip_lies_at_equal_cost_and_it_enters_only_when_cheaper():
    out = _fleet(twin(), [0.9, 1.1])
    pts = out["points"].set_index("price_fraction")
    assert pts.loc[0.9, "chip_capex_share"] > 0.9 and pts.loc[0.9, "chip_entered_share"] == 1.0
    assert pts.loc[1.1, "chip_capex_share"] == 0.0 and pts.loc[1.1, "chip_capacity_share_end"] == 0.0
    front = out["frontier"].iloc[0]
    assert front.break_even_price_fraction == pytest.approx(1.0, rel=1e-9)  # costs equal at price 1
    # the entry line lies where the costs are equal, to the grid's resolution (0.2)
    assert abs(front.entry_price_fraction - front.break_even_price_fraction) <= 0.2
    assert (front.entry_last_price_in, front.entry_first_price_out) == (0.9, 1.1)
    # cheap, the chip lowers the fleet's cost per Mtok against the same futures without it
    assert pts.loc[0.9, "fleet_cost_change_usd_per_mtok"] < 0
    assert pts.loc[1.1, "fleet_cost_change_usd_per_mtok"] == pytest.approx(0.0, abs=1e-12)
    assert pts.loc[1.1, "unmet_demand_change"] == pytest.approx(0.0, abs=1e-12)


def test_a_ban_risk_on_the_alternative_brings_the_dearer_chip_in():
    """At 1.2 x the H100's price x1 never enters; with a 0.9-a-year ban on the H100's channel
    (closed a year at a time) the planner buys x1 in the futures where the H100 is banned."""
    out = _fleet(twin().with_overrides(["fleet.demand.chat.growth_per_year=1.0"]), [1.2], bans=[0.0, 0.9])
    pts = out["points"].set_index("ban_probability_per_year")
    assert pts.loc[0.0, "chip_capex_share"] == 0.0
    assert pts.loc[0.9, "chip_capex_share"] > 0.0


def test_a_dated_ban_with_a_probability_is_drawn_per_future():
    """--ban-on: P is the probability of one exporter ban of the H100's channel on that day (a
    fleet event with `probability`, drawn in each future), not a random cycle. At 1.2 x the H100's
    price x1 enters only in the futures that draw the ban: never at P = 0, in every future at
    P = 1, in some but not all at P = 0.5."""
    import datetime as dt

    from fleetsim.sweep.executors import SerialExecutor
    from fleetsim.sweep.frontier import FrontierGrid, point_overrides

    sc = twin().with_overrides(["fleet.demand.chat.growth_per_year=1.0"])
    g = FrontierGrid("x1", "h100", "h100", [1.0], [1.2], bans=[0.5], futures=8, ban_on=dt.date(2025, 3, 1))
    ev = sc.with_overrides(point_overrides(sc, g, 1.0, 1.2, 0.5, 1.0)).fleet.events
    assert [(e.date, e.channel, e.sides[0], e.probability) for e in ev] == [(dt.date(2025, 3, 1), "a", "banned", 0.5)]
    assert sc.with_overrides(point_overrides(sc, g, 1.0, 1.2, 0.5, 1.0)).fleet.channels["a"].random_cycle is None
    out = decide(sc, "x1", "h100", "h100", [1.0], [1.2], futures=8, bans=[0.0, 0.5, 1.0],
                 ban_on=dt.date(2025, 3, 1), executor=SerialExecutor())
    pts = out["points"].set_index("ban_probability_per_year")
    assert pts.loc[0.0, "chip_entered_share"] == 0.0
    assert pts.loc[1.0, "chip_entered_share"] == 1.0
    assert 0.0 < pts.loc[0.5, "chip_entered_share"] < 1.0
    assert "h100 probability of a ban on 2025-03-01: 0.5" in out["text"]


def test_tornado_is_paired_and_puts_price_first(tmp_path):
    out = _fleet(twin(), [1.0], tornado=["price", "power"], out_dir=tmp_path)
    t = out["tornado"]
    assert list(t.input)[0].startswith("price")
    top = t.iloc[0]
    assert top.low_share_change > 0.9 and top.high_share_change == 0.0
    # paired on the same futures: no change means an interval of zero width
    assert top.high_share_change_lo == top.high_share_change_hi == 0.0
    for name in ("decide.parquet", "frontier.parquet", "decide_futures.parquet", "tornado.parquet",
                 "frontier.png", "tornado.png", "decide.html"):
        assert (tmp_path / name).is_file(), name
    again = _fleet(twin(), [1.0], tornado=["price", "power"], out_dir=tmp_path)
    assert again["times"]["points_run"] == 0  # resumed from the folder's store


def test_the_docs_decide_command_prints_what_the_page_quotes(monkeypatch):
    """docs/planner.md's fleet-level `fleetsim decide` example runs as written and prints the lines
    the page quotes (the timing line aside)."""
    import re
    import shlex

    monkeypatch.chdir(ROOT)
    doc = (ROOT / "docs" / "planner.md").read_text()
    m = re.search(r"```bash\n(fleetsim decide scenarios/examples/decide_small\.yaml[^\n]*)\n```\n+```\n(.*?)```",
                  doc, re.DOTALL)
    assert m, "docs/planner.md lost its decide example"
    r = CliRunner().invoke(main, shlex.split(m.group(1))[1:])
    assert r.exit_code == 0, r.output
    printed = [ln.rstrip() for ln in r.stdout.splitlines()]
    for line in m.group(2).splitlines():
        if not line.startswith("time:"):
            assert line.rstrip() in printed, f"docs/planner.md quotes {line!r}; the command printed\n{r.stdout}"


def test_without_the_chip_removes_its_offers_and_an_emptied_channel():
    from fleetsim import api
    from fleetsim.sweep.frontier import without_chip

    sc = api.load_scenario(ROOT / "scenarios" / "examples" / "decide_small.yaml")
    out = without_chip(sc, "x-half")
    assert "domestic" not in out.fleet.channels and "domestic" in sc.fleet.channels
    assert set(out.fleet.channels) == set(sc.fleet.channels) - {"domestic"}


def test_decide_refuses_bad_fleet_axes_before_running():
    path = str(ROOT / "scenarios" / "examples" / "decide_small.yaml")
    base = ["decide", path, "--chip", "x-half", "--versus", "h20", "--perf", "0.5", "--price", "0.5"]
    r = CliRunner().invoke(main, [*base, "--futures", "2", "--ban", "1.0"])
    assert r.exit_code == 2 and "ban probability 1.0 per year: give 0 <= P < 1" in r.output, r.output
    r = CliRunner().invoke(main, [*base, "--futures", "1"])
    assert r.exit_code == 2 and "at least 2" in r.output, r.output
    r = CliRunner().invoke(main, [*base, "--ban", "0.5"])
    assert r.exit_code == 2 and "need --futures" in r.output, r.output
    r = CliRunner().invoke(main, [*base, "--futures", "2", "--ban", "0.5", "--ban-on", "2025-13-01"])
    assert r.exit_code == 2 and "give a date YYYY-MM-DD" in r.output, r.output
    r = CliRunner().invoke(main, [*base, "--futures", "2", "--ban", "0.5", "--ban-on", "2031-01-01"])
    assert r.exit_code == 2 and "--ban-on 2031-01-01 is outside the fleet's horizon" in r.output, r.output
    assert "Traceback" not in r.output


def test_the_frontier_on_dask_is_the_frontier_in_process():
    """The same points on a Dask LocalCluster (threads, cheap to start) give the same tables."""
    from fleetsim.sweep.executors import DaskExecutor

    serial = _fleet(twin(), [0.9, 1.1])
    ex = DaskExecutor(local_workers=2, processes=False)
    try:
        dask = decide(twin(), "x1", "h100", "h100", [1.0], [0.9, 1.1], futures=2, executor=ex)
    finally:
        ex.close()
    pd.testing.assert_frame_equal(serial["points"], dask["points"])
    pd.testing.assert_frame_equal(serial["futures"], dask["futures"])
