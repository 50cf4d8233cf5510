"""The kernel against the published measurement set (fleetsim/catalog/measurements.csv,
docs/validation.md): the data's coverage and split discipline, and the errors of the fit and test
splits held to ONE tolerance for every point (measurements.TOLERANCE, a ratio), the issue's goal
on the test split (median <= 15%, >= 80% within 25%) and a guard on the fit split at the level the
shipped calibration reaches (docs/validation.md).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel.measurements import (
    METRICS,
    TOLERANCE,
    compare,
    load_measurements,
    summary,
)

POINTS = load_measurements()
ROWS = {r["key"]: r for r in compare()}


def test_measurement_set_coverage_and_provenance():
    """>= 40 points beyond the 11 of the first round, >= 6 chips (>= 2 domestic), >= 3 engines,
    prefill, decode, small-batch latency and loaded throughput, every row sourced and dated."""
    assert len(POINTS) >= 51 and len({m.key for m in POINTS}) == len(POINTS)
    chips = {m.chip for m in POINTS}
    assert len(chips) >= 6 and {"ascend-910b", "ascend-910c"} <= chips
    assert len({m.engine for m in POINTS}) >= 3
    metrics = {m.metric for m in POINTS}
    assert {"prefill", "decode_at_tpot", "tpot", "offline", "server", "concurrency"} <= metrics <= set(METRICS)
    assert any(m.metric == "tpot" and m.concurrency <= 8 for m in POINTS)  # small-batch latency
    c, mo, e = load_chips(), load_models(), load_engines()
    for m in POINTS:
        assert m.chip in c and m.model in mo and m.engine in e, m.key
        assert m.url.startswith("http") and m.date and m.setup and m.metric_definition, m.key
        assert m.published > 0 and math.isfinite(m.published)


def test_split_is_by_source_and_time_as_frozen():
    """The split column is what split_by_source_and_time gives: no source on both sides, the
    newest source of a system tested, no test row older than a fit row of its system."""
    from fleetsim.kernel.measurements import split_by_source_and_time

    rule = split_by_source_and_time(POINTS)
    assert {m.key: m.split for m in POINTS} == {m.key: rule[m.source] for m in POINTS}
    sides = defaultdict(set)
    for m in POINTS:
        assert m.split in ("fit", "test"), m.key
        sides[m.source].add(m.split)
    assert all(len(s) == 1 for s in sides.values()), {k: v for k, v in sides.items() if len(v) > 1}
    for system in {(m.chip, m.engine) for m in POINTS}:
        fit = [m.date for m in POINTS if (m.chip, m.engine) == system and m.split == "fit"]
        test = [m.date for m in POINTS if (m.chip, m.engine) == system and m.split == "test"]
        if fit and test:
            assert min(test) >= max(fit), system
    n_test = sum(m.split == "test" for m in POINTS)
    assert n_test >= 12 and len(POINTS) - n_test >= 30
    assert {m.chip for m in POINTS if m.split == "test"} >= {"h100", "h200", "b200", "h800", "ascend-910c"}


def test_split_rule_tests_late_sources_and_newest_rounds():
    """A source added after the freeze is test; MLPerf's newest round is test, older ones fit."""
    import dataclasses

    from fleetsim.kernel.measurements import split_by_source_and_time

    late = dataclasses.replace(POINTS[0], key="late", source="a-new-blog", date="2023-01")
    rule = split_by_source_and_time(list(POINTS) + [late])
    assert rule["a-new-blog"] == "test"
    assert rule["mlperf-v5.1"] == "test" and rule["mlperf-v5.0"] == rule["mlperf-v4.1"] == "fit"


# Test points outside the one tolerance when the test split was read (once per round; round 2 on
# 7 Dec 2026, after the structure changes): MoE offline throughput on ShareGPT-like lengths
# (GPUStack), DeepSeek-R1 on B200 under MLPerf's server constraint, Qwen3-32B fp8 TensorRT-LLM: the
# kernel predicts 3-9x too much. Recorded, not tuned away; strict, so a kernel change that brings
# one inside the tolerance must update the list. (Round 1 also had the two GPUStack Qwen3-235B tp4
# fp8 runs outside; round 2's structure brought them inside.)
# Round 3 (kernel3): the finite-run throughput of 'all prompts issued at once' rows (burst_throughput)
# brought four GPUStack ShareGPT runs inside (the test split is now development data, read).
KNOWN_OUTSIDE_TOLERANCE = frozenset({
    "mlperf-v5.1-b200x8-dsr1-server", "gpustack-h200x8-dsr1-trtllm-tp8ep8-sharegpt",
})
# A FIT point outside the tolerance after round 2's refit: CloudMatrix-Infer DeepSeek prefill on
# 16 910C (one point of a three-point source, kernel / published 0.33): the fitted Ascend grouped
# expert-GEMM efficiency, set by SGLang's and vllm-ascend's MoE rows, is far below what Huawei's own
# INT8 stack reaches in prefill, and its engine's GEMM multiplier cannot be fitted on 3 points.
KNOWN_FIT_OUTSIDE_TOLERANCE = frozenset({"cloudmatrix-910c-prefill"})


