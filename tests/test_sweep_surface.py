"""The sweep command as a user meets it: every `--help` example runs, values are typed by the
schema, axes a fleet overrides are refused, and goal seek finds a bracketed answer on common
random numbers."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fleetsim.cli import main
from fleetsim.sweep.seek import parse_target
from fleetsim.sweep.spec import SweepError, parse_param

ROOT = Path(__file__).resolve().parents[1]
FAST_SERVING = ["--set", "serving.duration_s=40", "--set", "serving.warmup_s=10"]


def help_examples(command: str) -> list[str]:
    """The example commands of `fleetsim COMMAND --help` (continuation lines joined)."""
    out = CliRunner().invoke(main, [command, "--help"]).output
    block = out.split("Example:", 1)[1].split("\n\n")[0]
    lines = [ln.strip() for ln in block.splitlines()[1:] if ln.strip()]
    cmds, cur = [], ""
    for ln in lines:
        cur += ln
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip() + " "
        else:
            cmds.append(cur)
            cur = ""
    return cmds


def test_every_sweep_help_example_runs(tmp_path, monkeypatch):
    """Each example of `fleetsim sweep --help` runs from the repository root (serving windows
    shortened to 40 s): files it names exist, nothing it sweeps is refused."""
    monkeypatch.chdir(ROOT)
    cmds = help_examples("sweep")
    assert len(cmds) == 4 and all(c.startswith("fleetsim sweep ") for c in cmds), cmds
    for i, cmd in enumerate(cmds):
        args = shlex.split(cmd)[1:]
        for a in args:
            if a.endswith(".yaml"):
                assert (ROOT / a).is_file(), f"--help names {a}, which does not exist"
        if "--seek" in cmd:  # the same command as docs/sweeps.md's, which the test below runs
            assert cmd in doc_commands(), cmd
            continue
        if "serving_quickstart" in cmd:
            args += FAST_SERVING
        r = CliRunner().invoke(main, [*args, "-o", str(tmp_path / f"ex{i}"), "-q"])
        assert r.exit_code == 0, f"{cmd}\n{r.output}"
        assert "0 failed" in r.output, r.output


def check_seek_answer(output: str, out: Path) -> None:
    """The seek example: each probe printed, the answer meets the target, the other end of its
    bracket fails it, and every probe ran the same fleet seed (common random numbers)."""
    probes = [ln for ln in output.splitlines() if ln.startswith("probe ")]
    m = re.search(r"answer: fleet.budget.total_usd = (\S+) meets .*bracket: (\S+) fails, (\S+) meets", output)
    assert m and len(probes) >= 4, output
    info = json.loads((out / "seek.json").read_text())
    assert info["converged"] and len(info["probes"]) == len(probes)
    by_value = {p["value"]: p for p in info["probes"]}
    fail, ok = info["bracket"]["fails"], info["bracket"]["meets"]
    assert by_value[ok]["unmet_demand_share"] <= 0.01 < by_value[fail]["unmet_demand_share"]
    assert abs(ok - fail) <= 0.01 * ok and float(m.group(1)) == pytest.approx(ok, rel=1e-5)
    # CRN: one replicate seed for all probes, and it is the fleet seed each probe ran
    stored = pd.concat([pd.read_parquet(p) for p in (out / "points").glob("*.parquet")])
    assert set(stored["seed"]) == set(info["replicate_seeds"]) and len(info["replicate_seeds"]) == 1
    # monotone in the budget on common random numbers: more budget never leaves more demand unmet
    pts = sorted((p["value"], p["unmet_demand_share"]) for p in info["probes"])
    assert all(b[1] <= a[1] + 1e-12 for a, b in zip(pts, pts[1:])), pts


def test_values_are_typed_by_the_schema(tmp_path, monkeypatch):
    """`0.9e9` (YAML 1.1 text) is the number 9e8 in the table, and the tornado plot is drawn."""
    monkeypatch.chdir(ROOT)
    assert parse_param("fleet.budget.total_usd=0.9e9,2e8")[1] == [9e8, 2e8]
    r = CliRunner().invoke(main, ["sweep", "scenarios/fleet_small.yaml", "--param",
                                  "fleet.budget.total_usd=2e8,0.9e9", "-o", str(tmp_path / "t"), "-q"])
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(tmp_path / "t" / "results.parquet")
    assert table["fleet.budget.total_usd"].dtype == "float64"
    assert sorted(table["fleet.budget.total_usd"]) == [2e8, 9e8]
    assert (tmp_path / "t" / "plots" / "tornado_unmet_demand_share.png").is_file()


def test_a_string_valued_axis_draws_its_tornado(tmp_path, monkeypatch):
    """An axis of names (a planner kind) labels the tornado with its names."""
    from fleetsim.sweep.summary import tornado

    ok = pd.DataFrame({"fleet.planner.kind": ["cheapest", "cheapest", "diversify", "diversify"],
                       "unmet_demand_share": [0.1, 0.12, 0.02, 0.03]})
    assert tornado(ok, ["fleet.planner.kind"], "unmet_demand_share", tmp_path / "t.png").is_file()


@pytest.mark.parametrize("axis, instead", [
    ("--param=serving.pools.h20.replicas=2,4", "fleet.budget.total_usd"),
    ("--range=serving.workloads.chat.arrival.rate_per_s=3:6:2", "fleet.demand.CLASS.tokens_per_s"),
    ("--param=serving.duration_s=60,120", "fleet.windows.duration_s"),
])
def test_an_axis_the_fleet_overrides_is_refused(tmp_path, monkeypatch, user_error, axis, instead):
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(main, ["sweep", "scenarios/quickstart.yaml", axis, "-o", str(tmp_path / "r"), "-q"])
    user_error(r, file="scenarios/quickstart.yaml", contains=["changes nothing in a fleet scenario", instead])
    assert not (tmp_path / "r").exists()


def test_seek_refusals(tmp_path, monkeypatch, user_error):
    monkeypatch.chdir(ROOT)
    for bad in ("unmet<0.01x", "unmet_demand_share=0.01", ""):
        with pytest.raises(SweepError):
            parse_target(bad)
    base = ["sweep", "scenarios/fleet_small.yaml", "-o", str(tmp_path / "s"), "-q"]
    r = CliRunner().invoke(main, [*base, "--seek", "fleet.budget.total_usd"])
    user_error(r, contains=["go together"])
    # met at both ends: the bracket does not hold the boundary
    r = CliRunner().invoke(main, [*base, "--seek", "fleet.budget.total_usd", "--target",
                                  "unmet_demand_share<=0.5", "--bracket", "1e8:1e9"])
    user_error(r, contains=["meets at both ends of the bracket"])
    r = CliRunner().invoke(main, [*base, "--seek", "fleet.planner.kind", "--target", "unmet_demand_share<=0.01"])
    user_error(r, field="fleet.planner.kind", contains=["numeric field"])


DOC = (ROOT / "docs" / "sweeps.md").read_text()


def doc_commands() -> list[str]:
    """Every `fleetsim sweep` command of docs/sweeps.md: fenced bash blocks and indented lines."""
    cmds = [b.strip() for b in re.findall(r"```bash\n(.*?)```", DOC, re.DOTALL)]
    lines, cur = DOC.splitlines(), None
    for ln in lines:
        if cur is None and ln.startswith("    fleetsim sweep "):
            cur = ""
        if cur is not None:
            cur += ln.strip()
            if cur.endswith("\\"):
                cur = cur[:-1].rstrip() + " "
            else:
                cmds.append(cur)
                cur = None
    return cmds


def test_every_docs_command_runs(tmp_path, monkeypatch):
    """The how-to and seek commands of docs/sweeps.md run as written (serving windows shortened);
    the seek prints the probes and the answer the page quotes; the tutorial's two commands are run
    by tests/test_sweep_docs.py and tests/test_sweep_dask.py (same spec on a LocalCluster)."""
    monkeypatch.chdir(ROOT)
    cmds = doc_commands()
    assert len(cmds) == 4, cmds
    for i, cmd in enumerate(cmds[2:]):
        args = shlex.split(cmd)[1:]
        if "serving_quickstart" in cmd:
            args += FAST_SERVING
        r = CliRunner().invoke(main, [*args, "-o", str(tmp_path / f"d{i}"), "-q"])
        assert r.exit_code == 0, f"{cmd}\n{r.output}"
        if "--seek" in cmd:
            quoted = re.search(r"```\n(probe 1:.*?)```", DOC, re.DOTALL).group(1).splitlines()
            printed = r.output.splitlines()
            for line in quoted:
                assert line == "..." or line in printed, f"docs/sweeps.md quotes {line!r}; the command printed\n{r.output}"
            check_seek_answer(r.output, tmp_path / f"d{i}")


def test_docs_fleet_refusal_is_what_the_cli_prints(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    quoted = re.search(r"    (error: scenarios/quickstart.yaml, field .*)", DOC).group(1)
    r = CliRunner().invoke(main, ["sweep", "scenarios/quickstart.yaml", "--param", "serving.pools.h20.replicas=2,4",
                                  "-o", str(tmp_path / "x"), "-q"])
    assert r.exit_code == 2 and r.output.strip() == quoted


@pytest.mark.parametrize("kind", ["cheapest", "domestic_share", "optimal"])
def test_set_planner_kind_on_the_reference_case(monkeypatch, kind):
    """`--set fleet.planner.kind=X` on the reference case: the planner fields X lacks are dropped,
    each with a note on stderr; the scenario validates with the new planner."""
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(main, ["validate", "scenarios/alibaba_2025.yaml", "--set", f"fleet.planner.kind={kind}"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("ok: scenarios/alibaba_2025.yaml")
    dropped = "horizon_days" if kind == "optimal" else "risk_weight"
    assert f"note: fleet.planner.{dropped} dropped: fleet.planner.kind={kind} has no such field" in r.stderr
    from fleetsim import api

    scen = api.load_scenario("scenarios/alibaba_2025.yaml", [f"fleet.planner.kind={kind}"])
    assert scen.fleet.planner.kind == kind


def test_set_kind_keeps_fields_set_after_it(monkeypatch):
    """A field written after the kind is kept; one the new kind lacks is still refused."""
    from fleetsim import api

    monkeypatch.chdir(ROOT)
    scen = api.load_scenario("scenarios/alibaba_2025.yaml",
                             ["fleet.planner.kind=security_weighted", "fleet.planner.risk_weight=3"])
    assert scen.fleet.planner.risk_weight == 3 and not scen.notes
    r = CliRunner().invoke(main, ["validate", "scenarios/alibaba_2025.yaml", "--set", "fleet.planner.kind=cheapest",
                                  "--set", "fleet.planner.risk_weight=3"])
    assert r.exit_code == 2 and "risk_weight" in r.output
