"""The fresh holdout of issue 21's fourth round (fleetsim/catalog/holdout_2026q4_r4.csv): published
points from four sources used nowhere else in the repository, frozen before any kernel change of
the round and scored once at its end (python -m fleetsim.kernel.measurements --holdout4). These
tests never predict a holdout row."""

from __future__ import annotations

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel.measurements import (fingerprint, load_holdout, load_holdout3, load_holdout4,
                                          load_measurements)

# (rows, sha256 over key, source, split, chip, model, engine, metric, published), taken when the
# file was committed (2026-12-07, branch kernel4, before the round's first kernel change).
HOLDOUT4_ROWS = 67
HOLDOUT4_SHA256 = "5566a18ad0656879144eaf03f4fd16695c43a07bfee403e28e6b68ba898165fe"

SOURCES = {"accelmark-verified": "https://github.com/FreedomIntelligence/AccelMark/blob/",
           "nvidia-nim-benchmarking": "https://docs.nvidia.com/nim/benchmarking/",
           "dragonfive-blog-h20": "https://dragonfive.github.io/",
           "qwen3-speed-benchmark": "https://github.com/QwenLM/Qwen2.5/blob/"}


def test_holdout4_rows_are_the_ones_frozen():
    assert fingerprint(load_holdout4()) == (HOLDOUT4_ROWS, HOLDOUT4_SHA256)


def test_holdout4_is_new_and_no_fit_reads_it():
    """No row is a row (by key, or by chip, model, engine and figure) of measurements.csv or of an
    earlier holdout, and no source of it is a source of theirs; every row is split 'holdout' and
    names a catalogued chip, model and engine with its source URL, date, setup and the quoted
    figure."""
    hold = load_holdout4()
    known = load_measurements() + load_holdout() + load_holdout3()
    assert not {m.key for m in hold} & {m.key for m in known}
    assert not ({(m.chip, m.model, m.engine, m.published) for m in hold}
                & {(m.chip, m.model, m.engine, m.published) for m in known})
    assert not {m.source for m in hold} & {m.source for m in known}
    assert not any(prefix in m.url for prefix in SOURCES.values() for m in known)
    assert len({m.key for m in hold}) == len(hold)
    c, mo, e = load_chips(), load_models(), load_engines()
    for m in hold:
        assert m.split == "holdout", m.key
        assert m.chip in c and m.model in mo and m.engine in e, m.key
        assert m.url.startswith(SOURCES[m.source]), m.key
        assert m.date and m.setup and m.metric_definition and m.assumptions and m.relation, m.key
    assert {c[m.chip].family for m in hold} >= {"ascend", "nvidia-hopper"}
    assert {"h200", "h20", "a800"} <= {m.chip for m in hold}
    assert {mo[m.model].is_moe for m in hold} == {True, False}
    assert {"prefill", "tpot", "offline", "concurrency"} <= {m.metric for m in hold}
