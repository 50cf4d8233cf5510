"""The report a planner takes to a meeting: one self-contained HTML page per run folder (every
plot embedded as base64 PNG, no scripts, no network), and a side-by-side comparison of runs.

Everything on the page is read back from the run folder, so a report can be rebuilt at any time
with `fleetsim report RUN_DIR`. Findings are sentences computed from the tables, never typed in.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fleetsim.errors import FleetsimError
from fleetsim.results.display import pct as _pct
from fleetsim.report.plots import RunFolder, draw_all, draw_compare, monthly_cost_per_mtok, open_run, supply_events

PLOT_ORDER = {
    "fleet": ["demand_vs_capacity", "fleet_mix", "capex_vs_budget", "cost_per_mtok", "slo_attainment",
              "latency_cdf", "health", "us_dependence"],
    "serving": ["latency_cdf", "throughput_latency", "batch_queue"],
    "reliability": ["health", "availability"],
}
KEY_PLOTS = {"fleet": ["demand_vs_capacity", "fleet_mix", "capex_vs_budget"],
             "serving": ["latency_cdf", "throughput_latency"], "reliability": ["health"]}
CAPTIONS = {
    "demand_vs_capacity": "Capacity (stacked by chip kind; roadmap generations hatched) against peak-hour demand, the hour the planner sizes for (the dashed line is the daily mean); the hatched red band is the peak-hour shortfall, capacity missing at the busiest hour. Chip kinds with no capacity all run are left out.",
    "fleet_mix": "Installed chips by kind, and chips on order.",
    "capex_vs_budget": "Money spent on chips (cumulative) against the budget released so far.",
    "cost_per_mtok": "Depreciation plus operating cost per million output tokens served, each month.",
    "slo_attainment": "Share of requests meeting the SLO in each simulated serving window, with its 95% interval.",
    "latency_cdf": "Latency distribution per chip kind, with the SLO targets.",
    "health": "Reliability: temperature, throttling and crashes per 1,000 installed chips (so kinds of any fleet size compare).",
    "us_dependence": "Share of capacity on chips under US export control.",
    "throughput_latency": "Output throughput and time to first token over the window.",
    "batch_queue": "Requests running (batch) and waiting (queue) per replica, derived from request timings.",
    "availability": "Daily availability per cohort.",
}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:0.2em} h2{border-bottom:2px solid #ddd;padding-bottom:0.2em;margin-top:1.6em}
.meta{color:#666;font-size:0.9em}
.cards{display:flex;flex-wrap:wrap;gap:0.8em}
.card{border:1px solid #ddd;border-radius:6px;padding:0.6em 1em;min-width:12em;background:#fafafa}
.card .v{font-size:1.5em;font-weight:600} .card .k{color:#555;font-size:0.85em}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em} th,td{border:1px solid #ddd;padding:0.3em 0.6em;text-align:left}
th{background:#f0f0f0} td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:0.9em}
.findings li{margin:0.3em 0} .warn{background:#fff4e5;border-left:4px solid #f0a030;padding:0.5em 1em}
.grid{display:grid;gap:0.8em} pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:0.8em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(v: Any, spec: str = ",.3g") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return format(float(v), spec)
    return str(v)


def _usd(v: float | dict | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict):  # a headline estimated over futures: {mean, lo, hi}
        return f"{_usd(v.get('mean'))} ({_usd(v.get('lo'))[4:]} to {_usd(v.get('hi'))[4:]})"
    v = float(v)
    if abs(v) >= 1e9:
        return f"USD {v / 1e9:.3g} B"
    if abs(v) >= 1e6:
        return f"USD {v / 1e6:.3g} M"
    return f"USD {v:,.0f}"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for c in r:
            numeric = isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool)
            cells.append(f'<td class="n">{_e(_num(c))}</td>' if numeric else f"<td>{_e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>' for k, v in items
    ) + "</div>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _plots(run: RunFolder) -> list[Path]:
    """The run's PNGs in reading order (drawn first if the folder has none yet)."""
    folder = run.path / "plots"
    order = PLOT_ORDER.get(run.kind, [])
    if not folder.is_dir() or not any(folder.glob("*.png")):
        draw_all(run.path)
    pngs = {p.stem: p for p in folder.glob("*.png")}
    return [pngs[k] for k in order if k in pngs] + [p for k, p in sorted(pngs.items()) if k not in order]


# ---------------------------------------------------------------------------------------------
# headline numbers, findings and tables per kind of run


