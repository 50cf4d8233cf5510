"""Short plain-text tables of a summary, for the terminal.

Honest by construction: counts are those the metrics use (after warm-up, with the warm-up count
said separately); latency is shown at each SLO's own percentile beside its target with a pass
mark; pools show chips, batch and KV occupancy and load against the replica's saturation output
rate rather than "busy" time (a replica with one request in flight is busy); reliability figures
are printed whenever the run modelled heat or crashes, per chip kind as well as pooled.
"""

from __future__ import annotations

import math
from typing import Any

from fleetsim.results.rounding import TINY, decimals, format_interval

OK, FAIL = "ok", "MISS"


def pct(share: Any) -> str:
    """A share as a percentage a reader can trust, the one rounding console, report and compare
    all use: two significant digits below 10% (0.3% stays 0.3%, never "0%"; 1.6% stays 1.6%,
    never "2%"), whole percent above; an exact zero is "0%"."""
    if share is None:
        return "-"
    if isinstance(share, dict):  # a headline estimated over futures: {mean, lo, hi}
        return f"{pct(share.get('mean'))} ({pct(share.get('lo'))} to {pct(share.get('hi'))})"
    v = float(share) * 100
    if v != v:
        return "-"
    if v == 0 or abs(v) >= 9.95:
        return f"{v:.0f}%"
    return f"{v:.2g}%" if abs(v) >= 1 else f"{v:.1g}%" if abs(v) >= 0.095 else f"{v:.2g}%"


