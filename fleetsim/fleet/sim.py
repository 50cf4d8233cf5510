"""The fleet simulation: years of demand, procurement, supply regimes, cohorts and money, one day
at a time, in one SimPy environment whose clock counts days.

Processes (each sleeps until its next event):
  `regime`    walks the dated transitions of every channel (start of a day, t = d);
  `removals`  forced removals of installed chips (t = d + 0.1);
  `planner`   every `period_days` (t = d + 0.25), and on the day a channel reopens: builds a
              PlanningState, asks the policy, places the orders it may (caps, budget, site),
              each order its own process;
  `order`     sleeps until its due day (t = d + 0.05, after the day's regime changes), waits
              while either side of its channel is closed (held; the buyer may cancel after its
              payment terms' limit), is delivered (becomes a cohort, the balance paid),
              cancelled or stranded (what was paid and not refunded is impaired);
  `day`       the cohort engine's daily step (t = d + 0.5): retirement, repairs, crashes at the
              day's load, then capacity, demand served, power, money; written into preallocated
              day x pool arrays.
Simulation code writes no files: `run_fleet` returns columns; fleetsim.results makes tables.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import simpy

from fleetsim.progress import run_env, update
from fleetsim.errors import ScenarioError
from fleetsim.forked import fork_map
from fleetsim.fleet import demand as dem
from fleetsim.fleet.capacity import ReplicaCapacity
from fleetsim.fleet.elastic import ElasticRentals
from fleetsim.fleet.planner import (added_tokens_per_s, ChannelState, OfferState, OrderRequest, PlanningState,
                                    PoolState, explain_shortfall, make_planner)
from fleetsim.fleet.records import FleetResult, build_result, mean_duration as _mean_duration  # FleetResult: re-exported here
from fleetsim.fleet.regime import (EXPORTER_CODE, IMPORTER_CODE, STATE_CODE, build_transitions,
                                   combined_state, ships)
from fleetsim.reliability.cohort import CohortFleet, resolve_chip
from fleetsim.reliability.repair import sample_duration
from fleetsim.fleet.tokens import base_tokens_per_s, class_tokens, per_type_matrix, priced
from fleetsim.rng import stream
from fleetsim.scenario.fleet import FleetConfig, quarter_start
from fleetsim.scenario.reliability import FixedDuration, ReliabilityConfig

FATES = ("in_transit", "delivered", "cancelled", "stranded")
# The planner prices a chip's lifetime power at this share of its power at goodput above idle
# (a fleet sized for the diurnal peak with headroom runs well below goodput on average).
PLANNING_LOAD = 0.7
#: an order due on day d arrives at d + ORDER_AT: after the regime changes of the day (t = d)
ORDER_AT = 0.05


@dataclass
class Order:
    order_id: int
    ordered_day: int
    channel: str
    chip: str
    pool: str
    count: int
    price_usd_per_chip: float
    levy_usd_per_chip: float
    overhead_usd_per_chip: float
    due_day: int
    fate: str = "in_transit"
    delivered_day: int = -1
    cancelled_day: int = -1   # cancelled or stranded on
    refund_usd: float = 0.0
    paid_usd: float = 0.0     # capex + levy paid so far (deposit, then the balance at delivery)
    deposit_usd: float = 0.0  # paid at order
    impairment_usd: float = 0.0  # paid, not refunded, for chips that will never arrive
    held_day: int = -1        # first day due but held by a closed side
    levy_vendor_usd_per_chip: float = 0.0  # levy and fee the vendor absorbs (not paid by the buyer)
    kind: str = "buy"         # buy | rent
    price_usd_per_chip_hour: float = 0.0  # rent: all-in hourly price x (1 + levy)
    term_days: int = 0        # rent: serving days from delivery, then returned
    key: tuple = ()           # its name in the random streams (lead time; its cohort's crashes)

    @property
    def end_day(self) -> int:
        """Rent: first day the chips are back with the provider (-1 until delivered)."""
        return self.delivered_day + self.term_days if self.delivered_day >= 0 else -1

    @property
    def commitment_usd(self) -> float:
        if self.kind == "rent":
            return 0.0
        return self.count * (self.price_usd_per_chip + self.levy_usd_per_chip + self.overhead_usd_per_chip)


class _Channel:
    """A supply channel's runtime state: both sides' regime, levy, caps used, orders waiting."""

    def __init__(self, env, name, cfg, idx, fleet: FleetConfig, rng) -> None:
        self.env, self.name, self.cfg, self.idx = env, name, cfg, idx
        self.exporter, self.importer = cfg.initial_exporter, cfg.initial_importer
        self.compliance = cfg.compliance_share
        self.levy = cfg.levy
        self.fee = cfg.fee_usd_per_chip
        self.incidence = cfg.levy_incidence
        if cfg.payment is not None:
            self.deposit_share = cfg.payment.deposit_share
        else:
            self.deposit_share = 1.0 if fleet.finance.capex_at == "order" else 0.0
        self.cap_month = cfg.cap_per_month
        self.extra_lead = 0.0
        self.pending: list[Order] = []
        self.reopened = env.event()
        self.used: dict[tuple, float] = {}
        self.fleet = fleet
        self.quarter_cap: dict[tuple[int, int], float] = {}
        if cfg.fab is not None:  # one yield draw per quarter of the horizon, fixed up front
            self.quarter_cap = _fab_caps(cfg.fab, fleet, rng)
        elif cfg.cap_per_quarter:
            self.quarter_cap = _step_quarters(cfg.cap_per_quarter, fleet)

    def period_key(self, d: dt.date) -> tuple:
        if self.quarter_cap and self.cap_month is None:
            return ("q", d.year, (d.month - 1) // 3)
        return ("m", d.year, d.month)

    def cap_left(self, d: dt.date) -> float:
        key = self.period_key(d)
        if key[0] == "m":
            cap = math.inf if self.cap_month is None else self.cap_month
        else:
            cap = self.quarter_cap.get((key[1], key[2]), 0.0)
        return max(0.0, cap - self.used.get(key, 0.0))

    def use(self, d: dt.date, chips: float) -> None:
        key = self.period_key(d)
        self.used[key] = self.used.get(key, 0.0) + chips

    def offers_on(self, d: dt.date):
        return [o for o in self.cfg.offers
                if (o.from_date is None or o.from_date <= d) and (o.until_date is None or d <= o.until_date)]

    @property
    def state(self) -> str:
        """Combined state (fleetsim.fleet.regime.STATES): what the planner sees."""
        return combined_state(self.exporter, self.importer)

    @property
    def ships(self) -> bool:
        return ships(self.exporter, self.importer)

    def set_sides(self, exporter: str | None, importer: str | None) -> bool:
        """Change either side; wakes the orders it held when both sides open again. True then."""
        was = self.ships
        self.exporter = exporter or self.exporter
        self.importer = importer or self.importer
        if self.ships and not was:
            ev, self.reopened = self.reopened, self.env.event()
            ev.succeed()
            return True
        return False

    def buyer_levy(self, price: float, fee: bool = True) -> float:
        """Levy and fee per chip the buyer pays (its incidence share); the vendor absorbs the rest.
        fee False: the levy alone (on a rental's hourly price; the per-chip fee is a sale's)."""
        return self.incidence * (price * self.levy + (self.fee if fee else 0.0))

    def admit(self, count: float, d: dt.date) -> int:
        """Chips of a planned order the buyer places: within the cap, less its compliance share
        while the importer side discourages buying."""
        n = min(count, self.cap_left(d))
        if self.importer == "discouraged":
            n *= 1.0 - self.compliance
        return int(n)


def _change(tr) -> str:
    """What a transition changes, first in its event's detail (the label on the plots' time axes):
    the exporter side's new state, `importer <state>`, or the levy, fee, cap or a note."""
    if tr.exporter is not None and tr.importer is not None:
        return tr.exporter if tr.exporter == tr.importer else f"{tr.exporter}, importer {tr.importer}"
    if tr.exporter is not None:
        return tr.exporter
    if tr.importer is not None:
        return f"importer {tr.importer}"
    for label, v in (("levy", tr.levy), ("fee USD/chip", tr.fee_usd_per_chip), ("cap/month", tr.cap_per_month),
                     ("extra lead days", tr.extra_lead_days), ("remove share", tr.remove_share)):
        if v is not None:
            return f"{label} {v:g}"
    return "note"


