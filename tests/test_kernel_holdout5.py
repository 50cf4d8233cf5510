"""The fresh holdout of issue 21's fifth round (fleetsim/catalog/holdout_2026q4_r5.csv): MLPerf
Inference v5.1 results of nine submitters used nowhere else in the repository, frozen before any
kernel change of the round and scored once at its end (python -m fleetsim.kernel.measurements
--holdout5). These tests never predict a holdout row."""

from __future__ import annotations

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel.measurements import (fingerprint, load_holdout, load_holdout3, load_holdout4,
                                          load_holdout5, load_measurements)

# (rows, sha256 over key, source, split, chip, model, engine, metric, published), taken when the
# file was committed (2026-12-07, branch kernel5, before the round's first kernel change).
HOLDOUT5_ROWS = 52
HOLDOUT5_SHA256 = "7fe88846cdde31f1ff5dc88da6dccb9ad988ebd78b9c03ddad735cbdaa1ed34e"

MLPERF = "https://github.com/mlcommons/inference_results_v5.1/tree/965182b03376a00fcae415c54e560e1c83937932/closed/"
SUBMITTERS = ("ASUSTeK", "Broadcom_Supermicro", "Dell", "Dell_Broadcom", "GigaComputing", "Google", "Lenovo",
              "Oracle", "Quanta_Cloud_Technology")


def test_holdout5_rows_are_the_ones_frozen():
    assert fingerprint(load_holdout5()) == (HOLDOUT5_ROWS, HOLDOUT5_SHA256)


def test_holdout5_is_new_and_no_fit_reads_it():
    """No row is a row (by key, or by chip, model, engine and figure) of measurements.csv or of an
    earlier holdout, no source of it is a source of theirs and no submitter of it appears in their
    URLs; every row is split 'holdout', names a catalogued chip, model and engine, and carries its
    result file's URL, date, setup and the quoted figure."""
    hold = load_holdout5()
    known = load_measurements() + load_holdout() + load_holdout3() + load_holdout4()
    assert not {m.key for m in hold} & {m.key for m in known}
    assert not ({(m.chip, m.model, m.engine, m.published) for m in hold}
                & {(m.chip, m.model, m.engine, m.published) for m in known})
    assert not {m.source for m in hold} & {m.source for m in known}
    assert not any(f"/closed/{sub}/" in m.url for sub in SUBMITTERS for m in known)
    assert len({m.key for m in hold}) == len(hold)
    c, mo, e = load_chips(), load_models(), load_engines()
    for m in hold:
        assert m.split == "holdout", m.key
        assert m.chip in c and m.model in mo and m.engine in e, m.key
        sub = m.url[len(MLPERF):].split("/")[0]
        assert m.url.startswith(MLPERF) and sub in SUBMITTERS, m.key
        assert m.url.endswith("/performance/run_1/mlperf_log_summary.txt"), m.key
        assert m.date and m.setup and m.metric_definition and m.assumptions and m.relation, m.key
        assert "quoted: tokens/s " in m.assumptions and "VALID" in m.assumptions, m.key
    assert {m.chip for m in hold} == {"h200", "b200"}
    assert {mo[m.model].is_moe for m in hold} == {True, False}
    assert {"offline", "server", "interactive"} == {m.metric for m in hold}
