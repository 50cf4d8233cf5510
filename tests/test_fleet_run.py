"""`fleetsim run` on the small fleet scenario: every table of docs/tables.md, manifest kind fleet,
same seed -> identical bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from fleetsim.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("timeline", "ledger", "orders", "windows", "events")


def test_fleet_small_run_folder(tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        res = CliRunner().invoke(cli, ["run", str(ROOT / "scenarios" / "fleet_small.yaml"), "-o", str(out)])
        assert res.exit_code == 0, res.output
        outs.append(out)
    a, b = outs
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["kind"] == "fleet"
    for name in TABLES:
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes(), name
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    tl = pd.read_parquet(a / "timeline.parquet")
    for col in ("date", "chip", "installed", "active", "in_repair", "on_order", "delivered", "cancelled",
                "retired", "lost", "removed", "demand_tokens_per_s", "capacity_tokens_per_s",
                "unmet_tokens_per_s", "capex_usd", "opex_usd", "depreciation_usd", "energy_mwh",
                "power_mw", "us_dependence_share", "regime_state"):
        assert col in tl, col
    assert str(tl["regime_state"].dtype) == "category"
    assert pd.api.types.is_datetime64_any_dtype(tl["date"])
    w = pd.read_parquet(a / "windows.parquet")
    assert len(w) > 0 and {"attainment_ci95_lo", "predicted_attainment_ok", "p95_ttft_s"} <= set(w)
    s = json.loads((a / "summary.json").read_text())["fleet"]
    for key in ("capex_usd_by_year", "fleet_mix_end", "unmet_demand_share", "peak_unmet_share",
                "peak_unmet_date", "cost_usd_per_mtok", "energy_kwh_per_mtok",
                "us_dependence_share_end", "budget_usd", "capex_usd_total"):
        assert key in s, key
    assert s["chips_by_fate"]["stranded"] > 0          # the April 2025 H20 shock strands orders


def test_bad_fleet_scenario_exit_code_2(tmp_path):
    text = (ROOT / "scenarios" / "fleet_small.yaml").read_text().replace(
        "reference_events: {h20: nvidia-h20}", "reference_events: {h20: nvidia-h2o}")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    res = CliRunner().invoke(cli, ["run", str(path), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "fleet.reference_events.h20" in res.output and "nvidia-h2o" in res.output
    assert "Traceback" not in res.output
