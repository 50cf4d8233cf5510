"""Replicated futures and common random numbers (fleetsim.fleet.futures, fleetsim.rng).

Small fleets with capacity given by hand and no serving windows, so each future takes a tenth of
a second; the statistical test (coverage) is marked slow but stays within seconds.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fleet_helpers import FLEET, scenario
from test_fleet import check_conservation, check_money

from fleetsim import api
from fleetsim.fleet.capacity import replica_capacities
from fleetsim.fleet.futures import future_seeds, numeric_leaves, run_futures
from fleetsim.fleet.sim import _FleetSim, run_fleet
from fleetsim.results.rounding import format_interval
from fleetsim.results.tables import fleet_table
from fleetsim.stats import t_interval
from fleetsim.sweep import runner
from fleetsim.sweep.executors import SerialExecutor
from fleetsim.sweep.spec import SweepSpec

DEMAND = {"chat": {"tokens_per_s": 2.0e5, "growth_per_year": 1.0, "peak_to_mean": 1.3,
                   "forecast_error": {"sigma_per_year": 0.4}}}
LOGNORMAL_LEAD = {"kind": "lognormal", "median": 40, "sigma": 0.4}


def noisy(changes: dict | None = None, seed: int = 3, **fleet) -> object:
    """The helpers' small fleet with a demand surprise and random lead times."""
    channels = {n: dict(c, lead_time_days=LOGNORMAL_LEAD) for n, c in FLEET["channels"].items()}
    sc = scenario({"demand": DEMAND, "channels": channels, **(changes or {})}, seed=seed)
    return sc.model_copy(update={"fleet": sc.fleet.model_copy(update=fleet)})


def parts(sc):
    api.check_references(sc)
    chips, models = api.resolve_catalogs(sc)
    return chips, models, replica_capacities(sc, chips, models, cache=None)


def as_run(sc, res):
    """A future's FleetResult as the tables the conservation checks read."""
    return SimpleNamespace(scenario=sc, summary={"fleet": res.summary}, timeline=fleet_table(res.timeline),
                           orders=fleet_table(res.orders), ledger=fleet_table(res.ledger),
                           events=fleet_table(res.events))


def test_futures_differ_every_future_conserves_and_the_tables_are_the_representatives():
    sc = noisy({"years": 0.5}, replications=3)
    chips, models, caps = parts(sc)
    fut = run_futures(sc, chips, models, caps, keep_all=True)
    assert fut.seeds == future_seeds(3, 3) and len(set(fut.seeds)) == 3
    unmet = fut.replicates["unmet_demand_share"]
    assert len(set(unmet)) > 1  # the demand surprise differs between futures
    for res in fut.all_results:  # chips and money balance in every future, not only the one shown
        run = as_run(sc, res)
        check_conservation(run)
        check_money(run)
    # the representative: unmet share closest to the median; its tables are the run's tables
    med = np.median(unmet)
    assert abs(unmet[fut.representative] - med) == min(abs(u - med) for u in unmet)
    again = run_fleet(sc, chips, models, caps, seed=fut.seeds[fut.representative])
    pd.testing.assert_frame_equal(fleet_table(again.timeline), fleet_table(fut.result.timeline))
    # every number of a future's summary has its interval, under the same (flattened) name
    h = fut.block["headlines"]
    for key, value in numeric_leaves(fut.result.summary).items():
        assert key in h and h[key]["p5"] <= h[key]["p50"] <= h[key]["p95"]
    m, lo, hi = t_interval(np.array(unmet))
    assert h["unmet_demand_share"]["mean"] == pytest.approx(m) and h["unmet_demand_share"]["ci95_lo"] == pytest.approx(lo)
    # per-day quantiles: P5 <= P50 <= P95, the fleet totals under chip "all"
    q = pd.DataFrame(fut.quantiles)
    assert set(q["chip"]) == {"h20", "ascend-910b", "all"}
    for col in ("demand_tokens_per_s", "capacity_tokens_per_s", "unmet_tokens_per_s", "installed", "capex_cum_usd"):
        assert (q[f"{col}_p5"] <= q[f"{col}_p50"] + 1e-9).all() and (q[f"{col}_p50"] <= q[f"{col}_p95"] + 1e-9).all()


