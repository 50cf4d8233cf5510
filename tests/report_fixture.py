"""A small synthetic fleet run folder in the layout of docs/tables.md, with known answers: unmet demand
peaks at 12% on 2026-07-01, 81 days after the H20 ban of 2026-04-11; the fleet ends with 600 H20
and 1,400 Ascend 910B chips. Plots and reports are tested against it without running the fleet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

BAN_DATE = "2026-04-11"
PEAK_DATE = "2026-07-01"
PEAK_SHARE = 0.12
CHIPS = ("h20", "ascend-910b")


def write_fleet_run(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    dates = pd.date_range("2026-01-01", "2026-12-31", freq="D")
    n = len(dates)
    t = np.arange(n)
    demand = 1.0e6 * (1 + t / n)
    peak = dates.get_loc(pd.Timestamp(PEAK_DATE))
    unmet_share = np.clip(PEAK_SHARE * (1 - np.abs(t - peak) / 30.0), 0, None)  # a 60-day dip
    unmet = demand * unmet_share
    banned = dates >= pd.Timestamp(BAN_DATE)
    h20 = np.where(banned, 600, 1000)
    asc = np.linspace(200, 1400, n).round().astype(int)
    cap_total = demand - unmet
    share_h20 = h20 * 1500 / (h20 * 1500 + asc * 1000)
    rows = []
    for chip, count, share in (("h20", h20, share_h20), ("ascend-910b", asc, 1 - share_h20)):
        rows.append(pd.DataFrame({
            "date": dates, "chip": chip, "installed": count, "active": count, "in_repair": 0,
            "on_order": 50, "delivered": 0, "cancelled": 0, "retired": 0, "lost": 0,
            "removed": np.where((chip == "h20") & (dates == pd.Timestamp(BAN_DATE)), 400, 0),
            "crashes": (t % 7 == 0).astype(int) * (2 if chip == "h20" else 3),
            "demand_tokens_per_s": demand, "capacity_tokens_per_s": cap_total * share,
            "served_tokens_per_s": cap_total * share, "unmet_tokens_per_s": unmet,
            "capex_usd": np.where(t % 30 == 0, 1.0e6, 0.0), "opex_usd": 100.0, "power_usd": 100.0,
            "depreciation_usd": 5000.0, "energy_mwh": 1.0, "power_mw": 0.04,
            "us_dependence_share": share_h20, "regime_state": np.where(banned, "banned", "open"),
        }))
    timeline = pd.concat(rows, ignore_index=True).sort_values(["date", "chip"], kind="stable")
    timeline["chip"] = timeline["chip"].astype("category")
    timeline["regime_state"] = timeline["regime_state"].astype("category")
    timeline.to_parquet(path / "timeline.parquet", index=False)
    events = pd.DataFrame({
        "date": pd.to_datetime([BAN_DATE, "2026-02-01"]), "kind": ["regime_change", "delivery"],
        "channel": ["nvidia-h20", "huawei"], "chip": ["", "ascend-910b"], "pool": ["", "ascend"],
        "count": [0, 100], "detail": ["banned; levy 0; reference: H20 ban", "order 1"],
    })
    events.to_parquet(path / "events.parquet", index=False)
    wdates = pd.date_range("2026-01-15", periods=6, freq="60D")
    windows = pd.DataFrame({
        "window": np.repeat(np.arange(6), 2), "date": np.repeat(wdates, 2), "hour_of_day": 14.0,
        "workload": "chat", "pool": ["h20", "ascend"] * 6, "chip": list(CHIPS) * 6, "replicas_up": 8,
        "rate_per_s": 30.0, "attainment": [0.99, 0.97, 0.98, 0.96, 0.99, 0.9, 0.99, 0.97, 0.98, 0.96, 0.99, 0.97],
        "attainment_ci95_lo": 0.0, "attainment_ci95_hi": 0.0, "predicted_attainment_ok": True,
        "p95_ttft_s": np.linspace(0.5, 2.5, 12), "p95_tpot_s": np.linspace(0.02, 0.09, 12),
    })
    windows["attainment_ci95_lo"] = windows["attainment"] - 0.01
    windows["attainment_ci95_hi"] = np.minimum(windows["attainment"] + 0.01, 1.0)
    windows.to_parquet(path / "windows.parquet", index=False)
    orders = pd.DataFrame({
        "order_id": [0, 1], "ordered_on": pd.to_datetime(["2026-01-01", "2026-01-01"]),
        "channel": ["nvidia-h20", "huawei"], "chip": list(CHIPS), "count_chips": [500, 1200],
        "price_usd_per_chip": [13500.0, 12000.0], "levy_usd": 0.0,
        "due_on": pd.to_datetime(["2026-03-01", "2026-04-01"]), "fate": ["stranded", "delivered"],
        "delivered_on": pd.to_datetime([None, "2026-04-01"]), "refund_usd": 0.0,
    })
    orders.to_parquet(path / "orders.parquet", index=False)
    ledger = pd.DataFrame({"date": dates[::30], "kind": "capex", "chip": "h20", "channel": "nvidia-h20",
                           "amount_usd": 1.0e6})
    ledger.to_parquet(path / "ledger.parquet", index=False)
    summary = {
        "scenario": "fixture-fleet", "seed": 1, "kind": "fleet",
        "fleet": {
            "capex_usd_by_year": {"2026": float(timeline.capex_usd.sum())},
            "fleet_mix_end": {"ascend-910b": 1400, "h20": 600},
            "unmet_demand_share": float(unmet.sum() / demand.sum()), "peak_unmet_share": PEAK_SHARE,
            "peak_unmet_date": PEAK_DATE, "cost_usd_per_mtok": 0.05, "energy_kwh_per_mtok": 0.1,
            "us_dependence_share_end": float(share_h20[-1]), "budget_usd": 5.0e7,
            "capex_usd_total": float(timeline.capex_usd.sum()),
            "chips_by_fate": {"delivered": 1200, "stranded": 500, "cancelled": 0, "in_transit": 0},
        },
        "assumptions": [{"catalog": "chips", "chip": "t-head-ppu", "field": "price_usd", "value": "7000",
                         "note": "PRICE NOT FOUND: placeholder"}],
    }
    scenario = {"name": "fixture-fleet", "description": "synthetic fleet run for report tests",
                "serving": {"workloads": {"chat": {"slo": {"ttft_s": 2.0, "tpot_s": 0.1, "percentile": 95}}}},
                "fleet": {"start": "2026-01-01", "years": 1, "budget": {"total_usd": 5.0e7, "schedule": [1.0]}}}
    files = ["timeline.parquet", "events.parquet", "windows.parquet", "orders.parquet", "ledger.parquet",
             "summary.json", "scenario.resolved.json"]
    (path / "summary.json").write_text(json.dumps(summary, indent=2))
    (path / "scenario.resolved.json").write_text(json.dumps(scenario, indent=2))
    (path / "manifest.json").write_text(json.dumps({"kind": "fleet", "seed": 1, "fleetsim_version": "test",
                                                    "files": files, "scenario": scenario}, indent=2))
    return path
