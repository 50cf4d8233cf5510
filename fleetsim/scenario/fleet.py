"""The `fleet:` section: years of demand, supply channels under export-control regimes, the
planner, budget, site limits, finance and the monthly serving windows.

Times are calendar dates (ISO `YYYY-MM-DD`); the simulation steps one day at a time. Rates are
tokens per second of output (the unit of the capacity function times output tokens/request).
Money is USD. Every figure in a shipped scenario cites its source or says ASSUMPTION.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from fleetsim.scenario.base import StrictModel
from fleetsim.scenario.reliability import Duration, FixedDuration

Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]

REGIME_STATES = ("open", "licence_required", "banned", "buyer_ban")
#: a one-sided state of older scenario files: open opens both sides, licence_required and banned
#: are the exporter's, buyer_ban the importer's (split_state)
RegimeState = Literal["open", "licence_required", "banned", "buyer_ban"]
EXPORTER_STATES = ("open", "licence_required", "banned")
IMPORTER_STATES = ("open", "discouraged", "buyer_ban", "customs_block")
ExporterState = Literal["open", "licence_required", "banned"]
ImporterState = Literal["open", "discouraged", "buyer_ban", "customs_block"]


def split_state(state: str | None) -> tuple[str | None, str | None]:
    """A one-sided `state` of an older file -> (exporter, importer); None leaves a side as it is."""
    if state is None:
        return None, None
    if state == "open":
        return "open", "open"
    if state in EXPORTER_STATES:
        return state, None
    return None, state
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


def quarter_start(q: str) -> dt.date:
    """'2025Q3' -> 2025-07-01."""
    m = _QUARTER.match(q)
    if not m:
        raise ValueError(f"quarter '{q}' must look like 2025Q3")
    return dt.date(int(m.group(1)), 3 * (int(m.group(2)) - 1) + 1, 1)


# -- demand ---------------------------------------------------------------------------------
class ForecastError(StrictModel):
    """Realised demand = forecast x exp(W(t)), W a Gaussian random walk the planner never sees."""

    sigma_per_year: NonNeg = Field(0.0, description="standard deviation of log demand after one year")


class TokenPrices(StrictModel):
    """What a class's customers pay per million tokens of each type (a published price list,
    e.g. DeepSeek's: cache-hit input, cache-miss input, output)."""

    output_usd_per_mtok: NonNeg = Field(description="price of a million output tokens")
    input_cache_miss_usd_per_mtok: NonNeg = Field(
        0.0, description="price of a million input tokens that miss the prefix cache")
    input_cache_hit_usd_per_mtok: NonNeg | None = Field(
        None, description="price of a million input tokens that hit the prefix cache "
        "(default: the cache-miss price)")


class DemandConfig(StrictModel):
    """One workload class's demand over the years (daily mean), in output tokens or in requests.

    Input tokens follow from the workload's own prompt and output length distributions (mean
    prompt tokens per mean output token) and its `prefix_cache_hit_share`."""

    tokens_per_s: Pos | None = Field(
        None, description="daily-mean output tokens/s at the start date (or give requests_per_s)")
    requests_per_s: Pos | None = Field(
        None, description="daily-mean requests/s at the start date: output tokens/s = this x the "
        "workload's mean output tokens per request (or give tokens_per_s)")
    prices: TokenPrices | None = Field(
        None, description="revenue per token type for this class (wins over "
        "finance.revenue_usd_per_mtok, which prices output tokens only)")
    growth_per_year: Annotated[float, Field(gt=-1, le=100)] = Field(
        0.0, description="compound annual growth (1.0 = +100% a year); ignored when `table` is given")
    table: dict[dt.date, Pos] | None = Field(
        None, description="dated multipliers of tokens_per_s (log-linear between dates, held after)")
    peak_to_mean: Annotated[float, Field(ge=1, le=10)] = Field(
        1.0, description="diurnal peak over daily mean (a 24-hour sinusoid)")
    peak_hour: Annotated[float, Field(ge=0, lt=24)] = Field(14.0, description="hour of the daily peak")
    forecast_error: ForecastError = Field(ForecastError(), description="random demand surprise")

    @model_validator(mode="after")
    def _one_unit(self) -> "DemandConfig":
        if (self.tokens_per_s is None) == (self.requests_per_s is None):
            raise ValueError("give exactly one of tokens_per_s (output tokens/s) and requests_per_s")
        return self


