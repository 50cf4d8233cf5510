"""Turn a finished fleet simulation into columns (docs/tables.md) and the summary.

Sign convention of `ledger.amount_usd`: money out is positive (capex, levy, depreciation, power,
opex, impairment); money in is negative (refund, revenue). Depreciation and impairment are
accounting charges, not cash: an impairment writes off what was paid (and not refunded) for chips
that will never arrive (stranded, cancelled, forfeited). Rentals are paid daily (kind `rental`,
part of `opex_usd` in the timeline and of the cost per Mtok); rented chips never depreciate.
Money paid into orders still in transit is at risk (`at_risk_usd`), not yet spent or lost.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleetsim.fleet.planner import CAUSES
from fleetsim.fleet.regime import STATES
from fleetsim.scenario.fleet import EXPORTER_STATES, IMPORTER_STATES

#: what each cost per Mtok includes (printed beside it)
COST_BASIS = {
    "cost_usd_per_mtok": "depreciation + power + opex + rental",
    "all_in_cost_usd_per_mtok": "depreciation + impairments (stranded, cancelled, forfeited) + power + opex + rental",
    "cash_cost_usd_per_mtok": "capex + levy - refunds + power + opex + rental",
}


def _dates(start: dt.date, days: np.ndarray) -> np.ndarray:
    return np.datetime64(start, "D") + days.astype("timedelta64[D]")


@dataclass
class FleetResult:
    """Columns for the run folder (fleetsim.results.tables makes the Parquet tables)."""

    timeline: dict[str, Any]
    ledger: dict[str, Any]
    orders: dict[str, Any]
    events: dict[str, Any]
    windows: dict[str, Any] | None
    summary: dict[str, Any]
    capacity: list[dict[str, Any]]
    pool_daily: dict[str, np.ndarray] = field(default_factory=dict)  # day x pool, for tests
    hourly: dict[str, Any] | None = None  # sampled days hour by hour (elastic rentals, off-peak work)
    binding: dict[str, Any] | None = None  # what bound each planning period (binding.parquet)


def build_result(sim, windows) -> FleetResult:
    """The finished simulation `sim` (a fleet.sim._FleetSim, read, never imported) as columns."""
    D, r = sim.n_days, sim.rec
    nch = len(sim.chip_names)
    # pool -> chip aggregation
    agg = lambda a: np.stack([a[:, sim.pool_chip == j].sum(axis=1) for j in range(nch)], axis=1)
    days = np.repeat(np.arange(D), nch)
    chip_col = np.tile(np.array(sim.chip_names, dtype=object), D)
    flat = lambda a: agg(a).reshape(-1)
    cap_total = r["capacity_tokens_per_s"].sum(axis=1)
    us_share = np.divide(r["us_capacity_tokens_per_s"].sum(axis=1), cap_total,
                         out=np.zeros(D), where=cap_total > 0)
    # regime state of each chip's first channel (sorted by name) that offers it
    chip_channel = []
    for c in sim.chip_names:
        names = [n for n in sim.channel_names if any(o.chip == c for o in sim.fleet.channels[n].offers)]
        chip_channel.append(sim.channels[names[0]].idx if names else -1)
    def side_col(names, table):
        code = np.concatenate([table, np.zeros((D, 1), dtype=table.dtype)], axis=1)[:, chip_channel]
        lab = np.array(list(names), dtype=object)[code]
        return np.where(np.array(chip_channel)[None, :] >= 0, lab, "none").reshape(-1)
    regime = side_col(STATES, sim.regime_day)
    exporter = side_col(EXPORTER_STATES, sim.side_day[:, :, 0])
    importer = side_col(IMPORTER_STATES, sim.side_day[:, :, 1])
    impair = np.zeros((D, nch))
    for day, kind, chip, _ch, amount, _oid in sim.ledger:
        if kind == "impairment" and day < D:
            impair[day, sim.chip_ix[chip]] += amount
    in_transit_usd, at_risk = _at_risk_by_day(sim, D, nch)
    opex = r["power_usd"] + r["other_opex_usd"] + r["rental_usd"]
    timeline = {
        "date": _dates(sim.start, days),
        "chip": chip_col,
        "installed": flat(r["installed"]).astype(np.int64),
        "active": flat(r["active"]).astype(np.int64),
        "in_repair": flat(r["in_repair"]).astype(np.int64),
        "commissioning": flat(r["commissioning"]).astype(np.int64),
        "on_order": flat(r["on_order"]).astype(np.int64),
        "ordered": flat(r["ordered"]).astype(np.int64),
        "delivered": flat(r["delivered"]).astype(np.int64),
        "cancelled": flat(r["cancelled"]).astype(np.int64),
        "stranded": flat(r["stranded"]).astype(np.int64),
        "retired": flat(r["retired"]).astype(np.int64),
        "lost": flat(r["lost"]).astype(np.int64),
        "removed": flat(r["removed"]).astype(np.int64),
        "rented": flat(r["rented"]).astype(np.int64),
        "rent_on_order": flat(r["rent_on_order"]).astype(np.int64),
        "rent_returned": flat(r["rent_returned"]).astype(np.int64),
        "replicas_up": flat(r["replicas_up"]),
        "crashes": flat(r["crashes"]).astype(np.int64),
        "demand_tokens_per_s": np.repeat(sim.demand_day, nch),
        "capacity_tokens_per_s": flat(r["capacity_tokens_per_s"]),
        "served_tokens_per_s": flat(r["served_tokens_per_s"]),
        "unmet_tokens_per_s": np.repeat(sim.unmet_day, nch),
        "capex_usd": flat(sim.capex_day),
        "opex_usd": flat(opex),
        "power_usd": flat(r["power_usd"]),
        "rental_usd": flat(r["rental_usd"]),
        "depreciation_usd": flat(r["depreciation_usd"]),
        "served_input_tokens_per_s": flat(r["served_input_tokens_per_s"]),
        "served_cached_input_tokens_per_s": flat(r["served_cached_input_tokens_per_s"]),
        "revenue_usd": flat(r["revenue_usd"]),
        "revenue_output_usd": flat(r["revenue_output_usd"]),
        "revenue_input_cache_hit_usd": flat(r["revenue_input_cache_hit_usd"]),
        "revenue_input_cache_miss_usd": flat(r["revenue_input_cache_miss_usd"]),
        "elastic_chip_hours": flat(r["elastic_chip_hours"]),
        "elastic_peak_chips": flat(r["elastic_peak_chips"]),
        "offpeak_replica_hours": flat(r["offpeak_replica_hours"]),
        "offpeak_usd": flat(r["offpeak_usd"]),
        "energy_mwh": flat(r["energy_mwh"]),
        "power_mw": flat(r["power_mw"]),
        "impairment_usd": impair.reshape(-1),
        "paid_in_transit_usd": in_transit_usd.reshape(-1),
        "at_risk_usd": at_risk.reshape(-1),
        "us_dependence_share": np.repeat(us_share, nch),
        "regime_state": regime,
        "exporter_state": exporter,
        "importer_state": importer,
    }
    # ledger: order-time movements, then the daily charges per chip kind
    led = {"day": [], "kind": [], "chip": [], "channel": [], "amount_usd": [], "order_id": []}
    for row in sim.ledger:
        if row[0] < D:
            for k, v in zip(led, row):
                led[k].append(v)
    for kind, arr, sign in (("depreciation", r["depreciation_usd"], 1.0), ("power", r["power_usd"], 1.0),
                            ("opex", r["other_opex_usd"], 1.0), ("rental", r["rental_usd"], 1.0),
                            ("revenue", r["revenue_usd"], -1.0), ("offpeak", r["offpeak_usd"], -1.0)):
        a = agg(arr)
        dd, cc = np.nonzero(a)
        led["day"] += dd.tolist()
        led["kind"] += [kind] * len(dd)
        led["chip"] += [sim.chip_names[j] for j in cc]
        led["channel"] += [""] * len(dd)
        led["amount_usd"] += (sign * a[dd, cc]).tolist()
        led["order_id"] += [-1] * len(dd)
    types = {"kind": object, "chip": object, "channel": object, "order_id": np.int64}
    ledger = {"date": _dates(sim.start, np.asarray(led["day"], dtype=np.int64)),
              **{k: np.asarray(v, dtype=types.get(k, float)) for k, v in led.items() if k != "day"}}
    orders = _orders(sim)
    events = _events(sim)
    binding, unmet_parts = _binding(sim)
    summary = _summary(sim, timeline, ledger, orders, us_share, windows)
    summary.update(_decided(sim, summary, unmet_parts, binding))
    summary.update(_console_extras(sim, orders, windows))
    if hasattr(sim.planner, "report"):  # the optimising planner's plan per period (branch optimal)
        summary["planner_report"] = sim.planner.report()
    hall_c = lambda pool: float(sim.rel.halls.get(sim.serving.pools[pool].hall, sim.rel.halls["default"]).ambient_c)
    caps = [c.row() | {"ambient_c": hall_c(c.pool)} for c in sim.caps.values()]  # at the hall's mean
    for (pn, wn), pts in sorted(getattr(sim, "caps_grid", {}).items()):  # seasonal halls' extremes
        caps += [c.row() | {"ambient_c": a} for a, c in (pts[0], pts[-1])]
    return FleetResult(timeline=timeline, ledger=ledger, orders=orders, events=events, windows=windows,
                       summary=summary, capacity=caps, pool_daily={k: v.copy() for k, v in r.items()},
                       hourly=_hourly(sim), binding=binding)


def _hourly(sim) -> dict[str, Any] | None:
    """The sampled days hour by hour, a row per hour and pool (fleetsim.fleet.elastic)."""
    if not sim.hourly:
        return None
    cols = list(zip(*sim.hourly))
    day = np.asarray(cols[0], dtype=np.int64)
    pool = np.asarray(cols[2], dtype=np.int64)
    cap = np.asarray(cols[4], dtype=float)
    served = np.asarray(cols[5], dtype=float)
    return {
        "date": _dates(sim.start, day), "hour": np.asarray(cols[1], dtype=np.int64),
        "pool": np.array([sim.pool_names[i] for i in pool], dtype=object),
        "chip": np.array([sim.pools[i].chip for i in pool], dtype=object),
        "demand_tokens_per_s": np.asarray(cols[3], dtype=float),
        "capacity_tokens_per_s": cap, "served_tokens_per_s": served,
        "utilisation": np.divide(served, cap, out=np.zeros_like(cap), where=cap > 0),
        "owned_replicas_up": np.asarray(cols[6], dtype=float),
        "elastic_replicas": np.asarray(cols[7], dtype=float),
        "offpeak_replicas": np.asarray(cols[8], dtype=float),
    }


def _at_risk_by_day(sim, D: int, nch: int) -> tuple[np.ndarray, np.ndarray]:
    """Day x chip: money paid into bought orders not yet delivered, cancelled or stranded (the
    deposit: the balance is paid on the day of delivery), and the part of it in orders held
    (due, but a side of the channel closed): at risk."""
    paid, held = np.zeros((D + 1, nch)), np.zeros((D + 1, nch))
    for o in sim.orders:
        if o.kind != "buy" or o.deposit_usd == 0 or o.ordered_day >= D:
            continue
        j = sim.chip_ix[o.chip]
        end = min(D, o.delivered_day if o.fate == "delivered" else o.cancelled_day if o.fate != "in_transit" else D)
        paid[o.ordered_day, j] += o.deposit_usd
        paid[end, j] -= o.deposit_usd
        if 0 <= o.held_day < end:
            held[o.held_day, j] += o.deposit_usd
            held[end, j] -= o.deposit_usd
    def clip(a):  # a running sum returns to 0 up to rounding: drop only that noise
        c = np.cumsum(a[:D], axis=0)
        return np.where(np.abs(c) < 1e-6, 0.0, c)
    return clip(paid), clip(held)


def _orders(sim) -> dict[str, Any]:
    o = sim.orders
    day = lambda x: np.datetime64(sim.start, "D") + np.timedelta64(x, "D")
    return {
        "order_id": np.array([x.order_id for x in o], dtype=np.int64),
        "ordered_on": np.array([day(x.ordered_day) for x in o], dtype="datetime64[D]"),
        "channel": np.array([x.channel for x in o], dtype=object),
        "chip": np.array([x.chip for x in o], dtype=object),
        "pool": np.array([x.pool for x in o], dtype=object),
        "count_chips": np.array([x.count for x in o], dtype=np.int64),
        "price_usd_per_chip": np.array([x.price_usd_per_chip for x in o], dtype=float),
        "levy_usd": np.array([x.levy_usd_per_chip * x.count for x in o], dtype=float),
        "due_on": np.array([day(x.due_day) for x in o], dtype="datetime64[D]"),
        "fate": np.array([x.fate for x in o], dtype=object),
        "delivered_on": np.array([day(x.delivered_day) if x.delivered_day >= 0 else np.datetime64("NaT")
                                  for x in o], dtype="datetime64[D]"),
        "cancelled_on": np.array([day(x.cancelled_day) if x.cancelled_day >= 0 else np.datetime64("NaT")
                                  for x in o], dtype="datetime64[D]"),
        "refund_usd": np.array([x.refund_usd for x in o], dtype=float),
        "deposit_usd": np.array([x.deposit_usd for x in o], dtype=float),
        "paid_usd": np.array([x.paid_usd for x in o], dtype=float),
        "impairment_usd": np.array([x.impairment_usd for x in o], dtype=float),
        "at_risk_usd": np.array([x.paid_usd if x.fate == "in_transit" and x.held_day >= 0 else 0.0
                                 for x in o], dtype=float),
        "held_on": np.array([day(x.held_day) if x.held_day >= 0 else np.datetime64("NaT") for x in o],
                            dtype="datetime64[D]"),
        "levy_vendor_usd": np.array([x.levy_vendor_usd_per_chip * x.count for x in o], dtype=float),
        "kind": np.array([x.kind for x in o], dtype=object),
        "price_usd_per_chip_hour": np.array([x.price_usd_per_chip_hour for x in o], dtype=float),
        "term_days": np.array([x.term_days for x in o], dtype=np.int64),
        "returned_on": np.array([day(x.end_day) if x.kind == "rent" and x.delivered_day >= 0
                                 else np.datetime64("NaT") for x in o], dtype="datetime64[D]"),
    }


def _events(sim) -> dict[str, Any]:
    ev = list(sim.events)
    crashes = sim.rec["crashes"]
    for d, p in zip(*np.nonzero(crashes)):
        ev.append((int(d), "crash", "", sim.pools[p].chip, sim.pool_names[p], int(crashes[d, p]),
                   "crashes that day (restarts and hardware faults)"))
    ev.sort(key=lambda e: e[0])
    cols = list(zip(*ev)) if ev else [[]] * 7
    return {
        "date": _dates(sim.start, np.asarray(cols[0], dtype=np.int64)),
        "kind": np.asarray(cols[1], dtype=object), "channel": np.asarray(cols[2], dtype=object),
        "chip": np.asarray(cols[3], dtype=object), "pool": np.asarray(cols[4], dtype=object),
        "count": np.asarray(cols[5], dtype=np.int64), "detail": np.asarray(cols[6], dtype=object),
    }


def _channels(sim, orders) -> dict[str, dict[str, Any]]:
    """Per channel at the horizon: both sides' state, the levy and who bears it, chips by fate,
    money paid, at risk and impaired."""
    out = {}
    for n, ch in sim.channels.items():
        o = {k: v[(orders["channel"] == n) & (orders["kind"] == "buy")] for k, v in orders.items()}
        held = (o["fate"] == "in_transit") & ~np.isnat(o["held_on"])
        out[n] = {
            "exporter_state": ch.exporter, "importer_state": ch.importer,
            "levy": ch.levy, "fee_usd_per_chip": ch.fee, "levy_incidence": ch.incidence,
            "cap_per_month": ch.cap_month, "deposit_share": ch.deposit_share,
            "chips_ordered": int(o["count_chips"].sum()),
            "chips_delivered": int(o["count_chips"][o["fate"] == "delivered"].sum()),
            "chips_in_transit": int(o["count_chips"][o["fate"] == "in_transit"].sum()),
            "chips_held": int(o["count_chips"][held].sum()),
            "paid_usd": float(o["paid_usd"].sum()),
            "levy_paid_usd": float(sum(row[4] for row in sim.ledger if row[1] == "levy" and row[3] == n)),
            "levy_vendor_usd": float(o["levy_vendor_usd"][o["fate"] == "delivered"].sum()),
            "refund_usd": float(o["refund_usd"].sum()),
            "impairment_usd": float(o["impairment_usd"].sum()),
            "at_risk_usd": float(o["at_risk_usd"].sum()),
        }
    return out


def _summary(sim, tl, ledger, orders, us_share, windows) -> dict[str, Any]:
    f, D = sim.fleet, sim.n_days
    by_kind = {}
    for k in ("capex", "levy", "refund", "depreciation", "impairment", "power", "opex", "rental", "revenue",
              "offpeak"):
        by_kind[k] = float(ledger["amount_usd"][ledger["kind"] == k].sum())
    capex_total = by_kind["capex"] + by_kind["levy"] + by_kind["refund"]
    years = ledger["date"].astype("datetime64[Y]").astype(int) + 1970
    capex_mask = np.isin(ledger["kind"], ["capex", "levy", "refund"])
    capex_by_year = {str(y): float(ledger["amount_usd"][capex_mask & (years == y)].sum())
                     for y in range(f.start.year, (f.end - dt.timedelta(days=1)).year + 1)}
    demand = sim.demand_day
    unmet = sim.unmet_day
    served_mtok = float(sim.rec["served_tokens_per_s"].sum() * 86400 / 1e6)
    demand_mtok = float(demand.sum() * 86400 / 1e6)
    share_day = np.divide(unmet, demand, out=np.zeros(D), where=demand > 0)
    peak = int(np.argmax(share_day))
    last = tl["date"] == tl["date"].max()
    mix_end = {c: int(n) for c, n in zip(tl["chip"][last], tl["installed"][last])}
    energy_kwh = float(sim.rec["energy_mwh"].sum() * 1000)
    costs = by_kind["depreciation"] + by_kind["power"] + by_kind["opex"] + by_kind["rental"]
    fates = {k: int(np.sum(orders["count_chips"][orders["fate"] == k])) for k in
             ("delivered", "cancelled", "stranded", "in_transit")}
    rnd = lambda x, n=4: float(f"{x:.{n}g}") if x is not None and math.isfinite(x) else None
    out = {
        "start": str(f.start), "days": D, "planner": f.planner.kind,
        "budget_usd": f.budget.total_usd,
        "capex_usd_total": capex_total,
        "capex_usd_by_year": capex_by_year,
        "overrun_usd": max(0.0, capex_total - f.budget.total_usd),
        "ledger_usd_by_kind": by_kind,
        "fleet_mix_end": mix_end,
        "rented_end": {c: int(n) for c, n in zip(tl["chip"][last], tl["rented"][last])},
        "chips_by_fate": fates,
        "orders": len(orders["order_id"]),
        "demand_mtok": rnd(demand_mtok), "served_mtok": rnd(served_mtok),
        "unmet_demand_share": rnd(float(unmet.sum() / demand.sum()) if demand.sum() > 0 else 0.0, 3),
        "peak_unmet_share": rnd(float(share_day[peak]), 3),
        "peak_unmet_date": str(f.start + dt.timedelta(days=peak)),
        "cost_usd_per_mtok": rnd(costs / served_mtok if served_mtok > 0 else None, 3),
        "all_in_cost_usd_per_mtok": rnd((costs + by_kind["impairment"]) / served_mtok
                                        if served_mtok > 0 else None, 3),
        "cost_basis": dict(COST_BASIS),
        "impairment_usd": by_kind["impairment"],
        "at_risk_usd": float(orders["at_risk_usd"].sum()),
        "paid_in_transit_usd": float(orders["paid_usd"][orders["fate"] == "in_transit"].sum()),
        "deposits_usd": float(orders["deposit_usd"].sum()),
        "channels": _channels(sim, orders),
        "cash_cost_usd_per_mtok": rnd((capex_total + by_kind["power"] + by_kind["opex"] + by_kind["rental"])
                                      / served_mtok
                                      if served_mtok > 0 else None, 3),
        "energy_kwh_per_mtok": rnd(energy_kwh / served_mtok if served_mtok > 0 else None, 3),
        "energy_mwh_total": rnd(energy_kwh / 1000),
        "us_dependence_share_end": rnd(float(us_share[-1]), 3),
        "us_dependence_share_mean": rnd(float(us_share.mean()), 3),
        "crashes": sim.cohorts.counts["crashes"],
        "chips_lost": sim.cohorts.counts["lost"],
        "repair_queue_wait_days_mean": rnd(sim.cohorts.queue_wait_days / max(1, sim.cohorts.counts["repaired"] + sim.cohorts.counts["lost"]), 3),
        "capacity_source": sorted({c.source for c in sim.caps.values()}),
        "kernel_provenance": {c.pool: c.kernel_basis for c in sim.caps.values()},
        # catalog figures the run rests on that are placeholders (ASSUMPTION) or estimates
        "assumed_chip_figures": {c: list(getattr(sim.chips[c], "assumed", None) or [])
                                 for c in sim.chip_names if getattr(sim.chips[c], "assumed", None)},
        "estimated_chip_figures": {c: list(getattr(sim.chips[c], "estimated", None) or [])
                                   for c in sim.chip_names if getattr(sim.chips[c], "estimated", None)},
    }
    out.update(_token_economics(sim, served_mtok, costs, -by_kind["revenue"], -by_kind["offpeak"]))
    out.update(_flex(sim))
    if windows:
        att = np.array([a for a in windows["attainment"] if a is not None], dtype=float)
        out["windows"] = len(set(windows["window"]))
        out["window_attainment_mean"] = rnd(float(att.mean()), 3) if len(att) else None
        out.update(_worst_window(sim, windows))
    out.update(_budget_out(sim, ledger))
    return out


def _worst_window(sim, windows) -> dict[str, Any]:
    """The window (and chip kind) with the lowest SLO attainment, and how many windows missed
    their class's SLO percentile."""
    rows = [(a, str(d), c, w) for a, d, c, w in zip(windows["attainment"], windows["date"], windows["chip"],
                                                   windows["workload"]) if a is not None and a == a]
    if not rows:
        return {}
    need = {w: sim.serving.workloads[w].slo.percentile / 100.0 for w in sim.serving.workloads}
    worst = min(rows, key=lambda r: r[0])
    missed = {(r[1]) for r in rows if r[0] < need.get(r[3], 1.0)}
    return {"window_attainment_worst": float(f"{worst[0]:.3g}"), "window_worst_date": worst[1][:10],
            "window_worst_chip": worst[2], "windows_missed": len(missed)}


