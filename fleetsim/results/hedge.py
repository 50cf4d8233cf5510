"""`fleetsim hedge` outputs: hedge.parquet (one row per policy and held-out future), the summary
(intervals as [mean, lo, hi]) and its console text, every figure through the rounding helper."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fleetsim.results.rounding import format_interval


def table(scores, option_names: list[str]) -> pd.DataFrame:
    """One row per (policy, held-out future): cost, unmet share, stranded USD, today's orders."""
    rows: dict[str, list] = {k: [] for k in ("policy", "risk_weight", "future", "cost_usd", "unmet_share",
                                             "stranded_usd", "orders_now")}
    for s in scores:
        orders = "" if not len(s.first_orders) or np.isnan(s.first_orders).all() else ", ".join(
            f"{n}: {int(v)}" for n, v in zip(option_names, s.first_orders) if v > 0.5) or "none"
        for k in range(len(s.cost_usd)):
            rows["policy"].append(s.name)
            rows["risk_weight"].append(np.nan if s.risk_weight is None else float(s.risk_weight))
            rows["future"].append(k)
            rows["cost_usd"].append(float(s.cost_usd[k]))
            rows["unmet_share"].append(float(s.unmet_share[k]))
            rows["stranded_usd"].append(float(s.stranded_usd[k]))
            rows["orders_now"].append(orders)
    return pd.DataFrame(rows)


def _fmt(iv, kind: str) -> str:
    return format_interval(*iv, kind=kind)


def text(summary: dict[str, Any]) -> str:
    """The console page: the policies, VSS and EVPI, the front."""
    s = summary
    a = s["cvar_alpha"]
    if s.get("mode") == "rolling":
        head = (f"hedge --rolling: {s['scenario']}, whole runs re-planned every {s['period_days']} days over "
                f"{s['holdout']} fleet futures (common random numbers), stochastic plan on {s['futures']} "
                f"sampled futures; cost = {s['costs']}; 95% intervals over the futures")
    else:
        head = (f"hedge: {s['scenario']}, planning day {s['planning_day']}, {s['futures']} sampled futures, "
                f"{s['holdout']} held-out futures (world: {s['world']}), horizon {s['horizon_periods']} x "
                f"{s['period_days']} days; 95% intervals over the held-out futures")
    lines = [head,
             f"{'policy':<24} {'expected cost':>22} {'unmet share':>18} {f'CVaR{int(round(a * 100))} cost':>22} "
             f"{'stranded':>20}"]
    for name, p in s["policies"].items():
        lines.append(f"{name:<24} {_fmt(p['expected_cost_usd'], 'usd'):>22} {_fmt(p['unmet_share'], 'share'):>18} "
                     f"{_fmt(p['cvar_cost_usd'], 'usd'):>22} {_fmt(p['stranded_usd'], 'usd'):>20}"
                     + (f"  ({p['note']})" if p.get("note") else ""))
    lines.append(f"VSS  (expected-value plan - stochastic plan): {_fmt(s['vss_usd'], 'usd')}")
    lines.append(f"EVPI (stochastic plan - oracle):              {_fmt(s['evpi_usd'], 'usd')}")
    if len(s["front"]) > 1:
        lines.append("price-of-security front, out of sample (mean-CVaR weight: expected cost, CVaR, unmet):")
        for r in s["front"]:
            lines.append(f"  w={r['risk_weight']:g}: {_fmt(r['expected_cost_usd'], 'usd')}, "
                         f"{_fmt(r['cvar_cost_usd'], 'usd')}, {_fmt(r['unmet_share'], 'share')}")
    if s["orders_now"]:
        lines.append("orders today: " + "; ".join(f"{k}: {v}" for k, v in s["orders_now"].items()))
    return "\n".join(lines)
