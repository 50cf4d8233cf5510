"""The fresh holdout of issue 21's second round (fleetsim/catalog/holdout_2026q4.csv): published
points that are not in measurements.csv, frozen before any kernel change of the round and scored
once at the end (python -m fleetsim.kernel.measurements --holdout). These tests never predict a
holdout row: they guard that the rows are the ones frozen and that no fit can read them."""

from __future__ import annotations

import hashlib
from importlib import resources

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel.measurements import load_measurements

HOLDOUT = "holdout_2026q4.csv"
# (rows, sha256 over key, source, split, chip, model, engine, metric, published), taken when the
# file was committed (2026-12-07, before the round's first kernel change). A row moved, re-scored
# or re-set up after seeing its error fails here.
HOLDOUT_ROWS = 28
HOLDOUT_SHA256 = "9f8d8462d4deb241f4e2829705e27f98258ebba9d88a1528b27b3fca717cc91b"


def _points():
    path = resources.files("fleetsim.catalog").joinpath(HOLDOUT)
    return load_measurements(str(path))


def _fingerprint(ms) -> tuple[int, str]:
    rows = sorted(",".join([m.key, m.source, m.split, m.chip, m.model, m.engine, m.metric,
                            repr(m.published)]) for m in ms)
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_holdout_rows_are_the_ones_frozen():
    assert _fingerprint(_points()) == (HOLDOUT_ROWS, HOLDOUT_SHA256)


def test_holdout_is_outside_the_measurement_set_and_no_fit_reads_it():
    """No holdout row is a row (by key or by chip, model, engine and figure) of measurements.csv,
    every row is split 'holdout' (the fit takes split == 'fit' only), and every row names a
    catalogued chip, model and engine with a source and date."""
    hold, known = _points(), load_measurements()
    assert not {m.key for m in hold} & {m.key for m in known}
    assert not ({(m.chip, m.model, m.engine, m.published) for m in hold}
                & {(m.chip, m.model, m.engine, m.published) for m in known})
    c, mo, e = load_chips(), load_models(), load_engines()
    for m in hold:
        assert m.split == "holdout", m.key
        assert m.chip in c and m.model in mo and m.engine in e, m.key
        assert m.url.startswith("http") and m.date and m.setup and m.metric_definition, m.key
    assert len({m.chip for m in hold}) >= 3 and any(c[m.chip].family == "ascend" for m in hold)
    assert {mo[m.model].is_moe for m in hold} == {True, False}