def _budget_out(sim, ledger) -> dict[str, Any]:
    """The day orders committed the whole budget (not one more chip fitted; None: never)."""
    d = sim.budget_out_day
    return {"budget_exhausted_on": None if d is None else str(sim.start + dt.timedelta(days=d))}


def _token_economics(sim, served_output_mtok: float, costs_usd: float, revenue_usd: float,
                     offpeak_usd: float = 0.0) -> dict[str, Any]:
    """Tokens served by type and, when priced, revenue by type, margin, and cost per Mtok of
    input and of output (costs split between them in proportion to revenue: the relative sales
    value method; the plain `cost_usd_per_mtok` charges every cost to output tokens)."""
    r = sim.rec
    mtok = lambda k: float(r[k].sum() * 86400 / 1e6)
    inp, hit = mtok("served_input_tokens_per_s"), mtok("served_cached_input_tokens_per_s")
    out: dict[str, Any] = {"served_input_mtok": float(f"{inp:.4g}"),
                           "served_input_cache_hit_mtok": float(f"{hit:.4g}")}
    if not sim.priced:
        return out
    by_type = {t: float(r[f"revenue_{t}_usd"].sum()) for t in ("output", "input_cache_hit", "input_cache_miss")}
    out["revenue_usd"] = revenue_usd
    out["revenue_usd_by_token_type"] = by_type
    out["margin_usd"] = revenue_usd + offpeak_usd - costs_usd  # off-peak work earns too
    if revenue_usd > 0:
        share_out = by_type["output"] / revenue_usd
        if served_output_mtok > 0:
            out["cost_usd_per_mtok_output"] = float(f"{costs_usd * share_out / served_output_mtok:.3g}")
        if inp > 0:
            out["cost_usd_per_mtok_input"] = float(f"{costs_usd * (1 - share_out) / inp:.3g}")
    return out