# -- supply channels ------------------------------------------------------------------------
class Offer(StrictModel):
    """A chip a channel sells (a roadmap generation when `from_date` is set)."""

    chip: str = Field(description="chip catalog short name")
    pool: str | None = Field(None, description="replica type (serving pool) the chip is bought for "
                             "(default: the first pool using the chip)")
    price_usd: Pos | None = Field(None, description="price per chip at the start (default: catalog price)")
    price_decline_per_year: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="learning curve: price x (1 - decline)^years")
    price_table: dict[dt.date, Pos] | None = Field(
        None, description="dated prices per chip (step, wins over the learning curve)")
    from_date: dt.date | None = Field(None, description="first day the chip can be ordered (roadmap)")
    until_date: dt.date | None = Field(None, description="last day the chip can be ordered")
    price_usd_per_chip_hour: Pos | None = Field(
        None, description="rent channels: all-in price per chip-hour (needed there, unused on buy channels)")


class ElasticRent(StrictModel):
    """Hourly rentals (fleetsim.fleet.elastic): each hour, the replicas that hour's demand needs
    beyond the owned and day-rented capacity, each held at least `min_term_hours`."""

    min_term_hours: Annotated[int, Field(ge=1, le=8760)] = Field(1, description="shortest rental, hours")
    max_chips: NonNeg | None = Field(None, description="most chips rented at once (default: no limit)")


class FabConfig(StrictModel):
    """Domestic supply: good chips = dies x yield (drawn per quarter) x the buyer's share."""

    dies_per_quarter: dict[str, NonNeg] = Field(
        description="'2025Q3' -> dies started that quarter (step: held until the next entry)")
    yield_mean: Share = Field(description="mean share of good dies")
    yield_sd: Share = Field(0.0, description="standard deviation of the quarter's yield")
    buyer_share: Share = Field(1.0, description="share of the fab's good output sold to this buyer")

    @field_validator("dies_per_quarter")
    @classmethod
    def _quarters(cls, v: dict[str, float]) -> dict[str, float]:
        for q in v:
            quarter_start(q)
        if not v:
            raise ValueError("give at least one quarter")
        return v


class MarkovCycle(StrictModel):
    """Random approval/restriction cycles of one side of a channel: exponential sojourns in open
    and closed states. The closed state names the side: licence_required and banned cycle the
    exporter's government, buyer_ban and customs_block the importer's."""

    mean_open_days: Pos = Field(description="mean days the side stays open")
    mean_closed_days: Pos = Field(description="mean days it stays closed")
    closed_state: Literal["licence_required", "banned", "buyer_ban", "customs_block"] = Field(
        "licence_required", description="the state a closure enters (and so the side that cycles)")
    from_date: dt.date | None = Field(None, description="cycles start here (default: fleet start)")


def cycle_side(c: MarkovCycle) -> str:
    """The side a random cycle closes: the exporter's or the importer's government."""
    return "exporter" if c.closed_state in EXPORTER_STATES else "importer"


class RoadmapConfig(StrictModel):
    """Chip generations a channel will offer: each closes a share of the remaining gap to a
    target chip (the story's five-year plan to parity). Generation k (k = 1..generations) is
    offered from first_date + (k - 1) x every_years; its performance relative to the target is
    r_k = 1 - (1 - r_0) (1 - gap_closed_per_year)^(k x every_years), with r_0 the base chip's
    bf16 compute over the target's. Compute and memory bandwidth scale by r_k / r_0; memory,
    power and everything else are the base chip's. Each generation becomes a catalog chip
    `<base>-gen<k>` and a serving pool `<pool>-gen<k>` (a copy of the base chip's pool)."""

    base: str = Field(description="chip of generation 0 (a catalog chip a pool uses)")
    target: str = Field(description="chip the plan aims at (parity = r 1.0)")
    gap_closed_per_year: Share = Field(description="share of the remaining gap closed each year")
    first_date: dt.date = Field(description="first new generation offered")
    every_years: Annotated[float, Field(gt=0, le=10)] = Field(1.0, description="years between generations")
    generations: Annotated[int, Field(ge=1, le=10)] = Field(3, description="new generations")
    price_factor_per_generation: Annotated[float, Field(gt=0, le=10)] = Field(
        1.0, description="price of generation k = base price x factor^k")


