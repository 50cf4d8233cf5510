"""KV link presets (`handoff: {link: NAME}`, fleetsim/catalog/links.yaml): the preset's figures
are the ones the transfer uses, explicit figures still work, and a conflicting figure or an
unknown name is refused with the allowed names (issue 22)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import fleetsim
from fleetsim.cli import main as cli
from fleetsim.scenario.model import Scenario
from fleetsim.scenario.serving import LINK_PRESETS
from fleetsim.serving.window import built_parts

from test_disagg import _idle, window


def with_link(handoff: dict) -> Scenario:
    d = window(True, duration_s=600.0).model_dump(mode="json", exclude_unset=True)
    d["serving"]["pools"]["pre"]["handoff"] = {"decode_pool": "dec", **handoff}
    return Scenario.model_validate(d)


def test_presets_carry_sources_and_positive_figures():
    assert {"nvlink4", "hccs-910b", "roce-400g", "infiniband-ndr"} <= set(LINK_PRESETS)
    for name, p in LINK_PRESETS.items():
        assert p["gbps"] > 0 and p["latency_s"] >= 0, name
        assert set(p["sources"]) == {"gbps", "latency_s"} and all(p["sources"].values()), name


def test_a_preset_is_its_figures_by_hand_and_they_reach_ttft():
    """`link: roce-400g` runs byte-for-byte as its figures given by hand; the transfer is
    latency + prompt x KV bytes / bandwidth on top of the same prefill as a faster preset."""
    p = LINK_PRESETS["roce-400g"]
    pre = fleetsim.run(with_link({"link": "roce-400g"})).requests
    hand = fleetsim.run(with_link({"link_gbps": p["gbps"], "link_latency_s": p["latency_s"]})).requests
    assert pre.equals(hand)
    fast = fleetsim.run(with_link({"link_gbps": 1e12})).requests
    kernel = built_parts(with_link({"link": "roce-400g"}))[2]["pre"]
    link_s = p["latency_s"] + 2000 * kernel.kv_bytes_per_token / (p["gbps"] * 1e9)
    a, b = _idle(fast), _idle(pre)
    assert len(a) > 10 and len(b) > 10
    assert float(np.median(b.ttft_s)) - float(np.median(a.ttft_s)) == pytest.approx(link_s, rel=1e-6)


def test_a_dump_keeps_the_preset_and_no_link_key_without_one():
    s = with_link({"link": "hccs-910b"})
    h = s.serving.pools["pre"].handoff
    assert (h.link_gbps, h.link_latency_s) == (LINK_PRESETS["hccs-910b"]["gbps"], LINK_PRESETS["hccs-910b"]["latency_s"])
    again = s.with_overrides(["serving.pools.pre.handoff.link=nvlink4"])  # --set swaps the preset
    assert again.serving.pools["pre"].handoff.link_gbps == LINK_PRESETS["nvlink4"]["gbps"]
    plain = window(True).model_dump(mode="json")["serving"]["pools"]["pre"]["handoff"]
    assert "link" not in plain and plain["link_latency_s"] == 0.002  # scenarios without a preset dump as before


@pytest.mark.parametrize("handoff, field, words", [
    ({"link": "roce-400g", "link_gbps": 40}, "serving.pools.pre.handoff", ["link 'roce-400g' sets link_gbps 50", "roce-400g", "nvlink4"]),
    ({"link": "roce400"}, "serving.pools.pre.handoff.link", ["'roce-400g'", "'nvlink4'", "'hccs-910b'"]),
    ({}, "serving.pools.pre.handoff", ["give link_gbps", "roce-400g"]),
])
def test_a_conflicting_figure_or_unknown_preset_is_refused_with_the_allowed_names(tmp_path, handoff, field, words):
    d = window(True).model_dump(mode="json", exclude_unset=True)
    d = copy.deepcopy(d)
    d["serving"]["pools"]["pre"]["handoff"] = {"decode_pool": "dec", **handoff}
    path = tmp_path / "link.yaml"
    path.write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(cli, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "link.yaml" in res.output
    assert f"field '{field}'" in res.output, res.output
    for w in words:
        assert w in res.output, (w, res.output)
