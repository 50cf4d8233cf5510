"""Planner policies: every `period_days`, turn forecast demand into chip orders.

Interface, so a policy is one class plus one registration:

    @register("cheapest")
    class Cheapest:
        def __init__(self, config): ...
        def plan(self, state: PlanningState) -> list[OrderRequest]: ...

Units used throughout the state:
- demand and capacity: output tokens per second (`*_tokens_per_s`); forecasts are the diurnal
  PEAK of each class over a future period (the planner sizes for the peak);
- capacity per replica is EFFECTIVE (goodput at SLO x availability, per installed replica), for
  the current mix of the classes its model serves;
- money in USD, power in MW (facility power: chip TDP x PUE), lead times in days;
- a replica is `tp` chips; orders are in chips (a multiple of tp is not required but is what the
  rule policies place).

The forecast is what the planner believes (growth without the random surprise); realised demand
carries a lognormal random walk the planner never sees. `kind: optimal` is registered by
fleetsim/fleet/optimal.py when that module exists (branch `optimal`); until then asking for it
raises "planner 'optimal' is not available in this build".
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from fleetsim.errors import ScenarioError


@dataclass(frozen=True)
class OrderRequest:
    """Buy `count_chips` of `chip` from `channel` for replica type `pool`."""

    channel: str
    chip: str
    count_chips: int
    pool: str
    term_days: int | None = None      # rent channels: rental term asked for (None: the minimum)


@dataclass
class OfferState:
    """One chip a channel sells today, with what a chip of it costs and yields."""

    chip: str
    pool: str
    price_usd_per_chip: float         # list price today, before levy
    levy_usd_per_chip: float          # price x levy share
    overhead_usd_per_chip: float      # server overhead per node / chips per node
    lifetime_opex_usd_per_chip: float  # power (x PUE, subsidies) + other opex over the chip's life
    rent_usd_per_chip_hour: float = 0.0  # rent channels: all-in hourly price (before levy); 0 = buy


@dataclass
class ChannelState:
    """A supply channel as the planner sees it on `today`."""

    name: str
    state: str                        # combined: open | licence_required | banned | buyer_ban (an importer block)
    us_controlled: bool
    levy: float                       # share of price added as a surcharge
    lead_time_days: float             # mean lead time (plus any added lead)
    remaining_cap_chips: float        # orderable until the cap period ends (inf: no cap)
    min_order_chips: int
    risk_per_year: float              # the scenario's belief: chance per year it closes
    offers: list[OfferState] = field(default_factory=list)
    kind: str = "buy"                 # buy | rent
    min_term_days: int = 0            # rent: shortest rental
    exporter_state: str = "open"      # open | licence_required | banned
    importer_state: str = "open"      # open | discouraged | buyer_ban | customs_block

    @property
    def orderable(self) -> bool:
        return self.state == "open" and self.remaining_cap_chips >= self.min_order_chips


@dataclass
class PoolState:
    """A replica type (serving pool) in the fleet."""

    name: str
    chip: str
    model: str
    tp: int
    installed_replicas: float         # delivered, not retired/lost/removed (incl. commissioning)
    on_order_replicas: float          # ordered, in transit or waiting on a licence
    tokens_per_s_per_replica: float   # effective, per tp chips installed (spare share taken out),
                                      # for the current class mix of its model
    power_mw_per_replica: float       # facility power at TDP (for site limits)
    capacity: dict[str, Any] = field(default_factory=dict)  # workload -> Capacity
    rented_replicas: float = 0.0      # rented (or rental on order) still there at the next plan
    role: str = "both"                # prefill | decode: one side of a prefill/decode type, whose
    partner: str = ""                 # other side is `partner`; the pair serves the lesser side

    @property
    def replicas_total(self) -> float:
        return self.installed_replicas + self.on_order_replicas + self.rented_replicas


@dataclass
class PlanningState:
    """Everything a policy may use on a planning day (a snapshot: policies must not keep it)."""

    today: dt.date
    period: int                       # 0, 1, ... planning rounds
    period_days: int
    forecast_peak_tokens_per_s: dict[str, list[float]]  # class -> per future period (0 = current)
    class_model: dict[str, str]       # class -> model it needs
    pools: dict[str, PoolState]
    channels: dict[str, ChannelState]
    budget_left_usd: float            # released so far minus committed (inf when overrun allowed)
    budget_total_left_usd: float      # whole budget minus committed
    overrun_allowed: bool
    site_power_mw_left: float         # inf: no limit
    site_chips_left: float            # racks x chips per rack left (inf: no limit)
    life_years: float
    horizon_days: int
    headroom: float
    scenario: Any = None              # the run's Scenario (regime and demand models for `optimal`)
    # running and ordered rentals: (pool, first day serving, first day returned, chips), days
    # counted from today (first day may be an estimate for a rental still on order)
    rentals: list[tuple[str, int, int, int]] = field(default_factory=list)
    spare_fraction: float = 0.0       # share of installed chips held as repair spares (not serving)
    # the realised world (fleetsim.fleet.regime.Transition list, and with `knows: oracle` the
    # realised peak per period): only the optimal planner reads them, per its `knows` mode
    realised_transitions: list | None = None
    realised_peak_tokens_per_s: dict[str, list[float]] | None = None

    def required_tokens_per_s(self, model: str, lead_days: float) -> float:
        """Peak forecast x (1 + headroom) for `model` over the next lead + horizon days."""
        n = max(1, math.ceil((lead_days + self.horizon_days) / self.period_days) + 1)
        total = [0.0] * n
        for cls, series in self.forecast_peak_tokens_per_s.items():
            if self.class_model[cls] != model:
                continue
            for k in range(min(n, len(series))):
                total[k] += series[k]
        return max(total) * (1.0 + self.headroom)

    def existing_tokens_per_s(self, model: str) -> float:
        """Installed, on order and rented capacity; a prefill/decode pair counts its lesser side."""
        tot = 0.0
        for p in self.pools.values():
            if p.model != model or p.role == "decode":
                continue
            if p.role == "prefill":
                d = self.pools[p.partner]
                tot += min(p.replicas_total * p.tokens_per_s_per_replica,
                           d.replicas_total * d.tokens_per_s_per_replica)
            else:
                tot += p.replicas_total * p.tokens_per_s_per_replica
        return tot


class PlannerPolicy(Protocol):
    def plan(self, state: PlanningState) -> list[OrderRequest]: ...


_REGISTRY: dict[str, Callable[[Any], PlannerPolicy]] = {}


def register(kind: str):
    """Class decorator: make a policy available as `planner: {kind: ...}`."""
    def deco(cls):
        _REGISTRY[kind] = cls
        return cls
    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def make_planner(config) -> PlannerPolicy:
    """The policy for a scenario's `fleet.planner` (imports fleetsim.fleet.<kind> on demand)."""
    kind = config.kind
    if kind not in _REGISTRY:
        try:
            importlib.import_module(f"fleetsim.fleet.{kind}")
        except ImportError:
            pass
    if kind not in _REGISTRY:
        raise ScenarioError(f"planner '{kind}' is not available in this build; available: "
                            f"{', '.join(available())}", field="fleet.planner.kind")
    return _REGISTRY[kind](config)