def test_run_folder_has_replicates_and_quantiles_and_is_byte_identical(tmp_path):
    sc = noisy(replications=3)
    a = api.run(sc, out_dir=tmp_path / "a")
    b = api.run(sc, out_dir=tmp_path / "b")
    for name in ("replicates.parquet", "quantiles.parquet", "timeline.parquet", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    rep = pd.read_parquet(tmp_path / "a" / "replicates.parquet")
    assert len(rep) == 3 and {"future", "seed", "unmet_demand_share", "capex_usd_total"} <= set(rep.columns)
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["futures"]["replications"] == 3 and s["fleet"] == a.summary["fleet"]
    text = api.summary_text(a.summary)
    assert "3 futures from fleet seed 3" in text and "±" in text and "P5" in text
    del b


def test_wide_interval_says_so_and_what_to_change():
    sc = noisy(replications=2)
    res = api.run(sc)
    fut = res.summary["futures"]
    assert fut["wide"], fut["headlines"]["unmet_demand_share"]
    assert "fleet.replications" in fut["advice"] and "fleet.replications" in api.summary_text(res.summary)


def test_replications_below_one_or_too_many_refused_before_the_start(runner, tmp_path):
    from pathlib import Path

    qs = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
    for value, words in (("0", "greater than or equal to 1"), ("10000", "estimated")):
        r = runner.invoke(__import__("fleetsim.cli", fromlist=["main"]).main,
                          ["run", str(qs), "-o", str(tmp_path / value), "--set", f"fleet.replications={value}"])
        assert r.exit_code == 2, r.output
        assert "fleet.replications" in r.stderr and words in r.stderr and "Traceback" not in r.output
        assert not (tmp_path / value / "manifest.json").exists()


def test_format_interval_shows_the_digits_the_interval_supports():
    assert format_interval(0.1234, 0.1, 0.15, "share") == "12.3 ± 2.5%"
    assert format_interval(1.49e9, 1.40e9, 1.58e9, "usd") == "USD 1.490 ± 0.090 B"
    assert format_interval(0.939, 0.888, 0.990) == "0.939 ± 0.051"  # as the sweep table always printed
    assert format_interval(0.3617, 0.3601, 0.3633) == "0.3617 ± 0.0016"
    assert format_interval(12345.6, 12000, 12700, "count") == "12,350 ± 350"
    assert format_interval(0.5, None, None) == "0.500"


@pytest.mark.slow
def test_interval_of_mean_unmet_demand_covers_the_long_run_mean():
    """Coverage of the 95% t-interval over R=4 futures: the long-run mean (60 futures of another
    root) lies inside it for at least 17 of 20 independent roots (binomial(20, 0.95): P(<17) = 1.6%)."""
    base = noisy({"years": 0.2}, replications=4)
    chips, models, caps = parts(base)
    unmet = lambda sc: [run_fleet(sc, chips, models, caps, seed=s).summary["unmet_demand_share"]
                        for s in future_seeds(sc.fleet.seed, sc.fleet.replications)]
    long_run = float(np.mean(unmet(base.model_copy(update={"fleet": base.fleet.model_copy(
        update={"seed": 10_000, "replications": 60})}))))
    covered = 0
    for root in range(20):
        sc = base.model_copy(update={"fleet": base.fleet.model_copy(update={"seed": root})})
        m, lo, hi = t_interval(np.array(unmet(sc)))
        covered += lo <= long_run <= hi
    assert covered >= 17, covered


def _sweep(tmp_path, name, params, R=4):
    sc_file = tmp_path / f"{name}.yaml"
    sc = noisy({"years": 0.5}, replications=R)
    sc_file.write_text(json.dumps(sc.model_dump(mode="json")))
    spec = SweepSpec(params=params, seeds=1)
    return runner.run_sweep(sc_file, spec, tmp_path / name, executor=SerialExecutor(), quiet=True, plots=False)


def test_sweep_over_a_price_gives_identical_fleets_future_by_future(tmp_path):
    """Revenue price cannot change what is bought: with common random numbers every future of
    every point holds the same fleet, so the paired difference is exactly zero."""
    res = _sweep(tmp_path, "price", {"fleet.finance.revenue_usd_per_mtok": [0.5, 2.0]})
    units = pd.read_parquet(tmp_path / "price" / "futures.parquet")
    a, b = units[units.point == 0].reset_index(), units[units.point == 1].reset_index()
    assert len(a) == 4 and (a.seed == b.seed).all()
    for col in ("capex_usd_total", "unmet_demand_share", "cost_usd_per_mtok"):
        assert (a[col] == b[col]).all(), col
    assert a["unmet_demand_share"].nunique() > 1  # the futures themselves differ
    p = res.paired.set_index("metric")
    assert p.loc["capex_usd_total", "diff_mean"] == 0 and p.loc["capex_usd_total", "pairs"] == 4
    assert p.loc["unmet_demand_share", "unpaired_ci95_hi"] > 0  # as if independent: a spread


def test_paired_interval_is_much_narrower_than_the_unpaired(tmp_path):
    res = _sweep(tmp_path, "power", {"fleet.finance.power_usd_per_kwh": [0.07, 0.075]}, R=6)
    p = res.paired.set_index("metric").loc["cost_usd_per_mtok"]
    paired = p["diff_ci95_hi"] - p["diff_ci95_lo"]
    unpaired = p["unpaired_ci95_hi"] - p["unpaired_ci95_lo"]
    assert paired < unpaired / 5, (paired, unpaired)


def test_adding_an_unused_channel_changes_no_other_stream():
    """A channel named to sort first, with its own random cycle and random lead times, selling at
    a price nobody pays: demand, the other channels' cycles and lead times, crashes, the fleet."""
    cyc = {"mean_open_days": 60, "mean_closed_days": 20, "closed_state": "licence_required"}
    base = scenario({"demand": DEMAND}, seed=5)
    ch = base.fleet.model_dump(mode="json")["channels"]
    ch["nvidia"]["random_cycle"] = cyc
    ch["nvidia"]["lead_time_days"] = LOGNORMAL_LEAD
    ch["huawei"]["lead_time_days"] = LOGNORMAL_LEAD
    one = scenario({"demand": DEMAND, "channels": ch}, seed=5)
    ch2 = dict(ch) | {"aaa-unused": {"offers": [{"chip": "h20", "price_usd": 1.0e9}], "random_cycle": cyc,
                                     "lead_time_days": LOGNORMAL_LEAD}}
    two = scenario({"demand": DEMAND, "channels": ch2}, seed=5)
    chips, models, caps = parts(one)
    a, b = _FleetSim(one, chips, models, caps, None), _FleetSim(two, chips, models, caps, None)
    a._setup()
    b._setup()
    assert np.array_equal(a.real, b.real)
    tr = lambda s: [(t.day, t.channel, t.exporter, t.importer) for t in s.transitions if t.channel != "aaa-unused"]
    assert tr(a) == tr(b) and any(t.channel == "aaa-unused" for t in b.transitions)
    for n in ("nvidia", "huawei"):  # lead times and crashes by the order's key, not by position
        key = (n, "nv", 30, 0)
        assert a._lead_days(a.channels[n], key) == b._lead_days(b.channels[n], key)
        assert a.cohorts.cohort_rng(key).random(50).tolist() == b.cohorts.cohort_rng(key).random(50).tolist()
    # without a cycle of its own (no reopening to replan on), the unused channel changes nothing
    ch3 = dict(ch) | {"aaa-unused": {"offers": [{"chip": "h20", "price_usd": 1.0e9}],
                                     "lead_time_days": LOGNORMAL_LEAD}}
    three = scenario({"demand": DEMAND, "channels": ch3}, seed=5)
    ra, rc = run_fleet(one, chips, models, caps), run_fleet(three, chips, models, caps)
    assert not (rc.orders["channel"] == "aaa-unused").any()
    for col in ("installed", "capacity_tokens_per_s", "unmet_tokens_per_s", "crashes", "capex_usd"):
        assert np.array_equal(ra.timeline[col], rc.timeline[col]), col
    assert list(ra.orders["due_on"]) == list(rc.orders["due_on"])  # lead-time draws unchanged


class _Spy:
    """A generator that records what it drew (the cohorts' crash uniforms)."""

    def __init__(self, g, log: list) -> None:
        self.g, self.log = g, log

    def random(self, shape):
        x = self.g.random(shape)
        self.log.extend(np.ravel(x).tolist())
        return x


def _spied_run(sc, chips, models, caps):
    """Run one future; returns (orders by key: lead days, crash uniforms by cohort key)."""
    sim = _FleetSim(sc, chips, models, caps, None)
    orig_setup = sim._setup
    draws: dict[tuple, list] = {}

    def setup():
        orig_setup()
        rng = sim.cohorts.cohort_rng
        sim.cohorts.cohort_rng = lambda key: _Spy(rng(key), draws.setdefault(key, []))
    sim._setup = setup
    sim.run(None)
    leads = {o.key: o.due_day - o.ordered_day for o in sim.orders if o.key[2] != "initial"}
    return sim, leads, draws


def test_an_order_elsewhere_shifts_no_other_orders_lead_time_nor_cohorts_crashes():
    """Lead times are drawn per order and crashes per cohort, each from a stream named by the
    order (channel, pool, day, number that day), not in placement order within a channel or pool:
    a cohort there from the start, in the same channel and pool as later orders, changes what is
    ordered, but every order and cohort the two runs share keeps its draws."""
    rel = {"repair": {"technicians": None, "lost_share": 0.0}, "chips": {"h20": {"mtbf_h": 20000.0},
                                                                        "ascend-910b": {"mtbf_h": 20000.0}}}
    channels = {n: dict(c, lead_time_days=LOGNORMAL_LEAD) for n, c in FLEET["channels"].items()}
    one = scenario({"demand": DEMAND, "channels": channels}, seed=7, reliability=rel)
    extra = [{"chip": "h20", "count": 600, "channel": "nvidia", "price_usd": 10000}]
    two = scenario({"demand": DEMAND, "channels": channels, "initial_fleet": extra}, seed=7, reliability=rel)
    chips, models, caps = parts(one)
    a, lead_a, draws_a = _spied_run(one, chips, models, caps)
    b, lead_b, draws_b = _spied_run(two, chips, models, caps)
    common = sorted(set(lead_a) & set(lead_b), key=str)
    nv_a = [o.key for o in a.orders if o.channel == "nvidia"]
    nv_b = [o.key for o in b.orders if o.channel == "nvidia"]
    moved = [k for k in common if k[0] == "nvidia" and nv_a.index(k) != nv_b.index(k)]
    assert len(moved) >= 3  # orders both runs place, at other places in the channel's sequence
    assert [lead_a[k] for k in common] == [lead_b[k] for k in common]
    shared = [k for k in draws_a if k in draws_b]
    assert len(shared) >= 3 and sum(len(draws_a[k]) for k in shared) > 100
    for k in shared:  # each cohort its own uniforms, whatever else was delivered
        n = min(len(draws_a[k]), len(draws_b[k]))
        assert draws_a[k][:n] == draws_b[k][:n], k
    assert a.cohorts.view("crashes").sum() > 0


def test_poisson_by_inversion_matches_numpys_poisson():
    """Crash counts by inversion of each cohort's own uniforms have the Poisson distribution."""
    from fleetsim.rng import poisson_from_uniform

    g = np.random.default_rng(0)
    for lam in (0.003, 0.4, 3.0, 40.0, 900.0):
        x = poisson_from_uniform(g.random(40_000), np.full(40_000, lam))
        assert abs(x.mean() - lam) < 4 * np.sqrt(lam / 40_000) and abs(x.var() / lam - 1) < 0.05, lam
    u = np.array([0.1, 0.5, 0.99, 0.7])
    assert poisson_from_uniform(u, np.array([0.0, 1.0, 1.0, 2.0])).tolist() == [0, 1, 4, 3]  # by hand


def test_an_unused_pool_shifts_no_stream():
    """A replica type sorting first that no channel sells: the fleet, every lead time and every
    crash are unchanged (streams keyed by names, not pool or channel positions)."""
    rel = {"chips": {"h20": {"mtbf_h": 20000.0}, "ascend-910b": {"mtbf_h": 20000.0}}}
    channels = {n: dict(c, lead_time_days=LOGNORMAL_LEAD) for n, c in FLEET["channels"].items()}
    one = scenario({"demand": DEMAND, "channels": channels}, seed=7, reliability=rel)
    serving = json.loads(json.dumps(one.serving.model_dump(mode="json")))
    serving["pools"] = {"aaa": {"chip": "h100", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}} | serving["pools"]
    cap = dict(FLEET["capacity"]) | {"aaa": FLEET["capacity"]["nv"]}
    two = scenario({"demand": DEMAND, "channels": channels, "capacity": cap}, seed=7, reliability=rel,
                   serving=serving)
    chips, models, caps = parts(one)
    caps2 = parts(two)[2]
    ra, rb = run_fleet(one, chips, models, caps), run_fleet(two, chips, models, caps2)
    ta, tb = pd.DataFrame(ra.timeline), pd.DataFrame(rb.timeline)
    assert "h100" in set(tb["chip"]) and "h100" not in set(ta["chip"])
    tb = tb[tb["chip"] != "h100"].reset_index(drop=True)
    for col in ("installed", "crashes", "capacity_tokens_per_s", "capex_usd"):
        assert np.array_equal(ta[col].to_numpy(), tb[col].to_numpy()), col
    assert ta["crashes"].sum() > 0
    assert list(ra.orders["due_on"]) == list(rb.orders["due_on"])


def test_reliability_cohorts_draw_from_streams_named_by_cohort():
    """A reliability run's cohorts are keyed by name: dropping one leaves the other's crashes
    unchanged (with no technician queue to couple them)."""
    from pathlib import Path

    from fleetsim.reliability import run_reliability
    from fleetsim.rng import stream

    sc = api.load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "diurnal-throttle.yaml",
                           ["reliability.cohort_run.days=20", "reliability.repair.technicians=null"])
    rel = sc.reliability
    both = run_reliability(rel, None, stream(sc.seed, "reliability")).summary["cohorts"]
    one_run = rel.cohort_run.model_copy(update={"cohorts": rel.cohort_run.cohorts[1:]})
    one = run_reliability(rel.model_copy(update={"cohort_run": one_run}), None,
                          stream(sc.seed, "reliability")).summary["cohorts"]
    name = rel.cohort_run.cohorts[1].name
    assert both[name]["crashes"] == one[name]["crashes"] and both[name]["crashes"] > 0


