"""Regime timelines of supply channels: dated events, the built-in reference timeline, and random
approval/restriction cycles (a two-state Markov chain with exponential sojourns), merged into one
list of dated transitions the fleet's `regime` process walks through.

A channel has two sides, each its own state machine: the exporter's government (open,
licence_required, banned; levy, fee, cap, lead time) and the importer's (open, discouraged,
buyer_ban, customs_block; compliance share, forced removal). A shipment needs both sides open
(`discouraged` lets shipments through; the buyer forgoes its compliance share of new orders).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable
from importlib import resources

import numpy as np
import yaml

from fleetsim.scenario.fleet import (EXPORTER_STATES, IMPORTER_STATES, FleetConfig, RegimeEvent,
                                     cycle_side)

#: the channel's combined state, as the planner and the timeline's regime_state see it
STATES = ("open", "licence_required", "banned", "buyer_ban")
STATE_CODE = {s: i for i, s in enumerate(STATES)}
EXPORTER_CODE = {s: i for i, s in enumerate(EXPORTER_STATES)}
IMPORTER_CODE = {s: i for i, s in enumerate(IMPORTER_STATES)}
#: importer states that let shipments (and new orders) through
IMPORTER_PASSES = ("open", "discouraged")
#: metadata of a reference row that is not an event field
_ROW_META = ("role", "added", "secondary")


def ships(exporter: str, importer: str) -> bool:
    """A shipment (and a new order) needs both sides open."""
    return exporter == "open" and importer in IMPORTER_PASSES


def combined_state(exporter: str, importer: str) -> str:
    """One of STATES: the exporter's closure first, then an importer block as buyer_ban."""
    if exporter != "open":
        return exporter
    return "open" if importer in IMPORTER_PASSES else "buyer_ban"


@dataclass(frozen=True)
class Transition:
    """A change applied to one channel at the start of `day` (days from the fleet's start)."""

    day: int
    seq: int
    channel: str
    exporter: str | None   # new exporter-side state (None: unchanged)
    importer: str | None   # new importer-side state (None: unchanged)
    levy: float | None
    cap_per_month: float | None
    extra_lead_days: float | None
    origin: str          # reference | event | random
    note: str
    source: str
    fee_usd_per_chip: float | None = None
    compliance_share: float | None = None
    remove_share: float | None = None
    probability: float | None = None     # scripted: the planner's belief it happens (None: a surprise)
    announced_day: int | None = None     # scripted: day from which the planner knows it for certain
    key: tuple = ()                      # scripted: (channel, date, n), names its stream and its identity
    happened: bool = True                # False: the world drew that this scripted event does not happen


@lru_cache(maxsize=1)
def reference_timeline() -> dict:
    """The built-in dated events (fleetsim/catalog/export_controls.yaml), with their sources."""
    text = resources.files("fleetsim.catalog").joinpath("export_controls.yaml").read_text()
    return yaml.safe_load(text)


def _events(fleet: FleetConfig) -> list[tuple[RegimeEvent, str]]:
    out = []
    for row in reference_timeline()["events"]:
        names = fleet.reference_events.get(row["role"])
        if names is None:
            continue
        for name in [names] if isinstance(names, str) else names:
            fields = {k: v for k, v in row.items() if k not in _ROW_META}
            if row.get("secondary"):
                fields["source"] = f"SECONDARY: {fields.get('source', '')}"
            out.append((RegimeEvent(channel=name, **fields), "reference"))
    out += [(ev, "event") for ev in fleet.events]
    return out


def build_transitions(fleet: FleetConfig, rng: np.random.Generator,
                      streams: Callable[[str, str], np.random.Generator] | None = None,
                      event_streams: Callable[..., np.random.Generator] | None = None) -> list[Transition]:
    """Every dated change inside the horizon, in time order (ties: reference, events, random).
    `streams(channel, side)` gives each side's cycle its own named stream (common random numbers:
    adding a cycle to one channel leaves another's draws alone); without it every cycle draws
    from `rng` in turn. `event_streams(channel, date, n)`: the world's draw of each scripted event
    that has a `probability` (it happens when a uniform draw falls below it), one stream per
    event; without it every scripted event is listed (the caller decides)."""
    start, end = fleet.start, fleet.end
    out: list[Transition] = []
    seq = 0
    seen: dict[tuple, int] = {}
    for ev, origin in _events(fleet):
        if not (start <= ev.date < end):
            continue
        base = (ev.channel, ev.date.isoformat())
        key = (*base, seen.get(base, 0))
        seen[base] = key[2] + 1
        ann = None if ev.announced_on is None else (ev.announced_on - start).days
        if ev.probability is not None and event_streams is not None \
                and event_streams(*key).random() >= ev.probability:
            # the world drew that it does not happen: listed (the run's events say so), changing nothing
            out.append(Transition((ev.date - start).days, seq, ev.channel, None, None, None, None, None, origin,
                                  ev.note, ev.source, probability=ev.probability, announced_day=ann, key=key,
                                  happened=False))
            seq += 1
            continue
        exp, imp = ev.sides
        out.append(Transition((ev.date - start).days, seq, ev.channel, exp, imp, ev.levy,
                              ev.cap_per_month, ev.extra_lead_days, origin, ev.note, ev.source,
                              ev.fee_usd_per_chip, ev.compliance_share, ev.remove_share,
                              ev.probability, ann, key))
        seq += 1
    for name in sorted(fleet.channels):
        for cyc in fleet.channels[name].cycles:
            side = cycle_side(cyc)
            r = rng if streams is None else streams(name, side)
            t = float(((cyc.from_date or start) - start).days)
            is_open = True
            while True:
                t += r.exponential(cyc.mean_open_days if is_open else cyc.mean_closed_days)
                if t >= fleet.days:
                    break
                is_open = not is_open
                state = "open" if is_open else cyc.closed_state
                exp, imp = (state, None) if side == "exporter" else (None, state)
                out.append(Transition(int(t), 10**6 + seq, name, exp, imp, None, None, None, "random",
                                      f"random cycle ({side} side): {state}",
                                      "ASSUMPTION: Markov regime cycle"))
                seq += 1
    out.sort(key=lambda tr: (tr.day, tr.seq))
    return out


def day_of(fleet: FleetConfig, d: dt.date) -> int:
    return (d - fleet.start).days
