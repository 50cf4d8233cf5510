"""`extends:` in a scenario file: a variant is its base with its own fields on top (mappings
merge, the rest replaces) and `drop` removes dotted paths of the base first."""

from __future__ import annotations

from pathlib import Path

import pytest

import fleetsim
from fleetsim.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_variants_are_their_base_plus_their_change():
    base = fleetsim.load_scenario(ROOT / "scenarios/alibaba_2025.yaml")
    der = fleetsim.load_scenario(ROOT / "scenarios/alibaba_2025_derated.yaml")
    assert der.name == "alibaba_2025_derated"
    assert der.catalog.chips["t-head-ppu"]["relative_to"]["perf_fraction"] == 0.3
    assert base.catalog.chips["t-head-ppu"]["relative_to"]["perf_fraction"] == 0.4
    assert der.fleet.model_dump() == base.fleet.model_dump()  # nothing else changed
    nv = fleetsim.load_scenario(ROOT / "scenarios/nvidia_only.yaml")
    assert set(nv.fleet.channels) == {"nvidia-h20", "nvidia-h200"}
    assert set(nv.serving.pools) == {"h20", "h200"}
    dom = fleetsim.load_scenario(ROOT / "scenarios/domestic_only.yaml")
    assert not any(c.us_controlled for c in dom.fleet.channels.values())
    assert dom.fleet.initial_fleet == [] and set(dom.serving.pools) >= {"ppu", "a910b"}
    lc = fleetsim.load_scenario(ROOT / "scenarios/licence_cycle.yaml")
    assert lc.fleet.reference_events is None or not lc.fleet.reference_events
    cycles = lc.fleet.channels["nvidia-h20"].random_cycle
    assert {c.closed_state for c in cycles} == {"licence_required", "buyer_ban"}
    assert lc.fleet.channels["nvidia-h20"].offers == base.fleet.channels["nvidia-h20"].offers


def test_extends_errors_name_the_file_and_field(tmp_path):
    (tmp_path / "base.yaml").write_text("name: b\nseed: 1\nserving: {duration_s: 10}\n")
    bad = tmp_path / "v.yaml"
    bad.write_text("extends: {file: base.yaml, drop: [serving.pools.nope]}\nname: v\n")
    with pytest.raises(ScenarioError, match="serving.pools.nope") as e:
        fleetsim.load_scenario(bad)
    assert e.value.field == "extends.drop"
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\nname: l\n")
    with pytest.raises(ScenarioError, match="loops"):
        fleetsim.load_scenario(loop)
    missing = tmp_path / "m.yaml"
    missing.write_text("extends: nowhere.yaml\nname: m\n")
    with pytest.raises(ScenarioError, match="not found"):
        fleetsim.load_scenario(missing)


def test_merge_rules(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: b\nseed: 1\nserving:\n  duration_s: 10\n  warmup_s: 2\n  router: {kind: jsq}\n")
    v = tmp_path / "v.yaml"
    v.write_text("extends: base.yaml\nname: v\nserving: {duration_s: 20}\n")
    from fleetsim.scenario.loader import read_scenario_data, resolve_extends

    data = resolve_extends(read_scenario_data(v)[0], v)
    assert data["serving"] == {"duration_s": 20, "warmup_s": 2, "router": {"kind": "jsq"}}
    assert data["name"] == "v" and data["seed"] == 1 and "extends" not in data


def test_h20_ban_is_the_reference_case_but_for_the_h20_events():
    """h20_ban.yaml against alibaba_2025.yaml differs only in the H20 channel's events, so
    `fleetsim compare` pairs the two on the same futures: as a copy of the file it had drifted
    (5 futures against 16, the T-Head PPU at catalog figures instead of the story's claim)."""
    base = fleetsim.load_scenario(ROOT / "scenarios/alibaba_2025.yaml").model_dump(mode="json")
    ban = fleetsim.load_scenario(ROOT / "scenarios/h20_ban.yaml").model_dump(mode="json")
    assert ban["name"] == "h20_ban"
    assert ban["fleet"]["reference_events"] == {k: v for k, v in base["fleet"]["reference_events"].items()
                                                if k != "h20"} | {"nvidia": ["nvidia-h200"]}
    assert [(e["date"], e["channel"], e["exporter"]) for e in ban["fleet"]["events"]] == [
        ("2025-04-09", "nvidia-h20", "banned")]
    for d in (base, ban):
        for k in ("name", "description"):
            d.pop(k)
        d["fleet"].pop("reference_events"), d["fleet"].pop("events")
    assert ban == base
