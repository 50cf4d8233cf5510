"""The fleet's view of each replica type: the capacity function per (pool, workload).

`fleet.capacity` in the scenario gives figures by hand (tests, what-ifs); otherwise the serving
layer's capacity function (fleetsim.serving.capacity, CONTRACTS section 1) computes them through
the on-disk cache. Where that module is absent, the goodput search is used directly, with
availability 1 and power at TDP (said so in `source`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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
    kernel_basis: str = ""  # the kernel's provenance: measured-near / transferred (...) / roofline-only

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


def replica_capacities(scenario, chips: dict, models: dict, cache=None, progress=None, ambient_c=None
                       ) -> dict[tuple[str, str], ReplicaCapacity]:
    """Capacity per (pool, workload) in each pool's hall (at `ambient_c` {pool: inlet C} when
    given, else the hall's mean)."""
    from fleetsim.errors import ScenarioError

    fleet, serving = scenario.fleet, scenario.serving
    out = {}
    for pname, pool in serving.pools.items():
        if pool.role != "both":  # a unit of two pools is bought per role: not in this build
            raise ScenarioError(
                f"pool '{pname}' has role {pool.role}: the fleet layer does not yet buy prefill/decode "
                "units; plan them with `fleetsim goodput` (a prefill pool's row is its unit) or give "
                "the fleet colocated pools (role: both)", field=f"serving.pools.{pname}.role")
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
                    "given in fleet.capacity", kernel_basis="given by hand (no kernel)")
                continue
            c = _computed(scenario, pname, wname, pool, chips, models, tdp, cache, progress,
                          None if ambient_c is None else ambient_c.get(pname))
            out[pname, wname] = replace(c, kernel_basis=kernel_basis(pool, chips, models))
    return out


def kernel_basis(pool, chips: dict, models: dict) -> str:
    """One line: what the pool's kernel figures rest on (fleetsim.kernel.provenance)."""
    from fleetsim.kernel.provenance import provenance
    from fleetsim.serving.window import pool_kernel

    return provenance(pool_kernel(pool, chips, models)).line()


def seasonal_grid(scenario) -> dict[str, list[float]]:
    """Inlet temperatures at which to evaluate the capacity of each pool whose hall has a
    seasonal swing: the coolest, mean and warmest daily means (the fleet interpolates between)."""
    rel = scenario.reliability
    if rel is None:
        return {}
    out = {}
    for pname, pool in scenario.serving.pools.items():
        hall = rel.halls.get(pool.hall, rel.halls["default"])
        if hall.seasonal_swing_c > 0:
            half = hall.seasonal_swing_c / 2.0
            out[pname] = [hall.ambient_c - half, hall.ambient_c, hall.ambient_c + half]
    return out


def seasonal_capacities(scenario, chips, models, cache=None, progress=None
                        ) -> dict[tuple[str, str], list[tuple[float, ReplicaCapacity]]]:
    """(inlet C, capacity) points per (pool, workload) for the pools of seasonal halls."""
    grid = seasonal_grid(scenario)
    out: dict[tuple[str, str], list[tuple[float, ReplicaCapacity]]] = {}
    if not grid:
        return out
    for i in range(3):
        at = {p: temps[i] for p, temps in grid.items()}
        caps = replica_capacities(scenario, chips, models, cache, progress, ambient_c=at)
        for (p, w), c in caps.items():
            if p in grid and c.source != "given in fleet.capacity":
                out.setdefault((p, w), []).append((at[p], c))
    return out


def _computed(scenario, pname, wname, pool, chips, models, tdp, cache, progress, ambient_c=None) -> ReplicaCapacity:
    try:
        from fleetsim.serving.capacity import capacity
    except ImportError:
        capacity = None
    if capacity is not None:
        c = capacity(scenario, pname, wname, cache=cache, progress=progress, ambient_c=ambient_c)
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
