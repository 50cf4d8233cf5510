"""`fleetsim criteria` (issue 19): the story's decision criteria with the thresholds runs give.

Hand values: `crossing` interpolates linearly (y = -1 at 0.2, +1 at 0.4 crosses at 0.3); a ban
probability p a year is an exponential open sojourn of mean 365.25 / -ln(1 - p) days (p = 0.5:
526.9 days); a chip identical to its rival breaks even at price fraction 1 with no interval to
speak of (capacity given by hand has none).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

import fleetsim
from fleetsim.cli import main
from fleetsim.scenario.model import Scenario
from fleetsim.sweep import criteria as cr

ROOT = Path(__file__).resolve().parents[1]


def test_crossing_hand_values():
    assert cr.crossing([0, 0.2, 0.4], [-2, -1, 1]) == pytest.approx(0.3)
    assert cr.crossing([0, 0.5], [0.1, 0.2]) == -math.inf   # already above at the first point
    assert cr.crossing([0, 0.5], [-0.1, -0.2]) == math.inf  # never within the grid


def test_variants_buy_through_one_side_only():
    sc = fleetsim.load_scenario(ROOT / "scenarios" / "alibaba_2025.yaml")
    mine = cr.buying_only(sc, "t-head-ppu")
    assert set(mine.fleet.channels) == {"t-head", "nvidia-h20"}      # the installed H20s' channel stays...
    assert mine.fleet.channels["nvidia-h20"].initial_exporter == "banned"  # ...closed to new orders
    assert "nvidia-h20" not in str(mine.fleet.reference_events)       # and no event reopens it
    assert set(mine.serving.pools) == {"ppu", "h20"}
    theirs = cr.with_ban_probability(cr.buying_only(sc, "h20"), "h20", 0.5, 240.0)
    ch = theirs.fleet.channels["nvidia-h20"]
    assert set(theirs.fleet.channels) == {"nvidia-h20"}
    assert ch.cycles[0].mean_open_days == pytest.approx(365.25 / math.log(2))
    assert ch.cycles[0].closed_state == "banned" and ch.risk_per_year == 0.5
    assert theirs.fleet.reference_events == {}
    assert cr.with_ban_probability(cr.buying_only(sc, "h20"), "h20", 0.0, 240.0).fleet.channels["nvidia-h20"].cycles == []


def twin_fleet() -> Scenario:
    """Two identical replica types (capacity by hand), one year, no installed fleet."""
    cap = {"chat": {"goodput_rps": 4.0, "output_tokens_per_request": 100, "power_w_per_replica": 600}}
    return Scenario.model_validate({
        "name": "twin", "seed": 3,
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
        "fleet": {"start": "2025-01-01", "years": 1, "replications": 3,
                  "demand": {"chat": {"tokens_per_s": 40000.0, "growth_per_year": 1.0,
                                              "forecast_error": {"sigma_per_year": 0.5}}},
                  "channels": {"a": {"offers": [{"chip": "h100"}], "lead_time_days": {"kind": "fixed", "value": 30}},
                               "b": {"offers": [{"chip": "x1"}], "lead_time_days": {"kind": "fixed", "value": 30}}},
                  "planner": {"kind": "cheapest"}, "budget": {"total_usd": 1e9},
                  "windows": {"enabled": False},
                  "capacity": {"ref": cap, "new": cap}}})


def test_identical_chip_breaks_even_at_one():
    pr = cr.break_even_price(twin_fleet(), "x1", "h100")
    assert pr["break_even_price_fraction"] == pytest.approx(1.0, rel=1e-12)
    assert pr["ci95"][0] == pytest.approx(1.0) and pr["ci95"][1] == pytest.approx(1.0)


def test_ban_threshold_paired_and_monotone():
    """Identical chips (but for their reliability figures: the twin's are the catalog's defaults):
    without a ban the two fleets cost nearly the same, future by future; a ban of
    0.9 a year leaves the banned side short."""
    out = cr.ban_threshold(twin_fleet(), "x1", "h100", [0.0, 0.9], futures=3, ban_days=300.0)
    t = out["table"]
    # crash and lead-time streams are keyed by channel and pool name (common random numbers by
    # purpose), so the twins' crashes differ a little: the difference is tiny and its paired
    # interval holds 0
    assert abs(t.diff_unmet_demand_share[0]) < 0.002
    assert t.diff_unmet_demand_share_lo[0] <= 0.0 <= t.diff_unmet_demand_share_hi[0]
    # paired on common random numbers: the difference's interval is far narrower than the spread
    # of either fleet over the futures (the same demand draws in both)
    paired_half = (t.diff_unmet_demand_share_hi[0] - t.diff_unmet_demand_share_lo[0]) / 2
    one_half = (t.x1_unmet_demand_share_hi[0] - t.x1_unmet_demand_share_lo[0]) / 2
    assert paired_half < one_half / 5
    assert abs(t.diff_all_in_cost_usd_per_mtok[0]) < 0.01 * t.h100_all_in_cost_usd_per_mtok[0]  # summary figures are rounded
    assert t.diff_unmet_demand_share[1] > 0
    assert 0 <= out["unmet_threshold"] < 0.9


def tiny_serving() -> Scenario:
    return Scenario.model_validate({
        "name": "tiny", "seed": 1,
        "serving": {"duration_s": 60, "warmup_s": 10,
                    "workloads": {"chat": {"model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 1},
                                           "prompt_tokens": {"kind": "lognormal", "median": 500, "sigma": 0.5, "max": 4000},
                                           "output_tokens": {"kind": "fixed", "value": 50},
                                           "slo": {"ttft_s": 1.0, "tpot_s": 0.1, "percentile": 95}}},
                    "pools": {"a": {"chip": "h20", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}},
                    "goodput": {"cell_replicas": 1, "duration_s": 60, "warmup_s": 10, "max_windows": 6,
                                "min_windows": 3}}})


def test_breaking_points_bracket_the_slo():
    """The tightest TTFT passes and the next probe fails; the 405B model fits no H20 node."""
    from fleetsim.serving.capacity import capacity

    # a sample of ~600 requests (the search's own: rate x window) and a target surely met at 4 s
    sc = tiny_serving().with_overrides(["serving.workloads.chat.slo.ttft_s=4.0",
                                        "serving.workloads.chat.arrival.rate_per_s=10"])
    b = cr.breaking_points(sc, "a", steps=2, models_ladder=("qwen2.5-7b", "llama-3.1-405b"))  # from its own model up
    assert b["model"]["largest"] == "qwen2.5-7b" and b["model"]["first_failing"] == "llama-3.1-405b"
    fail_s, pass_s = b["ttft"]["bracket"]
    assert fail_s < pass_s == b["ttft"]["tightest_s"]
    att = lambda t: capacity(sc.with_overrides([f"serving.workloads.chat.slo.ttft_s={t!r}"]), "a", "chat").zero_load_attainment  # noqa: E731
    assert att(pass_s) >= 0.95 > att(fail_s)
    lo, hi = b["prompt"]["bracket"]
    assert lo == b["prompt"]["median_tokens"] and (hi is None or hi > lo)
    # the 95% intervals hold the estimate; the edges of the TTFT one are where the idle share's
    # Wilson interval leaves the percentile
    clo, chi = b["ttft"]["ci95"]
    assert clo <= pass_s <= chi and clo < chi
    from fleetsim.stats import wilson_interval

    n = b["idle_attainment"]["n"]
    assert wilson_interval(round(att(chi) * n), n)[0] >= 0.95            # wholly above at the upper end
    assert wilson_interval(round(att(clo * 0.99) * n), n)[1] < 0.95       # wholly below just under the lower
    plo, phi = b["prompt"]["ci95"]
    assert plo <= b["prompt"]["median_tokens"] <= (phi if phi is not None else float("inf"))


def test_crash_figures_do_not_make_a_new_search():
    """The goodput windows run without crashes, so a crash-rate scale reuses the search (a crash
    axis in decide or criteria costs no windows) while availability follows the hazard."""
    from fleetsim.serving.capacity import CACHE_STATS, capacity

    sc = tiny_serving().with_overrides(["serving.goodput.max_windows=12"])  # a finite rate
    base = capacity(sc, "a", "chat")
    assert base.goodput_rps > 0
    misses = CACHE_STATS["misses"]
    worse = capacity(sc.with_overrides(["reliability.chips.h20.hazard_multiplier=50.0"]), "a", "chat")
    assert CACHE_STATS["misses"] == misses and worse.cached
    assert worse.goodput_rps == base.goodput_rps and worse.availability < base.availability
    hotter = capacity(sc.with_overrides(["reliability.chips.h20.r_th_c_per_w=0.5"]), "a", "chat")
    assert CACHE_STATS["misses"] == misses + 1 and not hotter.cached  # heat changes the windows: a new search


def twin_computed(price: float = 1.0) -> Scenario:
    """The twin case with capacity from the goodput search (tiny windows) and the twin given the
    H100's own reliability figures, so the two replica types are the same but for the name."""
    from fleetsim.api import resolve_catalogs
    from fleetsim.reliability import resolve_chip
    from fleetsim.scenario.reliability import ReliabilityConfig

    d = twin_fleet().model_dump(mode="json", by_alias=True, exclude_unset=True)
    d["fleet"].pop("capacity")
    d["catalog"]["chips"]["x1"]["relative_to"]["price_fraction"] = price
    d["serving"]["goodput"] = {"cell_replicas": 1, "duration_s": 60, "warmup_s": 10, "max_windows": 24, "min_windows": 3}
    sc = Scenario.model_validate(d)
    chips, _ = resolve_catalogs(sc)
    h = resolve_chip(ReliabilityConfig(), "h100", chips)
    keep = ("tdp_w", "idle_frac", "r_th_c_per_w", "tau_s", "clock_power_exp", "dvfs_onset_c", "dvfs_slope_per_c",
            "throttle_c", "t_max_c", "throttle_floor", "mtbf_h", "mtbf_ref_c", "ea_ev", "hazard_multiplier", "hot_c",
            "hot_gain_per_c", "extended_threshold", "extended_gain", "extended_tau_h", "extended_recovery")
    d["reliability"] = {"chips": {"x1": {k: getattr(h, k) for k in keep}}}
    return Scenario.model_validate(d)