def fleet_findings(run: RunFolder) -> list[str]:
    """Sentences computed from the fleet tables (docs/tables.md)."""
    f = run.summary.get("fleet", {})
    tl = run.table("timeline")
    out = []
    fut = run.summary.get("futures") or {}
    if fut.get("replications", 1) > 1:
        rep = fut.get("representative") or {}
        out.append(f"These findings read the tables of future {rep.get('future')} of {fut['replications']} "
                   f"({rep.get('rule', 'the representative future')}); the headline numbers above are over "
                   "all futures.")
    day = tl.groupby("date", observed=True).agg(demand=("demand_tokens_per_s", "first"),
                                                unmet=("unmet_tokens_per_s", "first"))
    share = (day["unmet"] / day["demand"].where(day["demand"] > 0)).fillna(0.0)
    events = supply_events(run)
    if share.max() > 0:
        peak_day = share.idxmax()
        before = events[events["x"] <= peak_day]
        after_txt = ""
        if len(before):
            last = before.sort_values("x").iloc[-1]
            gap = (peak_day - last["x"]).days
            after_txt = (f", the day of {last['label']}" if gap == 0 else
                         f", {gap} days after {last['label']} ({last['x']:%Y-%m-%d})")
        days_short = int((share > 0).sum())
        out.append(f"Unmet demand peaks at {_pct(share.max())} on {peak_day:%Y-%m-%d}{after_txt}; "
                   f"demand went partly unmet on {days_short} of {len(share)} days "
                   f"({_pct(f.get('unmet_demand_share', 0))} of all demanded tokens).")
    else:
        out.append(f"Demand was met on every one of the {len(share)} days (no unmet demand).")
    if len(events):  # the shocks the run went through, in words as well as on every time axis
        listed = events.sort_values("x")
        out.append("Supply events: " + "; ".join(
            f"{e['x']:%Y-%m-%d} {e['label']}" for _, e in listed.iterrows()) + ".")
    cap = tl.groupby("date", observed=True)["capacity_tokens_per_s"].sum()
    head = (cap / day["demand"]).replace([np.inf, -np.inf], np.nan).dropna()
    if len(head):
        out.append(f"Capacity ran between {head.min():.2g}x and {head.max():.2g}x demand "
                   f"(median {head.median():.2g}x); the tightest day was {head.idxmin():%Y-%m-%d}.")
    if f.get("budget_usd"):
        out.append(f"Capex {_usd(f.get('capex_usd_total'))} of the {_usd(f['budget_usd'])} budget "
                   f"({_pct(f.get('capex_usd_total', 0) / f['budget_usd'])}).")
    mix = f.get("fleet_mix_end") or {}
    total = sum(mix.values())
    if total:
        top = max(mix, key=mix.get)
        out.append(f"At the end the fleet holds {total:,} chips; the largest kind is {top} "
                   f"({_pct(mix[top] / total)}).")
    us = tl.groupby("date", observed=True)["us_dependence_share"].first() if "us_dependence_share" in tl else None
    if us is not None and len(us):
        out.append(f"Capacity on US export-controlled chips goes from {_pct(us.iloc[0])} to {_pct(us.iloc[-1])}.")
    fates = f.get("chips_by_fate") or {}
    if fates.get("stranded") or fates.get("cancelled"):
        out.append(f"{fates.get('stranded', 0):,} chips were stranded and {fates.get('cancelled', 0):,} "
                   "cancelled after orders were placed (supply shocks).")
    if f.get("impairment_usd") or f.get("at_risk_usd"):
        out.append(f"{_usd(f.get('impairment_usd'))} was paid for chips that will never arrive (impaired) and "
                   f"{_usd(f.get('at_risk_usd'))} sits in orders held at the horizon (at risk): the all-in cost "
                   f"is USD {f.get('all_in_cost_usd_per_mtok', float('nan')):.3g} per million tokens against USD "
                   f"{f.get('cost_usd_per_mtok', float('nan')):.3g} on depreciation alone.")
    m = monthly_cost_per_mtok(tl)
    m = m[m["usd_per_mtok"].notna()]
    if len(m):
        out.append(f"Cost per million tokens ranges from USD {m['usd_per_mtok'].min():.3g} "
                   f"({m['usd_per_mtok'].idxmin():%Y-%m}) to USD {m['usd_per_mtok'].max():.3g} "
                   f"({m['usd_per_mtok'].idxmax():%Y-%m}); whole run USD {f.get('cost_usd_per_mtok', float('nan')):.3g}.")
    w = run.table("windows")
    if w is not None and len(w):
        targets = {k: float(v.get("slo", {}).get("percentile", 95)) / 100 for k, v in
                   ((run.scenario.get("serving") or {}).get("workloads") or {}).items()}
        tgt = w["workload"].astype(str).map(targets).fillna(0.95)
        miss = w[w["attainment_ci95_hi"] < tgt] if "attainment_ci95_hi" in w else w[w["attainment"] < tgt]
        if len(miss):
            worst = miss.loc[miss["attainment"].idxmin()]
            out.append(f"{len(miss)} of {len(w)} serving-window cells missed the SLO target even at the top of "
                       f"their 95% interval; worst: {worst['chip']} on {pd.Timestamp(worst['date']):%Y-%m-%d} "
                       f"at {_pct(worst['attainment'])}.")
        else:
            out.append(f"All {len(w)} serving-window cells met their SLO target (or their 95% interval reaches it).")
    return out


