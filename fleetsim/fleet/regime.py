"""Regime timelines of supply channels: dated events, the built-in reference timeline, and random
approval/restriction cycles (a two-state Markov chain with exponential sojourns), merged into one
list of dated transitions the fleet's `regime` process walks through.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

from fleetsim.scenario.fleet import FleetConfig, RegimeEvent

STATES = ("open", "licence_required", "banned", "buyer_ban")
STATE_CODE = {s: i for i, s in enumerate(STATES)}


@dataclass(frozen=True)
class Transition:
    """A change applied to one channel at the start of `day` (days from the fleet's start)."""

    day: int
    seq: int
    channel: str
    state: str | None
    levy: float | None
    cap_per_month: float | None
    extra_lead_days: float | None
    origin: str          # reference | event | random
    note: str
    source: str


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
            fields = {k: v for k, v in row.items() if k != "role"}
            out.append((RegimeEvent(channel=name, **fields), "reference"))
    out += [(ev, "event") for ev in fleet.events]
    return out


def build_transitions(fleet: FleetConfig, rng: np.random.Generator) -> list[Transition]:
    """Every dated change inside the horizon, in time order (ties: reference, events, random)."""
    start, end = fleet.start, fleet.end
    out: list[Transition] = []
    seq = 0
    for ev, origin in _events(fleet):
        if not (start <= ev.date < end):
            continue
        out.append(Transition((ev.date - start).days, seq, ev.channel, ev.state, ev.levy,
                              ev.cap_per_month, ev.extra_lead_days, origin, ev.note, ev.source))
        seq += 1
    for name in sorted(fleet.channels):
        cyc = fleet.channels[name].random_cycle
        if cyc is None:
            continue
        t = float(((cyc.from_date or start) - start).days)
        is_open = True
        while True:
            t += rng.exponential(cyc.mean_open_days if is_open else cyc.mean_closed_days)
            if t >= fleet.days:
                break
            is_open = not is_open
            state = "open" if is_open else cyc.closed_state
            out.append(Transition(int(t), 10**6 + seq, name, state, None, None, None, "random",
                                  f"random cycle: {state}", "ASSUMPTION: Markov regime cycle"))
            seq += 1
    out.sort(key=lambda tr: (tr.day, tr.seq))
    return out


def day_of(fleet: FleetConfig, d: dt.date) -> int:
    return (d - fleet.start).days
