"""Inputs that cannot be right: errors where a scenario is impossible, one-line warnings where it
is merely implausible (they pass pydantic, which checks each field alone).

- a fleet pool whose model no demand class asks for (its chips could never serve: an error);
- a serving pool whose model no workload sends (it gets no traffic: a warning);
- one role of a prefill/decode type offered for sale or installed while its partner role can
  never have chips (no channel offers it, none installed: an error), or offered while its partner
  has only installed chips (a warning: the optimal planner matches them, a rule planner buys a
  type's two roles together, so never);
- a channel whose typical lead time is longer than the horizon (nothing ordered arrives: a warning);
- chip figures beyond what any shipping chip reaches: device-memory bandwidth and compute per
  watt (a warning past the best chips announced, an error past ten times that).
"""

from __future__ import annotations

from fleetsim.errors import ScenarioError

# Limits, with the best published figure they sit above (catalog, 2026): B200 8 TB/s HBM3e and
# 2.25 dense BF16 TFLOPS/W; NVIDIA's announced Rubin, about 22 TB/s HBM4.
MAX_PLAUSIBLE_MEMORY_TBPS = 25.0
PEAK_PER_W_PLAUSIBLE = {"bf16_tflops": 5.0, "fp8_tflops": 10.0, "int8_tops": 10.0, "fp4_tflops": 20.0}
IMPOSSIBLE_FACTOR = 10.0


