"""The fleet's view of each replica type: the capacity function per (pool, workload).

`fleet.capacity` in the scenario gives figures by hand (tests, what-ifs); otherwise the serving
layer's capacity function (fleetsim.serving.capacity) computes them through
the on-disk cache. Where that module is absent, the goodput search is used directly, with
availability 1 and power at TDP (said so in `source`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from fleetsim.errors import ScenarioError


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
    role: str = "both"  # both | prefill | decode: a role's rate is per instance of that role
    partner: str = ""   # a role pool's other half (prefill: its decode pool; decode: its prefill pool)

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
    given, else the hall's mean). A prefill/decode type's two pools each get a row per instance
    of their role (`role`, `partner`): the fleet buys the roles separately, so their ratio is the
    planner's choice, and a pair serves the lesser of its two sides."""

    fleet, serving = scenario.fleet, scenario.serving
    out = {}
    partner = role_partners(serving)
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
                    "given in fleet.capacity", kernel_basis="given by hand (no kernel)",
                    role=pool.role, partner=partner.get(pname, ""))
                continue
            if pool.role == "decode":  # measured with its prefill pool (below)
                continue
            if pool.role == "prefill":
                dname = pool.handoff.decode_pool
                if (fleet.capacity or {}).get(dname, {}).get(wname) is not None:
                    raise ScenarioError(
                        f"fleet.capacity gives decode pool '{dname}' by hand but not its prefill pool "
                        f"'{pname}': give both roles or neither", field=f"fleet.capacity.{pname}")
                for c in _roles_computed(scenario, pname, wname, cache, progress,
                                         None if ambient_c is None else ambient_c.get(pname)):
                    p2 = serving.pools[c.pool]
                    out[c.pool, wname] = replace(c, kernel_basis=kernel_basis(p2, chips, models))
                continue
            c = _computed(scenario, pname, wname, pool, chips, models, tdp, cache, progress,
                          None if ambient_c is None else ambient_c.get(pname))
            out[pname, wname] = replace(c, kernel_basis=kernel_basis(pool, chips, models))
    for pname, other in partner.items():  # a role given by hand needs its partner too
        for wname in serving.workloads:
            if ((pname, wname) in out) != ((other, wname) in out):
                raise ScenarioError(
                    f"pool '{pname}' (role {serving.pools[pname].role}) has a capacity for '{wname}' "
                    f"but its partner '{other}' has none: give both roles in fleet.capacity",
                    field=f"fleet.capacity.{other}")
    return out


def role_partners(serving) -> dict[str, str]:
    """Each role pool's other half: prefill pool -> its decode pool and back. A decode pool fed by
    two prefill pools is refused (the fleet pairs one with one)."""
    out: dict[str, str] = {}
    for pname, pool in serving.pools.items():
        if pool.role != "prefill":
            continue
        d = pool.handoff.decode_pool
        if d in out:
            raise ScenarioError(f"decode pool '{d}' is fed by '{out[d]}' and '{pname}': the fleet pairs "
                                "one prefill pool with one decode pool", field=f"serving.pools.{pname}.handoff")
        out[pname], out[d] = d, pname
    return out


def _roles_computed(scenario, pname, wname, cache, progress, ambient_c) -> list[ReplicaCapacity]:
    """The two roles of a prefill/decode type, each per instance (serving.capacity.role_capacities)."""
    from fleetsim.serving.capacity import role_capacities

    pc, dc = role_capacities(scenario, pname, wname, ambient_c=ambient_c, cache=cache, progress=progress)
    dname = scenario.serving.pools[pname].handoff.decode_pool
    rows = []
    for c, name, other in ((pc, pname, dname), (dc, dname, pname)):
        rows.append(ReplicaCapacity(
            name, wname, c.chip, c.tp, float(c.goodput_rps), float(c.output_tokens_per_request),
            float(c.availability), float(c.power_w_per_replica),
            f"capacity function ({c.role} role, {c.prefill_per_unit}:{c.decode_per_unit} unit)",
            tuple(c.goodput_ci95_rps), float(c.energy_kwh_per_mtok), role=c.role, partner=other))
    return rows


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