class PaymentTerms(StrictModel):
    """When the buyer pays for a bought order, and what a held order costs it. A held order risks
    only what has been paid; a ban's cancel or strand (`on_ban`) applies to what was paid."""

    deposit_share: Share = Field(
        description="share of the order (price + buyer's levy + server overhead) paid at order; the "
        "balance at delivery (1 = full prepayment, 0 = everything at delivery)")
    cancel_held_after_days: Annotated[int, Field(ge=0, le=3650)] | None = Field(
        None, description="the buyer cancels an order held (due, but a side closed) longer than this "
        "(None: it waits to the horizon)")
    deposit_on_cancel: Literal["forfeit", "refund"] = Field(
        "forfeit", description="what the buyer's cancellation of a held order does to what it paid")


class ChannelConfig(StrictModel):
    """A way to buy (or rent) chips: vendor, offers, price, levy, lead time, caps, regime.

    `kind: rent`: chips rented by the chip-hour (offers' `price_usd_per_chip_hour`), no capex, no
    depreciation, hosted by the provider (no site power or racks, power inside the price); a
    rental serves from delivery for `min_term_days` (or the term the planner asks for, if
    longer), is paid daily (ledger kind `rental`), then returned unless the planner rents again.
    Lead time defaults to 0 days for a rent channel."""

    vendor: str = Field("", description="free text")
    kind: Literal["buy", "rent"] = Field("buy", description="buy chips (capex) or rent them (USD per chip-hour)")
    min_term_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        30, description="rent channels: shortest rental, days")
    us_controlled: bool | None = Field(
        None, description="supply subject to US export controls (US dependence); default false, "
        "except on a rent channel, where each chip of a US vendor (NVIDIA, AMD, Intel, Google) "
        "counts as US-supplied")
    offers: list[Offer] = Field(min_length=1, description="chips sold, with prices and dates")
    levy: Share = Field(0.0, description="exporter side: levy or fee as a share of the price (the H20 "
                        "licence's 15% revenue share)")
    fee_usd_per_chip: NonNeg = Field(0.0, description="exporter side: a fixed fee per chip exported")
    levy_incidence: Share = Field(
        1.0, description="share of the levy and fee passed to the buyer in its price (the rest the "
        "vendor absorbs; reported, never paid by the buyer)")
    payment: PaymentTerms | None = Field(
        None, description="deposit and balance (default: everything at order or at delivery, per "
        "finance.capex_at)")
    lead_time_days: Duration = Field(FixedDuration(value=90), description="order to delivery, days")
    cap_per_month: NonNeg | None = Field(None, description="chips the buyer may order per calendar month")
    cap_per_quarter: dict[str, NonNeg] | None = Field(
        None, description="'2025Q3' -> chips orderable that quarter (step)")
    fab: FabConfig | None = Field(None, description="domestic fab ramp (sets the quarterly cap)")
    min_order_chips: Annotated[int, Field(ge=1)] = Field(1, description="smallest order")
    initial_state: RegimeState | None = Field(
        None, description="older one-state form, mapped to its side (open: both sides open)")
    initial_exporter: ExporterState = Field("open", description="exporter side on the start date")
    initial_importer: ImporterState = Field("open", description="importer side on the start date")
    compliance_share: Share = Field(
        1.0, description="importer side `discouraged`: share of planned orders the buyer forgoes")
    on_ban: Literal["cancel", "strand"] = Field(
        "cancel", description="orders in transit when banned: cancelled (refund) or stranded (lost)")
    refund_share: Share = Field(1.0, description="share of a cancelled order's payment refunded")
    risk_per_year: NonNeg = Field(
        0.0, description="planner's belief: chance per year the channel closes (security_weighted)")
    random_cycle: MarkovCycle | list[MarkovCycle] | None = Field(
        None, description="random regime cycles (one, or a list with at most one per side)")
    roadmap: RoadmapConfig | None = Field(None, description="new chip generations from dates")
    elastic: ElasticRent | None = Field(
        None, description="rent channels: rent hour by hour for the demand the fleet cannot serve "
        "(not planned ahead; paid per chip-hour)")
    assumed: list[str] = Field(
        default_factory=list, description="fields of this channel resting on assumed figures (no "
        "published value), e.g. cap_per_quarter or fab.buyer_share: a shortfall they cause is "
        "reported as an ASSUMPTION")

    @field_validator("assumed")
    @classmethod
    def _assumed_fields(cls, v: list[str]) -> list[str]:
        known = set(cls.model_fields) | {f"fab.{k}" for k in FabConfig.model_fields}
        bad = [x for x in v if x not in known]
        if bad:
            raise ValueError(f"unknown channel field(s) {bad}; allowed: {', '.join(sorted(known - {'assumed'}))}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _rent_lead(cls, data):
        """A rent channel's lead time defaults to 0 days (a buy channel's to 90)."""
        if isinstance(data, dict) and data.get("kind") == "rent" and "lead_time_days" not in data:
            data = {**data, "lead_time_days": {"kind": "fixed", "value": 0}}
        return data

    @field_validator("offers")
    @classmethod
    def _rent_prices(cls, v, info):
        if info.data.get("kind") == "rent":
            for j, off in enumerate(v):
                if off.price_usd_per_chip_hour is None:
                    raise ValueError(f"a rent channel's offers need price_usd_per_chip_hour (offer {j}, "
                                     f"chip '{off.chip}')")
        return v

    @model_validator(mode="before")
    @classmethod
    def _initial_sides(cls, data):
        """The one-state form `initial_state` sets the side it belongs to."""
        if isinstance(data, dict) and data.get("initial_state") in REGIME_STATES:
            if "initial_exporter" in data or "initial_importer" in data:
                raise ValueError("give initial_state (older one-state form) or initial_exporter/"
                                 "initial_importer, not both")
            exp, imp = split_state(data["initial_state"])
            data = {**data, **({"initial_exporter": exp} if exp else {}),
                    **({"initial_importer": imp} if imp else {})}
        return data

    @model_validator(mode="after")
    def _sides(self) -> "ChannelConfig":
        """At most one random cycle per side."""
        sides = [cycle_side(c) for c in self.cycles]
        if len(set(sides)) < len(sides):
            raise ValueError("random_cycle: give at most one cycle per side (exporter states "
                             "licence_required, banned; importer states buyer_ban, customs_block)")
        return self

    @property
    def cycles(self) -> list["MarkovCycle"]:
        c = self.random_cycle
        return [] if c is None else [c] if isinstance(c, MarkovCycle) else list(c)

    @model_validator(mode="after")
    def _elastic_rent(self) -> "ChannelConfig":
        if self.elastic is not None and self.kind != "rent":
            raise ValueError("elastic applies to rent channels only (kind: rent)")
        return self

    @model_validator(mode="after")
    def _caps(self) -> "ChannelConfig":
        given = sum(x is not None for x in (self.cap_per_month, self.cap_per_quarter, self.fab))
        if given > 1:
            raise ValueError("give at most one of cap_per_month, cap_per_quarter, fab")
        if self.cap_per_quarter:
            for q in self.cap_per_quarter:
                quarter_start(q)
        return self


class RegimeEvent(StrictModel):
    """A dated change of one or both sides of a channel's regime (and optionally its levy, fee,
    caps or lead time, or a forced removal of chips it delivered)."""

    date: dt.date
    channel: str = Field(description="channel name")
    exporter: ExporterState | None = Field(None, description="new exporter-side state (None: unchanged)")
    importer: ImporterState | None = Field(None, description="new importer-side state (None: unchanged)")
    state: RegimeState | None = Field(
        None, description="older one-state form, mapped to its side (open: both sides open)")
    levy: Share | None = Field(None, description="exporter side: new levy")
    fee_usd_per_chip: NonNeg | None = Field(None, description="exporter side: new fee per chip")
    cap_per_month: NonNeg | None = Field(None, description="new monthly cap (0: supply paused)")
    extra_lead_days: NonNeg | None = Field(None, description="added to every later order's lead time")
    compliance_share: Share | None = Field(None, description="importer side `discouraged`: new compliance share")
    remove_share: Share | None = Field(
        None, description="importer side: forced removal of this share of the chips installed from "
        "the channel")
    note: str = Field("", description="what happened")
    source: str = Field("", description="where it is documented")
    probability: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="the optimal planner's belief that the event happens (its sampled futures "
        "hold it with this probability); the realised world draws it too, on its own stream. None: "
        "a surprise: it happens for certain and the planner does not expect it")
    announced_on: dt.date | None = Field(
        None, description="from this date the planner knows for certain whether the event happens "
        "(an announcement); before it, only `probability` (if given)")

    @model_validator(mode="after")
    def _one_form(self) -> "RegimeEvent":
        if self.state is not None and (self.exporter is not None or self.importer is not None):
            raise ValueError("give `state` (older one-state form) or `exporter`/`importer`, not both")
        if self.announced_on is not None and self.announced_on > self.date:
            raise ValueError(f"announced_on {self.announced_on} is after the event's date {self.date}: "
                             "an announcement comes on or before the day")
        return self

    @property
    def sides(self) -> tuple[str | None, str | None]:
        """(exporter, importer) this event sets; None leaves that side unchanged."""
        if self.state is not None:
            return split_state(self.state)
        return self.exporter, self.importer


