"""The kernel against published measurements (docs/validation.md).

Each point's tolerance and its reason live with the point in fleetsim/kernel/published.py:
25% by default; 30% where the source's own spread is wider (the same 8x H100 hardware moves
+44% across MLPerf rounds through software alone, so a single software-agnostic prediction
cannot sit closer than about +-18% to every round); the Ascend 910C decode point is a known
deviation reported with its error, not tuned away.
"""

from __future__ import annotations

import pytest

from fleetsim.kernel.published import POINTS, compare_published

ROWS = {r["point"]: r for r in compare_published()}


def test_enough_points_and_chips():
    assert len(POINTS) >= 8
    assert len({p.chip for p in POINTS}) >= 3


@pytest.mark.parametrize("point", [p.key for p in POINTS])
def test_point_within_stated_tolerance(point):
    r = ROWS[point]
    assert abs(r["rel_error"]) <= r["tolerance"], (point, r["kernel"], r["published"])


def test_most_points_within_25_percent():
    """A majority of points meet the issue's 25% target (7 of 11 at the time of writing; the
    other four are listed with their errors in docs/validation.md)."""
    inside = sum(abs(r["rel_error"]) <= 0.25 for r in ROWS.values())
    assert inside > 0.5 * len(ROWS)


def test_mlperf_rounds_bracket_the_prediction():
    """One software-agnostic prediction lies between the slowest and fastest H100 round."""
    off = [ROWS[f"mlperf-v{v}-offline"] for v in ("4.0", "4.1", "5.0")]
    pred = off[0]["kernel"]
    assert min(r["published"] for r in off) <= pred <= max(r["published"] for r in off)