# -- the rule policies ----------------------------------------------------------------------
@dataclass
class Candidate:
    channel: ChannelState
    offer: OfferState
    pool: PoolState
    usd_per_chip: float               # capex committed per chip (price + levy + overhead); 0 for rent
    score: float                      # lower is better: USD per effective token/s over life
    decode: "Candidate | None" = None  # a prefill/decode type: the decode side's option (score: both)

    @property
    def rent(self) -> bool:
        return self.channel.kind == "rent"


def candidates(state: PlanningState, model: str) -> list[Candidate]:
    """Orderable (channel, chip, pool) options for a model, scored by cost per goodput over life.

    A rental is scored by its hourly price x (1 + levy) over the same life (no capex, no power:
    the price is all-in), so `cheapest` rents when renting is cheaper per effective goodput."""
    out = []
    for ch in state.channels.values():
        if not ch.orderable:
            continue
        for off in ch.offers:
            pool = state.pools[off.pool]
            if pool.model != model or pool.tokens_per_s_per_replica <= 0:
                continue
            if ch.kind == "rent":
                usd = 0.0
                life = off.rent_usd_per_chip_hour * (1.0 + ch.levy) * 8766.0 * state.life_years * pool.tp
            else:
                usd = off.price_usd_per_chip + off.levy_usd_per_chip + off.overhead_usd_per_chip
                life = (usd + off.lifetime_opex_usd_per_chip) * pool.tp
            out.append(Candidate(ch, off, pool, usd, life / pool.tokens_per_s_per_replica))
    return _paired(state, out)


