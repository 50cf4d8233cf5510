"""Serving-window assembly: classes from a trace's class column."""

from __future__ import annotations

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