def _flex(sim) -> dict[str, Any]:
    """Hourly rentals against renting each day's peak for the whole day, and off-peak work."""
    r, out = sim.rec, {}
    if sim.elastic:
        chip_h = float(r["elastic_chip_hours"].sum())
        peak_h = float(r["elastic_peak_chips"].sum() * 24.0)  # each day's peak, held 24 hours
        out["elastic_chip_hours"] = chip_h
        out["elastic_peak_sized_chip_hours"] = peak_h
        out["elastic_saving_share"] = float(f"{1.0 - chip_h / peak_h:.3g}") if peak_h > 0 else 0.0
    if sim.fleet.offpeak is not None:
        out["offpeak_replica_hours"] = float(r["offpeak_replica_hours"].sum())
        out["offpeak_usd"] = float(r["offpeak_usd"].sum())
    return out


# -- what decided the result --------------------------------------------------------------
#: channel fields a cause rests on: flagged in the channel's `assumed`, the cause is an ASSUMPTION
CAUSE_FIELDS = {
    "channel_cap": ("cap_per_month", "cap_per_quarter"),
    "fab_output": ("fab", "fab.dies_per_quarter", "fab.yield_mean", "fab.yield_sd", "fab.buyer_share"),
    "regime_closed": ("initial_exporter", "initial_importer", "initial_state", "random_cycle", "events"),
    "min_order": ("min_order_chips",),
}
#: shortfall not explained by a plan: before the first orders could arrive, or above what was planned
LEAD = "lead_time"
ABOVE_PLAN = "demand_above_plan"
CAUSES_ALL = (*CAUSES, LEAD, ABOVE_PLAN)


