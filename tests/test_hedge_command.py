"""`fleetsim hedge`: the run folder it writes, same seed same bytes, and clean refusals."""

from __future__ import annotations

import json

import pandas as pd

from fleetsim.cli import main

ARGS = ["scenarios/fleet_small.yaml", "-k", "4", "-n", "6", "--risk-aversion", "0,1", "--horizon", "6"]


def test_hedge_writes_its_run_folder_and_repeats_bytes(runner, tmp_path):
    outs = []
    for name in ("a", "b"):
        res = runner.invoke(main, ["hedge", *ARGS, "-o", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        outs.append(tmp_path / name)
    a, b = outs
    assert {"hedge.parquet", "summary.json", "manifest.json"} <= {p.name for p in a.iterdir()}
    assert (a / "plots" / "hedge.png").is_file()
    assert (a / "hedge.parquet").read_bytes() == (b / "hedge.parquet").read_bytes()
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    s = json.loads((a / "summary.json").read_text())
    assert {"stochastic", "expected_value", "oracle", "cheapest", "security_weighted",
            "domestic_share", "stochastic cvar w=1"} <= set(s["policies"])
    for key in ("expected_cost_usd", "unmet_share", "cvar_cost_usd", "stranded_usd"):
        assert len(s["policies"]["stochastic"][key]) == 3  # mean, lo, hi
    df = pd.read_parquet(a / "hedge.parquet")
    assert len(df) == 6 * len(s["policies"])
    # paired on the same futures: VSS is the mean of the per-future differences
    sp = df[df.policy == "stochastic"].set_index("future").cost_usd
    ev = df[df.policy == "expected_value"].set_index("future").cost_usd
    orc = df[df.policy == "oracle"].set_index("future").cost_usd
    assert abs(s["vss_usd"][0] - (ev - sp).mean()) <= 1e-6 * max(1.0, abs(s["vss_usd"][0]))
    assert (orc <= sp * (1 + 1e-6) + 1e-6).all()  # the oracle is never worse in any future
    assert "VSS" in res.output and "EVPI" in res.output
    (a / "plots" / "hedge.png").unlink()
    res = runner.invoke(main, ["plot", str(a)])  # `fleetsim plot` redraws it from the folder alone
    assert res.exit_code == 0 and (a / "plots" / "hedge.png").is_file(), res.output


def test_hedge_refuses_bad_input(runner):
    res = runner.invoke(main, ["hedge", "scenarios/serving_quickstart.yaml"])
    assert res.exit_code == 2 and "needs a fleet scenario" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["hedge", *ARGS, "--risk-aversion", "0,2"])
    assert res.exit_code == 2 and "[0, 1]" in res.output
    res = runner.invoke(main, ["hedge", *ARGS, "--day", "2030-01-01"])
    assert res.exit_code == 2 and "outside the fleet's horizon" in res.output and "Traceback" not in res.output


def test_hedge_on_a_later_day_sees_the_world_up_to_it():
    """--day: the fleet simulated to that day (the scripted 2025 H20 licence events have happened)."""
    from fleetsim import api

    sc = api.load_scenario("scenarios/fleet_small.yaml")
    out = api.hedge(sc, futures=3, holdout=4, risk_weights=[0.0], horizon_periods=4, day="2025-06-01")
    assert out["summary"]["planning_day"] == "2025-06-01"
    early = api.hedge(sc, futures=3, holdout=4, risk_weights=[0.0], horizon_periods=4)
    assert early["summary"]["planning_day"] == "2025-01-01"
    assert out["summary"]["policies"]["oracle"]["expected_cost_usd"] != \
        early["summary"]["policies"]["oracle"]["expected_cost_usd"]


def test_rolling_whole_runs_oracle_never_strands():
    """--rolling: every policy re-plans through the same fleet futures. The oracle (knows: oracle)
    sees the scripted 2025 H20 buyer ban coming and never pays for chips it strands; the optimiser
    without foresight (knows: model) does. VSS is the paired mean over the futures."""
    from fleetsim import api

    sc = api.load_scenario("scenarios/fleet_small.yaml", ["fleet.years=0.5"])
    out = api.hedge(sc, futures=2, holdout=2, risk_weights=[0.0], horizon_periods=4, rolling=True)
    s, df = out["summary"], out["table"]
    assert s["mode"] == "rolling" and "stochastic" in s["policies"] and "cheapest" in s["policies"]
    assert s["policies"]["oracle"]["stranded_usd"][0] == 0.0
    assert s["policies"]["stochastic"]["stranded_usd"][0] > 0.0
    ev = df[df.policy == "expected_value"].set_index("future").cost_usd
    sp = df[df.policy == "stochastic"].set_index("future").cost_usd
    assert abs(s["vss_usd"][0] - (ev - sp).mean()) <= 1e-6 * max(1.0, float(sp.abs().max()))
    assert s["evpi_usd"][0] > 0