def test_futures_on_a_process_pool_give_the_same_bytes(tmp_path, monkeypatch):
    from fleetsim.fleet.futures import WORKERS_ENV

    sc = noisy({"years": 0.25}, replications=3)
    monkeypatch.setenv(WORKERS_ENV, "1")
    api.run(sc, out_dir=tmp_path / "one")
    monkeypatch.setenv(WORKERS_ENV, "2")
    api.run(sc, out_dir=tmp_path / "pool")
    for name in ("replicates.parquet", "quantiles.parquet", "timeline.parquet", "orders.parquet", "summary.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes(), name


def test_quantiles_beside_a_hair_wide_interval_keep_the_means_digits():
    """Every future within 1e-4 of the mean: P5/P95 show the mean's four digits, not 18."""
    from fleetsim.results.display import _spread

    h = {"mean": 0.21, "ci95_lo": 0.21 - 1e-9, "ci95_hi": 0.21 + 1e-9, "p5": 0.209999999999999992,
         "p95": 0.21000000000000002}
    assert _spread(h, "plain") == "0.2100 (± <0.01% of it) (P5 0.2100, P95 0.2100)"
    h = {"mean": 0.5, "ci95_lo": 0.49999, "ci95_hi": 0.50001, "p5": 0.499991, "p95": 0.500008}
    assert _spread(h, "share") == "50.00% (± <0.01% of it) (P5 50.00%, P95 50.00%)"
