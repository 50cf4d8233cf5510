"""Reliability: thermal model and throttling, crash hazard, repair, and the cohort fleet run.

Serving layer: `PoolHealth` (per pool, vectorised over replicas) and `RepairShop` (SimPy).
Reliability-only run: `run_reliability(cfg, chips, rng)`. Fleet layer: `CohortFleet`, chip counts
per delivery stepped daily inside the fleet's SimPy environment, load following demand.
"""

from fleetsim.catalog.reliability import ChipReliability, chip_reliability
from fleetsim.reliability.events import EVENT_COLUMNS, EVENT_KINDS, EventLog
from fleetsim.reliability.health import PoolHealth
from fleetsim.reliability.repair import RepairOutcome, RepairShop

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_KINDS",
    "ChipReliability",
    "CohortFleet",
    "EventLog",
    "PoolHealth",
    "ReliabilityResult",
    "RepairOutcome",
    "RepairShop",
    "chip_reliability",
    "resolve_chip",
    "run_reliability",
]


def __getattr__(name):  # the cohort run pulls in more; load it on first use
    if name in ("run_reliability", "ReliabilityResult", "resolve_chip", "CohortFleet"):
        from fleetsim.reliability import cohort

        return getattr(cohort, name)
    raise AttributeError(name)
