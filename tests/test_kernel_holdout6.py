"""The sixth fresh holdout of issue 21 (fleetsim/catalog/holdout_2026q4_r6.csv): published points
from seven sources used nowhere else in the repository, frozen before round 11's kernel change and
scored once at its end (python -m fleetsim.kernel.measurements --holdout6 --write-once DATE).
First pass (branch holdout6, 2026-12-08): 39 rows from five sources. Second pass (branch holdout6b,
2026-12-08, same selection rule, before any prediction): 8 TensorRT-LLM rows (keys hold6-trtpm-*
and hold6-trth200-*) from TensorRT-LLM's v0.5/v0.6.1 performance.md and its H200 launch blog.
Since its one scoring it is development data (development_set, relabelled split 'fit'); no fit
reads it (calibrate fits measurements.csv's fit split alone: tests/test_calibrate.py). The
scored-once machinery is tested on holdout 5 (scored in round 5, now development data); the
load-time roofline check is tested on the ten tt-inference-server TTFT rows."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel import measurements as meas
from fleetsim.kernel.measurements import (_fmt, development_set, fingerprint, load_holdout, load_holdout3,
                                          load_holdout4, load_holdout5, load_holdout6, load_measurements,
                                          once_markers, write_once)

# (rows, sha256 over key, source, split, chip, model, engine, metric, published), taken when the
# file was frozen (2026-12-08, branch holdout6, before round 11's kernel change was merged: 39 rows,
# a1a16f259e35aed5...) and retaken after the second pass added 8 rows (2026-12-08, branch holdout6b).
HOLDOUT6_ROWS = 47
HOLDOUT6_SHA256 = "3d80449e83023570e6fca9e1d2abe120f5f29f54ed3ecec566e894ff95600bae"

ROOT = Path(__file__).resolve().parents[1]


def _base(url: str) -> str:
    """A row's URL without the '(section ...)' note the catalog appends to it."""
    return url.split(" (")[0].strip()


def test_holdout6_rows_are_the_ones_frozen():
    assert fingerprint(load_holdout6()) == (HOLDOUT6_ROWS, HOLDOUT6_SHA256)


def test_holdout6_is_new_and_no_fit_reads_it():
    """No row, source or URL of it is one of measurements.csv (the only file a fit reads) or an
    earlier holdout; it is in the development set only relabelled (split 'fit', relation naming
    when it was read), which no fit reads; every row is split 'holdout', names a catalogued
    chip, model and engine and carries its URL, date, setup, definition and quoted figure; and no
    row sits in time between fit rows of the same (chip, engine) system."""
    hold = load_holdout6()
    known = load_measurements() + load_holdout() + load_holdout3() + load_holdout4() + load_holdout5()
    assert not {m.key for m in hold} & {m.key for m in known}
    assert not ({(m.chip, m.model, m.engine, m.published) for m in hold}
                & {(m.chip, m.model, m.engine, m.published) for m in known})
    assert not {m.source for m in hold} & {m.source for m in known}
    assert not {_base(m.url) for m in hold} & {_base(m.url) for m in known}
    assert len({m.key for m in hold}) == len(hold)
    dev6 = [m for m in development_set() if m.key in {h.key for h in hold}]
    assert [m.key for m in dev6] == [m.key for m in hold]
    assert {(m.split, m.relation) for m in dev6} == {("fit", f"holdout6 ({meas.HOLDOUT6_READ})")}
    c, mo, e = load_chips(), load_models(), load_engines()
    for m in hold:
        assert m.split == "holdout", m.key
        assert m.chip in c and m.model in mo and m.engine in e, m.key
        assert m.url.startswith("https://github.com/"), m.key
        assert m.date and m.setup and m.metric_definition and m.relation, m.key
        assert "quoted" in m.assumptions, m.key
    dates = defaultdict(list)
    for m in development_set():  # the dates rule was checked against the set before holdout 6 joined it
        if m.relation.startswith("holdout6 "):
            continue
        dates[(m.chip, m.engine)].append(m.date)
    for m in hold:
        ds = dates.get((m.chip, m.engine))
        assert not ds or not (min(ds) < m.date < max(ds)), (m.key, min(ds), max(ds))
    assert {m.chip for m in hold} == {"a100", "h100", "h200", "b200", "ascend-910b", "ascend-910c"}
    assert {m.engine for m in hold} == {"vllm", "sglang", "vllm-ascend", "trtllm"}
    assert {mo[m.model].is_moe for m in hold} == {True, False}
    assert {"tpot", "prefill", "concurrency"} == {m.metric for m in hold}
    assert sum(c[m.chip].family == "ascend" for m in hold) == 5


def test_holdout6_docs_block_is_the_placeholder_or_its_one_scoring():
    """docs/validation.md holds the holdout's scored-once block: 'Not scored yet.' until the one
    scoring, then a record naming every frozen point with its published figure (checked here
    without predicting anything)."""
    text = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    begin, end = once_markers("holdout6")
    body = text[text.index(begin) + len(begin):text.index(end)].strip()
    if body == meas.ONCE_PLACEHOLDER:
        return
    assert re.match(r"Scored once on \d{4}-\d{2}-\d{2} with the kernel at commit \S+ ", body), body[:200]
    points = {ln.split("|")[1].strip(): ln for ln in body.splitlines() if ln.startswith("| hold6-")}
    hold = load_holdout6()
    assert set(points) == {m.key for m in hold}
    for m in hold:
        assert f"| {_fmt(m.published)} |" in points[m.key], m.key