def _futures_cards(run: RunFolder) -> list[tuple[str, str]] | None:
    """Headline cards over the futures: mean ± 95% interval (rounded by the interval)."""
    from fleetsim.results.display import FLEET_HEADLINES, _spread

    heads = (run.summary.get("futures") or {}).get("headlines")
    if not heads:
        return None
    from fleetsim.results.rounding import format_interval

    return [(label.replace(" USD", ""), format_interval(heads[key]["mean"], kind=kind) if key == "budget_usd"
             else _spread(heads[key], kind)) for key, label, kind in FLEET_HEADLINES
            if key in heads and heads[key].get("mean") is not None]


def _futures_html(run: RunFolder) -> str:
    fut = run.summary.get("futures") or {}
    if not fut:
        return ""
    rep = fut.get("representative") or {}
    out = (f"<p>{fut.get('replications')} futures from fleet seed {_e(fut.get('root_seed'))}: each card is "
           f"the mean over the futures ± its 95% interval, with P5 and P95 of the futures. Tables and "
           f"the plots' lines are future {_e(rep.get('future'))} ({_e(rep.get('rule', ''))}); the thin "
           "broken lines on the time axes are P5 and P95 over the futures (replicates.parquet, "
           "quantiles.parquet).</p>")
    if fut.get("advice"):
        out += f"<p class='warn'>{_e(fut['advice'])}</p>"
    return out


def _fleet_body(run: RunFolder) -> tuple[list[tuple[str, str]], list[str]]:
    f = run.summary.get("fleet", {})
    spread = _futures_cards(run)
    cards = spread if spread else [
        ("capex, whole run", _usd(f.get("capex_usd_total"))),
        ("budget", _usd(f.get("budget_usd"))),
        ("unmet demand (share of tokens)", f"{_pct(f.get('unmet_demand_share', 0))}"),
        ("peak unmet share", f"{_pct(f.get('peak_unmet_share', 0))} on {f.get('peak_unmet_date', '-')}"),
        ("cost per million tokens (depreciation + power + opex + rental)",
         f"USD {f.get('cost_usd_per_mtok', float('nan')):.3g}"),
        ("all-in cost per million tokens (the same + impairments)",
         f"USD {f.get('all_in_cost_usd_per_mtok', float('nan')):.3g}"),
        ("impaired (paid, never to arrive)", _usd(f.get("impairment_usd"))),
        ("at risk (paid into held orders)", _usd(f.get("at_risk_usd"))),
        ("energy per million tokens", f"{f.get('energy_kwh_per_mtok', float('nan')):.3g} kWh"),
        ("US-controlled capacity at end", f"{_pct(f.get('us_dependence_share_end', 0))}"),
    ]
    tables = []
    basis = f.get("cost_basis") or {}
    if basis:
        tables.append("<h3>What each cost per million tokens includes</h3>" + _table(
            ["figure", "USD per Mtok", "includes"],
            [[k, f.get(k), v] for k, v in basis.items()]))
    chans = f.get("channels") or {}
    if chans:
        tables.append("<h3>Supply channels at the end: both sides, money paid, at risk, impaired</h3>" + _table(
            ["channel", "exporter", "levy", "buyer's levy share", "importer", "ordered", "delivered", "held",
             "paid USD", "at risk USD", "impaired USD"],
            [[n, c["exporter_state"], c["levy"], c["levy_incidence"], c["importer_state"], c["chips_ordered"],
              c["chips_delivered"], c["chips_held"], round(c["paid_usd"]), round(c["at_risk_usd"]),
              round(c["impairment_usd"])] for n, c in chans.items()]))
    tables += _decided_tables(f, (run.summary.get("futures") or {}))
    mix = f.get("fleet_mix_end") or {}
    tables.append("<h3>Fleet at the end</h3>" + _table(["chip", "chips"], [[k, v] for k, v in mix.items()]))
    by_year = f.get("capex_usd_by_year") or {}
    tables.append("<h3>Capex by year</h3>" + _table(["year", "USD"], [[k, round(v)] for k, v in by_year.items()]))
    orders = run.table("orders")
    if orders is not None and len(orders):
        g = orders.groupby(["channel", "chip", "fate"], observed=True)["count_chips"].sum().reset_index()
        g = g[g["count_chips"] > 0]
        tables.append("<h3>Orders by channel and fate (chips)</h3>" + _table(
            ["channel", "chip", "fate", "chips"], g.values.tolist()))
    cap = run.table("capacity")
    if cap is not None and len(cap):
        cols = [c for c in ("pool", "workload", "chip", "tp", "goodput_rps", "goodput_tokens_per_s",
                            "availability", "power_w_per_replica", "source") if c in cap]
        tables.append("<h3>Capacity per replica type</h3>" + _table(cols, cap[cols].values.tolist()))
    return cards, tables


FINANCE_KINDS = ("capex", "depreciation", "power", "opex", "levy", "impairment", "rental")
RUNNING_KINDS = ("depreciation", "power", "opex", "rental")