def _assumed(sim, cause: str, channel: str) -> bool:
    if not channel or channel not in sim.fleet.channels:
        return False
    flagged = set(getattr(sim.fleet.channels[channel], "assumed", None) or [])
    return bool(flagged & set(CAUSE_FIELDS.get(cause, ())))


def _binding(sim) -> tuple[dict[str, Any], dict[tuple[str, str], float]]:
    """binding.parquet columns (a row per planning period x model x cause, `none` when the plan
    got all it wanted) and unmet demand (token/s-days) attributed to (cause, channel).

    Unmet demand on day d is explained by the last plan that could have delivered by d (placed at
    least the shortest mean lead time before): up to that plan's shortfall, split over its causes;
    the rest is demand above that plan (forecast error, failures, repairs). Days before any plan
    could deliver are `lead_time`. The parts add up to the unmet total by construction."""

    cols: dict[str, list] = {k: [] for k in (
        "date", "period", "model", "workloads", "cause", "channel", "chip", "pool", "assumption",
        "wanted_tokens_per_s", "ordered_tokens_per_s", "shortfall_tokens_per_s",
        "shadow_budget_usd_per_usd", "shadow_cap_usd_per_chip", "shadow_power_usd_per_mw")}
    per_model = {m: ",".join(c for c in sim.classes if sim.class_model[c] == m) for m in sim.models_used}

    def row(day, period, model, cause, ch, chip, pool, wanted, got, short, duals):
        nan = math.nan if not duals else 0.0  # NaN: the policy gives no shadow prices (rule planners)
        vals = (np.datetime64(sim.start + dt.timedelta(days=day), "D"), period, model, per_model.get(model, ""),
                cause, ch, chip, pool, _assumed(sim, cause, ch), wanted, got, short,
                duals.get("budget", nan), duals.get(f"cap:{ch}", nan) if ch else nan,
                duals["power"] * 1e6 if "power" in duals else nan)
        for k, v in zip(cols, vals):
            cols[k].append(v)

    plan_short = []
    for day, period, gaps, parts, duals in sim.plan_gaps:
        by = {}
        for pt in parts:
            by.setdefault(pt.model, []).append(pt)
        for model, (wanted, got) in sorted(gaps.items()):
            if model not in by:
                row(day, period, model, "none", "", "", "", wanted, got, 0.0, duals)
            for pt in by.get(model, []):
                row(day, period, model, pt.cause, pt.channel, pt.chip, pt.pool, wanted, got, pt.tokens_per_s, duals)
        plan_short.append((day, parts))
    cols["date"] = np.asarray(cols["date"], dtype="datetime64[D]")
    cols["period"] = np.asarray(cols["period"], dtype=np.int64)
    cols["assumption"] = np.asarray(cols["assumption"], dtype=bool)
    for k in ("wanted_tokens_per_s", "ordered_tokens_per_s", "shortfall_tokens_per_s",
              "shadow_budget_usd_per_usd", "shadow_cap_usd_per_chip", "shadow_power_usd_per_mw"):
        cols[k] = np.asarray(cols[k], dtype=float)
    buy = [c for c in sim.fleet.channels.values() if c.kind == "buy" and c.elastic is None]
    lead = int(math.ceil(min((mean_duration(c.lead_time_days) for c in buy), default=0.0)))
    out: dict[tuple[str, str], float] = {}
    plan_days = np.array([d for d, _ in plan_short], dtype=np.int64)
    for d in np.nonzero(sim.unmet_day > 0)[0]:
        u = float(sim.unmet_day[d])
        k = int(np.searchsorted(plan_days, d - lead, side="right")) - 1
        if k < 0:
            out[(LEAD, "")] = out.get((LEAD, ""), 0.0) + u
            continue
        parts = plan_short[k][1]
        tot = sum(p.tokens_per_s for p in parts)
        explained = min(u, tot)
        for p in parts:
            key = (p.cause, p.channel)
            out[key] = out.get(key, 0.0) + explained * p.tokens_per_s / tot
        if u > explained:
            out[(ABOVE_PLAN, "")] = out.get((ABOVE_PLAN, ""), 0.0) + u - explained
    return cols, out