class RemovalEvent(StrictModel):
    """Forced removal: a share of installed chips of some kinds leave service by a date."""

    date: dt.date
    share: Share = Field(description="share of the installed chips removed")
    chips: list[str] | None = Field(None, description="chip kinds (default: every US-controlled chip)")
    note: str = ""
    source: str = ""


# -- planner --------------------------------------------------------------------------------
class _PlannerBase(StrictModel):
    period_days: Annotated[int, Field(ge=1, le=366)] = Field(30, description="days between plans")
    horizon_days: Annotated[int, Field(ge=0, le=3650)] = Field(
        180, description="plan for demand this far beyond the lead time")
    headroom: Annotated[float, Field(ge=0, le=5)] = Field(0.1, description="capacity over forecast peak")


class CheapestPlannerConfig(_PlannerBase):
    """Order the lowest cost per effective goodput over the chip's life."""

    kind: Literal["cheapest"] = "cheapest"


class SecurityWeightedPlannerConfig(_PlannerBase):
    """Cost per goodput x (1 + risk_weight x the channel's closing risk over the chip's lead+life)."""

    kind: Literal["security_weighted"] = "security_weighted"
    risk_weight: NonNeg = Field(2.0, description="penalty per unit of closing probability")


class DomesticSharePlannerConfig(_PlannerBase):
    """Keep at least `target_share` of capacity on non-US-controlled channels, cheapest otherwise."""

    kind: Literal["domestic_share"] = "domestic_share"
    target_share: Share = Field(0.5, description="share of capacity from domestic channels")