def finance_tables(run: RunFolder) -> list[str]:
    """The money page: per year and chip kind, every ledger kind (capex, depreciation, power,
    opex, levy, impairment, rental); and per year the utilisation at which revenue would cover
    the running cost (break-even), when the scenario prices tokens."""
    out = []
    led = run.table("ledger")
    tl = run.table("timeline")
    if led is not None and len(led):
        led = led.assign(year=pd.to_datetime(led["date"]).dt.year, kind=led["kind"].astype(str),
                         chip=led["chip"].astype(str))
        kinds = [k for k in FINANCE_KINDS if k in set(led["kind"])] + sorted(set(led["kind"]) - set(FINANCE_KINDS))
        g = led.pivot_table(index=["year", "chip"], columns="kind", values="amount_usd", aggfunc="sum",
                            observed=True).fillna(0.0)
        g = g.reindex(columns=kinds, fill_value=0.0)
        # running cost as the cost per Mtok and the break-even table below count it: levy and
        # impairments are one-off money beside capex (counting them here made one year's running
        # cost differ between the two tables: USD 1.49 B against 1.19 B on the reference case)
        run_cols = [i for i, k in enumerate(kinds) if k in RUNNING_KINDS]
        rows = [[str(y), c, *[_usd(v) if v else "-" for v in r], _usd(float(r[run_cols].sum()))]
                for (y, c), r in zip(g.index, g.to_numpy())]
        tot = g.groupby(level="year").sum()
        rows += [[str(y), "all chips", *[_usd(v) if v else "-" for v in r], _usd(float(r[run_cols].sum()))]
                 for y, r in zip(tot.index, tot.to_numpy())]
        out.append("<h3>Money by year and chip kind (USD; running cost = depreciation + power + opex + rental, "
                   "as the cost per Mtok counts it; capex, levy and impairments are not in it)</h3>"
                   + _table(["year", "chip", *kinds, "running cost"], rows))
    if tl is not None and "capacity_tokens_per_s" in tl:
        t = tl.assign(year=pd.to_datetime(tl["date"]).dt.year)
        cost_cols = [c for c in ("depreciation_usd", "opex_usd", "rental_usd") if c in t]
        y = t.groupby("year").agg(cap=("capacity_tokens_per_s", "sum"), served=("served_tokens_per_s", "sum"),
                                  revenue=("revenue_usd", "sum") if "revenue_usd" in t else ("served_tokens_per_s", "size"),
                                  **{c: (c, "sum") for c in cost_cols})
        has_rev = "revenue_usd" in t and float(t["revenue_usd"].sum()) > 0
        rows = []
        for yr, r in y.iterrows():
            cost = float(sum(r[c] for c in cost_cols))
            util = r["served"] / r["cap"] if r["cap"] > 0 else float("nan")
            if has_rev and r["served"] > 0:
                rev_per_tok = r["revenue"] / (r["served"] * 86400)
                be = cost / (rev_per_tok * r["cap"] * 86400) if rev_per_tok > 0 else float("nan")
                be_txt = _pct(be) if np.isfinite(be) else "-"
            else:
                be_txt = "no token prices in the scenario"
            rows.append([str(yr), _usd(cost), _pct(util), be_txt])
        out.append("<h3>Break-even utilisation by year (running cost over revenue at full capacity)</h3>"
                   + _table(["year", "running cost", "utilisation (served / capacity)", "break-even utilisation"],
                            rows))
    return out


def _decided_tables(f: dict, fut: dict) -> list[str]:
    """What decided the result: unmet demand by cause, the budget, frozen orders (binding.parquet);
    over the futures with intervals, then the representative future's figures."""
    from fleetsim.results.display import decided_lines, decided_over_futures

    causes = f.get("unmet_causes")
    if causes is None:
        return []
    over = decided_over_futures(fut.get("headlines") or {}) if fut.get("replications", 1) > 1 else []
    rep = (fut.get("representative") or {}).get("future")
    out = "<h3>What decided the result</h3><p>" + "<br>".join(
        html.escape(x.strip()) for x in [*over, *([f"in future {rep} (the representative one):"] if over else []),
                                         *decided_lines(f)]) + "</p>"
    if causes:
        out += _table(["cause", "channel", "share of unmet demand", "unmet Mtok", "rests on an ASSUMPTION"],
                      [[c["cause"], c["channel"] or "-", f"{c['share']:.1%}", f"{c['unmet_mtok']:.4g}",
                        "yes" if c["assumption"] else "no"] for c in causes])
    return [out]