def _paired(state: PlanningState, cands: list[Candidate]) -> list[Candidate]:
    """Role options joined into prefill/decode options: every prefill-side option with every
    decode-side option of its partner, scored by the two sides' costs per token/s added (a
    token/s of the type needs a token/s of each side, so the ratio of instances bought is the
    ratio of the roles' rates)."""
    out = [c for c in cands if c.pool.role == "both"]
    for c in cands:
        if c.pool.role != "prefill":
            continue
        for d in cands:
            if d.pool.name == c.pool.partner:
                out.append(Candidate(c.channel, c.offer, c.pool, c.usd_per_chip, c.score + d.score, decode=d))
    return out


def closing_probability(ch: ChannelState, years: float) -> float:
    return 1.0 - math.exp(-ch.risk_per_year * years)


class _RuleBase:
    def __init__(self, config) -> None:
        self.config = config

    def ranked(self, state: PlanningState, model: str) -> list[Candidate]:
        return sorted(candidates(state, model), key=lambda c: (c.score, c.channel.name, c.offer.chip))

    def plan(self, state: PlanningState) -> list[OrderRequest]:
        limits = _Limits(state)
        orders: list[OrderRequest] = []
        for model in sorted({p.model for p in state.pools.values()}):
            ranked = self.ranked(state, model)
            if not ranked:
                continue
            lead = max(max(c.channel.lead_time_days, c.decode.channel.lead_time_days if c.decode else 0.0)
                       for c in ranked)
            gap = state.required_tokens_per_s(model, lead) - state.existing_tokens_per_s(model)
            orders += self.fill(state, model, gap, ranked, limits)
        return orders

    def fill(self, state, model, gap, ranked, limits) -> list[OrderRequest]:
        return _fill(gap, ranked, limits)


class _Limits:
    """Budget, site power and racks, channel caps left while one plan is being filled."""

    def __init__(self, state: PlanningState) -> None:
        self.usd = math.inf if state.overrun_allowed else max(0.0, state.budget_left_usd)
        self.power_mw = state.site_power_mw_left
        self.chips = state.site_chips_left
        self.cap = {n: c.remaining_cap_chips for n, c in state.channels.items()}
        self.side: dict[str, float] = {}  # role pools: tokens/s of each side, existing + ordered in this plan

    def max_chips(self, c: Candidate) -> int:
        if c.rent:  # hosted by the provider: no budget, site power or racks
            return int(min(self.cap[c.channel.name], 1e12))
        per_chip_mw = c.pool.power_mw_per_replica / c.pool.tp
        n = min(self.cap[c.channel.name], self.chips,
                self.usd / c.usd_per_chip if c.usd_per_chip > 0 else math.inf,
                self.power_mw / per_chip_mw if per_chip_mw > 0 else math.inf)
        return int(min(n, 1e12))

    def take(self, c: Candidate, chips: int) -> None:
        self.cap[c.channel.name] -= chips
        if c.rent:
            return
        self.chips -= chips
        self.usd -= chips * c.usd_per_chip
        self.power_mw -= chips * c.pool.power_mw_per_replica / c.pool.tp