class OptimalPlannerConfig(StrictModel):
    """Rolling mixed-integer programme over sampled futures (branch `optimal`)."""

    kind: Literal["optimal"] = "optimal"
    period_days: Annotated[int, Field(ge=1, le=366)] = Field(30, description="days between plans")
    horizon_periods: Annotated[int, Field(ge=1, le=120)] = Field(12, description="periods looked ahead")
    futures: Annotated[int, Field(ge=1, le=1000)] = Field(1, description="sampled futures")
    risk: Literal["expectation", "cvar"] = Field("expectation", description="risk measure")
    cvar_alpha: Annotated[float, Field(gt=0, lt=1)] = Field(0.9, description="CVaR level")
    unmet_penalty_usd_per_mtok: NonNeg = Field(10.0, description="cost of a million unmet tokens")
    time_limit_s: Pos = Field(30.0, description="solver time limit per plan")
    mip_gap: Annotated[float, Field(ge=0, lt=1)] = Field(0.01, description="relative MIP gap")
    headroom: Annotated[float, Field(ge=0, le=5)] = Field(0.0, description="capacity over forecast peak")
    domestic_share_min: Share = Field(
        0.0, description="least share of served demand on domestic (non-US-controlled) chips, "
        "from the longest lead time on")
    risk_weight: Share = Field(
        1.0, description="with risk: cvar, objective = (1 - w) expected cost + w CVaR (mean-risk)")
    explain: bool = Field(
        True, description="name the binding constraint of a plan that leaves demand unmet (one LP "
        "per constraint family: the larger share of solve time)")
    plan_on: Literal["futures", "mean_future"] = Field(
        "futures", description="futures: the two-stage programme over the K sampled futures; "
        "mean_future: the expected-value plan, on one future with their mean demand and each "
        "channel's most likely state per period (what `fleetsim hedge` compares hedging against)")
    knows: Literal["model", "scripted", "oracle"] = Field(
        "model", description="what the sampled futures hold. model: the regime model only (random "
        "cycles, each channel's risk_per_year, events with a probability; announced events as "
        "certain); scripted events without a probability happen only in the realised world. "
        "scripted: also those, as certain (the older known_events: true). oracle: "
        "foresight, one future that is the realised one (its events, cycles and demand path)")

    @model_validator(mode="before")
    @classmethod
    def _known_events_renamed(cls, data):
        if isinstance(data, dict) and "known_events" in data:
            raise ValueError("known_events was replaced by knows: model (default: the regime model "
                             "only), scripted (scripted events known as certain) or oracle (foresight)")
        return data
    front_risk_weights: list[Share] | None = Field(
        None, description="on the first planning day, also solve at these CVaR weights and report "
        "the price-of-security front (cost, CVaR, unmet, US dependence) in summary.json")
    integer_periods: Annotated[int, Field(ge=1, le=120)] = Field(
        1, description="periods whose orders are integer (later ones continuous: only today's are placed)")
    slice_factor: Annotated[int, Field(ge=0, le=100)] = Field(
        0, description="0: each class's demand split continuously over replica types; S > 0: in S "
        "slices, each served wholly by one type (Melange's formulation; S = 1: a class on one type)")