def _docs_with_block(tmp_path: Path, name: str) -> Path:
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "validation.md", tmp_path / "docs" / "validation.md")
    begin, end = once_markers(name)
    p = tmp_path / "docs" / "validation.md"
    p.write_text(p.read_text(encoding="utf-8") + f"\n{begin}\n{meas.ONCE_PLACEHOLDER}\n{end}\n", encoding="utf-8")
    return p


def test_write_once_scores_holdout5_once_into_its_block(tmp_path):
    """The machinery the integrator runs on holdout 6, run on holdout 5 (already scored, now
    development data) in a copy of the docs: the block gets the date, commit, headline and every
    point; the rest of the page is untouched; a second scoring is refused; a page without the
    block is refused."""
    p = _docs_with_block(tmp_path, "holdout5")
    before = p.read_text(encoding="utf-8")
    body = write_once("holdout5", "2026-12-08", root=tmp_path, commit="abc1234")
    after = p.read_text(encoding="utf-8")
    begin, end = once_markers("holdout5")
    assert after[:after.index(begin)] == before[:before.index(begin)]
    assert after[after.index(begin) + len(begin):after.index(end)].strip() == body.strip()
    assert body.startswith("Scored once on 2026-12-08 with the kernel at commit abc1234 "
                           "(python -m fleetsim.kernel.measurements --holdout5 --write-once 2026-12-08): median ")
    assert " of 52 points " in body.splitlines()[0] and "Frozen 2026-12-07 (commit a3777af" in body.splitlines()[0]
    for m in load_holdout5():
        assert f"| {m.key} |" in body
    with pytest.raises(ValueError, match="scored already"):
        write_once("holdout5", "2026-12-09", root=tmp_path, commit="abc1234", rows=[])
    assert p.read_text(encoding="utf-8") == after
    (tmp_path / "docs" / "validation.md").write_text("no block here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no scored-once block"):
        write_once("holdout5", "2026-12-09", root=tmp_path, commit="abc1234", rows=[])


def test_development_set_holds_holdouts_5_and_6_relabelled():
    """Holdouts 5 and 6 have been scored once and read: the development set (`--dev`) holds each
    row once, split 'fit', relation naming when it was read, as it holds holdouts 3 and 4."""
    dev = development_set()
    assert len({m.key for m in dev}) == len(dev)
    for load, read in ((load_holdout5, meas.HOLDOUT5_READ), (load_holdout6, meas.HOLDOUT6_READ)):
        keys = {m.key for m in load()}
        rows = [m for m in dev if m.key in keys]
        assert len(rows) == len(keys) and {m.split for m in rows} == {"fit"}, read
        assert {m.relation for m in rows} == {f"{load.__name__.replace('load_', '')} ({read})"}


TT_OVER = {"hold6-ttgpu-a100-qwen3-30b-a3b-4096-128-ttft", "hold6-ttgpu-a100-qwen3-30b-a3b-8192-128-ttft",
           "hold6-ttgpu-a100-qwen3-14b-4096-128-ttft"}


def test_ttft_prefill_above_the_roofline_is_refused_and_left_out_of_medians():
    """A TTFT-derived prefill figure faster than the prompt's FLOPs at 100% of the replica's peak
    is not a cold prefill (docs/validation.md "Why batch-1 prefill is too slow"): exactly three of
    the sixth holdout's tt-inference-server rows (123%, 100.4% and 170% of the A100's peak); no
    row of measurements.csv or holdouts 2-5 is refused, so the test split and the gate do not move.
    compare() keeps their prediction, marks them, and summary() leaves them out of every figure."""
    hold = load_holdout6()
    assert {m.key for m in hold if meas.physical_refusal(m)} == TT_OVER
    others = load_measurements() + load_holdout() + load_holdout3() + load_holdout4() + load_holdout5()
    assert not [m.key for m in others if m.metric == "prefill" and meas.physical_refusal(m)]
    tt = [m for m in hold if m.source == "tt-inference-server-gpu-ref" and m.metric == "prefill"]
    assert len(tt) == 10
    for m in tt:  # the ratio itself: published step time against the ideal one
        ideal, published = meas.prefill_roofline_s(m)
        assert (published < ideal) == (m.key in TT_OVER), (m.key, ideal, published)
    rows = meas.compare(tt, refused_fail=True)
    assert {r["key"] for r in rows if r["refused"]} == TT_OVER
    assert all(r["refused"] == meas.ABOVE_ROOFLINE for r in rows if r["key"] in TT_OVER)
    s = meas.summary(rows)
    kept = sorted(abs(r["rel_error"]) for r in rows if r["key"] not in TT_OVER)
    assert (s["points"], s["refused"]) == (7, 3) and s["median_abs"] == pytest.approx(kept[3])
    table = meas.holdout_markdown(rows)
    assert "| all | 7 (+3 refused: above the roofline) |" in table
    assert table.count("refused: above the roofline (cache hits?)") == 3
    # the same row with a slow enough figure (below the roofline) is scored
    slow = dataclasses.replace(next(m for m in tt if m.key in TT_OVER), published=1000.0)
    assert meas.physical_refusal(slow) == "" and not meas.compare([slow])[0]["refused"]
