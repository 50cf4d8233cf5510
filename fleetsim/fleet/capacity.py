"""The fleet's view of each replica type: the capacity function per (pool, workload).

`fleet.capacity` in the scenario gives figures by hand (tests, what-ifs); otherwise the serving
layer's capacity function (fleetsim.serving.capacity, CONTRACTS section 1) computes them through
the on-disk cache. Where that module is absent, the goodput search is used directly, with
availability 1 and power at TDP (said so in `source`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ReplicaCapacity:
    pool: str
    workload: str
    chip: str
    tp: int
    goodput_rps: float
    output_tokens_per_request: float
    availability: float
    power_w_per_replica: float
    source: str
    goodput_ci95_rps: tuple[float, float] | None = None
    energy_kwh_per_mtok: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.goodput_rps * self.output_tokens_per_request

    @property
    def effective_tokens_per_s(self) -> float:
        return self.tokens_per_s * self.availability

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["goodput_tokens_per_s"] = self.tokens_per_s
        return d


def replica_capacities(scenario, chips: dict, models: dict, cache=None, progress=None
                       ) -> dict[tuple[str, str], ReplicaCapacity]:
    fleet, serving = scenario.fleet, scenario.serving
    out = {}
    for pname, pool in serving.pools.items():
        tdp = float(getattr(chips[pool.chip], "tdp_w", None) or 400.0)
        for wname, wl in serving.workloads.items():
            if wl.model != pool.model:
                continue
            given = (fleet.capacity or {}).get(pname, {}).get(wname)
            if given is not None:
                out[pname, wname] = ReplicaCapacity(
                    pname, wname, pool.chip, pool.tp, given.goodput_rps,
                    given.output_tokens_per_request, given.availability,
                    given.power_w_per_replica if given.power_w_per_replica is not None else tdp * pool.tp,
                    "given in fleet.capacity")
                continue
            out[pname, wname] = _computed(scenario, pname, wname, pool, chips, models, tdp, cache, progress)
    return out


def _computed(scenario, pname, wname, pool, chips, models, tdp, cache, progress) -> ReplicaCapacity:
    try:
        from fleetsim.serving.capacity import capacity
    except ImportError:
        capacity = None
    if capacity is not None:
        c = capacity(scenario, pname, wname, cache=cache, progress=progress)
        return ReplicaCapacity(pname, wname, pool.chip, pool.tp, float(c.goodput_rps),
                               float(c.output_tokens_per_request), float(c.availability),
                               float(c.power_w_per_replica), "capacity function",
                               tuple(c.goodput_ci95_rps), float(c.energy_kwh_per_mtok))
    from fleetsim.serving.goodput import cached_goodput

    sv = scenario.serving
    wl = sv.workloads[wname]
    res = cached_goodput(pool, wl, sv.goodput, chips, models, scenario.seed, scenario.base_dir,
                         sv.router.kind, wname, pname, progress, cache)
    rps = float(res["goodput_req_per_s_per_replica"])
    otpr = float(res["goodput_tokens_per_s_per_replica"]) / rps if rps > 0 else 1.0
    return ReplicaCapacity(pname, wname, pool.chip, pool.tp, rps, otpr, 1.0, tdp * pool.tp,
                           "goodput search (capacity function not in this build: availability 1, "
                           "power at TDP)")
