"""Serving-window assembly: classes from a trace's class column."""

from __future__ import annotations

from pathlib import Path

import fleetsim


def test_trace_class_column_becomes_classes(tmp_path):
    """Each value of a mapped class column is its own class (workload.value) with the workload's
    SLO and model, in requests.parquet and in the summary."""
    (tmp_path / "tr.csv").write_text("t,p,o,c\n0.1,100,10,a\n0.5,200,20,b\n1.0,300,5,a\n2.0,50,7,b\n")
    (tmp_path / "tr.yaml").write_text("""
name: tr
serving:
  duration_s: 20
  warmup_s: 0
  workloads:
    logs:
      model: llama-3.1-8b
      arrival: {kind: trace, path: tr.csv, columns: {arrival_s: t, prompt_tokens: p, output_tokens: o, class: c}}
      slo: {ttft_s: 1.5}
  pools:
    p: {chip: h100, model: llama-3.1-8b}
""")
    result = fleetsim.run(fleetsim.load_scenario(tmp_path / "tr.yaml"))
    assert list(result.requests["class"].astype(str)) == ["logs.a", "logs.b", "logs.a", "logs.b"]
    assert set(result.summary["classes"]) == {"logs.a", "logs.b"}
    for c in result.summary["classes"].values():
        assert c["workload"] == "logs" and c["slo"]["ttft_s"] == 1.5 and c["arrived"] == 2


def test_same_seed_same_summary_and_tables(quickstart_path, tmp_path):
    """summary.json and the Parquet tables are byte-identical for the same scenario and seed
    (wall-clock figures live in manifest.json only)."""
    a = fleetsim.run(fleetsim.load_scenario(quickstart_path), out_dir=tmp_path / "a")
    b = fleetsim.run(fleetsim.load_scenario(quickstart_path), out_dir=tmp_path / "b")
    for name in ("summary.json", "requests.parquet", "events.parquet"):
        assert (a.run_dir / name).read_bytes() == (b.run_dir / name).read_bytes(), name


def test_reused_run_folder_keeps_only_this_runs_files(tmp_path):
    """A reliability run then a serving run into one folder: no stale timeline/hourly tables."""
    root = Path(__file__).resolve().parents[1] / "scenarios"
    out = tmp_path / "same"
    fleetsim.run(fleetsim.load_scenario(root / "llama3-reliability.yaml",
                                        ["reliability.cohort_run.days=2"]), out_dir=out)
    assert (out / "timeline.parquet").exists()
    fleetsim.run(fleetsim.load_scenario(root / "quickstart.yaml", ["serving.duration_s=60",
                                                                     "serving.warmup_s=10"]), out_dir=out)
    assert not (out / "timeline.parquet").exists() and not (out / "hourly.parquet").exists()
    assert (out / "requests.parquet").exists() and (out / "manifest.json").exists()