PlannerConfig = Annotated[
    CheapestPlannerConfig | SecurityWeightedPlannerConfig | DomesticSharePlannerConfig
    | OptimalPlannerConfig,
    Field(discriminator="kind"),
]


# -- money and site -------------------------------------------------------------------------
class BudgetConfig(StrictModel):
    """Capex budget: a total and the share released each year (unspent shares carry over)."""

    total_usd: NonNeg = Field(description="capex budget over the horizon")
    schedule: list[Share] | Literal["even"] = Field(
        "even", description="share of the total released in each year of the horizon (sums to 1)")
    overrun: Literal["forbid", "allow"] = Field(
        "forbid", description="allow: the planner may spend past the budget (reported)")

    @field_validator("schedule")
    @classmethod
    def _sums_to_one(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("give one share per year")
            if abs(sum(v) - 1.0) > 1e-6:
                raise ValueError(f"spend schedule shares must sum to 1, they sum to {sum(v):.6g}")
        return v


class SubsidyConfig(StrictModel):
    """Power price multiplier for some chip kinds from a date (China's late-2025 subsidy)."""

    chips: list[str] = Field(min_length=1, description="chip kinds it applies to")
    from_date: dt.date = Field(description="first day")
    power_price_multiplier: Annotated[float, Field(ge=0, le=10)] = Field(description="x the price per kWh")
    source: str = ""


class FinanceConfig(StrictModel):
    """Capex timing, server overhead, depreciation, power and other costs, optional revenue."""

    capex_at: Literal["order", "delivery"] = Field("order", description="when capex is paid")
    server_overhead_usd_per_node: NonNeg = Field(0.0, description="host, network, chassis per node")
    chips_per_node: Annotated[int, Field(ge=1, le=1024)] = Field(8, description="chips per server node")
    life_years: Annotated[float, Field(gt=0, le=30)] = Field(
        5.0, description="depreciation life and service life (retired after it)")
    pue: Annotated[float, Field(ge=1, le=5)] = Field(1.2, description="facility power / IT power")
    power_usd_per_kwh: NonNeg = Field(0.08, description="electricity price")
    subsidies: list[SubsidyConfig] = Field([], description="power price multipliers per chip kind")
    other_opex_usd_per_chip_year: NonNeg = Field(0.0, description="staff, maintenance, space")
    revenue_usd_per_mtok: NonNeg | None = Field(None, description="optional price of a million tokens")


class OffpeakWork(StrictModel):
    """Owned replicas that serving does not need in an hour do other work (batch inference,
    training), valued per node-hour; they run at `load` while they do."""

    work: Literal["batch_inference", "training"] = Field("training", description="what the nodes do")
    value_usd_per_node_hour: NonNeg = Field(description="what a node-hour of that work is worth")
    load: Share = Field(1.0, description="utilisation of a node doing it (power and heat)")


class SiteConfig(StrictModel):
    """Site limits the planner respects: IT power and racks."""

    power_mw: Pos | None = Field(None, description="facility power limit (chip TDP x PUE), MW")
    racks: Annotated[int, Field(ge=1)] | None = Field(None, description="racks available")
    chips_per_rack: Annotated[int, Field(ge=1, le=4096)] = Field(32, description="chips in a rack")


class WindowsConfig(StrictModel):
    """Serving windows on a scaled cell of the fleet as it stands at chosen dates."""

    enabled: bool = Field(True, description="run the windows")
    every_days: Annotated[int, Field(ge=1, le=3650)] = Field(30, description="days between windows")
    hour_of_day: Annotated[float, Field(ge=0, lt=24)] | None = Field(
        None, description="hour simulated (default: the first workload's peak hour)")
    cell_replicas: Annotated[int, Field(ge=1, le=256)] = Field(16, description="replicas in the cell")
    duration_s: Pos = Field(300.0, description="simulated seconds per window")
    warmup_s: NonNeg = Field(60.0, description="excluded from the window's metrics")
    max_windows: Annotated[int, Field(ge=0, le=1000)] | None = Field(None, description="cap on windows")


class GivenCapacity(StrictModel):
    """A replica type's capacity given by hand instead of the capacity function (tests, what-ifs)."""

    goodput_rps: NonNeg = Field(description="requests/s per replica meeting the SLO")
    output_tokens_per_request: Pos = Field(description="mean output tokens per request")
    availability: Share = Field(1.0, description="share of time a replica is up")
    power_w_per_replica: NonNeg | None = Field(None, description="electrical power at that load (default: TDP x tp)")


class InitialCohort(StrictModel):
    """Chips already installed on the start date."""

    chip: str
    channel: str = Field(description="channel they came from (US dependence, regime removals)")
    count: Annotated[int, Field(ge=1)]
    price_usd: NonNeg = Field(0.0, description="price paid per chip (depreciated from the start)")
    pool: str | None = None


# Futures of a fleet run by default: enough for a 95% interval, small enough that the quickstart
# stays within seconds (benchmarks/bench_futures.py measures time against R).
DEFAULT_REPLICATIONS = 5


class FleetConfig(StrictModel):
    """Years of demand, procurement and money around the `serving:` template."""

    start: dt.date = Field(description="first simulated day")
    seed: Annotated[int, Field(ge=0)] | None = Field(
        None, description="seed of the fleet's own randomness (demand, regimes, yields, lead times, "
        "failures); default: the scenario seed. Replicates that vary only this reuse the capacity cache")
    replications: Annotated[int, Field(ge=1, le=10_000)] = Field(
        DEFAULT_REPLICATIONS, description="futures simulated from the fleet seed (SeedSequence children): "
        "everything random varies between them, the scenario and what the planner knows do not; "
        "headlines are their mean with a 95% interval, one representative future keeps its full tables")
    years: Annotated[float, Field(gt=0, le=10)] = Field(3.0, description="horizon")
    demand: dict[str, DemandConfig] = Field(description="per serving workload class")
    channels: dict[str, ChannelConfig] = Field(description="supply channels by name")
    reference_events: dict[str, str | list[str]] = Field(
        {}, description="use the built-in dated timeline (fleetsim/catalog/export_controls.yaml): "
        "role (h20, h200, nvidia) -> channel name(s); events outside the horizon are skipped")
    events: list[RegimeEvent] = Field([], description="dated regime events (after the reference ones)")
    removals: list[RemovalEvent] = Field([], description="forced removals of installed chips")
    planner: PlannerConfig = Field(CheapestPlannerConfig(), description="procurement policy")
    budget: BudgetConfig = Field(description="capex budget")
    finance: FinanceConfig = Field(FinanceConfig(), description="costs and depreciation")
    site: SiteConfig = Field(SiteConfig(), description="site limits")
    commissioning_days: Annotated[int, Field(ge=0, le=365)] = Field(
        14, description="delivery to service")
    initial_fleet: list[InitialCohort] = Field([], description="chips installed at the start")
    windows: WindowsConfig = Field(WindowsConfig(), description="monthly serving windows")
    offpeak: OffpeakWork | None = Field(
        None, description="owned replicas idle in an hour do off-peak work (fleetsim.fleet.elastic)")
    capacity: dict[str, dict[str, GivenCapacity]] | None = Field(
        None, description="pool -> workload -> capacity given by hand (skips the capacity function)")

    @property
    def end(self) -> dt.date:
        """First day after the horizon."""
        return self.start + dt.timedelta(days=self.days)

    @property
    def days(self) -> int:
        return int(round(self.years * 365))

    @model_validator(mode="after")
    def _schedule_years(self) -> "FleetConfig":
        """Dates and channel names are checked with their exact field by fleet_problems()."""
        if isinstance(self.budget.schedule, list) and len(self.budget.schedule) < int(-(-self.years // 1)):
            raise ValueError(
                f"budget.schedule has {len(self.budget.schedule)} shares; the horizon needs one per "
                f"year ({int(-(-self.years // 1))})")
        return self


def fleet_problems(f: "FleetConfig") -> list[tuple[str, str]]:
    """(field, message) for names and dates pydantic cannot place: unknown channels, dates
    outside the horizon (api.check_references raises the first as a ScenarioError)."""
    out: list[tuple[str, str]] = []
    start, end = f.start, f.end
    for i, ev in enumerate(f.events):
        if ev.channel not in f.channels:
            out.append((f"fleet.events.{i}.channel", f"unknown channel '{ev.channel}'; channels: "
                        f"{', '.join(sorted(f.channels))}"))
        if not (start <= ev.date < end):
            out.append((f"fleet.events.{i}.date", f"date {ev.date} is outside the horizon {start} to {end}"))
    for role, names in f.reference_events.items():
        for name in [names] if isinstance(names, str) else names:
            if name not in f.channels:
                out.append((f"fleet.reference_events.{role}", f"unknown channel '{name}'; channels: "
                            f"{', '.join(sorted(f.channels))}"))
    for i, ev in enumerate(f.removals):
        if not (start <= ev.date < end):
            out.append((f"fleet.removals.{i}.date", f"date {ev.date} is outside the horizon {start} to {end}"))
    for name, ch in f.channels.items():
        for j, off in enumerate(ch.offers):
            for label, d in (("from_date", off.from_date), ("until_date", off.until_date)):
                if d is not None and not (start <= d < end):
                    out.append((f"fleet.channels.{name}.offers.{j}.{label}",
                                f"date {d} is outside the horizon {start} to {end}"))
        if ch.roadmap is not None and not (start <= ch.roadmap.first_date < end):
            out.append((f"fleet.channels.{name}.roadmap.first_date",
                        f"date {ch.roadmap.first_date} is outside the horizon {start} to {end}"))
    for i, c in enumerate(f.initial_fleet):
        if c.channel not in f.channels:
            out.append((f"fleet.initial_fleet.{i}.channel", f"unknown channel '{c.channel}'"))
    for i, sub in enumerate(f.finance.subsidies):
        if not (sub.from_date < end):
            out.append((f"fleet.finance.subsidies.{i}.from_date", f"date {sub.from_date} is after the horizon"))
    return out