def _decided(sim, summary, parts: dict[tuple[str, str], float], binding) -> dict[str, Any]:
    """Unmet demand by cause (shares of the unmet total), the budget's story, shadow prices."""
    total = float(sim.unmet_day.sum())
    causes = []
    for (cause, ch), v in sorted(parts.items(), key=lambda kv: (-kv[1], kv[0])):
        causes.append({"cause": cause, "channel": ch, "share": v / total if total > 0 else 0.0,
                       "unmet_mtok": v * 86400 / 1e6, "assumption": _assumed(sim, cause, ch)})
    flat = {f"unmet_cause_share_{c}": 0.0 for c in (*CAUSES_ALL,)}
    for c in causes:
        flat[f"unmet_cause_share_{c['cause']}"] += c["share"]
    b = np.isin(binding["cause"], ["budget_released", "budget_total"]) if len(binding["cause"]) else np.zeros(0, bool)
    first = str(binding["date"][b].min()) if b.any() else None
    return {
        "unmet_causes": causes,
        **flat,
        "budget_bound_periods": int(len(set(binding["period"][b].tolist()))) if b.any() else 0,
        "budget_first_bound_date": first,
        "budget_unspent_usd": max(0.0, sim.fleet.budget.total_usd - summary["capex_usd_total"]),
    }


def _console_extras(sim, orders, windows) -> dict[str, Any]:
    """Frozen and stranded orders (chips, USD); the windows' SLO lines are _worst_window's."""
    buys = [o for o in sim.orders if o.kind == "buy"]
    frozen = [o for o in buys if o.fate == "in_transit" and o.held_day >= 0]
    strand = [o for o in buys if o.fate == "stranded"]
    out: dict[str, Any] = {  # USD: the order's commitment (chips + levy + servers)
        "frozen_chips": int(sum(o.count for o in frozen)),
        "frozen_usd": float(sum(o.commitment_usd for o in frozen)),
        "frozen_paid_usd": float(sum(o.paid_usd for o in frozen)),
        "stranded_chips": int(sum(o.count for o in strand)),
        "stranded_usd": float(sum(o.commitment_usd for o in strand)),
    }
    return out


def mean_duration(dist) -> float:
    if getattr(dist, "kind", "") == "fixed":
        return float(dist.value)
    return float(dist.median * math.exp(dist.sigma ** 2 / 2))

