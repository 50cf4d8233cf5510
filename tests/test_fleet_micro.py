"""A hand-computed micro-scenario: one channel, one order, one cohort, one failure, one year.

Set-up (every figure chosen so the arithmetic is exact):
  demand      1,000 output tokens/s, flat (no growth, peak_to_mean 1, no forecast error);
  capacity    given: 1 req/s per replica x 100 output tokens/request = 100 tokens/s per replica,
              availability 1, 500 W per replica at that load; tp 1, no spares;
  planner     cheapest, one plan on day 0 (period 366 d), no headroom, horizon 0:
              needs 1,000 / 100 = 10 replicas = 10 chips;
  channel     one, open, price USD 10,000, no levy, no overhead, fixed lead time 10 days;
  finance     capex at order, life 1 year (straight line over 365 days), PUE 1.0, USD 0.10/kWh;
  cohort      delivered day 10, commissioning 5 days: serving from day 15;
  reliability crash rate 1/84,000 per chip-hour (Arrhenius off: ea_ev 0), every crash a hardware
              fault (transient_share 0), bench repair fixed 24 h, always scrapped (lost_share 1),
              swap 0 h. Seed 5 (one future) gives exactly one crash, on day c (read from the events table).

Worked out:
  orders   one order, day 0, 10 chips, due and delivered day 10.
  ledger   capex 10 x 10,000 = USD 100,000 on day 0;
           depreciation 100,000 / 365 = USD 273.97 a day on days 10..364 (355 days) = 97,260.27;
           power: 10 replicas x 500 W = 5 kW x 24 h = 120 kWh = USD 12.00 a day on days 15..c-1,
           then 9 x 500 W = 4.5 kW = 108 kWh = USD 10.80 a day on days c..364.
  timeline installed 0 before day 10, then 10; on day c: active 9, in_repair 1; from c+1: active
           9, lost 1 (delivered 10 = 9 + 0 + 1 + 0 + 0);
           capacity 0 (days 0-14), 1,000 (15..c-1), 900 (c..364) tokens/s;
           unmet 1,000 (days 0-14), 0, then 100 tokens/s;
           unmet share = (15 x 1,000 + (365 - c) x 100) / (365 x 1,000).
"""

from __future__ import annotations

import numpy as np
import pytest

import fleetsim
from fleetsim.scenario.model import Scenario

SEED = 5  # its one future has exactly one crash (streams: fleetsim.rng, crashes per cohort)


def micro(seed: int = SEED) -> Scenario:
    return Scenario.model_validate({
        "name": "micro", "seed": seed,
        "serving": {
            "duration_s": 60, "warmup_s": 10,
            "workloads": {"chat": {
                "model": "qwen2.5-7b", "arrival": {"kind": "poisson", "rate_per_s": 1},
                "prompt_tokens": {"kind": "fixed", "value": 100},
                "output_tokens": {"kind": "fixed", "value": 100}}},
            "pools": {"gpu": {"chip": "h100", "model": "qwen2.5-7b", "tp": 1, "replicas": 1}}},
        "reliability": {
            "chips": {"h100": {"mtbf_h": 84000.0, "ea_ev": 0.0}},
            "repair": {"transient_share": 0.0, "lost_share": 1.0, "spare_fraction": 0.0,
                       "repair_h": {"kind": "fixed", "value": 24}, "swap_h": {"kind": "fixed", "value": 0}}},
        "fleet": {
            "start": "2025-01-01", "years": 1,
            "demand": {"chat": {"tokens_per_s": 1000.0, "growth_per_year": 0.0, "peak_to_mean": 1.0}},
            "channels": {"vendor": {"offers": [{"chip": "h100", "price_usd": 10000}],
                                    "lead_time_days": {"kind": "fixed", "value": 10}}},
            "planner": {"kind": "cheapest", "period_days": 366, "horizon_days": 0, "headroom": 0.0},
            "budget": {"total_usd": 1.0e6},
            "finance": {"capex_at": "order", "life_years": 1.0, "pue": 1.0, "power_usd_per_kwh": 0.10,
                        "server_overhead_usd_per_node": 0.0},
            "commissioning_days": 5,
            "capacity": {"gpu": {"chat": {"goodput_rps": 1.0, "output_tokens_per_request": 100,
                                          "power_w_per_replica": 500.0}}},
            "windows": {"enabled": False}, "replications": 1}})


def test_micro_scenario_by_hand():
    res = fleetsim.run(micro())
    o = res.orders
    assert len(o) == 1 and o["count_chips"].iloc[0] == 10 and o["fate"].iloc[0] == "delivered"
    assert (o["delivered_on"].iloc[0] - o["ordered_on"].iloc[0]).days == 10
    crashes = res.events[res.events["kind"] == "crash"]
    assert crashes["count"].sum() == 1
    c = (crashes["date"].iloc[0] - np.datetime64("2025-01-01")).days
    assert 15 <= c < 364
    tl = res.timeline.set_index(np.arange(365))
    assert (tl["installed"][:10] == 0).all() and (tl["installed"][10:c] == 10).all()
    assert tl["active"][c] == 9 and tl["in_repair"][c] == 1
    assert (tl["lost"][c + 1:] == 1).all() and (tl["active"][c + 1:] == 9).all()
    cap = np.r_[np.zeros(15), np.full(c - 15, 1000.0), np.full(365 - c, 900.0)]
    np.testing.assert_allclose(tl["capacity_tokens_per_s"], cap)
    unmet = np.r_[np.full(15, 1000.0), np.zeros(c - 15), np.full(365 - c, 100.0)]
    np.testing.assert_allclose(tl["unmet_tokens_per_s"], unmet, atol=1e-9)
    s = res.summary["fleet"]
    assert s["unmet_demand_share"] == pytest.approx((15 * 1000 + (365 - c) * 100) / 365000, abs=5e-4)  # the summary keeps 3 digits
    led = res.ledger.groupby("kind", observed=True)["amount_usd"].sum()
    assert led["capex"] == pytest.approx(100_000.0)
    assert led["depreciation"] == pytest.approx(355 * 100_000 / 365)
    assert led["power"] == pytest.approx(12.0 * (c - 15) + 10.8 * (365 - c))
    assert s["capex_usd_by_year"] == {"2025": pytest.approx(100_000.0)}
