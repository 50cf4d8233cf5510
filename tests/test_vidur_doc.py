"""docs/validation.md's Vidur table and ratios are the figures benchmarks/vidur_recorded.json holds
(Vidur cannot run in the suite: the recorded measurement is the source the page must agree with)."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_vidur_section_quotes_the_recorded_figures():
    rec = json.loads((REPO / "benchmarks" / "vidur_recorded.json").read_text())
    fs = rec["fleetsim_same_session"]
    page = (REPO / "docs" / "validation.md").read_text()
    section = page[page.index("### 4b."):page.index("### 5.")]

    def row(label, cpu, wall):
        cells = " / ".join(f"{v:.2f}" for v in cpu), " / ".join(f"{v:.2f}" for v in wall)
        assert f"{label} | {cells[0]} | {cells[1]} |" in section, label

    row("fleetsim, default (plots and report)", fs["default_cpu_s"], fs["default_wall_s"])
    row("fleetsim `--no-plots`", fs["no_plots_cpu_s"], fs["no_plots_wall_s"])
    row("Vidur, default options (metrics, plots, chrome trace)", rec["cpu_s"], rec["wall_s"])
    med = statistics.median
    want = [med(rec["cpu_s"]) / med(fs["default_cpu_s"]), med(rec["wall_s"]) / med(fs["default_wall_s"]),
            med(rec["cpu_s"]) / med(fs["no_plots_cpu_s"]), med(rec["wall_s"]) / med(fs["no_plots_wall_s"])]
    text = " ".join(section.split())
    m = re.search(r"Ratios of the medians: ([\d.]+)x CPU and ([\d.]+)x wall with fleetsim's defaults, "
                  r"([\d.]+)x CPU and ([\d.]+)x wall with `--no-plots`", text)
    assert m, "the ratios sentence is missing"
    assert [float(g) for g in m.groups()] == [round(w, 1) for w in want]
