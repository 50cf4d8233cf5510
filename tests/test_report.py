"""Plots, report.html and compare, on a synthetic fleet run folder (tests/report_fixture.py) and a
short real serving run; the report is rendered in a real headless browser."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fleetsim
from fleetsim import api
from fleetsim.errors import FleetsimError
from fleetsim.report import plots
from fleetsim.report.html import findings

sys.path.insert(0, str(Path(__file__).parent))
from report_fixture import BAN_DATE, PEAK_DATE, write_fleet_run  # noqa: E402

SERVING_QUICKSTART = Path(__file__).parent.parent / "scenarios" / "serving_quickstart.yaml"
FLEET_PLOTS = {"demand_vs_capacity", "fleet_mix", "capex_vs_budget", "cost_per_mtok", "slo_attainment",
               "latency_cdf", "health", "us_dependence"}


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    path = write_fleet_run(tmp_path_factory.mktemp("fleet") / "run")
    api.plot(path, svg=True)
    api.report(path)
    return path


@pytest.fixture(scope="module")
def serving_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serving") / "run"
    scen = fleetsim.load_scenario(SERVING_QUICKSTART, ["serving.duration_s=60", "serving.warmup_s=10"])
    fleetsim.run(scen, out_dir=out)
    api.plot(out)
    api.report(out)
    return out


def test_fleet_plots_png_and_svg(fleet_run):
    """PNG always; SVG when asked (the fixture asks), saved from the same drawn figure."""
    names = {p.stem for p in (fleet_run / "plots").glob("*.png")}
    assert names == FLEET_PLOTS
    assert {p.stem for p in (fleet_run / "plots").glob("*.svg")} == FLEET_PLOTS
    for p in (fleet_run / "plots").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000, p


def test_plot_redraws_from_tables_alone_and_identically(fleet_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(fleet_run, copy)
    shutil.rmtree(copy / "plots")
    api.plot(copy, svg=True)
    for p in (fleet_run / "plots").glob("*.svg"):
        assert (copy / "plots" / p.name).read_bytes() == p.read_bytes(), p.name


def test_one_colour_per_chip_everywhere(fleet_run):
    """The H20's colour appears in every per-chip fleet plot's SVG, and chips never share one."""
    h20 = plots.chip_colour("h20").lower()
    for stem in ("demand_vs_capacity", "fleet_mix", "capex_vs_budget", "slo_attainment", "latency_cdf", "health"):
        assert h20 in (fleet_run / "plots" / f"{stem}.svg").read_text().lower(), stem
    cols = [plots.chip_colour(c) for c in plots.PALETTE]
    assert len(set(cols)) == len(cols)
    assert plots.chip_colour("made-up-chip") == plots.chip_colour("made-up-chip")


def test_events_marked_on_time_axes(fleet_run):
    svg = (fleet_run / "plots" / "demand_vs_capacity.svg").read_text()
    assert f"{BAN_DATE} nvidia-h20: banned" in svg


def test_findings_are_computed_from_the_tables(fleet_run):
    text = " ".join(findings(plots.open_run(fleet_run)))
    assert f"Unmet demand peaks at 12% on {PEAK_DATE}" in text
    assert f"81 days after nvidia-h20: banned ({BAN_DATE})" in text  # computed, not typed in
    assert "500 chips were stranded" in text


def test_report_is_self_contained(fleet_run):
    page = (fleet_run / "report.html").read_text()
    imgs = re.findall(r'<img src="([^"]+)"', page)
    assert len(imgs) == len(FLEET_PLOTS)
    assert all(s.startswith("data:image/png;base64,") for s in imgs)
    for s in imgs:
        assert base64.b64decode(s.split(",", 1)[1])[:4] == b"\x89PNG"
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "t-head-ppu" in page and "price_usd" in page  # the placeholder the result rests on
    assert "Headline numbers" in page and "fixture-fleet" in page


def test_serving_run_plots_and_report(serving_run):
    names = {p.stem for p in (serving_run / "plots").glob("*.png")}
    assert names == {"latency_cdf", "throughput_latency", "batch_queue"}
    page = (serving_run / "report.html").read_text()
    assert "meets its SLO" in page or "misses its SLO" in page


def test_compare_side_by_side(fleet_run, serving_run, tmp_path):
    out = api.compare([fleet_run, serving_run], tmp_path / "cmp.html")
    page = out.read_text()
    assert "capex" in page and "SLO attainment" in page
    assert page.count("<img ") >= 4


def test_plot_refuses_an_unfinished_folder(tmp_path):
    (tmp_path / "error.json").write_text(json.dumps({"error": "boom"}))
    with pytest.raises(FleetsimError, match="boom"):
        api.plot(tmp_path)


# ---------------------------------------------------------------------------------------------
# the browser test

PROBE = """<script>
window.__errs = [];
['error', 'warn'].forEach(function (level) {
  var orig = console[level];
  console[level] = function () { window.__errs.push('console.' + level + ': ' + Array.prototype.join.call(arguments, ' ')); orig.apply(console, arguments); };
});
window.addEventListener('error', function (e) {
  var t = e.target && e.target.tagName ? ('resource ' + e.target.tagName + ' failed') : String(e.message);
  window.__errs.push(t);
}, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var d = document.createElement('pre'); d.id = 'fleetsim-probe';
  d.textContent = JSON.stringify({images: imgs.length,
    loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    text_chars: document.body.innerText.length,
    height: document.body.scrollHeight, errors: window.__errs});
  document.body.appendChild(d);
});
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render(page: Path, tmp_path: Path) -> tuple[dict, str]:
    """Load `page` (with the probe injected first in <head>) in headless chromium; return the
    probe's record and the browser's console log."""
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run must install it (apt-get install -y chromium)")
        pytest.skip("chromium not installed (CI installs it; locally: apt-get install -y chromium)")
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    profile = tmp_path / "profile"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = re.search(r'<pre id="fleetsim-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the page never finished loading; stderr: {proc.stderr[-2000:]}"
    import html as _html

    return json.loads(_html.unescape(m.group(1))), proc.stderr


def _console_messages(log: str) -> list[str]:
    """Every console line chromium logged for the page (the report has no script of its own, so
    any line is an error: chromium logs console.error at INFO level, without a level tag)."""
    return [ln for ln in log.splitlines() if ":CONSOLE" in ln]


def test_report_renders_in_a_real_browser(fleet_run, tmp_path):
    probe, log = render(fleet_run / "report.html", tmp_path)
    assert probe["text_chars"] > 500, probe  # not blank
    assert probe["height"] > 2000, probe
    assert probe["images"] == len(FLEET_PLOTS), probe
    assert probe["loaded"] == probe["images"], probe  # every image decoded
    assert all(w > 0 for w in [probe["loaded"]])
    assert probe["errors"] == [], probe
    assert _console_messages(log) == []


def test_browser_probe_sees_a_broken_image(fleet_run, tmp_path):
    """The probe can fail: a corrupted image is counted as not loaded and reported as an error."""
    page = (fleet_run / "report.html").read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1))
    probe, _ = render(broken, tmp_path)
    assert probe["loaded"] == probe["images"] - 1
    assert probe["errors"], probe