@pytest.mark.parametrize("key", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason="outside the tolerance when the test split was read"))
    if k in KNOWN_OUTSIDE_TOLERANCE | KNOWN_FIT_OUTSIDE_TOLERANCE else k for k in sorted(ROWS)])
def test_every_point_within_the_one_tolerance(key):
    """Kernel and published figure within a factor of TOLERANCE of each other, fit and test alike
    (every point but the ones listed above)."""
    r = ROWS[key]
    ratio = r["kernel"] / r["published"]
    assert 1.0 / TOLERANCE <= ratio <= TOLERANCE, (key, r["kernel"], r["published"])


def test_known_outside_are_test_points():
    assert KNOWN_OUTSIDE_TOLERANCE <= {k for k, r in ROWS.items() if r["split"] == "test"}
    assert KNOWN_FIT_OUTSIDE_TOLERANCE <= {k for k, r in ROWS.items() if r["split"] == "fit"}


def test_fit_split_errors_at_the_level_reached():
    """Fit-set guard at what the calibration reaches (docs/validation.md). The held-out split is
    held by the accuracy gate below, against figures written in the data, not by this test."""
    fit = summary(list(ROWS.values()), "fit")
    assert fit["median_abs"] <= 0.10 and fit["within_25"] >= 0.80, fit  # reached: 8.7%, 84%


def test_accuracy_gate():
    """CI gate: the test split's median |error| may not rise more than 2 points above the figure
    recorded in fleetsim/catalog/accuracy_gate.yaml, nor any partition's (chip family, engine,
    metric, dense/MoE, batch regime) more than 5."""
    from fleetsim.kernel.measurements import gate_failures, load_gate

    gate = load_gate()
    assert gate["test_points"] == sum(m.split == "test" for m in POINTS)
    assert gate_failures(list(ROWS.values()), gate) == []


def test_accuracy_gate_fails_on_a_worse_kernel():
    import copy

    from fleetsim.kernel.measurements import gate_failures, load_gate

    gate = load_gate()
    rows = copy.deepcopy(list(ROWS.values()))
    worst_part = next(r for r in rows if r["split"] == "test")
    for r in rows:  # one engine's test points 30% further off: that partition fails
        if r["split"] == "test" and r["engine"] == worst_part["engine"]:
            r["rel_error"] = abs(r["rel_error"]) + 0.30
    bad = gate_failures(rows, gate)
    assert any(f"engine={worst_part['engine']}" in b for b in bad), bad
    shifted = [dict(r, rel_error=abs(r["rel_error"]) + 0.03) if r["split"] == "test" else r
               for r in copy.deepcopy(list(ROWS.values()))]
    assert any(b.startswith("test median") for b in gate_failures(shifted, gate))


def test_validation_doc_block_is_generated():
    """docs/validation.md's kernel tables are what python -m fleetsim.kernel.measurements writes
    (--write-docs regenerates them)."""
    from pathlib import Path

    from fleetsim.kernel.measurements import BEGIN, END, markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "validation.md").read_text(encoding="utf-8")
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()
    assert block == markdown(list(ROWS.values())).strip(), "stale: python -m fleetsim.kernel.measurements --write-docs"


def test_mlperf_lengths_come_from_the_dataset():
    """MLPerf Llama-2-70B rows use the OpenOrca set's mean prompt (222.33) and the reference
    run's tokens per sample (294.45), not the earlier unverified 294-token prompt."""
    ml = [m for m in POINTS if m.model == "llama-2-70b"]
    assert ml and all(m.input_tokens == 222.33 and m.output_tokens == 294.45 for m in ml)
    ratios = [ROWS[m.key]["kernel"] / m.published for m in ml if m.chip == "h100" and m.metric == "offline"]
    assert np.ptp(ratios) > 0  # three rounds, one prediction: the software spread shows


