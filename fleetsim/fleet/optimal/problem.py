"""A planning problem as plain arrays: what the MILP needs, nothing about how the fleet got there.

Units (every array is numpy, float64 unless said):
- time is in planning periods t = 0..T-1 of `hours_per_period` hours; period 0 is "now";
- demand is a request rate (req/s) per class, the mean over the period's busy hour the SLO must hold at;
- capacity is in replicas (a replica = `chips_per_replica` chips of one pool); orders are integer
  replicas, so an order of n replicas is n * chips_per_replica chips;
- money is USD; caps, minimum orders and budgets are in chips and USD per period.

The problem is two-stage stochastic over K futures (sampled regime paths and demand paths) with
probabilities `future_weight`: decisions in period 0 are shared by every future (they are what
the planner orders today), decisions from period 1 on are recourse, one copy per future.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from fleetsim.errors import FleetsimError

#: regime states and what they do to an order (see DESIGN.md "Supply channel")
ORDERABLE_STATES = {"open"}
#: state -> (delivered share, paid share) of an order in transit when the channel enters it
TRANSIT_EFFECT = {
    "open": (1.0, 1.0),
    "licence_required": (1.0, 1.0),  # orders already licensed keep coming
    "banned": (0.0, 0.0),  # cancelled, refunded
    "buyer_ban": (0.0, 1.0),  # "approved, yet zero shipped": paid, stranded
}


@dataclass(frozen=True)
class Pool:
    """A replica type: chip x model x tp x batching; what demand is served on."""

    name: str
    chip: str
    chips_per_replica: int
    goodput_rps: np.ndarray  # (C,) effective goodput per INSTALLED replica per class, 0 = cannot serve
    power_w_per_replica: float = 0.0
    racks_per_replica: float = 0.0
    power_usd_per_replica_period: float = 0.0  # electricity x PUE for an owned replica over a period
    opex_usd_per_replica_period: float = 0.0  # other running cost of an owned replica over a period
    domestic: bool = False
    us_controlled: bool = False
    #: a decode side of a prefill/decode type: the prefill pool it serves with. Demand is routed to
    #: the prefill pool only; this pool's capacity row carries the same load at its own rate, so
    #: the ratio of the two sides bought is the optimiser's choice
    serves_with: str = ""


@dataclass(frozen=True)
class Option:
    """One way to get replicas of a pool: buy or rent chips through a supply channel."""

    name: str
    channel: str
    pool: str
    kind: str = "buy"  # "buy" (capex, site power and racks) or "rent" (all-in hourly price, hosted elsewhere)
    price_usd_per_chip: float = 0.0  # buy: unit price
    price_usd_per_chip_hour: float = 0.0  # rent: hourly price
    levy_share: float = 0.0  # surcharge on the price (a revenue share passed to the buyer)
    lead_periods: int = 0  # an order placed in period t serves from period t + lead_periods
    min_order_chips: int = 0  # an order is 0 or at least this many chips
    min_term_periods: int = 1  # rent: a rental lasts this many periods once it starts
    capex_weight: np.ndarray | None = None  # (T,) share of capex counted in the objective (end effects)

    def __post_init__(self) -> None:
        if self.kind not in ("buy", "rent"):
            raise FleetsimError(f"option {self.name!r}: kind must be 'buy' or 'rent', not {self.kind!r}")
        if self.lead_periods < 0 or self.min_term_periods < 1:
            raise FleetsimError(f"option {self.name!r}: lead_periods >= 0 and min_term_periods >= 1")


@dataclass(frozen=True)
class Problem:
    """Everything the optimiser sees in one planning period."""

    classes: list[str]
    pools: list[Pool]
    options: list[Option]
    hours_per_period: float
    demand_rps: np.ndarray  # (K, C, T)
    future_weight: np.ndarray | None = None  # (K,) probabilities, default uniform
    #: regime state per future, channel and period (strings from TRANSIT_EFFECT); missing = open
    channel_state: dict[str, np.ndarray] = field(default_factory=dict)  # channel -> (K, T) of str
    cap_chips: dict[str, np.ndarray] = field(default_factory=dict)  # channel -> (T,) chips/period
    removal_period: dict[str, np.ndarray] = field(default_factory=dict)  # channel -> (K,) forced removal
    installed: np.ndarray | None = None  # (K, P, T) owned replicas already installed or on order
    rented: np.ndarray | None = None  # (K, P, T) replicas rented under running contracts
    budget_usd: np.ndarray | None = None  # (T,) capex allowed per period; None = no budget
    budget_carry_over: bool = True  # unspent budget carries to later periods
    site_power_w: np.ndarray | None = None  # (T,) for owned replicas; None = unlimited
    site_racks: np.ndarray | None = None  # (T,)
    domestic_share_min: float = 0.0  # share of served demand on domestic pools, from the period below
    domestic_share_from_period: int = 0
    spare_share: float = 0.0  # share of OWNED replicas held as repair spares (rentals: the provider's)
    unmet_penalty_usd_per_rps_period: np.ndarray | None = None  # (C,)
    allow_unmet: bool = True  # False: demand is a hard constraint (infeasible if it cannot be met)
    slice_factor: int = 0  # 0 = continuous split; S > 0 = each class in S slices, each on one pool (Mélange)
    cvar_alpha: float = 0.9
    cvar_weight: float = 0.0  # objective = (1-w) E[cost] + w CVaR_alpha[cost]
    integer_periods: int | None = None  # orders integer in the first n periods, continuous after

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def K(self) -> int:
        return int(self.demand_rps.shape[0])

    @property
    def C(self) -> int:
        return len(self.classes)

    @property
    def T(self) -> int:
        return int(self.demand_rps.shape[2])

    @property
    def P(self) -> int:
        return len(self.pools)

    @property
    def O(self) -> int:  # noqa: E743 - the model's letter
        return len(self.options)

    def weights(self) -> np.ndarray:
        if self.future_weight is None:
            return np.full(self.K, 1.0 / self.K)
        w = np.asarray(self.future_weight, float)
        return w / w.sum()

    def pool_index(self, name: str) -> int:
        for i, p in enumerate(self.pools):
            if p.name == name:
                return i
        raise FleetsimError(f"option refers to pool {name!r}, which the problem does not have")

    def penalty(self) -> np.ndarray:
        if self.unmet_penalty_usd_per_rps_period is None:
            return np.zeros(self.C)
        return np.asarray(self.unmet_penalty_usd_per_rps_period, float)

    def state(self, channel: str) -> np.ndarray:
        """(K, T) regime state of a channel; open where the problem says nothing."""
        s = self.channel_state.get(channel)
        if s is None:
            return np.full((self.K, self.T), "open", dtype=object)
        return np.asarray(s, dtype=object)

    def check(self) -> None:
        """Shapes and signs, so a bad adapter fails here with a sentence, not inside HiGHS."""
        K, C, T, P = self.K, self.C, self.T, self.P
        if self.demand_rps.shape != (K, C, T):
            raise FleetsimError(f"demand_rps has shape {self.demand_rps.shape}, want (K, {C}, T)")
        if not np.all(np.isfinite(self.demand_rps)) or np.any(self.demand_rps < 0):
            raise FleetsimError("demand_rps must be finite and >= 0")
        for p in self.pools:
            if np.shape(p.goodput_rps) != (C,):
                raise FleetsimError(f"pool {p.name!r}: goodput_rps needs one figure per class ({C})")
        for o in self.options:
            self.pool_index(o.pool)
        for name in ("installed", "rented"):
            a = getattr(self, name)
            if a is not None and np.shape(a) != (K, P, T):
                raise FleetsimError(f"{name} has shape {np.shape(a)}, want ({K}, {P}, {T})")
        for ch, s in self.channel_state.items():
            if np.shape(s) != (K, T):
                raise FleetsimError(f"channel_state[{ch!r}] has shape {np.shape(s)}, want ({K}, {T})")
            bad = set(np.unique(np.asarray(s, dtype=object))) - set(TRANSIT_EFFECT)
            if bad:
                raise FleetsimError(f"channel_state[{ch!r}]: unknown states {sorted(bad)}")
        if self.future_weight is not None:
            w = np.asarray(self.future_weight, float)
            if w.shape != (K,) or np.any(w < 0) or w.sum() <= 0:
                raise FleetsimError(f"future_weight needs {K} non-negative weights, not {w.tolist()}")
        if not 0.0 <= self.cvar_alpha < 1.0:
            raise FleetsimError("cvar_alpha must be in [0, 1)")
        if not 0.0 <= self.cvar_weight <= 1.0:
            raise FleetsimError("cvar_weight must be in [0, 1]")

    def with_(self, **changes) -> "Problem":
        return replace(self, **changes)


def order_effects(problem: Problem, option: Option) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each future and order period: may one order (bool), which share arrives, which is paid.

    An order placed in period s through a channel is possible when the channel is `open` at s. It
    then travels for `lead_periods`; if during that time (s, s+lead] the channel turns `banned` it
    is cancelled and refunded, if `buyer_ban` it is stranded (paid, never delivered). The first
    such state met decides.
    """
    K, T = problem.K, problem.T
    st = problem.state(option.channel)
    orderable = np.isin(st, list(ORDERABLE_STATES))
    delivered = np.ones((K, T))
    paid = np.ones((K, T))
    L = option.lead_periods
    for s in range(T):
        decided = np.zeros(K, bool)
        for t in range(s + 1, min(s + L, T - 1) + 1):
            for state, (d, p) in TRANSIT_EFFECT.items():
                if d == 1.0:
                    continue
                hit = (st[:, t] == state) & ~decided
                delivered[hit, s] = d
                paid[hit, s] = p
                decided |= hit
    return orderable, delivered, paid