def test_browser_probe_sees_console_errors(tmp_path):
    page = tmp_path / "x.html"
    page.write_text("<html><head></head><body><p>hi</p><script>console.error('boom'); nope();</script></body></html>")
    probe, log = render(page, tmp_path)
    assert any("boom" in e for e in probe["errors"]) and any("nope" in e for e in probe["errors"])
    assert len(_console_messages(log)) >= 2


def test_quickstart_is_a_fleet_run_with_plots_and_report(tmp_path, monkeypatch):
    """The README's first command: a fleet run that writes every fleet plot and report.html.
    Its speed is measured by benchmarks/bench_quickstart.py (a timed test would be noisy)."""
    from click.testing import CliRunner

    from fleetsim.cli import main

    monkeypatch.delenv("CI", raising=False)
    out = tmp_path / "qs"
    res = CliRunner().invoke(main, ["run", str(Path(__file__).parent.parent / "scenarios" / "quickstart.yaml"),
                                    "-o", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "fleet"
    s = json.loads((out / "summary.json").read_text())["fleet"]
    assert 10_000 <= sum(s["fleet_mix_end"].values()) <= 100_000 and 2 <= len(s["fleet_mix_end"]) <= 3
    assert {p.stem for p in (out / "plots").glob("*.png")} == FLEET_PLOTS
    page = (out / "report.html").read_text()
    assert "nvidia-h20: banned" in page
    assert res.output.strip().splitlines()[-1] == f"report: {out / 'report.html'}"


def test_reliability_run_plots_and_report(tmp_path):
    scen = fleetsim.load_scenario(Path(__file__).parent.parent / "scenarios" / "llama3-reliability.yaml",
                                  ["reliability.cohort_run.days=20"])
    out = tmp_path / "rel"
    fleetsim.run(scen, out_dir=out)
    api.plot(out)
    assert {p.stem for p in (out / "plots").glob("*.png")} == {"health", "availability"}
    page = api.report(out).read_text()
    assert "crashes over 20 days on 16,384 chips" in page
    assert "h100" in page and "ASSUMPTION" in page  # the reliability placeholders it rests on


# ---- round 3 (branch report): one rounding, plots drawn once, finance, compare deltas ----------


def test_one_percent_rounding_for_console_report_and_compare(fleet_run):
    """0.3% stays 0.3% (never "0%"), 1.6% stays 1.6% (never "2%"); console and report agree."""
    from fleetsim.report.html import headline
    from fleetsim.results.display import fleet_text, pct

    assert [pct(x) for x in (0.0, 0.003, 0.016, 0.12, 1.0)] == ["0%", "0.3%", "1.6%", "12%", "100%"]
    assert pct({"mean": 0.016, "lo": 0.012, "hi": 0.02}) == "1.6% (1.2% to 2%)"
    run = plots.open_run(fleet_run)
    f = run.summary["fleet"]
    line = next(ln for ln in fleet_text(run.summary).splitlines() if "peak unmet share" in ln)
    assert line.endswith(pct(f["peak_unmet_share"]))
    assert headline(run)["peak unmet share"].startswith(pct(f["peak_unmet_share"]))


def test_each_figure_drawn_once(fleet_run, tmp_path, monkeypatch):
    """PNG only by default, no layout pass: one Figure.draw per figure (SVG adds one per figure)."""
    import matplotlib.figure

    copy = tmp_path / "copy"
    shutil.copytree(fleet_run, copy)
    shutil.rmtree(copy / "plots")
    monkeypatch.setenv("FLEETSIM_FORK", "0")  # every figure in this process, where draws are counted
    calls = []
    real = matplotlib.figure.Figure.draw
    monkeypatch.setattr(matplotlib.figure.Figure, "draw", lambda self, r: (calls.append(id(self)), real(self, r))[1])
    written = api.plot(copy)
    assert {p.suffix for p in written} == {".png"} and len(written) == len(FLEET_PLOTS)
    assert len(calls) == len(FLEET_PLOTS) == len(set(calls))


def test_cdf_downsampled_to_fixed_points():
    x, y = plots.cdf_points(range(100_000, 0, -1))
    assert len(x) <= plots.CDF_POINTS and x[0] == 1 and x[-1] == 100_000 and y[-1] == 1.0
    small_x, small_y = plots.cdf_points([3.0, 1.0, 2.0])
    assert list(small_x) == [1.0, 2.0, 3.0] and list(small_y) == [1 / 3, 2 / 3, 1.0]


def test_generations_distinct_and_zero_capacity_left_out():
    import matplotlib.colors as mc
    import numpy as np
    import pandas as pd

    fam = ["ascend-910c"] + [f"ascend-910c-gen{i}" for i in range(1, 5)]
    rgb = np.array([mc.to_rgb(plots.chip_colour(c)) for c in fam])
    dist = [np.abs(a - b).sum() for i, a in enumerate(rgb) for b in rgb[i + 1:]]
    hatches = [plots.chip_hatch(c) for c in fam]
    # every pair differs clearly in lightness, or (for generations) in hatch pattern
    assert all(d > 0.25 for d in dist) or len(set(hatches)) == len(fam)
    assert len(set(hatches[1:])) == 4 and hatches[0] == ""
    t = pd.DataFrame({"h20": [1.0, 2.0], "mlu590": [0.0, 0.0], "t-head-ppu": [0.0, 3.0]})
    assert plots._nonzero(t) == ["h20", "t-head-ppu"]


def test_peak_factor_from_the_diurnal_profile():
    class R:
        scenario = {"fleet": {"demand": {"chat": {"tokens_per_s": 1.0, "peak_to_mean": 1.5, "peak_hour": 14}}}}

    assert 1.45 < plots.peak_factor(R()) <= 1.5
    R.scenario = {"fleet": {"demand": {}}}
    assert plots.peak_factor(R()) == 1.0


def test_report_leads_with_answer_then_plots_finance_assumptions(fleet_run):
    text = (fleet_run / "report.html").read_text()
    order = [text.index(h) for h in ("<h2>Headline numbers", "<h2>Findings", "<h2>Plots", "<h2>Finance",
                                     "<h2>Assumptions")]
    assert order == sorted(order)
    assert "Money by year and chip kind" in text and "Break-even utilisation" in text
    finance = text.split("<h2>Finance")[1].split("<h2>Assumptions")[0]
    assert "<th>capex</th>" in finance and "<td>2026</td>" in finance


def test_compare_has_difference_column_and_shared_y(fleet_run, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(fleet_run, b)
    s = json.loads((b / "summary.json").read_text())
    s["fleet"]["capex_usd_total"] = s["fleet"]["capex_usd_total"] * 1.5
    s["fleet"]["peak_unmet_share"] = s["fleet"]["peak_unmet_share"] + 0.003
    (b / "summary.json").write_text(json.dumps(s))
    out = api.compare([fleet_run, b], tmp_path / "cmp.html")
    text = out.read_text()
    assert "B minus A" in text and "(+50%)" in text and "+0.3 pp" in text
    from fleetsim.report.plots import _YLIM, draw_compare

    drawn = draw_compare([fleet_run, b], ["demand_vs_capacity"], tmp_path / "d")
    assert all("demand_vs_capacity" in d for d in drawn)
    assert "demand_vs_capacity" in _YLIM


def test_every_assumption_row_has_a_value():
    """rise_at_tdp_c (folded into r_th_c_per_w by the catalog) is shown back, never blank."""
    sc = fleetsim.load_scenario(Path(__file__).parent.parent / "scenarios" / "fleet_small.yaml")
    rows = api.assumptions(sc)
    assert any(r["field"] == "rise_at_tdp_c" for r in rows)
    assert all(str(r["value"]).strip() for r in rows), [r for r in rows if not str(r["value"]).strip()]


def test_compare_of_runs_with_futures_differences_their_means(fleet_run, tmp_path):
    """Runs over several futures carry headlines as {mean, ci95_lo, ...}: compare shows each with
    its interval and differences the means (it raised a TypeError on such runs)."""
    def with_futures(path, capex, replications=4):
        s = json.loads((path / "summary.json").read_text())
        s["futures"] = {"replications": replications, "headlines": {
            "capex_usd_total": {"mean": capex, "ci95_lo": 0.9 * capex, "ci95_hi": 1.1 * capex,
                                "p5": 0.85 * capex, "p95": 1.15 * capex},
            "unmet_demand_share": {"mean": 0.02, "ci95_lo": 0.01, "ci95_hi": 0.03, "p5": 0.0, "p95": 0.04}}}
        (path / "summary.json").write_text(json.dumps(s))

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(fleet_run, a)
    shutil.copytree(fleet_run, b)
    with_futures(a, 2.0e9)
    with_futures(b, 3.0e9)
    text = api.compare([a, b], tmp_path / "cmp.html").read_text()
    assert "(+50%)" in text and "P5" in text and "<td>4</td>" in text
    assert "different numbers of futures" not in text
    # the reference case (16 futures) against h20_ban (5): its minus-A column differenced means over
    # different futures (capex -USD 84 M) while the paired difference was +USD 320 M; say so
    with_futures(b, 3.0e9, replications=5)
    text = api.compare([a, b], tmp_path / "cmp.html").read_text()
    assert "different numbers of futures (4, 5)" in text


def test_time_axes_do_not_mark_notes(fleet_run, tmp_path):
    """A regime 'note' (a dated reference, no state change) is not an event marker: on the
    reference case five of twenty markers said only 'note'."""
    import pandas as pd

    from fleetsim.report.plots import open_run, supply_events

    run_dir = tmp_path / "r"
    shutil.copytree(fleet_run, run_dir)
    ev = pd.read_parquet(run_dir / "events.parquet")
    note = ev.iloc[[0]].assign(date=pd.Timestamp("2026-05-20"), detail="note; exporter open; reference: x")
    pd.concat([ev, note], ignore_index=True).to_parquet(run_dir / "events.parquet", index=False)
    labels = list(supply_events(open_run(run_dir))["label"])
    assert labels and not any(lab.endswith(": note") for lab in labels), labels


def test_compare_legends_stay_inside_their_half_width_figures(fleet_run, tmp_path, monkeypatch):
    """Half-width compare figures put the legend under the plot in two columns only when two
    columns fit: a run over futures has seven labels on the demand plot, whose two columns ran off
    both sides of the figure (headless Chromium screenshot of compare.html: 'daily mean demand,
    P5-P95 over the futu')."""
    closed = plots.plt.close
    seen = []

    def check_then_close(fig=None):
        if fig is not None and hasattr(fig, "canvas"):
            box = fig.bbox
            for ax in fig.axes:
                leg = ax.get_legend()
                if leg is not None:
                    e = leg.get_window_extent(fig.canvas.get_renderer())
                    seen.append((e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1,
                                 [t.get_text() for t in leg.get_texts()]))
        closed(fig) if fig is not None else closed()

    monkeypatch.setattr(plots.plt, "close", check_then_close)
    plots.draw_compare([fleet_run, fleet_run], ["demand_vs_capacity", "fleet_mix", "capex_vs_budget"],
                       tmp_path / "d")
    # the labels of the reference case's demand plot (16 futures), at the compare figure's size
    long = ["capacity: ascend-910c", "capacity: ascend-910c-gen1", "peak-hour demand (1.5 x daily mean)",
            "daily mean demand", "peak-hour shortfall", "daily mean demand, P5 and P95 over the futures",
            "capacity, P5 and P95 over the futures"]
    monkeypatch.setattr(plots, "COMPACT", True)
    fig, ax = plots.plt.subplots(figsize=(6.4, 5.4))
    for lab in long:
        ax.plot([0, 1], label=lab)
    plots._legend(ax)
    plots._save(fig, tmp_path, "long", [])
    assert len(seen) >= 4 and any(labs == long for _, labs in seen)
    assert all(ok for ok, _ in seen), [labs for ok, labs in seen if not ok]
    fig, ax = plots.plt.subplots(figsize=(6.4, 5.4))  # two columns still, where they fit
    ax.plot([0, 1], label="a")
    ax.plot([1, 0], label="b")
    plots._legend(ax)
    assert ax.get_legend()._fleetsim_rows == 1
    plots._save(fig, tmp_path, "short", [])
    # the figure grows by its legend: the axes are as tall with one row of legend as with seven
    tall = [f for f in seen if f[1] == long]
    assert len(seen) >= 5

    def axes_height(labels):
        f, a = plots.plt.subplots(figsize=(6.4, 5.4))
        for lab in labels:
            a.plot([0, 1], label=lab)
        plots._legend(a)
        plots._layout(f, 0.0)
        height = a.get_position().height * f.get_size_inches()[1]
        closed(f)
        return height

    assert tall and axes_height(["a", "b"]) == pytest.approx(axes_height(long), abs=0.01)


def test_assumptions_list_the_performance_and_price_estimates(fleet_run, tmp_path):
    """The report's assumptions start with what sizes and prices the fleet: published estimates
    (the H20's price is the midpoint of USD 12-15k) and figures the scenario sets (the reference
    case's PPU at 0.4 of an H100's performance for half its price), not only the placeholders.
    The quickstart's report listed none of them (only 30 thermal placeholders)."""
    root = Path(__file__).parent.parent / "scenarios"
    quick = api.estimates(fleetsim.load_scenario(root / "quickstart.yaml"))
    assert {(r["chip"], r["field"]) for r in quick} >= {("h20", "price_usd"), ("ascend-910b", "price_usd")}
    assert all(r["note"].startswith("EST") and r["value"] for r in quick)
    ref = {(r["chip"], r["field"]): r for r in api.estimates(fleetsim.load_scenario(root / "alibaba_2025.yaml"))}
    ppu = ref[("t-head-ppu", "price_usd")]
    assert ppu["value"] == "13750" and "relative_to h100" in ppu["note"] and "price_fraction 0.5" in ppu["note"]
    assert ("t-head-ppu", "bf16_tflops") in ref
    run = tmp_path / "run"
    shutil.copytree(fleet_run, run)
    s = json.loads((run / "summary.json").read_text())
    s["estimates"] = quick
    (run / "summary.json").write_text(json.dumps(s))
    text = api.report(run).read_text()
    part = text.split("<h2>Assumptions")[1].split("<h2>Tables")[0]
    head = part.split("Performance and price estimates")[1].split("thermal and failure placeholders")[0]
    assert "<td>h20</td><td>price_usd</td><td>13500</td>" in head.replace("\n", ""), head[:2000]


def test_spread_over_futures_is_drawn_as_lines_not_a_band_over_the_stack(fleet_run, tmp_path, monkeypatch):
    """A translucent P5-P95 band drawn over the stacked chip colours tinted them into new ones (on
    the reference case, green under grey read as a darker chip kind): P5 and P95 are thin lines."""
    import matplotlib.collections as mcoll
    import pandas as pd

    run = tmp_path / "run"
    shutil.copytree(fleet_run, run)
    tl = pd.read_parquet(run / "timeline.parquet")
    day = tl.groupby("date", observed=True).agg(
        demand=("demand_tokens_per_s", "first"), cap=("capacity_tokens_per_s", "sum"),
        inst=("installed", "sum"), capex=("capex_usd", "sum")).reset_index()
    q = pd.DataFrame({"date": day["date"], "chip": "all"})
    for col, x in (("demand_tokens_per_s", day["demand"]), ("capacity_tokens_per_s", day["cap"]),
                   ("installed", day["inst"]), ("capex_cum_usd", day["capex"].cumsum())):
        q[f"{col}_p5"], q[f"{col}_p95"] = 0.8 * x, 1.2 * x
    q.to_parquet(run / "quantiles.parquet", index=False)
    s = json.loads((run / "summary.json").read_text())
    s["futures"] = {"replications": 4, "representative": {"future": 2}}
    (run / "summary.json").write_text(json.dumps(s))
    closed, checked = plots.plt.close, []

    def check_then_close(fig=None):
        if fig is not None and hasattr(fig, "axes") and fig.axes:
            ax = fig.axes[0]
            spread = [h for h, lab in zip(*ax.get_legend_handles_labels()) if "P95 over the futures" in lab]
            tints = [c for c in ax.collections if isinstance(c, mcoll.PolyCollection)
                     and "over the futures" in str(c.get_label())]
            checked.append((ax.get_title(), len(spread), tints))
        closed(fig) if fig is not None else closed()

    monkeypatch.setattr(plots.plt, "close", check_then_close)
    folder = plots.open_run(run)
    for fn in (plots.fleet_demand_capacity, plots.fleet_mix, plots.fleet_capex):
        fn(folder, tmp_path, [])
    fan = [c for c in checked if c[1]]
    assert len(fan) >= 3, checked  # demand, fleet mix, capex carry the spread
    assert all(not tints for _, _, tints in fan), fan


def test_finance_running_cost_is_one_figure_in_both_tables(fleet_run, tmp_path):
    """The money table counted levy and impairments in a year's running cost, the break-even table
    did not: the reference case's 2025 read USD 1.49 B in one and 1.19 B in the other."""
    import re

    import pandas as pd

    from fleetsim.report.html import finance_tables

    run = tmp_path / "run"
    shutil.copytree(fleet_run, run)
    tl = pd.read_parquet(run / "timeline.parquet")
    days = pd.to_datetime(tl["date"]).drop_duplicates().sort_values()
    per_day = tl.assign(d=pd.to_datetime(tl["date"])).groupby("d")[["depreciation_usd", "opex_usd"]].sum()
    led = pd.read_parquet(run / "ledger.parquet")
    extra = pd.DataFrame({"date": [days.iloc[40], days.iloc[50], days.iloc[0], days.iloc[0]],
                          "kind": ["levy", "impairment", "depreciation", "opex"], "chip": "h20",
                          "channel": "nvidia-h20",
                          "amount_usd": [5e6, 7e6, float(per_day["depreciation_usd"].sum()),
                                         float(per_day["opex_usd"].sum())]})
    pd.concat([led, extra], ignore_index=True).to_parquet(run / "ledger.parquet", index=False)
    money, breakeven = finance_tables(plots.open_run(run))
    total = re.search(r"<td>2026</td><td>all chips</td>(?:<td>[^<]*</td>)*?<td>([^<]*)</td></tr>", money)
    be = re.search(r"<td>2026</td><td>([^<]*)</td>", breakeven)
    assert total and be and total.group(1) == be.group(1), (money, breakeven)


def _forked_figures_match_one_process(fleet_run: str, tmp_dir: str) -> int:
    """Draw a run's figures in one process, shared with a forked child, and with a child that
    dies; assert the files are the same. Returns fork_workers() (1: nothing could be shared)."""
    from fleetsim import forked

    if forked.fork_workers() < 2:
        return 1
    files = {}
    saved_env, real = os.environ.get("FLEETSIM_FORK"), plots._draw_one
    parent = os.getpid()
    try:
        for mode in ("one", "forked", "child dies"):
            copy = Path(tmp_dir) / mode.replace(" ", "_")
            shutil.copytree(fleet_run, copy)
            shutil.rmtree(copy / "plots")
            os.environ["FLEETSIM_FORK"] = "0" if mode == "one" else "1"
            if mode == "child dies":
                plots._draw_one = lambda fn, run, out: (os.getpid() != parent and os._exit(3)) or real(fn, run, out)
            written = api.plot(copy)
            files[mode] = [(p.name, p.read_bytes()) for p in written]
    finally:
        plots._draw_one = real
        if saved_env is None:
            os.environ.pop("FLEETSIM_FORK", None)
        else:
            os.environ["FLEETSIM_FORK"] = saved_env
    assert [n for n, _ in files["one"]] == [n for n, _ in files["forked"]] and len(files["one"]) == len(FLEET_PLOTS)
    assert files["one"] == files["forked"] == files["child dies"]
    return 2


def test_figures_shared_with_a_forked_child_are_the_same_bytes(fleet_run, tmp_path, monkeypatch):
    """fleetsim.forked: a child draws every other figure; the files are those one process draws,
    listed in the same order, and a child that dies leaves its figures to this process. Where this
    test process already runs another thread (an earlier test's), fleetsim will not fork in it,
    so the probe runs in a fresh spawned interpreter instead of being skipped."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.setenv("FLEETSIM_FORK", "1")  # the user's setting is not this probe's question
    monkeypatch.delenv("FLEETSIM_FUTURE_WORKERS", raising=False)
    if threading.active_count() == 1:
        workers = _forked_figures_match_one_process(str(fleet_run), str(tmp_path))
    else:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            workers = pool.submit(_forked_figures_match_one_process, str(fleet_run), str(tmp_path)).result()
    if workers < 2 and len(os.sched_getaffinity(0)) >= 2:
        raise AssertionError("two CPUs, yet fleetsim.forked would not fork: the shared-figure path is untested")
    if workers < 2:
        pytest.skip("one CPU: nothing is shared")


def test_assumption_values_show_four_significant_digits_at_most():
    """A roadmap generation's compute (1658.1106276643472 TOPS) read as 16 digits in the table."""
    from fleetsim.report.html import _figure

    assert [_figure(v) for v in ("1658.1106276643472", "800.0", "13750", "None", "0.8376", "")] == \
        ["1658", "800", "13750", "-", "0.8376", "-"]


def test_compare_differences_are_paired_and_named_as_in_the_headline_table(fleet_run, tmp_path):
    """The paired table named its rows by summary keys (capex_usd_total) beside a headline table
    that says 'capex total'; a run that adds USD 100 M in every future differs by exactly that."""
    import pandas as pd

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(fleet_run, a)
    shutil.copytree(fleet_run, b)
    rep = pd.DataFrame({"seed": [11, 12, 13, 14], "capex_usd_total": [2.0e9, 2.4e9, 1.9e9, 2.2e9],
                        "unmet_demand_share": [0.01, 0.03, 0.0, 0.02]})
    rep.to_parquet(a / "replicates.parquet")
    rep.assign(capex_usd_total=rep["capex_usd_total"] + 1e8).to_parquet(b / "replicates.parquet")
    text = api.compare([a, b], tmp_path / "cmp.html").read_text()
    part = text.split("Differences from the first run")[1].split("<h2>")[0]
    assert "<td>capex total</td><td>b</td><td>USD 100 M (all futures)</td>" in part, part[:1500]
    assert "capex_usd_total" not in part and "paired on" in part


def test_compare_over_futures_shows_both_costs_with_what_each_includes(fleet_run, tmp_path):
    """Over futures, compare's headline rows carry the all-in cost per Mtok beside the
    depreciation-based one, each saying what it includes (issue 20), and the money at risk."""
    a = tmp_path / "a"
    shutil.copytree(fleet_run, a)
    s = json.loads((a / "summary.json").read_text())
    h = lambda m: {"mean": m, "ci95_lo": 0.9 * m, "ci95_hi": 1.1 * m, "p5": 0.8 * m, "p95": 1.2 * m}
    s["futures"] = {"replications": 4, "headlines": {"cost_usd_per_mtok": h(5.0), "all_in_cost_usd_per_mtok": h(5.4),
                                                     "at_risk_usd": h(8.0e8)}}
    from fleetsim.fleet.records import COST_BASIS  # what a fleet run's summary carries (the fixture is synthetic)

    s["fleet"]["cost_basis"] = dict(COST_BASIS)
    (a / "summary.json").write_text(json.dumps(s))
    import pandas as pd

    pd.DataFrame({"seed": [1, 2, 3, 4], "cost_usd_per_mtok": [5.0, 5.1, 4.9, 5.0],
                  "all_in_cost_usd_per_mtok": [5.4, 5.5, 5.3, 5.4]}).to_parquet(a / "replicates.parquet")
    text = api.compare([a, a], tmp_path / "cmp.html").read_text()
    assert "<td>cost per million tokens (depreciation + power + opex + rental)</td>" in text
    assert "<td>all-in cost per million tokens (depreciation + impairments (stranded, cancelled, forfeited)" in text
    assert "<td>at risk (paid into orders held at the horizon)</td>" in text
    part = text.split("Differences from the first run")[1].split("<h2>")[0]  # named as in the headline table
    assert "<td>all-in cost per million tokens</td>" in part and "cost USD per" not in part, part[:1500]
