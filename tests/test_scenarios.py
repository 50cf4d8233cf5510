"""Every shipped scenario validates (the ones a user copies first must never rot)."""

from __future__ import annotations

from pathlib import Path

import pytest

import fleetsim

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenario_validates(path):
    scen = fleetsim.load_scenario(path)
    assert scen.name == path.stem


def test_azure_trace_scenario_runs_short():
    scen = fleetsim.load_scenario(ROOT / "scenarios" / "azure-conv-trace.yaml",
                                  ["serving.duration_s=300", "serving.warmup_s=30"])
    s = fleetsim.run(scen).summary
    assert s["requests"]["arrived"] > 11 * 250
    assert s["classes"]["conv"]["throughput_req_per_s"] > 9