def input_problems(scenario, chips: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(errors, warnings) as (field, message) pairs."""
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    serving, fleet = scenario.serving, getattr(scenario, "fleet", None)
    used_chips = {p.chip for p in serving.pools.values()} if serving is not None else set()
    for name in sorted(used_chips):
        _chip_problems(name, chips[name], errors, warnings)
    if serving is None:
        return errors, warnings
    sent = {wl.model for wl in serving.workloads.values()}
    asked = {serving.workloads[c].model for c in fleet.demand if c in serving.workloads} if fleet else sent
    for pname, pool in serving.pools.items():
        if fleet is not None and pool.model not in asked:
            errors.append((f"serving.pools.{pname}.model",
                           f"pool '{pname}' serves {pool.model}, which no fleet.demand class asks for "
                           f"(they ask for {', '.join(sorted(asked))}), so its chips could never serve: "
                           "remove the pool or add demand for a workload of that model"))
        elif fleet is None and pool.model not in sent:
            warnings.append((f"serving.pools.{pname}.model",
                             f"pool '{pname}' serves {pool.model}, which no workload sends: it gets no traffic"))
    if fleet is not None:
        _role_offer_problems(scenario, errors, warnings)
        for cname, ch in fleet.channels.items():
            typical = _typical_days(ch.lead_time_days)
            if typical > fleet.days:
                warnings.append((f"fleet.channels.{cname}.lead_time_days",
                                 f"channel '{cname}' delivers in about {typical:.0f} days, longer than the "
                                 f"{fleet.days}-day horizon: nothing it sells arrives in the run"))
    return errors, warnings


def _never_sells(fleet, cname: str, ch) -> bool:
    """A channel capped at 0 chips a month that no dated or built-in event can reopen (a channel
    kept only for its installed chips): nothing on it can ever be bought."""
    if ch.cap_per_month != 0:
        return False
    named = {n for v in fleet.reference_events.values() for n in ([v] if isinstance(v, str) else v)}
    return cname not in named and not any(e.channel == cname and e.cap_per_month for e in fleet.events)


def _role_offer_problems(scenario, errors: list, warnings: list) -> None:
    """A role pool offered on a channel (or installed) whose partner role no channel offers: its
    chips serve only as far as the partner's installed chips carry them (a pair serves the lesser
    of its sides), so with none installed they never serve."""
    from fleetsim.fleet.capacity import role_partners
    from fleetsim.fleet.sim import offer_pool

    fleet, pools = scenario.fleet, scenario.serving.pools
    partner = role_partners(scenario.serving)
    offered: dict[str, str] = {}  # pool -> first offer's field
    for cname, ch in fleet.channels.items():
        if _never_sells(fleet, cname, ch):
            continue  # its offers are no offers: neither a lone role nor a partner
        for j, off in enumerate(ch.offers):
            offered.setdefault(offer_pool(scenario, off), f"fleet.channels.{cname}.offers.{j}")
    installed: dict[str, int] = {}
    installed_at: dict[str, str] = {}
    for i, c in enumerate(fleet.initial_fleet):
        pn = offer_pool(scenario, c)
        installed[pn] = installed.get(pn, 0) + c.count
        installed_at.setdefault(pn, f"fleet.initial_fleet.{i}")
    for pname, field in installed_at.items():  # installed, and the partner can never have chips
        other = partner.get(pname)
        if other is not None and other not in offered and other not in installed:
            errors.append((field, (
                f"{installed[pname]:,} chips are installed in pool '{pname}', the {pools[pname].role} side "
                f"of a prefill/decode type whose {pools[other].role} pool '{other}' no channel offers and "
                f"fleet.initial_fleet does not install, so they could never serve (a pair serves the "
                f"lesser of its two sides): offer or install '{other}' too")))
    for pname, field in offered.items():
        pool = pools[pname]
        if pool.role == "both":
            continue
        other = partner[pname]
        if other in offered:
            continue
        orole = pools[other].role
        if not installed.get(other):
            errors.append((field, (
                f"pool '{pname}' is the {pool.role} side of a prefill/decode type whose {orole} pool "
                f"'{other}' no channel offers and fleet.initial_fleet does not install, so its chips "
                f"could never serve (a pair serves the lesser of its two sides): offer '{other}' on a "
                f"channel (an offer with pool: {other}), install some, or drop this offer")))
        elif scenario.fleet.planner.kind == "optimal":
            warnings.append((field, (
                f"pool '{pname}' is offered but its {orole} pool '{other}' is not: the planner buys "
                f"'{pname}' only up to what the {installed[other]:,} installed '{other}' chips carry; "
                f"offer '{other}' on a channel to let the pair grow")))
        else:
            warnings.append((field, (
                f"pool '{pname}' is offered but its {orole} pool '{other}' is not: planner "
                f"'{scenario.fleet.planner.kind}' buys a prefill/decode type's two roles together, so "
                f"it never buys '{pname}' and the {installed[other]:,} installed '{other}' chips serve "
                f"only as far as the {installed.get(pname, 0):,} installed '{pname}' chips carry them; "
                f"offer '{other}' on a channel, or use "
                "planner kind optimal (it buys one side to match the other)")))


def check_inputs(scenario, chips: dict) -> list[str]:
    """Raise the first impossible input as a ScenarioError; return the warnings as lines."""
    errors, warnings = input_problems(scenario, chips)
    if errors:
        raise ScenarioError(errors[0][1], field=errors[0][0])
    return [f"field '{f}': {m}" for f, m in warnings]


def _typical_days(dist) -> float:
    if getattr(dist, "kind", "") == "fixed":
        return float(dist.value)
    return float(getattr(dist, "median", 0.0) or 0.0)


def _chip_problems(name: str, chip, errors: list, warnings: list) -> None:
    field = f"catalog.chips.{name}"
    bw = float(getattr(chip, "hbm_tbps", 0.0) or 0.0)
    if "sram" not in str(getattr(chip, "memory_type", "")).lower() and bw > MAX_PLAUSIBLE_MEMORY_TBPS:
        msg = (f"chip '{name}' has {bw:g} TB/s of device-memory bandwidth; the fastest announced "
               f"HBM parts reach about 22 TB/s")
        (errors if bw > IMPOSSIBLE_FACTOR * MAX_PLAUSIBLE_MEMORY_TBPS else warnings).append(
            (f"{field}.hbm_tbps", msg + (": check the units (TB/s)" if bw > 250 else "")))
    tdp = float(getattr(chip, "tdp_w", 0.0) or 0.0)
    for peak, limit in PEAK_PER_W_PLAUSIBLE.items():
        value = getattr(chip, peak, None)
        if not value or tdp <= 0:
            continue
        per_w = float(value) / tdp
        if per_w > limit:
            msg = (f"chip '{name}' does {per_w:.3g} {peak.split('_')[1].upper()} per watt "
                   f"({value:g} at {tdp:g} W); no shipping chip exceeds {limit / 2:g}: check {peak} "
                   "(dense, not sparse) and tdp_w")
            (errors if per_w > IMPOSSIBLE_FACTOR * limit else warnings).append((f"{field}.{peak}", msg))