# Fingerprints of the held-out rows (key, source, split, chip, model, engine, metric, published):
# the 19 frozen before the refit of issue 21 (2026-12-07, split by source and time), and the 48
# published points added the same day by the data round of issue 21 (branch kerneldata), all test
# by the rule and folded in before the test split was read. A changed test row (moved, re-scored or
# re-set up after seeing the errors) fails here.
TEST_ROWS_SHA256 = "b2edd23e17c2b5ac9d1561025d1871e06c021f9a03c43e96318531987ba17797"
LATE_TEST_ROWS_SHA256 = "9d31dc5e3c7908e58d7ad81ad9e91d596284d356adc904585855b6e6ca5a5e62"
FROZEN_TEST_KEYS = frozenset({
    "deepseek-h800-decode-node", "deepseek-h800-prefill-node", "mindie-910b4-qwen3-235b-8c-tpot-2k-c16",
    "mindie-910b4-qwen3-32b-2c-tpot-2k-c16", "mlperf-v5.1-b200x8-405b-offline",
    "mlperf-v5.1-b200x8-405b-server", "mlperf-v5.1-b200x8-interactive", "mlperf-v5.1-b200x8-offline",
    "mlperf-v5.1-b200x8-server", "mlperf-v5.1-h100x16-offline", "mlperf-v5.1-h100x16-server",
    "mlperf-v5.1-h200-405b-offline", "mlperf-v5.1-h200-405b-server", "mlperf-v5.1-h200-interactive",
    "mlperf-v5.1-h200-offline", "mlperf-v5.1-h200-server", "vllm-ascend-910b4-qwen3-235b-8c-tpot-2k-c16",
    "vllm-ascend-910b4-qwen3-32b-2c-tpot-2k-c16", "xds-910c-dsv3-colo-decode-2k2k-50ms",
})


def _fingerprint(ms) -> tuple[int, str]:
    import hashlib

    rows = sorted(",".join([m.key, m.source, m.split, m.chip, m.model, m.engine, m.metric,
                            repr(m.published)]) for m in ms)
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_the_test_rows_are_the_ones_frozen_before_the_fit():
    test = [m for m in POINTS if m.split == "test"]
    assert _fingerprint([m for m in test if m.key in FROZEN_TEST_KEYS]) == (19, TEST_ROWS_SHA256)
    assert _fingerprint([m for m in test if m.key not in FROZEN_TEST_KEYS]) == (48, LATE_TEST_ROWS_SHA256)


def test_kernel_doc_block_is_generated():
    """docs/kernel.md's engine and family table is what the generator writes from the catalog."""
    from pathlib import Path

    from fleetsim.kernel.measurements import BEGIN, END, kernel_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "kernel.md").read_text(encoding="utf-8")
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()
    assert block == kernel_markdown().strip(), "stale: python -m fleetsim.kernel.measurements --write-docs"


def test_ttft_derived_prefill_figure_covers_the_replica():
    """A `prefill` figure derived from one request's TTFT (prompt tokens / TTFT) is the replica's
    whatever per_chips says: left empty (as the holdout-6 rows do) it is not read as a per-chip
    figure and divided by tp (which made 4 x H100 TensorRT-LLM and Ascend TTFTs 4-8x too slow).
    A per-chip prefill figure (CloudMatrix's tokens/s per NPU, no TTFT) stays per chip."""
    from dataclasses import replace

    from fleetsim.kernel.measurements import figure_chips, predict

    by_key = {m.key: m for m in POINTS}
    ttft = by_key["sglang-a3-qwen3-32b-4c-ttft-4k-b1"]  # 4000 / Mean TTFT on tp 4, per_chips 4
    assert ttft.tp == 4 and ttft.per_chips == 4 and "TTFT" in ttft.metric_definition
    bare = replace(ttft, per_chips=None)
    assert figure_chips(bare) == 4.0
    assert predict(bare) == pytest.approx(predict(ttft), rel=1e-12)
    per_npu = by_key["cloudmatrix-910c-prefill"]  # tokens/s per NPU of a tp 16 instance
    assert per_npu.per_chips == 1 and "TTFT" not in per_npu.metric_definition
    assert figure_chips(replace(per_npu, per_chips=None)) == 1.0
    assert predict(replace(per_npu, per_chips=None)) == pytest.approx(predict(per_npu), rel=1e-12)


def test_a_ttft_row_whose_setup_does_not_fit_is_a_miss_not_a_crash():
    """compare(refused_fail=True) scores a setup the kernel refuses (CapacityError) as a miss;
    the roofline check (physical_refusal, which builds the same kernel) must not raise on it
    either. Llama-3.1-405B on one 910B (64 GB) does not fit."""
    from dataclasses import replace

    from fleetsim.kernel.measurements import compare, once_block

    ttft = {m.key: m for m in POINTS}["sglang-a3-qwen3-32b-4c-ttft-4k-b1"]
    big = replace(ttft, key="too-big", model="llama-3.1-405b", tp=1, per_chips=1)
    (row,) = compare([big], refused_fail=True)
    assert math.isnan(row["kernel"]) and row["rel_error"] == math.inf and row["refused"] == ""
    head = once_block("holdout6", [row], "2026-12-08", "abc1234").split("\n")[0]
    assert "(1 refused setup scored as misses)" in head and "roofline" not in head