def serving_findings(run: RunFolder) -> list[str]:
    s = run.summary
    at = s.get("at_slo", {})
    out = []
    for name, c in s.get("classes", {}).items():
        a = at.get("classes", {}).get(name)
        pct = c.get("slo", {}).get("percentile")
        att = c.get("slo_attainment")
        if att is None:
            continue
        verdict = "meets" if c.get("slo_met") else "misses"
        line = f"Class {name} {verdict} its SLO: {_pct(att)} of requests within target (needs {pct:g}%)"
        if a and a.get("ttft_s") is not None:
            line += (f"; p{pct:g} TTFT {a['ttft_s']:.3g} s against {a['ttft_target_s']:g} s, "
                     f"p{pct:g} TPOT {a['tpot_s']:.3g} s against {a['tpot_target_s']:g} s")
        out.append(line + ".")
    pools = at.get("pools", {})
    loads = {k: v.get("load_vs_saturation") for k, v in pools.items() if v.get("load_vs_saturation") is not None}
    if loads:
        k = max(loads, key=loads.get)
        out.append(f"Pool {k} runs closest to saturation: {_pct(loads[k])} of its replicas' saturation output rate.")
    rej = s.get("rejected_by_reason") or {}
    if rej:
        out.append("Rejected requests: " + ", ".join(f"{v} for {k}" for k, v in rej.items()) + ".")
    for pool, r in (s.get("reliability") or {}).items():
        out.append(f"Pool {pool}: {r.get('crashes', 0)} crashes, throttled {_pct(r.get('throttled_share', 0))} of the time, "
                   f"max temperature {r.get('max_temp_c', float('nan')):.1f} C.")
    return out


def _serving_body(run: RunFolder) -> tuple[list[tuple[str, str]], list[str]]:
    s = run.summary
    at = s.get("at_slo", {})
    classes = s.get("classes", {})
    arrived = sum(c["arrived"] for c in classes.values())
    cards = [("requests measured (after warm-up)", f"{arrived:,}"),
             ("window", f"{s.get('duration_s', 0):g} s ({s.get('warmup_s', 0):g} s warm-up)")]
    for name, c in classes.items():
        cards.append((f"{name}: SLO attainment", f"{_pct((c.get('slo_attainment') or 0))}"))
    rows = []
    for name, c in classes.items():
        a = at.get("classes", {}).get(name, {})
        rows.append([name, c["arrived"], c["completed"], c["rejected"], c["throughput_req_per_s"],
                     a.get("percentile", "-"), a.get("ttft_s"), a.get("ttft_target_s"), a.get("tpot_s"),
                     a.get("tpot_target_s"), f"{_pct((c.get('slo_attainment') or 0))}",
                     "pass" if c.get("slo_met") else "MISS"])
    tables = ["<h3>Workload classes</h3>" + _table(
        ["class", "arrived", "completed", "rejected", "req/s", "SLO percentile", "TTFT s", "target s",
         "TPOT s", "target s", "attained", "SLO"], rows)]
    rows = []
    for name, p in s.get("pools", {}).items():
        a = at.get("pools", {}).get(name, {})
        rows.append([name, p["chip"], p["replicas"], a.get("chips"), p["throughput_req_per_s"],
                     p["output_tokens_per_s"], a.get("load_vs_saturation"), p.get("mean_batch_size"),
                     a.get("batch_occupancy"), a.get("kv_occupancy_est"), p.get("availability")])
    tables.append("<h3>Pools</h3>" + _table(
        ["pool", "chip", "replicas", "chips", "req/s", "out tok/s", "of saturation", "mean batch",
         "batch occupancy", "KV occupancy (est.)", "availability"], rows))
    return cards, tables


def reliability_findings(run: RunFolder) -> list[str]:
    s = run.summary
    cohorts = s.get("cohorts") or {}
    out = [f"{s.get('crashes', 0):,} crashes over {s.get('days')} days on {s.get('chips', 0):,} chips; "
           f"{s.get('chips_lost', 0):,} chips lost for good."]
    rates = {c["chip"]: c.get("crashes_per_chip_year") for c in cohorts.values() if c.get("crashes_per_chip_year")}
    if len(rates) >= 2:
        hi, lo = max(rates, key=rates.get), min(rates, key=rates.get)
        out.append(f"{hi} crashes {rates[hi] / rates[lo]:.2g}x as often per chip-year as {lo} "
                   f"({rates[hi]:.3g} against {rates[lo]:.3g}).")
    return out


def _reliability_body(run: RunFolder) -> tuple[list[tuple[str, str]], list[str]]:
    s = run.summary
    cards = [("chips", f"{s.get('chips', 0):,}"), ("days", str(s.get("days"))),
             ("crashes", f"{s.get('crashes', 0):,}"), ("mean availability", f"{s.get('availability_mean', 0):.3%}")]
    rows = [[k, c["chip"], c["count"], c["crashes"], c.get("crashes_per_chip_year"), c.get("chips_lost"),
             c.get("availability_mean"), c.get("mean_temp_c"), c.get("throttled_share")]
            for k, c in (s.get("cohorts") or {}).items()]
    return cards, ["<h3>Per chip kind</h3>" + _table(
        ["cohort", "chip", "chips", "crashes", "crashes per chip-year", "chips lost", "availability",
         "mean temp C", "throttled share"], rows)]


BODY = {"fleet": (_fleet_body, fleet_findings), "serving": (_serving_body, serving_findings),
        "reliability": (_reliability_body, reliability_findings)}


def findings(run: RunFolder) -> list[str]:
    return BODY[run.kind][1](run) if run.kind in BODY else []


