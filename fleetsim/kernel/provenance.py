"""Where a kernel prediction's figures come from (DESIGN.md Round 3, "Every number's provenance").

measured-near   fit-split points exist on this chip, engine and model kind (dense or MoE), at a
                replica size inside the fitted range, and every fitted figure the kernel uses on
                this platform was fitted on its own points
transferred     the kernel runs, but on figures borrowed from elsewhere: another chip of the
                family, another engine's or a pooled platform overhead, the family's GEMM
                efficiency for an engine, a tp outside the fitted range; each reason names its rule
roofline-only   the chip's family has no serving measurement: the efficiencies are an assumed
                band, so the figure is the roofline under an assumption

`fleetsim support CHIP MODEL [ENGINE]` prints it; capacity rows and run summaries carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.catalog.schema import PLATFORM_OF_FAMILY

KINDS = ("measured-near", "transferred", "roofline-only")


@dataclass(frozen=True)
class Provenance:
    kind: str  # one of KINDS
    reasons: tuple[str, ...]  # why it is not measured-near (rule and source of each transfer)
    fit_points: int  # fit-split points on this chip, engine and model kind

    def line(self) -> str:
        """One line for tables and summaries."""
        return self.kind if not self.reasons else f"{self.kind} ({'; '.join(self.reasons)})"

    def __str__(self) -> str:
        return self.line()


def provenance(kernel, points=None) -> Provenance:
    """The provenance of `kernel`'s figures against the measurement set's FIT split."""
    from fleetsim.catalog import load_chips
    from fleetsim.kernel.measurements import load_measurements

    chip, model, eng = kernel.chip, kernel.model, kernel.engine
    chips = load_chips()
    key = next((k for k, c in chips.items() if c.name == chip.name), chip.name)
    if not chip.efficiency.measured:
        return Provenance("roofline-only", (
            f"{key}: no published serving measurement for family {chip.family}; assumed "
            f"'{kernel.band}' efficiency band",), 0)
    chips = load_chips()
    key = next((k for k, c in chips.items() if c.name == chip.name), chip.name)
    fit = [m for m in (points if points is not None else load_measurements()) if m.split == "fit"]
    name = _engine_key(eng)
    moe = model.is_moe
    family = [m for m in fit if m.chip in chips and chips[m.chip].family == chip.family]
    same = [m for m in family if m.chip == key and m.engine == name
            and _is_moe(m.model) == moe]
    reasons = []
    plat = PLATFORM_OF_FAMILY.get(chip.family, "other")
    for fld, rule in sorted(eng.transfers.items()):
        if fld in (f"overhead_s.{plat}", "gemm_efficiency", "speedup_per_year"):
            reasons.append(f"{name} {fld.split('.')[0]}: {rule}")
    if not same:
        on_chip = sorted({m.engine for m in family if m.chip == key})
        fam_chips = sorted({m.chip for m in family})
        kind = "MoE" if moe else "dense"
        if not family:
            reasons.append(f"no fit point on family {chip.family}")
        elif not any(m.chip == key for m in family):
            reasons.append(f"no fit point on {key}: family {chip.family} fitted on "
                           f"{', '.join(fam_chips)} (same efficiencies, this chip's datasheet)")
        else:
            reasons.append(f"no fit point of {name} with a {kind} model on {key} (fitted there: "
                           f"{', '.join(on_chip)})")
    else:
        tps = [m.tp for m in same]
        if not (min(tps) <= kernel.tp <= max(tps)):
            reasons.append(f"tp {kernel.tp} outside the fitted tp {min(tps)}-{max(tps)} of {name} on "
                           f"{key}")
    return Provenance("transferred" if reasons else "measured-near", tuple(reasons), len(same))


def _engine_key(profile) -> str:
    from fleetsim.catalog import load_engines

    for key, p in load_engines().items():
        if p.name == profile.name:
            return key
    return profile.name


def _is_moe(model_name: str) -> bool:
    from fleetsim.catalog import load_models

    m = load_models().get(model_name)
    return bool(m and m.is_moe)
