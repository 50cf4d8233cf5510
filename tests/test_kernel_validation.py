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
from fleetsim.kernel.measurements import METRICS, TOLERANCE, compare, load_measurements, summary

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


def test_split_is_by_source_with_no_source_on_both_sides():
    sides = defaultdict(set)
    for m in POINTS:
        assert m.split in ("fit", "test"), m.key
        sides[m.source].add(m.split)
    assert all(len(s) == 1 for s in sides.values()), {k: v for k, v in sides.items() if len(v) > 1}
    n_test = sum(m.split == "test" for m in POINTS)
    assert n_test >= 12 and len(POINTS) - n_test >= 30
    assert {m.chip for m in POINTS if m.split == "test"} >= {"h100", "h200", "b200", "h800", "ascend-910c"}


@pytest.mark.parametrize("key", sorted(ROWS))
def test_every_point_within_the_one_tolerance(key):
    """Kernel and published figure within a factor of TOLERANCE of each other, fit and test alike."""
    r = ROWS[key]
    ratio = r["kernel"] / r["published"]
    assert 1.0 / TOLERANCE <= ratio <= TOLERANCE, (key, r["kernel"], r["published"])


def test_split_errors_at_the_level_reached():
    """The issue's goal for the held-out set, asserted: test median <= 15% and >= 80% within 25%
    (reached: 9.5%, 13 of 16 points). Fit-set guard at what the calibration reaches: median <= 10%,
    >= 78% within 25% (docs/validation.md)."""
    rows = list(ROWS.values())
    fit, test = summary(rows, "fit"), summary(rows, "test")
    assert fit["median_abs"] <= 0.10 and fit["within_25"] >= 0.78, fit
    assert test["median_abs"] <= 0.15 and test["within_25"] >= 0.80, test


def test_mlperf_lengths_come_from_the_dataset():
    """MLPerf Llama-2-70B rows use the OpenOrca set's mean prompt (222.33) and the reference
    run's tokens per sample (294.45), not the earlier unverified 294-token prompt."""
    ml = [m for m in POINTS if m.model == "llama-2-70b"]
    assert ml and all(m.input_tokens == 222.33 and m.output_tokens == 294.45 for m in ml)
    ratios = [ROWS[m.key]["kernel"] / m.published for m in ml if m.chip == "h100" and m.metric == "offline"]
    assert np.ptp(ratios) > 0  # three rounds, one prediction: the software spread shows


# Fingerprint of the held-out rows as committed before any fit (commit 5a9b693): key, source,
# split, chip, model, engine, metric, published. Later rounds add FIT rows only; a changed test
# row (moved, re-scored or re-set up after seeing the errors) fails here.
TEST_ROWS_SHA256 = "254f10d23653a68f0ee0550ca5c99f65acf090c205cb99caa32bac9aa708f245"


def test_the_test_rows_are_the_ones_committed_before_the_fit():
    import hashlib

    rows = sorted(",".join([m.key, m.source, m.split, m.chip, m.model, m.engine, m.metric,
                            repr(m.published)]) for m in POINTS if m.split == "test")
    assert len(rows) == 16
    assert hashlib.sha256("\n".join(rows).encode()).hexdigest() == TEST_ROWS_SHA256