def _step_quarters(table: dict[str, float], fleet: FleetConfig) -> dict[tuple[int, int], float]:
    pts = sorted((quarter_start(q), v) for q, v in table.items())
    out = {}
    d = dt.date(fleet.start.year, 3 * ((fleet.start.month - 1) // 3) + 1, 1)
    while d < fleet.end:
        val = 0.0
        for qd, v in pts:
            if qd <= d:
                val = v
        out[d.year, (d.month - 1) // 3] = val
        d = dt.date(d.year + (d.month + 2) // 12, (d.month + 2) % 12 + 1, 1)
    return out


def _fab_caps(fab, fleet: FleetConfig, rng) -> dict[tuple[int, int], float]:
    dies = _step_quarters(fab.dies_per_quarter, fleet)
    keys = sorted(dies)
    y = np.clip(fab.yield_mean + fab.yield_sd * rng.standard_normal(len(keys)), 0.0, 1.0)
    return {k: math.floor(dies[k] * yi * fab.buyer_share) for k, yi in zip(keys, y)}


def _offer_price(offer, chip_spec, d: dt.date, start: dt.date) -> float:
    if offer.price_table:
        price = None
        for td, p in sorted(offer.price_table.items()):
            if td <= d:
                price = p
        if price is not None:
            return float(price)
    base = offer.price_usd if offer.price_usd is not None else getattr(chip_spec, "price_usd", None)
    if base is None:
        raise ScenarioError(f"chip '{offer.chip}' has no catalog price: give price_usd",
                            field="fleet.channels")
    return float(base) * (1.0 - offer.price_decline_per_year) ** ((d - start).days / 365.0)


def offer_pool(scenario, offer) -> str:
    """The pool (replica type) an offer's chips are bought for."""
    if offer.pool is not None:
        return offer.pool
    for name, pool in scenario.serving.pools.items():
        if pool.chip == offer.chip:
            return name
    raise ScenarioError(f"no serving pool uses chip '{offer.chip}'", field="fleet.channels")


def run_fleet(scenario, chips: dict, models: dict, caps: dict[tuple[str, str], ReplicaCapacity],
              progress: Callable[[str], None] | None = None, window_runner=None,
              caps_grid: dict | None = None, seed: int | None = None) -> FleetResult:
    """Simulate `scenario.fleet` day by day; returns columns and the summary. `caps_grid`
    (fleetsim.fleet.capacity.seasonal_capacities): capacity at the coolest, mean and warmest
    inlet of seasonal halls, interpolated day by day. `seed`: the root of this future's streams
    (fleetsim.fleet.futures passes one per future; default the fleet seed)."""
    sim = _FleetSim(scenario, chips, models, caps, window_runner, seed)
    sim.caps_grid = caps_grid or {}
    return sim.run(progress)


class _FleetSim:
    def __init__(self, scenario, chips, models, caps, window_runner, seed: int | None = None) -> None:
        self.sc, self.chips, self.models, self.caps = scenario, chips, models, caps
        self.future_seed = seed
        self.fleet: FleetConfig = scenario.fleet
        self.serving = scenario.serving
        self.window_runner = window_runner
        f = self.fleet
        self.n_days = f.days
        self.start = f.start
        self.rel = scenario.reliability or ReliabilityConfig()
        self.sf = self.rel.repair.spare_fraction
        self.pool_names = list(self.serving.pools)
        self.pool_ix = {p: i for i, p in enumerate(self.pool_names)}
        self.pools = [self.serving.pools[p] for p in self.pool_names]
        self.chip_names = sorted({p.chip for p in self.pools})
        self.chip_ix = {c: i for i, c in enumerate(self.chip_names)}
        self.pool_chip = np.array([self.chip_ix[p.chip] for p in self.pools])
        self.tp = np.array([p.tp for p in self.pools], dtype=float)
        self.classes = list(f.demand)
        self.class_model = {c: self.serving.workloads[c].model for c in self.classes}
        self.models_used = sorted({self.class_model[c] for c in self.classes})
        self.channel_names = sorted(f.channels)
        # prefill/decode types: (prefill pool, decode pool) index pairs; a pair serves the lesser
        # of its two sides (each side's rate is per instance of its role)
        from fleetsim.fleet.capacity import role_partners
        partner = role_partners(self.serving)
        self._partner = partner
        self.pairs = [(self.pool_ix[a], self.pool_ix[b]) for a, b in partner.items()
                      if self.serving.pools[a].role == "prefill"]
        if self.pairs and (f.offpeak is not None or any(c.elastic for c in f.channels.values())):
            raise ScenarioError("hourly rentals and off-peak work are not yet modelled for "
                                f"prefill/decode pools ({', '.join(sorted(partner))}): drop fleet.offpeak "
                                "and elastic channels, or use colocated pools", field="fleet")
        self.channel_us = np.array([bool(f.channels[c].us_controlled) for c in self.channel_names])

    # -- set-up ---------------------------------------------------------------------------
    def _setup(self) -> None:
        f = self.fleet
        seed = self.future_seed if self.future_seed is not None else (f.seed if f.seed is not None else self.sc.seed)
        self.seed = seed
        self.env = simpy.Environment()
        self.channels = {n: _Channel(self.env, n, f.channels[n], i, f, stream(seed, "fleet", "fab", n))
                         for i, n in enumerate(self.channel_names)}
        # demand: forecast beyond the horizon, so the planner can look ahead
        ext = self.n_days + 3 * 366 + 30
        self.tokens = class_tokens(self.sc)
        self.fc = np.array([dem.forecast(f.demand[c], f, ext, base_tokens_per_s(f.demand[c], self.tokens[c]))
                            for c in self.classes])
        self.priced = priced(self.sc)
        self.usd_per_out_mtok = per_type_matrix(self.tokens, self.classes)  # class x token type
        self.in_per_out = np.array([self.tokens[c].input_per_output for c in self.classes])
        self.hit_share = np.array([self.tokens[c].cache_hit_share for c in self.classes])
        self.real = np.array([dem.realised(f.demand[c], self.fc[i, : self.n_days],
                                           stream(seed, "fleet", "demand", c))
                              for i, c in enumerate(self.classes)])
        self.ptm = np.array([f.demand[c].peak_to_mean for c in self.classes])
        self.prof = np.array([dem.diurnal(f.demand[c].peak_to_mean, f.demand[c].peak_hour)
                              for c in self.classes])  # class x 24
        # capacity per pool and class (tokens/s per replica, goodput and effective)
        self.k = np.zeros((len(self.pools), len(self.classes)))
        self.k_eff = np.zeros_like(self.k)
        self.p_g = np.zeros(len(self.pools))  # W per replica at goodput load
        for pi, pn in enumerate(self.pool_names):
            watts = []
            for ci, cn in enumerate(self.classes):
                c = self.caps.get((pn, cn))
                if c is not None:
                    self.k[pi, ci], self.k_eff[pi, ci] = c.tokens_per_s, c.effective_tokens_per_s
                    watts.append(c.power_w_per_replica)
            self.p_g[pi] = max(watts) if watts else 0.0
        self._seasonal_setup()
        self.params = [resolve_chip(self.rel, p.chip, self.chips) for p in self.pools]
        self.idle_w = np.array([pr.idle_w for pr in self.params]) * self.tp
        dyn = np.array([pr.dynamic_w for pr in self.params]) * self.tp
        self.u_g = np.clip((self.p_g - self.idle_w) / np.maximum(dyn, 1e-9), 0.0, 1.0)
        self.tdp_w = np.array([float(getattr(self.chips[p.chip], "tdp_w", None) or 400.0) for p in self.pools])
        halls = [self.rel.halls.get(p.hall, self.rel.halls["default"]) for p in self.pools]
        # every stream named by purpose and owner, never by position: cycles per channel and
        # side, crashes per cohort and lead times per order (both by the order's key: channel,
        # pool, day ordered and its number among that day's orders there), so adding a channel,
        # a pool or an order elsewhere leaves every other stream's draws unchanged
        self.cohorts = CohortFleet(self.pool_names, self.params, halls, self.rel.repair,
                                   stream(seed, "fleet", "repair"),
                                   cohort_rng=lambda key: stream(seed, "fleet", "crashes", *key))
        self.transitions = build_transitions(f, stream(seed, "fleet", "regime"),
                                             lambda n, side: stream(seed, "fleet", "regime", n, side),
                                             lambda *key: stream(seed, "fleet", "event", *key))
        self._order_seq: dict[tuple, int] = {}
        self.planner = make_planner(f.planner)
        self.orders: list[Order] = []
        self.ledger: list[tuple] = []   # (day, kind, chip, channel, amount)
        self.events: list[tuple] = []   # (day, kind, channel, chip, pool, count, detail)
        self.committed = 0.0
        self.budget_out_day: int | None = None
        self.life_days = int(round(f.finance.life_years * 365))
        # per pool order counters (cumulative chips)
        npl = len(self.pools)
        self.ordered_c = np.zeros(npl)
        self.cancelled_c = np.zeros(npl)
        self.stranded_c = np.zeros(npl)
        self.on_order = np.zeros(npl)
        self.capex_day = np.zeros((self.n_days, npl))
        D = self.n_days
        self.rec = {k: np.zeros((D, npl)) for k in (
            "installed", "active", "in_repair", "lost", "retired", "removed", "delivered", "ordered",
            "cancelled", "stranded", "on_order", "commissioning", "replicas_up", "capacity_tokens_per_s",
            "served_tokens_per_s", "power_mw", "energy_mwh", "power_usd", "other_opex_usd",
            "depreciation_usd", "revenue_usd", "us_capacity_tokens_per_s", "crashes", "utilisation",
            "rented", "rent_on_order", "rent_returned", "rental_usd", "served_input_tokens_per_s",
            "served_cached_input_tokens_per_s", "revenue_output_usd", "revenue_input_cache_hit_usd",
            "revenue_input_cache_miss_usd", "elastic_chip_hours", "elastic_peak_chips", "elastic_w",
            "offpeak_replica_hours", "offpeak_usd")}
        self.elastic = ElasticRentals(self, offer_pool)
        self.hourly: list[tuple] = []   # (day, hour, pool, demand, capacity, served, owned, elastic, offpeak)
        self._hourly_days = self._sampled_days()
        # rentals: chips, USD/day and US-controlled chips starting (+) and ending (-) per day
        self.rent_delta = np.zeros((D + 1, npl))
        self.rent_usd_delta = np.zeros((D + 1, npl))
        self.rent_us_delta = np.zeros((D + 1, npl))
        self.rent_ret_delta = np.zeros((D + 1, npl))
        self.rented_now = np.zeros(npl)
        self.rent_usd_now = np.zeros(npl)
        self.rent_us_now = np.zeros(npl)
        self.rent_ret_now = np.zeros(npl)
        self.rent_on_order = np.zeros(npl)
        self.demand_day = np.zeros(D)
        self.unmet_day = np.zeros(D)
        self.regime_day = np.zeros((D, len(self.channel_names)), dtype=np.int8)
        self.side_day = np.zeros((D, len(self.channel_names), 2), dtype=np.int8)  # exporter, importer
        self.x_prev = np.full(npl, 0.5)
        self.window_days = self._window_days()
        self.window_snaps: list[dict] = []
        self.planner_calls = 0
        self.plan_gaps: list[tuple] = []  # (day, period, {model: (wanted, ordered)}, [Shortfall], duals)
        self.released = self._budget_release()
        self.dep_rate = np.zeros(0)

    def _seasonal_setup(self) -> None:
        """Each pool's hall inlet day by day, and capacity interpolated between the inlets of
        `caps_grid`; the planner sizes with the warmest point (the hall's worst day)."""
        from fleetsim.reliability.thermal import seasonal_ambient_c

        days = np.arange(self.n_days)
        doy = np.array([(self.start + dt.timedelta(days=int(d))).timetuple().tm_yday for d in days])
        halls = [self.rel.halls.get(p.hall, self.rel.halls["default"]) for p in self.pools]
        self.amb_day = np.stack([seasonal_ambient_c(h, doy) for h in halls], axis=1) if self.pools else np.zeros((self.n_days, 0))
        self.seasonal = bool(getattr(self, "caps_grid", None))
        if not self.seasonal:
            return
        npl, ncl = len(self.pools), len(self.classes)
        self.grid_amb = np.zeros((npl, 3))
        self.grid_k = np.repeat(self.k[:, :, None], 3, axis=2)
        for (pn, cn), pts in self.caps_grid.items():
            pi, ci = self.pool_ix[pn], self.classes.index(cn) if cn in self.classes else None
            if ci is None:
                continue
            pts = sorted(pts, key=lambda t: t[0])
            self.grid_amb[pi] = [a for a, _ in pts]
            self.grid_k[pi, ci] = [c.tokens_per_s for _, c in pts]
            self.k_eff[pi, ci] = min(c.effective_tokens_per_s for _, c in pts)  # plan for the worst day
        for pi in range(npl):
            if not self.grid_amb[pi].any():
                self.grid_amb[pi] = self.amb_day[0, pi] + np.array([-1.0, 0.0, 1.0])  # flat: no grid

    def _k_on(self, day: int) -> np.ndarray:
        """Tokens/s per replica and class on `day` (the hall's inlet that day, interpolated)."""
        if not self.seasonal:
            return self.k
        if getattr(self, "_k_day", None) is not None:
            return self._k_day[day]
        out = np.empty_like(self.k)
        for pi in range(len(self.pools)):
            a = self.amb_day[day, pi]
            for ci in range(self.k.shape[1]):
                out[pi, ci] = np.interp(a, self.grid_amb[pi], self.grid_k[pi, ci])
        return out

    def _sampled_days(self) -> set[int]:
        """Days whose hours go to hourly.parquet: the first of each month, when anything flexes."""
        if self.fleet.offpeak is None and not any(c.elastic for c in self.fleet.channels.values()):
            return set()
        out, d = set(), self.start
        while d < self.fleet.end:
            out.add((d - self.start).days)
            d = dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        return out

    def _budget_release(self) -> np.ndarray:
        """Cumulative capex budget released by each day (a year's share at its first day)."""
        b = self.fleet.budget
        years = int(math.ceil(self.fleet.years - 1e-9))
        shares = [1.0 / years] * years if b.schedule == "even" else list(b.schedule)
        rel = np.zeros(self.n_days)
        for y in range(years):
            rel[min(self.n_days, y * 365):] += shares[y] * b.total_usd if y < len(shares) else 0.0
        return rel

    def _window_days(self) -> list[int]:
        w = self.fleet.windows
        if not w.enabled or not self.window_runner:
            return []
        days = list(range(w.every_days - 1, self.n_days, w.every_days))
        return days[: w.max_windows] if w.max_windows is not None else days

    # -- processes ------------------------------------------------------------------------
    def _regime(self):
        env = self.env
        for tr in self.transitions:
            if tr.day > env.now:
                yield env.timeout(tr.day - env.now)
            ch = self.channels[tr.channel]
            if not getattr(tr, "happened", True):  # a scripted event with a probability, drawn not to happen
                self.events.append((tr.day, "event_not_drawn", ch.name, "", "", 0,
                                    f"did not happen (probability {tr.probability:g}): {tr.note}".strip()))
                continue
            for attr, val in (("levy", tr.levy), ("fee", tr.fee_usd_per_chip), ("cap_month", tr.cap_per_month),
                              ("extra_lead", tr.extra_lead_days), ("compliance", tr.compliance_share)):
                if val is not None:
                    setattr(ch, attr, val)
            newly_banned = tr.exporter == "banned" and ch.exporter != "banned"
            was_open = ch.state == "open"
            if ch.set_sides(tr.exporter, tr.importer) or (was_open and ch.state != "open"):
                env.process(self._replan(tr.day))  # reopened: order there; closed: order elsewhere
            if newly_banned:
                self._ban(ch, tr.day)
            self.events.append((tr.day, "regime_change", ch.name, "", "", 0,
                                f"{_change(tr)}; {self._sides_text(ch)}; {tr.origin}: {tr.note}".strip()))
            if tr.remove_share:
                self._remove_from(ch, tr.day, tr.remove_share, tr.note)

    def _sides_text(self, ch: _Channel) -> str:
        exp = f"exporter {ch.exporter} (levy {ch.levy:g}"
        exp += f", fee USD {ch.fee:g}/chip" if ch.fee else ""
        exp += f", cap {ch.cap_month:g}/month" if ch.cap_month is not None else ""
        imp = f"importer {ch.importer}" + (f" (compliance {ch.compliance:g})" if ch.importer == "discouraged" else "")
        return f"{exp}); {imp}"

    def _remove_from(self, ch: _Channel, day: int, share: float, note: str) -> None:
        """Importer side: a forced removal of `share` of the chips installed from this channel."""
        co = self.cohorts
        if co.n == 0:
            return
        out = co.remove_share(co.view("channel") == ch.idx, share)
        for pi in range(len(self.pools)):
            n = int(out[co.view("pool") == pi].sum())
            if n:
                self.events.append((day, "removal", ch.name, self.pools[pi].chip, self.pool_names[pi], n, note))

    def _ban(self, ch: _Channel, day: int) -> None:
        """Orders still in transit when the exporter bans: cancelled (the refund share of what was
        paid comes back) or stranded; what was paid and not refunded is impaired."""
        for o in list(ch.pending):
            pi = self.pool_ix[o.pool]
            o.cancelled_day = day
            if o.kind == "rent":  # nothing paid before delivery: cancelled, nothing to refund
                self.rent_on_order[pi] -= o.count
                o.fate = "cancelled" if ch.cfg.on_ban == "cancel" else "stranded"
                self.events.append((day, "cancel" if o.fate == "cancelled" else "strand", ch.name, o.chip,
                                    o.pool, o.count, f"rental {o.order_id}"))
                continue
            refund = ch.cfg.refund_share if ch.cfg.on_ban == "cancel" else 0.0
            self._write_off(o, ch, day, "cancelled" if ch.cfg.on_ban == "cancel" else "stranded", refund)
            self.events.append((day, "cancel" if o.fate == "cancelled" else "strand", ch.name, o.chip,
                                o.pool, o.count, f"order {o.order_id}: paid USD {o.paid_usd:,.0f}, refunded "
                                f"{o.refund_usd:,.0f}, impaired {o.impairment_usd:,.0f}"))
        ch.pending.clear()

    def _write_off(self, o: Order, ch: _Channel, day: int, fate: str, refund_share: float) -> None:
        """An order that will never arrive: the unpaid balance leaves the commitments, the refund
        share of what was paid comes back, the rest is an impairment (ledger kind `impairment`)."""
        pi = self.pool_ix[o.pool]
        o.fate, o.cancelled_day = fate, day
        self.on_order[pi] -= o.count
        (self.cancelled_c if fate == "cancelled" else self.stranded_c)[pi] += o.count
        o.refund_usd = refund_share * o.paid_usd
        o.impairment_usd = o.paid_usd - o.refund_usd
        self._pay(day, "refund", o.chip, ch.name, -o.refund_usd, pi, o.order_id)
        self._pay(day, "impairment", o.chip, ch.name, o.impairment_usd, pi, o.order_id)
        self.committed -= o.commitment_usd - o.paid_usd + o.refund_usd

    def _removals(self):
        env = self.env
        for rm in sorted(self.fleet.removals, key=lambda r: r.date):
            day = (rm.date - self.start).days
            if day + 0.1 > env.now:
                yield env.timeout(day + 0.1 - env.now)
            co = self.cohorts
            if co.n == 0:
                continue
            if rm.chips is None:
                mask = self.channel_us[co.view("channel")]
            else:
                want = {self.chip_ix[c] for c in rm.chips if c in self.chip_ix}
                mask = np.isin(self.pool_chip[co.view("pool")], list(want))
            out = co.remove_share(mask, rm.share)
            for pi in range(len(self.pools)):
                n = int(out[co.view("pool") == pi].sum())
                if n:
                    self.events.append((day, "removal", "", self.pools[pi].chip, self.pool_names[pi], n,
                                        rm.note))

    def _pay(self, day: int, kind: str, chip: str, channel: str, amount: float, pi: int,
             order_id: int = -1) -> None:
        if amount == 0:
            return
        self.ledger.append((day, kind, chip, channel, amount, order_id))
        if kind in ("capex", "levy", "refund") and 0 <= day < self.n_days:
            self.capex_day[day, pi] += amount

    def _planner(self):
        env, per = self.env, self.fleet.planner.period_days
        day = 0
        while day < self.n_days:
            if day + 0.25 > env.now:
                yield env.timeout(day + 0.25 - env.now)
            self._plan(day)
            day += per

    def _replan(self, day: int):
        yield self.env.timeout(day + 0.25 - self.env.now)
        self._plan(day)

    def _plan(self, day: int) -> None:
        f, fin = self.fleet, self.fleet.finance
        today = self.start + dt.timedelta(days=day)
        per = f.planner.period_days
        horizon = getattr(f.planner, "horizon_days", per * getattr(f.planner, "horizon_periods", 6))
        n_per = int(math.ceil((horizon + 400) / per)) + 2
        fc_peak: dict[str, list[float]] = {}
        for ci, c in enumerate(self.classes):
            seg = self.fc[ci, day: day + n_per * per] * self.prof[ci].max()
            pad = n_per * per - len(seg)
            if pad > 0:
                seg = np.concatenate((seg, np.full(pad, seg[-1])))
            fc_peak[c] = seg.reshape(n_per, per).max(axis=1).tolist()
        co = self.cohorts
        alive = (co.view("retire_day") > day + 60)  # chips retiring within ~2 months not counted
        # capacity is chips in service, as the daily step counts it: spares cover chips in repair
        # up to the spare share, beyond it a chip waiting for repair serves nothing (the state's
        # tokens per replica already take the spare share out, hence the division)
        pool_ix, act = co.view("pool")[alive], co.view("active")[alive]
        inst = np.minimum(np.bincount(pool_ix, weights=act + co.view("in_repair")[alive], minlength=len(self.pools)),
                          np.bincount(pool_ix, weights=act, minlength=len(self.pools)) / max(1e-9, 1.0 - self.sf))
        share = self._class_share(day)
        # rentals: running (still there on the next planning day) and on order
        rentals, rent_next = [], np.zeros(len(self.pools))
        for o in self.orders:
            if o.kind != "rent" or o.fate not in ("in_transit", "delivered"):
                continue
            first = o.delivered_day if o.fate == "delivered" else max(o.due_day, day)
            last = first + o.term_days
            if last <= day:
                continue
            rentals.append((o.pool, first - day, last - day, o.count))
            if last > day + per:
                rent_next[self.pool_ix[o.pool]] += o.count
        pools = {}
        for pi, pn in enumerate(self.pool_names):
            p = self.pools[pi]
            kmix = self._mix(pi, self.k_eff, share) * (1.0 - self.sf)
            pools[pn] = PoolState(pn, p.chip, p.model, p.tp, inst[pi] / p.tp, self.on_order[pi] / p.tp,
                                  kmix, self.tdp_w[pi] * p.tp * fin.pue / 1e6,
                                  {c: self.caps.get((pn, c)) for c in self.classes},
                                  rented_replicas=rent_next[pi] / p.tp, role=p.role,
                                  partner=self._partner.get(pn, ""))
        chans = {}
        for n, ch in self.channels.items():
            if ch.cfg.elastic is not None:
                continue  # rents hour by hour in the daily step, not planned ahead
            offers = []
            for off in ch.offers_on(today):
                pn = offer_pool(self.sc, off)
                pi = self.pool_ix[pn]
                if ch.cfg.kind == "rent":
                    offers.append(OfferState(off.chip, pn, 0.0, 0.0, 0.0, 0.0,
                                             rent_usd_per_chip_hour=float(off.price_usd_per_chip_hour)))
                    continue
                price = _offer_price(off, self.chips[off.chip], today, self.start)
                life_h = fin.life_years * 8766.0
                pw = (self.idle_w[pi] + (self.p_g[pi] - self.idle_w[pi]) * PLANNING_LOAD) / self.tp[pi]
                opex = (pw / 1000.0 * life_h * fin.pue * fin.power_usd_per_kwh * self._subsidy(off.chip, day)
                        + fin.other_opex_usd_per_chip_year * fin.life_years)
                offers.append(OfferState(off.chip, pn, price, ch.buyer_levy(price),
                                         fin.server_overhead_usd_per_node / fin.chips_per_node, opex))
            lead = _mean_duration(ch.cfg.lead_time_days) + ch.extra_lead
            chans[n] = ChannelState(n, ch.state, self._us_supplied(ch.cfg), ch.levy, lead, ch.cap_left(today),
                                    ch.cfg.min_order_chips, ch.cfg.risk_per_year, offers,
                                    kind=ch.cfg.kind, min_term_days=ch.cfg.min_term_days,
                                    exporter_state=ch.exporter, importer_state=ch.importer)
        released = self.released[day]
        allow = f.budget.overrun == "allow"
        installed_chips = float((co.view("active") + co.view("in_repair")).sum()) + float(self.on_order.sum())
        power_used = float(((np.bincount(co.view("pool"), weights=co.view("active") + co.view("in_repair"),
                                         minlength=len(self.pools)) + self.on_order) * self.tdp_w).sum()
                           ) * fin.pue / 1e6
        site = f.site
        state = PlanningState(
            today=today, period=self.planner_calls, period_days=per, forecast_peak_tokens_per_s=fc_peak,
            class_model=self.class_model, pools=pools, channels=chans,
            budget_left_usd=math.inf if allow else released - self.committed,
            budget_total_left_usd=f.budget.total_usd - self.committed, overrun_allowed=allow,
            site_power_mw_left=math.inf if site.power_mw is None else site.power_mw - power_used,
            site_chips_left=math.inf if site.racks is None else site.racks * site.chips_per_rack - installed_chips,
            life_years=fin.life_years, horizon_days=horizon, headroom=getattr(f.planner, "headroom", 0.0),
            scenario=self.sc, rentals=rentals, spare_fraction=self.sf,
            realised_transitions=self.transitions, realised_peak_tokens_per_s=self._oracle_peaks(day, n_per, per))
        self.planner_calls += 1
        n0, usd0 = len(self.orders), self.committed
        for req in self.planner.plan(state):
            self._place(day, today, req, chans, state)
        self._explain(day, state, self.orders[n0:], self.committed - usd0)

    def _oracle_peaks(self, day: int, n_per: int, per: int) -> dict[str, list[float]] | None:
        """The realised diurnal peak per future period (planner `knows: oracle` only; past the
        horizon the forecast scaled by the last realised day's ratio to it)."""
        if getattr(self.fleet.planner, "knows", None) != "oracle":
            return None
        out = {}
        for ci, c in enumerate(self.classes):
            seg = self.real[ci, day: day + n_per * per]
            pad = n_per * per - len(seg)
            if pad > 0:
                ratio = self.real[ci, -1] / max(self.fc[ci, self.n_days - 1], 1e-12)
                seg = np.concatenate((seg, self.fc[ci, day + len(seg): day + n_per * per] * ratio))
            if len(seg) < n_per * per:  # looking past the forecast too (a long horizon's last plans): flat
                seg = np.concatenate((seg, np.full(n_per * per - len(seg), seg[-1])))
            out[c] = (seg * self.prof[ci].max()).reshape(n_per, per).max(axis=1).tolist()
        return out

    def _explain(self, day: int, state: PlanningState, placed: list, committed_usd: float) -> None:
        """Record what the plan wanted, what it could order and what kept it from the rest."""
        got: dict[str, float] = {}
        used_cap: dict[str, float] = {}
        mw = chips = 0.0
        for o in placed:
            p = state.pools[o.pool]
            if not self.pairs:
                got[p.model] = got.get(p.model, 0.0) + o.count / p.tp * p.tokens_per_s_per_replica
            used_cap[o.channel] = used_cap.get(o.channel, 0.0) + o.count
            if o.kind != "rent":
                mw += o.count * p.power_mw_per_replica / p.tp
                chips += o.count
        if self.pairs:  # a prefill/decode pair adds what its lesser side gains
            got = added_tokens_per_s(state, placed)
        fab = {n for n, ch in self.channels.items() if ch.cfg.fab is not None}
        gaps, parts = explain_shortfall(state, got, committed_usd, mw, chips, used_cap, fab)
        shadow = dict(getattr(self.planner, "last_shadow_prices", None) or {})  # optimal planner only
        self.plan_gaps.append((day, state.period, gaps, parts, shadow))

    def _place(self, day: int, today: dt.date, req: OrderRequest, chans, state: PlanningState) -> None:
        """Check a policy's order against the rules (the policy cannot break them), then place it."""
        ch = self.channels.get(req.channel)
        if ch is None or ch.state != "open" or req.count_chips <= 0:
            return
        offer = next((o for o in ch.offers_on(today) if o.chip == req.chip and offer_pool(self.sc, o) == req.pool), None)
        if offer is None:
            return
        count = ch.admit(req.count_chips, today)
        fin = self.fleet.finance
        if ch.cfg.kind == "rent":
            self._place_rental(day, today, req, ch, offer, count)
            return
        price = _offer_price(offer, self.chips[offer.chip], today, self.start)
        per_chip = price + ch.buyer_levy(price) + fin.server_overhead_usd_per_node / fin.chips_per_node
        if self.fleet.budget.overrun == "forbid":
            left = min(self.released[day], self.fleet.budget.total_usd) - self.committed
            count = min(count, int(max(0.0, left) // per_chip) if per_chip > 0 else count)
        if count < ch.cfg.min_order_chips or count <= 0:
            return
        key = self._order_key(ch.name, req.pool, day)
        lead = self._lead_days(ch, key) + ch.extra_lead
        o = Order(len(self.orders), day, ch.name, req.chip, req.pool, count, price, ch.buyer_levy(price),
                  fin.server_overhead_usd_per_node / fin.chips_per_node, day + max(1, int(round(lead))),
                  levy_vendor_usd_per_chip=price * ch.levy + ch.fee - ch.buyer_levy(price), key=key)
        self.orders.append(o)
        ch.use(today, count)
        ch.pending.append(o)
        pi = self.pool_ix[req.pool]
        self.ordered_c[pi] += count
        self.on_order[pi] += count
        self.committed += o.commitment_usd
        if self.budget_out_day is None and self.fleet.budget.total_usd - self.committed < per_chip:
            self.budget_out_day = day  # not one more chip of this kind fits the total budget
        self._pay_order(day, o, pi, ch.deposit_share)
        o.deposit_usd = o.paid_usd
        self.events.append((day, "order", ch.name, o.chip, o.pool, count, f"order {o.order_id}, due day {o.due_day}"))
        self.env.process(self._order(o, ch))

    def _order_key(self, channel: str, pool: str, day: int | str) -> tuple:
        """An order's name in the random streams: (channel, pool, day ordered, its number among
        that day's orders of the pool there), so orders elsewhere never shift its draws."""
        n = self._order_seq.get((channel, pool, day), 0)
        self._order_seq[channel, pool, day] = n + 1
        return (channel, pool, day, n)

    def _lead_days(self, ch: _Channel, key: tuple) -> float:
        """The order's lead time drawn from its own stream (a fixed lead time draws nothing)."""
        dist = ch.cfg.lead_time_days
        rng = None if isinstance(dist, FixedDuration) else stream(self.seed, "fleet", "lead", *key)
        return float(sample_duration(dist, rng, 1)[0])

    def _us_supplied(self, cfg, chip: str | None = None) -> bool:
        """US dependence of a channel's chips: its `us_controlled` when given; otherwise false
        for a buy channel, and for a rent channel whether the chip (any chip it offers, when none
        is named) is of a US vendor: renting an NVIDIA GPU from a cloud still depends on the US."""
        if cfg.us_controlled is not None or cfg.kind != "rent":
            return bool(cfg.us_controlled)
        from fleetsim.catalog.schema import us_origin

        names = [chip] if chip is not None else [off.chip for off in cfg.offers]
        return any(us_origin(self.chips[c]) for c in names if c in self.chips)

    def _place_rental(self, day: int, today: dt.date, req: OrderRequest, ch: _Channel, offer, count: int) -> None:
        """A rental: no capex and no budget; serves from delivery for its term, paid daily."""
        if count < ch.cfg.min_order_chips or count <= 0:
            return
        key = self._order_key(ch.name, req.pool, day)
        lead = self._lead_days(ch, key) + ch.extra_lead
        term = max(ch.cfg.min_term_days, int(req.term_days or 0))
        o = Order(len(self.orders), day, ch.name, req.chip, req.pool, count, 0.0, 0.0, 0.0,
                  day + max(0, int(round(lead))), kind="rent",
                  price_usd_per_chip_hour=float(offer.price_usd_per_chip_hour) + ch.buyer_levy(
                      float(offer.price_usd_per_chip_hour), fee=False), term_days=term, key=key)
        self.orders.append(o)
        ch.use(today, count)
        ch.pending.append(o)
        self.rent_on_order[self.pool_ix[req.pool]] += count
        self.events.append((day, "rental", ch.name, o.chip, o.pool, count,
                            f"rental {o.order_id}, {term} days, due day {o.due_day}"))
        self.env.process(self._order(o, ch))

    def _pay_order(self, day: int, o: Order, pi: int, share: float | None) -> None:
        """Pay `share` of the order (deposit at order), or what is left of it (share None: the
        balance at delivery), as capex and levy in proportion."""
        capex = o.count * (o.price_usd_per_chip + o.overhead_usd_per_chip)
        levy = o.count * o.levy_usd_per_chip
        total = capex + levy
        amount = total - o.paid_usd if share is None else share * total
        if amount <= 0 or total <= 0:
            return
        self._pay(day, "capex", o.chip, o.channel, amount * capex / total, pi, o.order_id)
        self._pay(day, "levy", o.chip, o.channel, amount * levy / total, pi, o.order_id)
        o.paid_usd += amount

    def _order(self, o: Order, ch: _Channel):
        env = self.env
        if o.due_day + ORDER_AT > env.now:  # after the day's regime changes: they decide its fate
            yield env.timeout(o.due_day + ORDER_AT - env.now)
        terms = ch.cfg.payment
        limit = terms.cancel_held_after_days if terms is not None and o.kind == "buy" else None
        while o.fate == "in_transit" and not ch.ships:
            if o.held_day < 0:
                o.held_day = int(env.now)
            if limit is None:
                yield ch.reopened
                continue
            left = o.held_day + limit - env.now
            if left > 0:
                yield ch.reopened | env.timeout(left)
                continue
            day = int(env.now)
            if day < self.n_days:  # the buyer gives up on an order held too long
                ch.pending.remove(o)
                self._write_off(o, ch, day, "cancelled", 1.0 if terms.deposit_on_cancel == "refund" else 0.0)
                self.events.append((day, "buyer_cancel", ch.name, o.chip, o.pool, o.count,
                                    f"order {o.order_id} held {day - o.held_day} days: paid USD "
                                    f"{o.paid_usd:,.0f}, {terms.deposit_on_cancel}ed"))
            return
        if o.fate != "in_transit":
            return
        day = int(env.now)
        if day >= self.n_days:
            return
        ch.pending.remove(o)
        o.fate, o.delivered_day = "delivered", day
        pi = self.pool_ix[o.pool]
        if o.kind == "rent":
            self.rent_on_order[pi] -= o.count
            end = min(o.end_day, self.n_days)
            for arr, v in ((self.rent_delta, o.count), (self.rent_usd_delta, o.count * o.price_usd_per_chip_hour * 24.0),
                           (self.rent_us_delta, o.count * float(self._us_supplied(ch.cfg, o.chip)))):
                arr[day, pi] += v
                arr[end, pi] -= v
            self.rent_ret_delta[end, pi] += o.count
            self.events.append((day, "delivery", ch.name, o.chip, o.pool, o.count, f"rental {o.order_id}"))
            return
        self.on_order[pi] -= o.count
        self._pay_order(day, o, pi, None)  # the balance
        per_chip = o.price_usd_per_chip + o.levy_usd_per_chip + o.overhead_usd_per_chip
        self.cohorts.add(pi, ch.idx, day, o.count, day + self.fleet.commissioning_days,
                         day + self.life_days, per_chip, key=o.key)
        self.events.append((day, "delivery", ch.name, o.chip, o.pool, o.count, f"order {o.order_id}"))

    def _initial(self) -> None:
        for c in self.fleet.initial_fleet:
            pn = c.pool or offer_pool(self.sc, type("O", (), {"pool": None, "chip": c.chip})())
            pi = self.pool_ix[pn]
            key = self._order_key(c.channel, pn, "initial")  # there before the start
            o = Order(len(self.orders), 0, c.channel, c.chip, pn, c.count, c.price_usd, 0.0, 0.0, 0,
                      fate="delivered", delivered_day=0, key=key)
            self.orders.append(o)
            self.ordered_c[pi] += c.count
            self.cohorts.add(pi, self.channels[c.channel].idx, 0, c.count, 0, self.life_days, c.price_usd,
                             key=key)

    # -- the daily step ---------------------------------------------------------------------
    def _class_share(self, day: int) -> np.ndarray:
        d = self.real[:, min(day, self.n_days - 1)]
        return d

    # cohort counts the daily step sums per pool, in one bincount (rows of `_day_counts`)
    _COUNT_ROWS = ("active", "in_repair", "lost", "retired", "removed", "delivered", "commissioning",
                   "serve_act", "serve_rep", "us_chips", "depreciation")

    def _day_tables(self) -> None:
        """What the daily step would otherwise recompute every day from inputs fixed at set-up:
        each model's classes and pools and its demand hour by hour, the capacity of every replica
        type on each day's inlet, the day's mix of classes and the power subsidy."""
        D, npl = self.n_days, len(self.pools)
        self._by_model = []
        for m in self.models_used:
            cls = np.array([i for i, c in enumerate(self.classes) if self.class_model[c] == m], dtype=int)
            pls = [pi for pi, p in enumerate(self.pools) if p.model == m]
            hourly = (self.real[cls, :, None] * self.prof[cls][:, None, :]).sum(axis=0)  # day x 24
            # the model's pools as a slice where they are contiguous (views, no fancy indexing)
            pix = slice(pls[0], pls[-1] + 1) if pls and pls == list(range(pls[0], pls[-1] + 1)) else np.array(pls, dtype=int)
            per_class = (self.real[cls].T.copy(), self.prof[cls], self.in_per_out[cls], self.hit_share[cls],
                         self.usd_per_out_mtok[cls] if self.priced else None)
            self._by_model.append((m, cls, pix, pls, hourly, per_class))
        if self.seasonal:  # the day's inlet, interpolated, for every pool and class at once
            self._k_day = np.empty((D, npl, self.k.shape[1]))
            for pi in range(npl):
                for ci in range(self.k.shape[1]):
                    self._k_day[:, pi, ci] = np.interp(self.amb_day[:, pi], self.grid_amb[pi], self.grid_k[pi, ci])
        self._mix_day = np.stack([self._mix_all(self._k_on(d), self.real[:, d]) for d in range(D)]) if D else np.zeros((0, npl))
        self._sub_day = np.ones((D, npl))
        for s in self.fleet.finance.subsidies:
            first = max(0, (s.from_date - self.start).days)
            for pi, p in enumerate(self.pools):
                if p.chip in s.chips:
                    self._sub_day[first:, pi] *= s.power_price_multiplier
        self._pool_rows = np.arange(len(self._COUNT_ROWS))[:, None] * npl
        self._counts_day = np.zeros((D, len(self._COUNT_ROWS), npl))
        self._count_idx, self._count_n = np.zeros(0, dtype=np.int64), 0
        self._deferred = {k: np.zeros((D, npl)) for k in ("up", "up_rent", "x", "x_load", "cap_own", "cap",
                                                           "rent_us_now", "rented_now")}

    def _day_counts(self, day: int) -> np.ndarray:
        """Per pool (columns), the cohort figures of `_COUNT_ROWS` (rows) on `day`."""
        co, npl = self.cohorts, len(self.pools)
        n = co.n
        if n == 0:
            return np.zeros((len(self._COUNT_ROWS), npl))
        act, rep, rd = co.active[:n], co.in_repair[:n], co.retire_day[:n]
        old = rd <= day
        in_service = (co.service_day[:n] <= day) & ~old
        dd, deliv = co.delivered_day[:n], co.delivered[:n]
        live = (dd <= day) & (dd + self.life_days > day)
        w = np.empty((len(self._COUNT_ROWS), n))  # rows of _COUNT_ROWS, a column per cohort
        w[0], w[1], w[2], w[3], w[4], w[5] = act, rep, co.lost[:n], co.retired[:n], co.removed[:n], deliv
        w[6] = np.where(in_service | old, 0, act)
        w[7] = np.where(in_service, act, 0)
        w[8] = np.where(in_service, rep, 0)
        w[9] = np.where(in_service & self.channel_us[co.channel[:n]], act, 0)
        w[10] = np.where(live, deliv * co.capex_usd_per_chip[:n], 0.0)
        if self._count_n != n:  # a cohort's pool never changes: rebuilt when one is added
            self._count_idx = (self._pool_rows + co.pool[:n][None, :]).ravel()
            self._count_n = n
        return np.bincount(self._count_idx, weights=w.ravel(), minlength=w.shape[0] * npl).reshape(w.shape[0], npl)

    def _day(self, day: int) -> None:
        co, fin = self.cohorts, self.fleet.finance
        npl = len(self.pools)
        co.retire_due(day)
        st = co.step(day, np.clip(self.x_prev, 0, 1) * self.u_g, self.sf, self.amb_day[day])
        counts = self._day_counts(day)
        serve_act, serve_rep = counts[7], counts[8]
        # the count rows go to the timeline at the end (_finish_records), with what follows from them
        self._counts_day[day] = counts
        r = self.rec
        r["ordered"][day], r["cancelled"][day] = self.ordered_c, self.cancelled_c + self.stranded_c
        r["stranded"][day], r["on_order"][day] = self.stranded_c, self.on_order
        r["crashes"][day] = st["transient"] + st["hardware"]
        total = serve_act + serve_rep
        designed = np.floor(total * (1.0 - self.sf) / self.tp)
        whole = np.minimum(designed, np.floor(serve_act / self.tp))
        down = (st["transient"] * self.rel_restart_h + st["hardware"] * self.rel_swap_h) / 24.0
        up = np.maximum(0.0, whole - down)
        # rented chips: in service from delivery to the end of their term (the provider's spares)
        self.rented_now += self.rent_delta[day]
        self.rent_usd_now += self.rent_usd_delta[day]
        self.rent_us_now += self.rent_us_delta[day]
        self.rent_ret_now += self.rent_ret_delta[day]
        r["rented"][day], r["rent_on_order"][day] = self.rented_now, self.rent_on_order
        r["rent_returned"][day], r["rental_usd"][day] = self.rent_ret_now, self.rent_usd_now
        up_rent = np.floor(self.rented_now / self.tp + 1e-9)
        r["replicas_up"][day] = up + up_rent
        # capacity and demand served, model by model, over the diurnal cycle
        dmd = self.real[:, day]
        mix = self._mix_day[day]
        cap_own = up * mix
        cap = (up + up_rent) * mix
        cap_raw = cap
        if self.pairs:
            cap_own, cap = self._pair_balance(cap_own, mix), self._pair_balance(cap, mix)
        x = np.zeros(npl)
        x_load = np.zeros(npl)   # utilisation with off-peak work (power, heat)
        unmet = 0.0
        add = np.add.reduce  # x.mean() is add.reduce(x) / len: the same bits, without its wrappers
        for m, cls, pls, pls_list, hourly_day, (dmd_c, prof_c, in_per_out_c, hit_c, usd_c_t) in self._by_model:
            hourly = hourly_day[day]  # 24 hours
            npls = len(pls_list)
            cm = add(cap[pls])
            own_h = np.minimum(hourly, cm)
            el = (self.elastic.plan(m, hourly - own_h, mix, lambda n: self.channels[n].state == "open")
                  if self.elastic else None)
            served_h = own_h if el is None else own_h + el.served_h
            unmet += float(add(hourly - served_h) / 24)
            own_mean = add(own_h) / 24
            shares = cap[pls] / cm if cm > 0 else np.zeros(npls)
            served_pool = own_mean * shares
            if el is not None:
                self._elastic_day(day, el, mix)
                served_pool[pls_list.index(el.pool_ix)] += float(el.served_h.mean())
            total = add(served_h) / 24
            if el is not None and total > 0:  # hourly rentals serve part: shares of what was served
                shares = served_pool / total
            if total > 0:
                # each class's share of the served tokens, hour by hour (a shortfall hits all alike)
                frac = np.divide(served_h, hourly, out=np.zeros(24), where=hourly > 0)
                served_c = add(dmd_c[day][:, None] * prof_c * frac, axis=1) / 24  # output tok/s
                inp_c = served_c * in_per_out_c
                r["served_tokens_per_s"][day, pls] = served_pool
                r["served_input_tokens_per_s"][day, pls] = add(inp_c) * shares
                r["served_cached_input_tokens_per_s"][day, pls] = add(inp_c * hit_c) * shares
                if self.priced:
                    usd_c = served_c[:, None] * 86400 / 1e6 * usd_c_t  # class x type
                    usd = usd_c.sum(axis=0)[None, :] * shares[:, None]  # pool x type
                    r["revenue_output_usd"][day, pls] = usd[:, 0]
                    r["revenue_input_cache_hit_usd"][day, pls] = usd[:, 1]
                    r["revenue_input_cache_miss_usd"][day, pls] = usd[:, 2]
            if cm > 0:
                # a pair's idle surplus side: less busy than its capacity share
                raw = cap_raw[pls]
                x[pls] = own_mean / cm * np.divide(cap[pls], raw, out=np.ones(npls), where=raw > 0)
            x_load[pls] = x[pls]
            if self.fleet.offpeak is not None and cm > 0:
                self._offpeak_day(day, pls_list, own_h, cap, cm, mix, up, up_rent, x_load)
            if day in self._hourly_days:
                self._hourly_rows(day, pls_list, hourly, own_h, el, cap, cm, mix)
        self.demand_day[day] = dmd.sum()
        self.unmet_day[day] = unmet
        r["capacity_tokens_per_s"][day] += cap  # (+= : hourly rentals added theirs)
        r["utilisation"][day] = x
        self.x_prev = np.where(up > 0, x_load, self.x_prev)
        # what the power, money and US-dependence rows need, for _finish_records: nothing in the
        # run reads those rows, so they are computed once over all days, element by element as
        # here (the same bits)
        d = self._deferred
        d["up"][day], d["up_rent"][day], d["x"][day], d["x_load"][day] = up, up_rent, x, x_load
        d["cap_own"][day], d["cap"][day] = cap_own, cap
        d["rent_us_now"][day], d["rented_now"][day] = self.rent_us_now, self.rented_now
        self.regime_day[day] = [STATE_CODE[ch.state] for ch in self._chan_list]
        self.side_day[day] = [(EXPORTER_CODE[ch.exporter], IMPORTER_CODE[ch.importer]) for ch in self._chan_list]
        if day in self._wset:
            self._snapshot(day, up, dmd)

    def _finish_records(self) -> None:
        """The timeline rows the daily step left for the end, over every day at once: chip counts,
        power, energy, its cost, other opex, depreciation, revenue and US-dependent capacity.
        Element by element the arithmetic of one day's row (+, -, *, / and floor are exact per
        element, so the bits are those a day-by-day computation gives)."""
        r, d, fin, npl = self.rec, self._deferred, self.fleet.finance, len(self.pools)
        c = self._counts_day
        for i, name in enumerate(("active", "in_repair", "lost", "retired", "removed", "delivered",
                                  "commissioning")):
            r[name][:] = c[:, self._COUNT_ROWS.index(name)]
        r["installed"][:] = r["active"] + r["in_repair"]
        serve_act, us_chips, c_dep = c[:, 7], c[:, 9], c[:, 10]
        up, up_rent, x, x_load = d["up"], d["up_rent"], d["x"], d["x_load"]
        cap_own, cap, mix = d["cap_own"], d["cap"], self._mix_day
        rent_us, rented = d["rent_us_now"], d["rented_now"]
        # US dependence: capacity on chips from US-controlled channels
        r["us_capacity_tokens_per_s"] += (
            cap_own * np.divide(us_chips, serve_act, out=np.zeros_like(serve_act), where=serve_act > 0)
            + (up_rent * mix if not self.pairs else cap - cap_own) * np.divide(rent_us, rented, out=np.zeros_like(rented),
                                                                              where=rented > 0))
        # power: up replicas at the day's load, every other in-service chip idle, commissioning off
        it_w = up * (self.idle_w + (self.p_g - self.idle_w) * x_load) + (serve_act - up * self.tp).clip(0) * self.idle_w / self.tp
        it_w = it_w + r["elastic_w"]  # hourly rentals: the provider pays, the energy is still used
        mw = it_w * fin.pue / 1e6
        # rented replicas draw power too, at the same load, in the provider's hall (the scenario's
        # PUE): counted in power and energy (energy per token covers every token served), not in
        # power_usd (the hourly rent is all-in) nor in the site's power limit
        rent_mw = up_rent * (self.idle_w + (self.p_g - self.idle_w) * x) * fin.pue / 1e6
        r["power_mw"][:] = mw + rent_mw
        r["energy_mwh"][:] = (mw + rent_mw) * 24.0
        r["power_usd"][:] = mw * 24.0 * 1000.0 * fin.power_usd_per_kwh * self._sub_day
        r["other_opex_usd"][:] = r["installed"] * fin.other_opex_usd_per_chip_year / 365.0
        r["depreciation_usd"][:] = c_dep / self.life_days
        if self.priced:
            r["revenue_usd"][:] = (r["revenue_output_usd"] + r["revenue_input_cache_hit_usd"]
                                   + r["revenue_input_cache_miss_usd"])

    def _pair_balance(self, cap: np.ndarray, mix: np.ndarray) -> np.ndarray:
        """Capacity per pool with each prefill/decode pair at the lesser of its two sides, split
        between its two pools by the chips each has up (a pool's capacity column then sums to
        what the pair serves; a side's surplus serves nothing)."""
        out = cap.copy()
        for a, b in self.pairs:
            both = min(cap[a], cap[b])
            wa = cap[a] / mix[a] * self.tp[a] if mix[a] > 0 else 0.0
            wb = cap[b] / mix[b] * self.tp[b] if mix[b] > 0 else 0.0
            share = wa / (wa + wb) if wa + wb > 0 else 0.5
            out[a], out[b] = both * share, both * (1.0 - share)
        return out

    def _elastic_day(self, day: int, el, mix: np.ndarray) -> None:
        """Book one day of hourly rentals on the elastic pool: chip-hours, cost, energy, US share."""
        r, pi = self.rec, el.pool_ix
        r["elastic_chip_hours"][day, pi] += el.chip_hours
        r["elastic_peak_chips"][day, pi] = max(r["elastic_peak_chips"][day, pi], float(el.replicas_h.max()) * self.tp[pi])
        r["rental_usd"][day, pi] += el.usd
        load = np.divide(el.served_h, el.replicas_h * mix[pi], out=np.zeros(24), where=el.replicas_h > 0)
        r["elastic_w"][day, pi] += float((el.replicas_h * (self.idle_w[pi] + (self.p_g[pi] - self.idle_w[pi]) * load)).mean())
        cap_mean = float(el.replicas_h.mean()) * mix[pi]
        r["capacity_tokens_per_s"][day, pi] += cap_mean
        if el.us_controlled:
            r["us_capacity_tokens_per_s"][day, pi] += cap_mean
        r["replicas_up"][day, pi] += float(el.replicas_h.mean())

    def _offpeak_day(self, day, pls, own_h, cap, cm, mix, up, up_rent, x_load) -> None:
        """Owned replicas serving does not need, hour by hour, do off-peak work at its value."""
        from fleetsim.fleet.elastic import offpeak_replicas

        op, r = self.fleet.offpeak, self.rec
        per_node = self.fleet.finance.chips_per_node
        for pi in pls:
            total = up[pi] + up_rent[pi]
            if up[pi] <= 0 or mix[pi] <= 0:
                continue
            needed_h = own_h * (cap[pi] / cm) / mix[pi]          # replicas serving, hour by hour
            free_h = np.minimum(offpeak_replicas(total, needed_h), up[pi])  # owned ones only
            hours = float(free_h.sum())
            r["offpeak_replica_hours"][day, pi] = hours
            r["offpeak_usd"][day, pi] = hours * self.tp[pi] / per_node * op.value_usd_per_node_hour
            x_load[pi] = min(1.0, x_load[pi] + hours / 24.0 / total * op.load)

    def _hourly_rows(self, day, pls, hourly, own_h, el, cap, cm, mix) -> None:
        """Hour-by-hour figures of a sampled day (the first of each month) for hourly.parquet."""
        for pi in pls:
            el_reps = el.replicas_h if el is not None and el.pool_ix == pi else np.zeros(24)
            el_served = el.served_h if el is not None and el.pool_ix == pi else np.zeros(24)
            own = own_h * (cap[pi] / cm) if cm > 0 else np.zeros(24)
            reps_serving = np.ceil(own / mix[pi] - 1e-9) if mix[pi] > 0 else np.zeros(24)
            owned_up = cap[pi] / mix[pi] if mix[pi] > 0 else 0.0
            for h in range(24):
                self.hourly.append((day, h, pi, float(hourly[h]), float(cap[pi] + el_reps[h] * mix[pi]),
                                    float(own[h] + el_served[h]), float(owned_up), float(el_reps[h]),
                                    float(max(0.0, owned_up - reps_serving[h]) if self.fleet.offpeak else 0.0)))

    def _mix_all(self, kmat: np.ndarray, dmd: np.ndarray) -> np.ndarray:
        """`_mix` for every pool at once (the daily step's hot path)."""
        if not hasattr(self, "_same_model"):
            self._same_model = np.array([[self.class_model[c] == p.model for c in self.classes]
                                         for p in self.pools])
        d = np.where(self._same_model, dmd[None, :], 0.0)
        tot = d.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(d > 0, d / np.where(tot > 0, tot, 1.0)[:, None] / kmat, 0.0)
            out = 1.0 / inv.sum(axis=1)
        bad = np.any((d > 0) & (kmat <= 0), axis=1)
        out = np.where(bad, 0.0, out)
        idle = tot <= 0  # no demand for the model today: the mean of its classes' rates
        if idle.any():
            for pi in np.flatnonzero(idle):
                out[pi] = self._mix(pi, kmat, dmd)
        return out

    def _mix(self, pi: int, kmat: np.ndarray, dmd: np.ndarray) -> float:
        """Tokens/s per replica for the day's mix of its model's classes: 1 / sum(share_c / k_c);
        0 when a class with demand cannot be served at its SLO on this replica type."""
        m = self.pools[pi].model
        k = kmat[pi]
        mask = np.array([self.class_model[c] == m for c in self.classes])
        d = np.where(mask, dmd, 0.0)
        if d.sum() <= 0:
            return float(k[mask].mean()) if mask.any() else 0.0
        if np.any((d > 0) & (k <= 0)):
            return 0.0
        use = d > 0
        return float(1.0 / np.sum(d[use] / d.sum() / k[use]))

    def _subsidy(self, chip: str, day: int) -> float:
        mult = 1.0
        d = self.start + dt.timedelta(days=day)
        for s in self.fleet.finance.subsidies:
            if chip in s.chips and s.from_date <= d:
                mult *= s.power_price_multiplier
        return mult

    def _snapshot(self, day: int, up: np.ndarray, dmd: np.ndarray) -> None:
        w = self.fleet.windows
        hour = w.hour_of_day if w.hour_of_day is not None else self.fleet.demand[self.classes[0]].peak_hour
        hidx = int(hour) % 24
        rate_tok = dmd * self.prof[:, hidx]
        self.window_snaps.append({"window": len(self.window_snaps), "day": day, "hour_of_day": hour,
                                  "replicas_up": up.copy(), "tokens_per_s": rate_tok.copy(),
                                  "mean_tokens_per_s": dmd.copy(),
                                  "utilisation": self.rec["utilisation"][day].copy()})

    # -- run ----------------------------------------------------------------------------------
    def prepare(self, windows: bool = True) -> None:
        """Everything a run sets up before day 0 (also used by the hedge's planning-state capture)."""
        self._setup()
        self.rel_restart_h = self.cohorts.restart_h
        self.rel_swap_h = self.cohorts.swap_h
        self._wset = set(self.window_days) if windows else set()
        self._day_tables()
        self._chan_list = list(self.channels.values())
        self._initial()

    def start_processes(self) -> None:
        """The run's SimPy processes: regimes, removals, the planner and the daily cohort step."""
        env = self.env
        env.process(self._regime())
        env.process(self._removals())
        env.process(self._planner())
        env.process(self.cohorts.process(env, self._day))

    def run(self, progress) -> FleetResult:
        self.prepare()
        self.start_processes()
        env = self.env
        if progress:
            progress(f"fleet: {self.n_days} days, {len(self.pools)} replica types, {len(self.channels)} channels")
        run_env(env, self.n_days, progress, "fleet days")
        windows = self._run_windows(progress) if self.window_snaps else None
        return self._result(windows)

    def _run_windows(self, progress) -> dict[str, list]:
        rows: dict[str, list] = {k: [] for k in (
            "window", "date", "hour_of_day", "workload", "pool", "chip", "replicas_up", "rate_per_s",
            "attainment", "attainment_ci95_lo", "attainment_ci95_hi", "predicted_attainment_ok",
            "p95_ttft_s", "p95_tpot_s")}
        if progress:
            progress(f"serving windows: {len(self.window_snaps)}")
        # windows are independent (each its own seed stream, the fleet's state read only): a
        # forked child runs every other one, rows assembled in window order (fleetsim.forked)
        n = len(self.window_snaps)
        outs = fork_map(lambda snap: self.window_runner(self, snap), self.window_snaps, min_items=4,
                        done=lambda k: update(progress, "serving windows", k, n))
        for out in outs:
            for row in out:
                for k in rows:
                    rows[k].append(row.get(k))
        return rows

    def _result(self, windows) -> FleetResult:
        self._finish_records()
        return build_result(self, windows)
