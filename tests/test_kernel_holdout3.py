"""The fresh holdout of issue 21's third round (fleetsim/catalog/holdout_2026q4_r3.csv): published
points in neither measurements.csv nor the second round's holdout (now read and used for
development), frozen before any kernel change of the round and scored once at its end
(python -m fleetsim.kernel.measurements --holdout3). These tests never predict a holdout row."""

from __future__ import annotations

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel.measurements import fingerprint, load_holdout, load_holdout3, load_measurements

# (rows, sha256 over key, source, split, chip, model, engine, metric, published), taken when the
# file was committed (2026-12-07, branch kernel3, before the round's first kernel change).
HOLDOUT3_ROWS = 29
HOLDOUT3_SHA256 = "6e006da19e832d13cf7dd0ccc985185640bf2965649768bbd83463b25d82ffc5"


def test_holdout3_rows_are_the_ones_frozen():
    assert fingerprint(load_holdout3()) == (HOLDOUT3_ROWS, HOLDOUT3_SHA256)


def test_holdout3_is_new_and_no_fit_reads_it():
    """No row is a row (by key, or by chip, model, engine and figure) of measurements.csv or of
    the earlier holdout; every row is split 'holdout' and names a catalogued chip, model and
    engine with its source URL, date, setup and the quoted figures of the same run."""
    hold = load_holdout3()
    known = load_measurements() + load_holdout()
    assert not {m.key for m in hold} & {m.key for m in known}
    assert not ({(m.chip, m.model, m.engine, m.published) for m in hold}
                & {(m.chip, m.model, m.engine, m.published) for m in known})
    assert len({m.key for m in hold}) == len(hold)
    c, mo, e = load_chips(), load_models(), load_engines()
    for m in hold:
        assert m.split == "holdout", m.key
        assert m.chip in c and m.model in mo and m.engine in e, m.key
        assert m.url.startswith("https://github.com/gpustack/gpustack/blob/"), m.key
        assert m.date and m.setup and m.metric_definition and "same run:" in m.assumptions, m.key
    assert {c[m.chip].family for m in hold} >= {"ascend"} and len({m.chip for m in hold}) >= 3
    assert {mo[m.model].is_moe for m in hold} == {True, False}