def _figure(value: Any) -> str:
    """A catalog figure as a reader wants it: four significant digits at most (a roadmap generation's
    1658.1106276643472 TOPS reads 1658), whole numbers as they are, no value as '-'."""
    text = str(value)
    if text in ("", "None", "nan"):
        return "-"
    try:
        x = float(text)
    except ValueError:
        return text
    if not np.isfinite(x):
        return text
    if x == int(x):
        return str(int(x))
    d = max(0, 3 - int(np.floor(np.log10(abs(x)))))
    return f"{x:.{d}f}".rstrip("0").rstrip(".")


def _assumptions_html(run: RunFolder) -> str:
    items = run.summary.get("assumptions") or []
    notes = []
    src = (run.summary.get("fleet") or {}).get("capacity_source") or []
    if any("given" in str(x) for x in src):
        notes.append("Replica capacity was given by hand in fleet.capacity (not simulated): "
                     "every capacity figure rests on it.")
    prov = (run.summary.get("fleet") or {}).get("kernel_provenance") or run.summary.get("kernel_provenance") or {}
    moved = sorted(p for p, basis in prov.items() if not str(basis).startswith(("measured-near", "given")))
    if moved:
        notes.append("Capacity rests on transferred or roofline-only kernel figures for pool(s) "
                     f"{', '.join(moved)} (fleetsim support CHIP MODEL ENGINE says which rule).")
    estimated = run.summary.get("estimates") or []
    if not items and not notes and not estimated:
        return ("<p>No placeholder catalog figure is used by this scenario. Figures the scenario file "
                "itself marks ASSUMPTION (in its comments) are not listed here: read them there.</p>")
    out = ""
    if notes:
        out += "".join(f'<p class="warn">{_e(n)}</p>' for n in notes)
    if items:
        out += ('<p class="warn">These figures have no published source: fleetsim carries a placeholder. '
                "Override them (catalog: in the scenario) or sweep them before relying on the result.</p>")
    drive = [a for a in items if a["catalog"] != "reliability"] + list(estimated)
    rest = [a for a in items if a["catalog"] == "reliability"]
    if drive:  # placeholders first, then published estimates and figures the scenario set
        out += ("<h3>Performance and price estimates (these size the fleet and drive capex)</h3>"
                + _table(["chip", "field", "value", "basis"],
                         [[a["chip"], a["field"], _figure(a.get("value", "")), a.get("note", "")] for a in drive]))
    if rest:
        out += (f"<details><summary>{len(rest)} thermal and failure placeholders (crash and throttle "
                "figures rest on them)</summary>"
                + _table(["chip", "field", "value", "basis"],
                         [[a["chip"], a["field"], _figure(a.get("value", "")), a.get("note", "")] for a in rest])
                + "</details>")
    return out