def _fmt(x: Any, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([line.rstrip(), "  ".join("-" * w for w in widths), *body])


def _mark(ok: Any) -> str:
    return "" if ok is None else (OK if ok else FAIL)


def _against(value: Any, target: Any, ok: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} / {target:g} {_mark(ok)}".rstrip()


def serving_text(summary: dict[str, Any]) -> str:
    parts = []
    classes = summary["classes"]
    at = summary.get("at_slo", {})
    measured = {k: sum(c[k] for c in classes.values()) for k in ("arrived", "completed", "rejected", "unfinished")}
    warm = at.get("warmup_arrived")
    warm_txt = f" (after {summary['warmup_s']:g} s warm-up; {warm} warm-up arrivals not counted)" if warm is not None \
        else f" (after {summary['warmup_s']:g} s warm-up)"
    parts.append(
        f"requests{warm_txt}: {measured['arrived']} arrived = {measured['completed']} completed + "
        f"{measured['rejected']} rejected + {measured['unfinished']} unfinished"
    )
    if "rejected_by_reason" in at:  # the measured requests, like the counts above
        reasons, where = at["rejected_by_reason"], "after warm-up"
    else:
        reasons, where = summary.get("rejected_by_reason") or {}, "whole window"
    if reasons:
        parts[-1] += f"\nrejected by reason ({where}): " + ", ".join(f"{k} {v}" for k, v in reasons.items())
    rows = []
    for name, c in classes.items():
        a = at.get("classes", {}).get(name, {})
        pct = a.get("percentile", c.get("slo", {}).get("percentile"))
        slo_ok = c.get("slo_met")
        rows.append([
            name, _fmt(c["arrived"]), _fmt(c["throughput_req_per_s"]),
            _against(a.get("ttft_s"), a.get("ttft_target_s"), a.get("ttft_ok")) if a else _fmt(c["ttft_p99_s"]),
            _against(a.get("tpot_s"), a.get("tpot_target_s"), a.get("tpot_ok")) if a else _fmt(c["tpot_p99_s"]),
            f"{_fmt(c['slo_attainment'], '.1%')} / {pct:g}% {_mark(slo_ok)}".rstrip() if pct is not None else "-",
            _fmt(c["goodput_req_per_s"]),
        ])
    pct_txt = "/".join(sorted({f"p{a['percentile']:g}" for a in at.get("classes", {}).values()})) or "p99"
    parts.append(_table(["class", "arrived", "req/s", f"TTFT {pct_txt} s / target", f"TPOT {pct_txt} s / target",
                         "SLO attained / needed", "goodput req/s"], rows))
    rows = []
    for name, p in summary["pools"].items():
        a = at.get("pools", {}).get(name, {})
        rows.append([
            name, p["chip"], _fmt(p["replicas"]), _fmt(a.get("chips", p["replicas"] * p.get("tp", 1))),
            _fmt(p["throughput_req_per_s"]) if "prefilled_req_per_s" not in p
            else _fmt(p["prefilled_req_per_s"]) + " prefilled",
            _fmt(p["output_tokens_per_s"], ".4g"),
            _fmt(a.get("load_vs_saturation"), ".0%"), _fmt(p["mean_batch_size"]),
            _fmt(a.get("batch_occupancy"), ".0%"), _fmt(a.get("kv_occupancy_est"), ".0%"),
            _fmt(p["availability"], ".1%"),
        ])
    parts.append(_table(["pool", "chip", "replicas", "chips", "req/s", "out tok/s", "of saturation",
                         "mean batch", "batch occ.", "KV occ. (est.)", "avail."], rows))
    rel = summary.get("reliability")
    if rel:
        parts.append(_serving_reliability_text(rel))
    if summary.get("goodput_search"):
        parts.append(goodput_text(summary["goodput_search"]))
    if summary.get("assumptions"):
        parts.append(assumptions_line(summary["assumptions"]))
    return "\n\n".join(parts)


def _serving_reliability_text(rel: dict[str, Any]) -> str:
    rows = []
    for pool, r in rel.items():
        rep = r.get("repairs", {})
        rows.append([pool, _fmt(r.get("crashes")), _fmt(rep.get("chips_lost")), _fmt(r.get("throttled_share"), ".1%"),
                     _fmt(r.get("mean_clock"), ".3f"), _fmt(r.get("mean_temp_c"), ".1f"),
                     _fmt(r.get("max_temp_c"), ".1f"), _fmt(r.get("up_share"), ".1%")])
    return "reliability (heat and crashes)\n" + _table(
        ["pool", "crashes", "chips lost", "throttled", "mean clock", "mean temp C", "max temp C", "up"], rows)


def reliability_text(summary: dict[str, Any]) -> str:
    head = (f"reliability run: {summary['chips']:,} chips over {summary['days']} days: "
            f"{summary['crashes']} crashes ({summary.get('hardware_faults', '-')} hardware, "
            f"{summary.get('transient_faults', '-')} transient), {summary.get('chips_lost', '-')} chips lost, "
            f"mean availability {_fmt(summary.get('availability_mean'), '.3%')}, "
            f"mean temperature {_fmt(summary.get('mean_temp_c'), '.1f')} C, "
            f"throttled {_fmt(summary.get('throttled_share'), '.1%')}")
    rows = []
    for name, c in (summary.get("cohorts") or {}).items():
        rows.append([name, c["chip"], f"{c['count']:,}", _fmt(c["crashes"]), _fmt(c.get("crashes_per_chip_year"), ".3g"),
                     _fmt(c.get("chips_lost")), _fmt(c.get("availability_mean"), ".3%"),
                     _fmt(c.get("mean_temp_c"), ".1f"), _fmt(c.get("max_temp_c"), ".1f"),
                     _fmt(c.get("throttled_share"), ".1%"), _fmt(c.get("mean_clock"), ".3f")])
    parts = [head]
    if rows:
        parts.append(_table(["cohort", "chip", "chips", "crashes", "crashes/chip-yr", "lost", "availability",
                             "mean temp C", "max temp C", "throttled", "mean clock"], rows))
    if summary.get("assumptions"):
        parts.append(assumptions_line(summary["assumptions"]))
    return "\n\n".join(parts)


FLEET_HEADLINES = (
    ("capex_usd_total", "capex total", "usd"), ("budget_usd", "budget", "usd"),
    ("unmet_demand_share", "unmet demand (share of tokens)", "share"),
    ("peak_unmet_share", "peak unmet share", "share"),
    ("cost_usd_per_mtok", "cost USD per million tokens", "plain"),
    ("all_in_cost_usd_per_mtok", "all-in cost USD per million tokens", "plain"),  # beside it: write-offs
    ("impairment_usd", "impaired (paid, never to arrive: stranded, cancelled, forfeited)", "usd"),
    ("at_risk_usd", "at risk (paid into orders held at the horizon)", "usd"),
    ("energy_kwh_per_mtok", "energy kWh per million tokens", "plain"),
    ("us_dependence_share_end", "US-supplied share at end", "share"),
    ("window_attainment_mean", "serving-window SLO attainment (mean)", "share"),
)


def _spread(h: dict[str, Any], kind: str) -> str:
    """`mean ± half (P5 a, P95 b)`, every figure rounded by the interval (fleetsim.results.rounding)."""
    text = format_interval(h.get("mean"), h.get("ci95_lo"), h.get("ci95_hi"), kind)
    lo, hi = h.get("ci95_lo"), h.get("ci95_hi")
    if lo is not None and hi is not None and hi > lo and h.get("p5") is not None:
        d = decimals((hi - lo) / 2 * (100.0 if kind == "share" else 1.0))
        if kind == "usd":
            return text + f" (P5 {format_interval(h['p5'], kind='usd')}, P95 {format_interval(h['p95'], kind='usd')})"
        sc = 100.0 if kind == "share" else 1.0
        unit = "%" if kind == "share" else ""
        mean = h.get("mean")
        if mean and (hi - lo) / 2 / abs(mean) < TINY:  # the mean shows four digits: so do P5 and P95
            d = 3 - math.floor(math.log10(abs(mean) * sc))
        fmt = lambda v: f"{v * sc:,.{max(d, 0)}f}{unit}"
        return text + f" (P5 {fmt(h['p5'])}, P95 {fmt(h['p95'])})"
    return text


def futures_lines(summary: dict[str, Any]) -> list[str]:
    """The headlines over the futures: mean ± 95% interval with P5/P95, the representative future,
    and what to change when an interval is wide."""
    fut = summary.get("futures") or {}
    heads = fut.get("headlines") or {}
    R = fut.get("replications", 1)
    rep = fut.get("representative") or {}
    if R == 1:
        lines = [f"  one future, from fleet seed {fut.get('root_seed')}: its figures, with no interval"]
    else:
        lines = [f"  {R} futures from fleet seed {fut.get('root_seed')}: mean ± 95% interval over the futures "
                 f"(P5, P95 of the futures); tables and plots' lines are future {rep.get('future')}, "
                 f"{rep.get('rule', '')}"]
    for key, label, kind in FLEET_HEADLINES:
        h = heads.get(key)
        if h is None or h.get("mean") is None:
            continue
        if key == "budget_usd":
            lines.append(f"  {label}: {format_interval(h['mean'], kind='usd')}")
            continue
        basis = ((summary.get("fleet") or {}).get("cost_basis") or {}).get(key)
        lines.append(f"  {label}: {_spread(h, kind)}" + (f" ({basis})" if basis else ""))
    if R > 1:
        lines += ["  " + x for x in decided_over_futures(heads)]
    f = summary.get("fleet") or {}
    if f.get("peak_unmet_date") and (heads.get("peak_unmet_share") or {}).get("mean"):
        lines.append(f"  peak unmet on (future {rep.get('future')}): {f['peak_unmet_date']}")
    mix = {k[len("fleet_mix_end."):]: v for k, v in heads.items() if k.startswith("fleet_mix_end.")}
    if mix:
        lines.append("  fleet at end (chips): " + ", ".join(
            f"{k} {format_interval(v['mean'], v['ci95_lo'], v['ci95_hi'], 'count')}" for k, v in mix.items()))
    # rented chips are not in the fleet mix (no capex): a rented fleet read "a100 0, a10g 0"
    rented = {k[len("rented_end."):]: v for k, v in heads.items() if k.startswith("rented_end.") and v.get("mean")}
    rent = heads.get("ledger_usd_by_kind.rental") or {}
    if rented or rent.get("mean"):
        lines.append("  rented at end (chips): " + (", ".join(
            f"{k} {format_interval(v['mean'], v['ci95_lo'], v['ci95_hi'], 'count')}" for k, v in rented.items())
            or "none") + f" (rental {format_interval(rent.get('mean'), rent.get('ci95_lo'), rent.get('ci95_hi'), 'usd')}"
            " over the run)")
    if fut.get("advice"):
        lines.append(f"  note: {fut['advice']}")
    return lines


def fleet_text(summary: dict[str, Any]) -> str:
    f = summary["fleet"]
    lines = [f"fleet run: {summary.get('scenario', '')}"]
    if summary.get("futures"):
        lines += futures_lines(summary)
        rep = (summary["futures"].get("representative") or {}).get("future")
        detail = supply_lines(f) + decided_lines(f) + _windows_budget_lines(f)  # the representative future's
        if detail and summary["futures"].get("replications", 1) > 1:
            lines.append(f"  in future {rep} (the representative one):")
        lines += detail
        lines.extend(_revenue_lines(f, summary["futures"].get("headlines") or {}))
        if summary.get("assumptions"):
            lines.append(assumptions_line(summary["assumptions"]))
        return "\n".join(lines)
    for key, label, spec in (
        ("capex_usd_total", "capex total USD", ",.0f"), ("budget_usd", "budget USD", ",.0f"),
        ("unmet_demand_share", "unmet demand (share of tokens)", ".1%"),
        ("peak_unmet_share", "peak unmet share", "%"), ("peak_unmet_date", "peak unmet on", ""),
        ("energy_kwh_per_mtok", "energy kWh per million tokens", ".3g"),
        ("us_dependence_share_end", "US-supplied share at end", "%"),
    ):
        if f.get(key) is not None:
            v = f[key]
            txt = pct(v) if spec in ("%", ".1%") else format(v, spec) if isinstance(v, (int, float)) and spec else v
            lines.append(f"  {label}: {txt}")
    at = next((i for i, ln in enumerate(lines) if ln.startswith("  energy")), len(lines))
    lines[at:at] = cost_lines(f)
    lines += supply_lines(f)
    lines += decided_lines(f)
    mix = f.get("fleet_mix_end") or {}
    if mix:
        lines.append("  fleet at end: " + ", ".join(f"{k} {v:,}" for k, v in mix.items()))
    rented = {k: v for k, v in (f.get("rented_end") or {}).items() if v}
    if rented or (f.get("ledger_usd_by_kind") or {}).get("rental"):
        lines.append("  rented at end: " + (", ".join(f"{k} {v:,}" for k, v in rented.items()) or "none")
                     + f" (rental USD {f['ledger_usd_by_kind'].get('rental', 0.0):,.0f} over the run)")
    lines.extend(_windows_budget_lines(f))
    lines.extend(_revenue_lines(f))
    if summary.get("assumptions"):
        lines.append(assumptions_line(summary["assumptions"]))
    return "\n".join(lines)


def _windows_budget_lines(f: dict[str, Any]) -> list[str]:
    """SLO attainment of the serving windows (mean, worst, misses) and when the budget ran out."""
    out = []
    if f.get("window_attainment_mean") is not None:
        line = (f"  SLO attainment in {f.get('windows', 0)} serving windows: mean {f['window_attainment_mean']:.1%}")
        if f.get("window_attainment_worst") is not None:
            line += (f", worst {f['window_attainment_worst']:.1%} ({f['window_worst_chip']}, "
                     f"{f['window_worst_date']}), {f.get('windows_missed', 0)} below the SLO percentile")
        out.append(line)
    if "budget_exhausted_on" in f:
        when = f["budget_exhausted_on"]
        out.append(f"  budget fully committed: {when}" if when else
                   "  budget fully committed: never (" + (f"{_usd(f['budget_usd'] - f['capex_usd_total'])} unspent"
                                                            if isinstance(f.get('capex_usd_total'), (int, float)) else "") + ")")
    return out


def _tokens(mtok: float) -> str:
    """Millions of tokens as a count a reader takes in: 3 significant digits and M, B or T."""
    n = mtok * 1e6
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if n >= div:
            return f"{n / div:,.3g} {unit}" if n / div < 1000 else f"{n / div:,.0f} {unit}"
    return f"{n:,.0f}"


def _revenue_lines(f: dict[str, Any], heads: dict[str, Any] | None = None) -> list[str]:
    """Tokens by type and, when priced, revenue by token type and margin (over the futures, the
    means; margin with its interval)."""
    if heads:
        f = dict(f) | {k: v["mean"] for k, v in heads.items() if "." not in k and v.get("mean") is not None}
    out = []
    if f.get("served_input_mtok"):
        hits = f.get("served_input_cache_hit_mtok", 0)
        out.append(f"  tokens served: {_tokens(f['served_mtok'])} output, {_tokens(f['served_input_mtok'])} input"
                   + (f" ({_tokens(hits)} of it cache hits)" if hits else ""))
    if f.get("revenue_usd") is not None:
        by = f.get("revenue_usd_by_token_type") or {}
        parts = ", ".join(f"{k.replace('_', ' ')} {v:,.0f}" for k, v in by.items() if v)
        margin = (format_interval(heads["margin_usd"]["mean"], heads["margin_usd"]["ci95_lo"],
                                  heads["margin_usd"]["ci95_hi"], "usd")
                  if heads and "margin_usd" in heads else f"USD {f['margin_usd']:,.0f}")
        out.append(f"  revenue USD: {f['revenue_usd']:,.0f}" + (f" ({parts})" if parts else "")
                   + f"; margin {margin}")
        if f.get("cost_usd_per_mtok_input") is not None:
            out.append(f"  cost USD per million tokens, split by revenue share: input "
                       f"{f['cost_usd_per_mtok_input']:.3g}, output {f.get('cost_usd_per_mtok_output', 0):.3g}")
    return out


def cost_lines(f: dict[str, Any]) -> list[str]:
    """Both costs per million tokens side by side, each saying what it includes."""
    basis = f.get("cost_basis") or {}
    out = []
    for key, label in (("cost_usd_per_mtok", "cost USD per million tokens"),
                       ("all_in_cost_usd_per_mtok", "all-in cost USD per million tokens")):
        if f.get(key) is not None:
            out.append(f"  {label}: {f[key]:.3g}" + (f" ({basis[key]})" if key in basis else ""))
    return out


def supply_lines(f: dict[str, Any]) -> list[str]:
    """Write-offs, money at risk, and every channel with a side closed at the end."""
    out = []
    if f.get("impairment_usd") is not None:
        out.append(f"  impaired USD {f['impairment_usd']:,.0f} (paid, never to arrive: stranded, cancelled, "
                   f"forfeited); at risk USD {f.get('at_risk_usd', 0.0):,.0f} (paid into orders held at the "
                   f"horizon); in the pipeline USD {f.get('paid_in_transit_usd', 0.0) - f.get('at_risk_usd', 0.0):,.0f}")
    for n, c in (f.get("channels") or {}).items():
        if c["exporter_state"] == "open" and c["importer_state"] == "open":
            continue
        fee = f"levy {c['levy']:g}" + (f" + USD {c['fee_usd_per_chip']:g}/chip" if c["fee_usd_per_chip"] else "")
        out.append(f"  channel {n}: exporter {c['exporter_state']} ({fee}, buyer bears {c['levy_incidence']:.0%}), "
                   f"importer {c['importer_state']}; {c['chips_delivered']:,} of {c['chips_ordered']:,} chips "
                   f"delivered, {c['chips_held']:,} held; at risk USD {c['at_risk_usd']:,.0f}, impaired USD "
                   f"{c['impairment_usd']:,.0f}")
    return out


CAUSE_LABEL = {
    "budget_released": "budget released to date", "budget_total": "total budget",
    "channel_cap": "cap", "fab_output": "fab output", "regime_closed": "closed regime",
    "min_order": "minimum order", "site_power": "site power", "site_racks": "site racks",
    "planner_choice": "planner's choice", "no_offer": "no offer", "lead_time": "lead time",
    "demand_above_plan": "demand above plan (forecast error, failures)",
}


def _usd(x: float) -> str:
    return f"USD {x / 1e9:,.3g} B" if abs(x) >= 1e9 else f"USD {x / 1e6:,.3g} M" if abs(x) >= 1e6 else f"USD {x:,.0f}"


def decided_lines(f: dict[str, Any]) -> list[str]:
    """What decided the result: unmet demand by cause, the budget, frozen and stranded orders."""
    out = []
    causes = [c for c in (f.get("unmet_causes") or []) if c["share"] >= 0.005]
    if causes:
        parts = [f"{c['share']:.0%} " + " ".join(x for x in (c["channel"], CAUSE_LABEL.get(c["cause"], c["cause"])) if x)
                 + (" (ASSUMPTION)" if c["assumption"] else "") for c in causes[:4]]
        rest = sum(c["share"] for c in causes[4:])
        text = "  unmet demand: " + ", ".join(parts) + (f", {rest:.0%} other" if rest >= 0.005 else "")
    elif "unmet_causes" in f:
        text = "  unmet demand: none"
    else:
        text = ""
    if "budget_first_bound_date" in f:
        b = f["budget_first_bound_date"]
        budget = (f"budget bound from {b} ({f['budget_bound_periods']} planning periods)" if b else "budget never bound")
        text = (text + "; " if text else "  ") + f"{budget}, {_usd(f.get('budget_unspent_usd', 0.0))} unspent"
    if text:
        out.append(text)
    if "frozen_chips" in f:
        out.append(f"  frozen orders at the horizon: {f['frozen_chips']:,} chips, {_usd(f['frozen_usd'])} "
                   f"({_usd(f['frozen_paid_usd'])} paid); stranded: {f['stranded_chips']:,} chips, "
                   f"{_usd(f['stranded_usd'])} (chips + levy + servers)")
    return out


def decided_over_futures(heads: dict[str, Any]) -> list[str]:
    """Unmet demand by cause, the budget's story, frozen and stranded orders and missed windows as
    means over the futures with their 95% intervals (decided_lines gives one future's exact
    figures; impaired and at-risk USD are FLEET_HEADLINES)."""
    iv = lambda k, kind: format_interval(heads[k]["mean"], heads[k].get("ci95_lo"), heads[k].get("ci95_hi"), kind)
    has = lambda *ks: all((heads.get(k) or {}).get("mean") is not None for k in ks)
    out = []
    # A future's cause shares sum to 1 when it has unmet demand and to 0 when it has none, so the
    # sum of the means is the share of futures with any; divided by it, each cause's mean share
    # over those futures (the shares then add up to 100%).
    all_causes = {k[len("unmet_cause_share_"):]: v.get("mean") or 0.0 for k, v in heads.items()
                  if k.startswith("unmet_cause_share_")}
    with_unmet = sum(all_causes.values())
    causes = sorted(((c, m / with_unmet) for c, m in all_causes.items() if with_unmet > 0 and m / with_unmet >= 0.005),
                    key=lambda t: -t[1])
    if causes:
        out.append(f"unmet demand by cause, mean share over the {with_unmet:.0%} of futures with any: " + ", ".join(
            f"{m:.0%} {CAUSE_LABEL.get(c, c)}" for c, m in causes))
    if has("budget_bound_periods", "budget_unspent_usd"):
        bound = ("budget never bound in any future" if heads["budget_bound_periods"]["mean"] == 0 else
                 f"budget bound in {iv('budget_bound_periods', 'plain')} planning periods a future")
        out.append(f"over the futures: {bound}, {iv('budget_unspent_usd', 'usd')} unspent")
    if has("frozen_chips", "frozen_usd", "stranded_chips", "stranded_usd"):
        out.append(f"over the futures: frozen orders at the horizon {iv('frozen_chips', 'count')} chips, "
                   f"{iv('frozen_usd', 'usd')}; stranded {iv('stranded_chips', 'count')} chips, "
                   f"{iv('stranded_usd', 'usd')} (chips + levy + servers)")
    if has("windows_missed", "window_attainment_worst", "windows"):
        out.append(f"over the futures: {iv('windows_missed', 'plain')} of {heads['windows']['mean']:.0f} serving "
                   f"windows below the SLO percentile; worst window {iv('window_attainment_worst', 'share')} "
                   "(each future's worst)")
    return out


def assumptions_line(items: list[dict[str, str]]) -> str:
    by: dict[str, list[str]] = {}
    for a in items:
        by.setdefault(a["chip"], []).append(a["field"])
    return ("rests on placeholder figures (no published value; override or sweep them): "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in by.items()))


def summary_text(summary: dict[str, Any]) -> str:
    if "fleet" in summary and isinstance(summary["fleet"], dict):
        return fleet_text(summary)
    if "classes" in summary:
        return serving_text(summary)
    if summary.get("kind") == "reliability":
        return reliability_text(summary)
    keys = [k for k, v in summary.items() if not isinstance(v, (dict, list))]
    return "\n".join(f"{k}: {_fmt(summary[k])}" for k in keys)


def goodput_text(rows: list[dict[str, Any]]) -> str:
    body = [
        [r["pool"], r["workload"], r["chip"], _fmt(r["goodput_req_per_s_per_replica"], ".4g"),
         _fmt(r["goodput_tokens_per_s_per_replica"], ".4g"), "yes" if r.get("cached") else "no",
         r.get("note", "")]
        for r in rows
    ]
    return _table(["pool", "workload", "chip", "goodput req/s/replica", "out tok/s/replica", "cached",
                   "note"], body)