def test_crash_break_even_on_twins():
    """Twins break even at price 1 at the catalog's crash rate; priced at 0.9, the twin stays the
    cheaper per Mtok at SLO until its crashes cost the 10%: at the scale found, its cost per Mtok
    at 0.9 of the price equals the H100's (cost_frontier, an independent path), and it is cheaper
    below that scale and dearer above it."""
    from fleetsim.sweep.decide import cost_frontier

    sc = twin_computed()
    assert cr.break_even_price(sc, "x1", "h100")["break_even_price_fraction"] == pytest.approx(1.0, abs=1e-9)
    out = cr.stress_break_even(sc, "x1", "h100", "crash", target=0.9, scale_max=1e4, rel_tol=1e-4)
    g, b = out["estimate"]
    assert b is not None and 1.0 < g < b < 1e4

    def gap(s):  # twin minus H100 cost per Mtok at SLO, the twin at 0.9 of the price
        st = sc.with_overrides(cr.stress_overrides(sc, "x1", "crash", s))
        row = cost_frontier(st, "x1", "h100", "h100", [1.0], [0.9]).iloc[0]
        return row.chip_cost_usd_per_mtok_at_slo - row.versus_cost_usd_per_mtok_at_slo

    assert gap(g / 1.5) < 0 < gap(b * 1.5)
    assert abs(gap(g)) < 1e-3 * cost_frontier(sc, "x1", "h100", "h100", [1.0], [0.9]).iloc[0].versus_cost_usd_per_mtok_at_slo


def test_cli_names_the_unknown_chip(tmp_path, user_error):
    r = CliRunner().invoke(main, ["criteria", "scenarios/alibaba_2025.yaml", "--chip", "nope", "--versus", "h20"])
    user_error(r, file="scenarios/alibaba_2025.yaml", contains=["nope"])