def render_report(run: RunFolder) -> str:
    scen = run.scenario
    body_fn, find_fn = BODY.get(run.kind, (lambda r: ([], []), lambda r: []))
    cards, tables = body_fn(run)
    find = find_fn(run)
    plots = _plots(run)
    m = run.manifest
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>fleetsim report: {_e(scen.get('name', run.path.name))}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(scen.get('name', run.path.name))}</h1>",
        f"<p>{_e(scen.get('description') or '')}</p>",
        f"<p class='meta'>{_e(run.kind)} run · seed {_e(m.get('seed'))} · fleetsim {_e(m.get('fleetsim_version'))} · "
        f"created {_e(m.get('created_utc'))} · folder {_e(run.path.name)}</p>",
        "<h2>Headline numbers</h2>", _cards(cards), _futures_html(run) if run.kind == "fleet" else "",
        "<h2>Findings</h2>", "<ul class='findings'>" + "".join(f"<li>{_e(x)}</li>" for x in find) + "</ul>",
        "<h2>Plots</h2>",
    ]
    for p in plots:
        parts.append(f"<figure>{_img(p, p.stem.replace('_', ' '))}<figcaption>{_e(CAPTIONS.get(p.stem, p.stem))}"
                     f" (plots/{_e(p.name)}; `fleetsim plot --svg` adds SVG)</figcaption></figure>")
    if run.kind == "fleet":
        parts.append("<h2>Finance</h2>")
        parts.extend(finance_tables(run))
    parts += ["<h2>Assumptions this result rests on</h2>", _assumptions_html(run)]
    parts.append("<h2>Tables</h2>")
    parts.extend(tables)
    parts.append("<h2>Scenario</h2><details><summary>resolved scenario (every field, defaults filled in)</summary>"
                 f"<pre>{_e(json.dumps(scen, indent=2, default=str))}</pre></details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    run = open_run(run_dir)
    out = out or run.path / "report.html"
    text = render_report(run)
    try:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise FleetsimError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


# ---------------------------------------------------------------------------------------------
# comparison


def headline_values(run: RunFolder) -> dict[str, tuple[float | None, str]]:
    """Comparable metrics of a run as (number, how to show it): 'usd', 'pct', 'num' or 'text'.
    A number may be a {mean, lo, hi} headline estimated over futures; its mean is compared."""
    if run.kind == "fleet":
        f = run.summary.get("fleet", {})
        heads = (run.summary.get("futures") or {}).get("headlines")
        if heads:  # over the futures: each value the headline's {mean, ci95_lo, ...}, its mean compared
            from fleetsim.results.display import FLEET_HEADLINES

            basis = f.get("cost_basis") or {}  # each cost per Mtok says what it includes, as on the console
            out = {label.replace(" USD", "") + (f" ({basis[key]})" if key in basis else ""): (heads[key], _HOW[kind])
                   for key, label, kind in FLEET_HEADLINES if key in heads and heads[key].get("mean") is not None}
            out["futures"] = (str((run.summary.get("futures") or {}).get("replications")), "text")
            return out
        return {
            "capex": (f.get("capex_usd_total"), "usd"), "budget": (f.get("budget_usd"), "usd"),
            "unmet demand share": (f.get("unmet_demand_share", 0), "pct"),
            "peak unmet share": (f.get("peak_unmet_share", 0), "pct"),
            "peak unmet on": (f.get("peak_unmet_date", "-"), "text"),
            "cost per million tokens, USD (depreciation + power + opex + rental)": (f.get("cost_usd_per_mtok"), "num"),
            "all-in cost per million tokens, USD (the same + impairments)": (f.get("all_in_cost_usd_per_mtok"), "num"),
            "impaired": (f.get("impairment_usd"), "usd"), "at risk": (f.get("at_risk_usd"), "usd"),
            "energy per million tokens, kWh": (f.get("energy_kwh_per_mtok"), "num"),
            "US-controlled share at end": (f.get("us_dependence_share_end", 0), "pct"),
            "fleet at end": (", ".join(f"{k} {v:,}" for k, v in (f.get("fleet_mix_end") or {}).items()), "text"),
        }
    if run.kind == "serving":
        out: dict[str, tuple[Any, str]] = {}
        for name, c in run.summary.get("classes", {}).items():
            out[f"{name}: SLO attainment"] = (c.get("slo_attainment") or 0, "pct")
            out[f"{name}: goodput req/s"] = (c.get("goodput_req_per_s", 0), "num")
        for name, p in run.summary.get("pools", {}).items():
            out[f"{name}: out tok/s"] = (p.get("output_tokens_per_s", 0), "num")
        return out
    s = run.summary
    return {"crashes": (s.get("crashes", 0), "num"), "chips lost": (s.get("chips_lost", 0), "num"),
            "availability": (s.get("availability_mean", 0), "pct")}


# FLEET_HEADLINES' kinds -> headline_values' ways to show a value, and back
_HOW = {"usd": "usd", "share": "pct", "plain": "num"}
_KIND = {v: k for k, v in _HOW.items()}


def _show(v: Any, how: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict) and "mean" in v and how in _KIND:  # a headline over the futures
        from fleetsim.results.display import _spread

        return _spread(v, _KIND[how])
    if how == "usd":
        return _usd(v)
    if how == "pct":
        return _pct(v)
    if how == "num":
        if isinstance(v, dict):
            return f"{_num(v.get('mean'))} ({_num(v.get('lo'))} to {_num(v.get('hi'))})"
        return _num(v) if not isinstance(v, float) else f"{v:,.3g}"
    return str(v)


def _mean(v: Any) -> float | None:
    if isinstance(v, dict):
        v = v.get("mean")
    return float(v) if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) else None


def difference(a: Any, b: Any, how: str) -> str:
    """B minus A and, where A is not zero, relative to A: shares in percentage points."""
    x, y = _mean(a), _mean(b)
    if x is None or y is None or how == "text":
        return "-"
    d = y - x
    if how == "pct":
        txt = f"{d * 100:+.2g} pp" if d else "0 pp"
    elif how == "usd":
        txt = ("+" if d > 0 else "-" if d < 0 else "") + _usd(abs(d))
    else:
        txt = f"{d:+,.3g}"
    if x:
        rel = d / abs(x)
        txt += f" ({'+' if rel > 0 else ''}{_pct(rel)})"
    return txt


def headline(run: RunFolder) -> dict[str, str]:
    """Comparable one-line metrics of a run (the compare page's rows)."""
    return {k: _show(v, how) for k, (v, how) in headline_values(run).items()}