def _fill(gap: float, ranked: list[Candidate], limits: _Limits) -> list[OrderRequest]:
    """Best-scored first: whole replicas, within caps, budget and site; next option when one runs out."""
    orders = []
    for c in ranked:
        if gap <= 0:
            break
        if c.decode is not None:
            got, new = _fill_pair(gap, c, limits, limits.side)
            gap -= got
            orders += new
            continue
        tp = c.pool.tp
        want = math.ceil(gap / c.pool.tokens_per_s_per_replica) * tp
        chips = min(want, limits.max_chips(c))
        chips -= chips % tp
        if chips < max(c.channel.min_order_chips, tp):
            continue
        limits.take(c, chips)
        gap -= chips / tp * c.pool.tokens_per_s_per_replica
        orders.append(OrderRequest(c.channel.name, c.offer.chip, int(chips), c.pool.name))
    return orders


def _fill_pair(gap: float, c: Candidate, limits: _Limits, side: dict[str, float]
               ) -> tuple[float, list[OrderRequest]]:
    """Order both sides of a prefill/decode type so the pair grows by up to `gap` tokens/s: each
    side up to the pair's target (an existing surplus on one side is used first), whole
    instances, scaled down together when a limit binds on either side. Returns (tokens/s the
    pair gained, orders)."""
    p, d = c, c.decode
    for x in (p, d):
        side.setdefault(x.pool.name, x.pool.replicas_total * x.pool.tokens_per_s_per_replica)
    e_p, e_d = side[p.pool.name], side[d.pool.name]
    k_p, k_d = p.pool.tokens_per_s_per_replica, d.pool.tokens_per_s_per_replica
    base = min(e_p, e_d)
    # the most each side can add within its limits (chips in whole instances)
    room_p = (limits.max_chips(p) // p.pool.tp) * k_p
    room_d = (limits.max_chips(d) // d.pool.tp) * k_d
    target = min(base + gap, e_p + room_p, e_d + room_d)
    want = []
    for x, e, k in ((p, e_p, k_p), (d, e_d, k_d)):
        n = math.ceil(max(0.0, target - e) / k - 1e-9) if target > e else 0
        want.append(n * x.pool.tp)
    if any(0 < n < max(x.channel.min_order_chips, x.pool.tp) for n, x in zip(want, (p, d))):
        return 0.0, []
    if target <= base:
        return 0.0, []
    orders = []
    for x, chips in zip((p, d), want):
        if chips > 0:
            limits.take(x, chips)
            side[x.pool.name] += chips / x.pool.tp * x.pool.tokens_per_s_per_replica
            orders.append(OrderRequest(x.channel.name, x.offer.chip, int(chips), x.pool.name))
    return min(side[p.pool.name], side[d.pool.name]) - base, orders


@register("cheapest")
class Cheapest(_RuleBase):
    """Lowest cost per effective token/s over the chip's life (capex + power + opex)."""


@register("security_weighted")
class SecurityWeighted(_RuleBase):
    """Cost per goodput x (1 + risk_weight x P(channel closes within lead time + one year))."""

    def ranked(self, state, model):
        def key(c: Candidate):
            years = c.channel.lead_time_days / 365.0 + 1.0
            return (c.score * (1.0 + self.config.risk_weight * closing_probability(c.channel, years)),
                    c.channel.name, c.offer.chip)
        return sorted(candidates(state, model), key=key)


@register("domestic_share")
class DomesticShare(_RuleBase):
    """At least `target_share` of the model's required capacity on domestic channels; then cheapest."""

    def fill(self, state, model, gap, ranked, limits):
        """The target binds even when the fleet already covers demand (a US-heavy fleet buys
        domestic chips up to the target share); the rest of the gap is filled cheapest first."""
        lead = max(c.channel.lead_time_days for c in ranked)
        required = state.required_tokens_per_s(model, lead)
        us = {n for n, c in state.channels.items() if c.us_controlled}
        domestic_now = sum(
            (p.installed_replicas + p.on_order_replicas) * p.tokens_per_s_per_replica
            for p in state.pools.values() if p.model == model and _pool_domestic(state, p, us))
        dom_gap = max(0.0, self.config.target_share * required - domestic_now)
        dom = [c for c in ranked if not c.channel.us_controlled]
        orders = _fill(dom_gap, dom, limits)
        got = sum(o.count_chips / state.pools[o.pool].tp * state.pools[o.pool].tokens_per_s_per_replica
                  for o in orders)
        return orders + _fill(gap - got, ranked, limits)


def _pool_domestic(state: PlanningState, pool: PoolState, us: set[str]) -> bool:
    """A pool counts as domestic when no US-controlled channel sells its chip."""
    return not any(off.chip == pool.chip for n in us for off in state.channels[n].offers)


def added_tokens_per_s(state: PlanningState, orders) -> dict[str, float]:
    """Tokens/s per model that placed orders (anything with .pool and .count chips) add; a
    prefill/decode pair adds what its lesser side gains."""
    add: dict[str, float] = {}
    for o in orders:
        add[o.pool] = add.get(o.pool, 0.0) + o.count / state.pools[o.pool].tp * state.pools[o.pool].tokens_per_s_per_replica
    got: dict[str, float] = {}
    for name, a in add.items():
        p = state.pools[name]
        if p.role == "both":
            got[p.model] = got.get(p.model, 0.0) + a
    for p in state.pools.values():
        if p.role != "prefill" or (p.name not in add and p.partner not in add):
            continue
        d = state.pools[p.partner]
        e_p, e_d = p.replicas_total * p.tokens_per_s_per_replica, d.replicas_total * d.tokens_per_s_per_replica
        got[p.model] = got.get(p.model, 0.0) + min(e_p + add.get(p.name, 0.0), e_d + add.get(d.name, 0.0)) - min(e_p, e_d)
    return got


# -- what bound: the gap between what a plan wanted and what it could order ------------------
#: causes a planning period's shortfall is attributed to (binding.parquet `cause`)
CAUSES = ("budget_released", "budget_total", "channel_cap", "fab_output", "regime_closed",
          "min_order", "site_power", "site_racks", "planner_choice", "no_offer")
SHARED = ("budget_released", "budget_total", "site_power", "site_racks")


@dataclass(frozen=True)
class Shortfall:
    """Part of one model's planning gap (tokens/s) that `cause` kept the plan from ordering."""

    model: str
    cause: str
    channel: str                      # "" for a shared limit (budget, site)
    chip: str
    pool: str
    tokens_per_s: float


def explain_shortfall(state: PlanningState, ordered_tokens_per_s: dict[str, float],
                      committed_usd: float = 0.0, used_mw: float = 0.0, used_chips: float = 0.0,
                      used_cap: dict[str, float] | None = None, fab: set[str] = frozenset()
                      ) -> tuple[dict[str, tuple[float, float]], list[Shortfall]]:
    """Why a plan fell short, the same for every policy (it reads the state, not the policy).

    Per model: wanted = peak forecast x (1 + headroom) over the longest lead + horizon minus what is
    installed or on order; shortfall = wanted - what the placed orders add. The shortfall is split
    in two: the part the shared limits (budget released to date or in total, site power, racks)
    leave no room for, named after the tightest of them for the best-scored option; the rest, in
    score order, after each option's own block (closed regime, cap or fab output used up, an order
    below the minimum, or the policy's choice), up to what the shared limits let that option add
    and, for a closed channel, what its cap would leave it if it reopened (a ban on a capped
    channel explains at most the cap; the cheaper blocked options explain first). `used_*` are what the
    placed orders took from the limits. Returns {model: (wanted, ordered)} and the parts."""
    used_cap = used_cap or {}
    usd_rel = math.inf if state.overrun_allowed else max(0.0, state.budget_left_usd - committed_usd)
    usd_tot = math.inf if state.overrun_allowed else max(0.0, state.budget_total_left_usd - committed_usd)
    mw = max(0.0, state.site_power_mw_left - used_mw)
    racks = max(0.0, state.site_chips_left - used_chips)
    gaps: dict[str, tuple[float, float]] = {}
    parts: list[Shortfall] = []
    for model in sorted({p.model for p in state.pools.values()}):
        opts = []  # every offer for the model, orderable or not
        for ch in state.channels.values():
            for off in ch.offers:
                pool = state.pools[off.pool]
                if pool.model != model or pool.tokens_per_s_per_replica <= 0 or pool.role == "decode":
                    continue  # (a decode side is explained with its prefill side's options)
                usd = 0.0 if ch.kind == "rent" else off.price_usd_per_chip + off.levy_usd_per_chip + off.overhead_usd_per_chip
                life = (usd + off.lifetime_opex_usd_per_chip) * pool.tp if ch.kind != "rent" else \
                    off.rent_usd_per_chip_hour * (1 + ch.levy) * 8766.0 * state.life_years * pool.tp
                opts.append((life / pool.tokens_per_s_per_replica, ch.name, off.chip, ch, off, pool, usd))
        if not opts:
            continue
        opts.sort(key=lambda o: o[:3])
        lead = max(o[3].lead_time_days for o in opts)
        wanted = max(0.0, state.required_tokens_per_s(model, lead) - state.existing_tokens_per_s(model))
        got = ordered_tokens_per_s.get(model, 0.0)
        gaps[model] = (wanted, got)
        short = wanted - got
        if short <= 1e-9 * max(1.0, wanted):
            continue

        def shared_room(o) -> tuple[float, str]:
            """Tokens/s the shared limits let option `o` add, and the tightest of them."""
            _, _, _, ch, off, pool, usd = o
            per_tok = pool.tp / pool.tokens_per_s_per_replica  # chips per token/s
            if ch.kind == "rent":
                return math.inf, ""
            lim = [(usd_rel / usd if usd > 0 else math.inf, "budget_released"),
                   (usd_tot / usd if usd > 0 else math.inf, "budget_total"),
                   (mw / (pool.power_mw_per_replica / pool.tp) if pool.power_mw_per_replica > 0 else math.inf,
                    "site_power"),
                   (racks, "site_racks")]
            chips, name = min(lim, key=lambda t: (t[0], CAUSES.index(t[1])))
            if name == "budget_released" and usd_tot <= usd_rel:
                name = "budget_total"
            return chips / per_tok, name

        best_room, best_name = shared_room(opts[0])
        room = max(shared_room(o)[0] for o in opts)
        if room < short:
            o = min(opts, key=lambda o: (-shared_room(o)[0], o[:3]))
            name = shared_room(o)[1] or best_name
            parts.append(Shortfall(model, name, "", "", "", short - max(0.0, room)))
            short = max(0.0, room)
        for o in opts:
            if short <= 0:
                break
            _, _, _, ch, off, pool, usd = o
            take = min(short, shared_room(o)[0])
            cap_left = ch.remaining_cap_chips - used_cap.get(ch.name, 0.0)
            if ch.state != "open":  # reopened, it would add at most what its cap leaves
                take = min(take, max(0.0, cap_left) * pool.tokens_per_s_per_replica / pool.tp)
            if take <= 0:
                continue
            if ch.state != "open":
                cause = "regime_closed"
            elif cap_left < max(ch.min_order_chips, pool.tp):
                cause = "fab_output" if ch.name in fab else "channel_cap"
            elif short * pool.tp / pool.tokens_per_s_per_replica < ch.min_order_chips:
                cause = "min_order"
            else:  # open, room left, not ordered: the policy chose not to (e.g. the optimiser's cost)
                cause = "planner_choice"
            parts.append(Shortfall(model, cause, ch.name, off.chip, off.pool, take))
            short -= take
        if short > 0:
            parts.append(Shortfall(model, "no_offer", "", "", "", short))
    return gaps, parts