def compare_differences(runs: list[RunFolder]) -> list[list[str]]:
    """Rows (metric, run, difference ± interval, paired or unpaired, futures) of each fleet run
    against the first, from their replicates.parquet."""
    from fleetsim.results.display import FLEET_HEADLINES
    from fleetsim.results.rounding import format_interval
    from fleetsim.stats import t_interval, unpaired_interval

    if len(runs) < 2 or runs[0].kind != "fleet":
        return []
    base = runs[0].table("replicates")
    if base is None:
        return []
    rows = []
    for r in runs[1:]:
        other = r.table("replicates") if r.kind == "fleet" else None
        if other is None:
            continue
        # futures are SeedSequence children by number: runs from one fleet seed share their first
        # min(R1, R2) futures, whatever their replication counts
        j = base.merge(other, on="seed", suffixes=("", "_other"))
        same = len(j) >= 2
        for key, label, kind in FLEET_HEADLINES:
            if key == "budget_usd" or key not in base or key not in other:
                continue
            a, b = base[key].to_numpy(float), other[key].to_numpy(float)
            if same:
                m, lo, hi = t_interval(j[f"{key}_other"].to_numpy(float) - j[key].to_numpy(float))
                how = f"paired on {len(j)} futures"
            else:
                m, lo, hi = unpaired_interval(a, b)
                how = "unpaired"
            text = format_interval(m, lo, hi, kind)
            if kind == "share":
                text = text.replace("%", " points")
            rows.append([label.replace(" USD", ""), r.path.name, text, how, f"{len(a)} / {len(b)}"])
    return rows


def write_compare(run_dirs: list[Path], out: Path) -> Path:
    """Runs side by side: headline metrics with B minus A (and relative) against the first run,
    findings per run, and the key plots drawn at the width shown with a shared y axis."""
    import tempfile

    if len(run_dirs) < 1:
        raise FleetsimError("compare needs at least one run folder")
    runs = [open_run(d) for d in run_dirs]
    names = [f"{r.scenario.get('name', r.path.name)} ({r.path.name})" for r in runs]
    vals = [headline_values(r) for r in runs]
    keys: list[str] = []
    for h in vals:
        keys += [k for k in h if k not in keys]
    letters = [chr(ord("A") + i) if i < 26 else str(i) for i in range(len(runs))]
    head = ["metric", *[f"{L}: {n}" for L, n in zip(letters, names)]]
    head += [f"{L} minus A" for L in letters[1:]]
    rows = []
    for k in keys:
        cells = [_show(*h[k]) if k in h else "-" for h in vals]
        a = vals[0].get(k, (None, "text"))
        diffs = [difference(a[0], h.get(k, (None, a[1]))[0], a[1]) for h in vals[1:]]
        rows.append([k, *cells, *diffs])
    kinds = {r.kind for r in runs}
    cols = len(runs)
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>fleetsim comparison</title>",
             f"<style>{CSS}</style></head><body><h1>Comparison of {len(runs)} runs</h1>",
             "<h2>Headline metrics</h2>",
             "<p class='meta'>Differences are B minus A, relative to A in brackets; shares differ in "
             "percentage points (pp).</p>"]
    counts = [(r.summary.get("futures") or {}).get("replications") for r in runs if r.kind == "fleet"]
    if len(set(counts)) > 1 and None not in counts:  # the means are over different sets of futures
        parts.append(f"<p class='warn'>The runs simulated different numbers of futures ({', '.join(map(str, counts))}): "
                     "each minus-A column differences means over different futures, so it mixes the runs' "
                     "difference with sampling noise; the paired differences below use only the futures "
                     "the runs share.</p>")
    parts.append(_table(head, rows))
    diff = compare_differences(runs)
    if diff:
        parts += ["<h2>Differences from the first run, over the futures</h2>",
                  "<p>Each run minus the first, per headline: the mean difference with its 95% interval. "
                  "<b>paired</b>: both runs simulated the same futures (same fleet seed and future seeds), "
                  "so the interval is of the future-by-future differences; <b>unpaired</b>: the runs' "
                  "futures differ and the interval is the wider one of two independent samples.</p>",
                  _table(["metric", "run", "difference", "interval", "futures"], diff)]
    parts.append("<h2>Findings per run</h2>")
    parts.append(f"<div class='grid' style='grid-template-columns:repeat({cols},1fr)'>")
    for L, n, r in zip(letters, names, runs):
        parts.append(f"<div><h3>{_e(L)}: {_e(n)}</h3><ul class='findings'>"
                     + "".join(f"<li>{_e(x)}</li>" for x in findings(r)) + "</ul></div>")
    parts.append("</div>")
    parts.append("<h2>Key plots side by side (each plot's y axis shared by every run)</h2>")
    stems = sorted({s for k in kinds for s in KEY_PLOTS.get(k, [])})
    with tempfile.TemporaryDirectory() as tmp:
        drawn = draw_compare([r.path for r in runs], stems, Path(tmp))
        for kind in sorted(kinds):
            for stem in KEY_PLOTS.get(kind, []):
                cells = []
                for L, n, r, pngs in zip(letters, names, runs, drawn):
                    cells.append(f"<figure>{_img(pngs[stem], stem)}<figcaption>{_e(L)}: {_e(n)}</figcaption></figure>"
                                 if r.kind == kind and stem in pngs else "<div></div>")
                parts.append(f"<h3>{_e(CAPTIONS.get(stem, stem))}</h3>"
                             f"<div class='grid' style='grid-template-columns:repeat({cols},1fr)'>{''.join(cells)}</div>")
    parts.append("</body></html>\n")
    try:
        out.write_text("\n".join(parts), encoding="utf-8")
    except OSError as exc:
        raise FleetsimError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
