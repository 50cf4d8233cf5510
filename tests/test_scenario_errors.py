"""Every error a user can cause ends in one line naming the file, the field and what is allowed.

Each case breaks the quickstart scenario the way a user would (a typo, a wrong type, a bad
number, a name the catalog does not know, a broken file, a bad --set) and checks the contract
through the CLI (exit code 2, one line on stderr, no traceback, file, field, line when YAML knows
it) and through the Python API (a FleetsimError subclass whose message is one line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

import fleetsim
from fleetsim.cli import main
from fleetsim.errors import CapacityError, ScenarioError

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
QUICK_TEXT = QUICKSTART.read_text(encoding="utf-8")


def _edit(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"quickstart no longer holds {old!r} exactly once"
        return text.replace(old, new)

    return edit


def _mutate(fn: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = yaml.safe_load(text)
        fn(data)
        return yaml.safe_dump(data, sort_keys=False)

    return edit


def _line_of(text: str, marker: str) -> int:
    """1-based line of the first line holding marker (its first line, if marker spans lines)."""
    return text[: text.index(marker)].count("\n") + 1


def _all_pools(data: dict[str, Any], **changes: Any) -> None:
    for pool in data["serving"]["pools"].values():
        pool.update(changes)


# (id, edit of the quickstart text, field, marker of the line the error must name or None,
#  substrings of the message, exception class from the API)
CASES = [
    ("unknown-field", _edit("  duration_s: 300", "  duraton_s: 300"), "serving.duraton_s",
     "duraton_s", ["unknown field", "did you mean 'duration_s'", "allowed here"], ScenarioError),
    ("unknown-top-level-field", _edit("seed: 7", "sede: 7"), "sede", "sede",
     ["did you mean 'seed'"], ScenarioError),
    ("unknown-nested-field", _edit("max_batch: 128", "max_bach: 128"),
     "serving.pools.h20.batching.max_bach", "max_bach", ["did you mean 'max_batch'"], ScenarioError),
    ("wrong-type-number", _edit("  duration_s: 300", "  duration_s: five minutes"),
     "serving.duration_s", "five minutes", ["valid number", "five minutes"], ScenarioError),
    ("wrong-type-integer", _edit("replicas: 4", "replicas: 2.5"), "serving.pools.h20.replicas",
     "replicas: 2.5", ["valid integer"], ScenarioError),
    ("wrong-type-section", _edit("router: {kind: least_tokens}", "router: least_tokens"),
     "serving.router", "router: least_tokens", ["expected a section"], ScenarioError),
    ("negative-rate", _edit("rate_per_s: 4.5", "rate_per_s: -5"),
     "serving.workloads.chat.arrival.rate_per_s", "rate_per_s: -5", ["greater than 0", "-5"],
     ScenarioError),
    ("zero-rate", _edit("rate_per_s: 4.5", "rate_per_s: 0"),
     "serving.workloads.chat.arrival.rate_per_s", "rate_per_s: 0", ["greater than 0"], ScenarioError),
    ("infinite-rate", _edit("rate_per_s: 4.5", "rate_per_s: .inf"),
     "serving.workloads.chat.arrival.rate_per_s", "rate_per_s: .inf", ["finite"], ScenarioError),
    ("zero-tp", _edit("tp: 4\n      replicas: 4", "tp: 0\n      replicas: 4"),
     "serving.pools.h20.tp", "tp: 0", ["greater than or equal to 1"], ScenarioError),
    ("missing-required-field", _edit("      model: qwen2.5-72b\n      arrival", "      arrival"),
     "serving.workloads.chat.model", "    chat:", ["required field is missing"], ScenarioError),
    ("unknown-arrival-kind", _edit("kind: poisson", "kind: poison"),
     "serving.workloads.chat.arrival", "kind: poison", ["'poisson'", "'diurnal'", "'trace'"],
     ScenarioError),
    ("unknown-router", _edit("router: {kind: least_tokens}", "router: {kind: random}"),
     "serving.router.kind", "kind: random", ["'round_robin'", "'power_of_two'", "'least_tokens'"],
     ScenarioError),
    ("warmup-not-shorter-than-duration", _edit("  warmup_s: 60", "  warmup_s: 300"), "serving.warmup_s",
     "  warmup_s: 300", ["warmup_s (300) must be shorter than duration_s (300)"], ScenarioError),
    ("bad-name", _edit("name: quickstart", "name: quick start"), "name", "name: quick",
     ["pattern"], ScenarioError),
    ("unknown-chip", _edit("chip: h20", "chip: h2O"), "serving.pools.h20.chip", None,
     ["unknown chip 'h2O'", "did you mean 'h20'", "known chips:", "t-head-ppu"], ScenarioError),
    ("unknown-model-in-pool",
     _mutate(lambda d: d["serving"]["pools"]["domestic"].update(model="qwen2.5-27b")),
     "serving.pools.domestic.model", None, ["unknown model 'qwen2.5-27b'", "known models:"],
     ScenarioError),
    ("unknown-model-in-workload",
     _mutate(lambda d: d["serving"]["workloads"]["chat"].update(model="gpt-5")),
     "serving.workloads.chat.model", None, ["unknown model 'gpt-5'", "qwen2.5-72b"], ScenarioError),
    ("model-not-served",
     _mutate(lambda d: d["serving"]["workloads"]["chat"].update(model="llama-3.1-8b")),
     "serving.workloads.chat.model", None, ["no pool serves model 'llama-3.1-8b'", "qwen2.5-72b"],
     ScenarioError),
    ("model-too-big-for-chips",
     _mutate(lambda d: (_all_pools(d, model="deepseek-v3", tp=1),
                        d["serving"]["workloads"]["chat"].update(model="deepseek-v3"))),
     "serving.pools.h20.tp", None, ["GB", "raise tp"], CapacityError),
    ("unknown-hall", _mutate(lambda d: d["serving"]["pools"]["h20"].update(hall="hall-9")),
     "serving.pools.h20.hall", None, ["unknown hall 'hall-9'"], ScenarioError),
    ("nothing-to-run", _mutate(lambda d: d.pop("serving")), "serving", None, ["nothing to run"],
     ScenarioError),
    ("broken-yaml", _edit("  warmup_s: 60", "  warmup_s: 60: 70"), None, "warmup_s: 60: 70",
     ["broken YAML"], ScenarioError),
    ("unsafe-yaml-tag", lambda _: '!!python/object/apply:os.system ["echo hacked"]\n', None, None,
     ["broken YAML", "python/object/apply"], ScenarioError),
    ("empty-file", lambda _: "", None, None, ["empty"], ScenarioError),
    ("only-comments", lambda _: "# nothing here\n", None, None, ["empty"], ScenarioError),
    ("not-a-mapping", lambda _: "- chat\n- batch\n", None, None, ["mapping", "not a list"],
     ScenarioError),
]


@pytest.mark.parametrize(
    "edit, field, line_marker, contains, exc_type",
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_broken_scenario_is_one_clear_line(
    edit, field, line_marker, contains, exc_type, write_scenario, runner, user_error
):
    text = edit(QUICK_TEXT)
    path = write_scenario(text)
    line = _line_of(text, line_marker) if line_marker else None

    result = runner.invoke(main, ["validate", str(path)])
    user_error(result, file=path, field=field, line=line, contains=contains)

    with pytest.raises(exc_type) as info:
        fleetsim.load_scenario(path)
    assert "\n" not in str(info.value)
    assert info.value.file == str(path)


def test_broken_toml_names_file_and_line(write_scenario, runner, user_error):
    path = write_scenario('name = "x"\n[serving\n', name="broken.toml")
    user_error(runner.invoke(main, ["validate", str(path)]), file=path,
               contains=["broken TOML", "line 2"])


def test_undecodable_file(tmp_path, runner, user_error):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    user_error(runner.invoke(main, ["validate", str(path)]), file=path, contains=["cannot read"])


def test_missing_scenario_file(tmp_path, runner, user_error):
    path = tmp_path / "no-such.yaml"
    for command in (["validate", str(path)], ["run", str(path), "-o", str(tmp_path / "out")]):
        user_error(runner.invoke(main, command), file=path, contains=["not found"])
    assert not (tmp_path / "out").exists()


def test_unsafe_yaml_runs_no_code(tmp_path, write_scenario, runner):
    """safe_load only: a python tag is an error, never a call."""
    marker = tmp_path / "hacked"
    path = write_scenario(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    assert runner.invoke(main, ["validate", str(path)]).exit_code == 2
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# --set overrides


SET_CASES = [
    ("set-unknown-path", "serving.duraton_s=120", "serving.duraton_s",
     ["does not exist", "did you mean 'duration_s'", "allowed:"]),
    ("set-unknown-top-level", "sead=3", "sead", ["does not exist", "did you mean 'seed'"]),
    ("set-unknown-in-pool", "serving.pools.h20.replicaz=2", "serving.pools.h20.replicaz",
     ["did you mean 'replicas'"]),
    ("set-wrong-type", "serving.duration_s=abc", "serving.duration_s",
     ["valid number", "(value from --set)"]),
    ("set-negative", "seed=-3", "seed", ["greater than or equal to 0", "(value from --set)"]),
    ("set-bad-kind", "serving.router.kind=fastest", "serving.router.kind",
     ["'least_tokens'", "(value from --set)"]),
    ("set-no-equals", "serving.duration_s", None, ["PATH=VALUE"]),
    ("set-empty-path", "=3", None, ["empty"]),
    ("set-into-a-value", "serving.duration_s.x=1", None, ["holds a value"]),
]


@pytest.mark.parametrize("override, field, contains", [pytest.param(*c[1:], id=c[0]) for c in SET_CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_set_is_one_clear_line(command, override, field, contains, quickstart_copy, tmp_path,
                                   runner, user_error):
    out = tmp_path / "out"
    args = [command, str(quickstart_copy), "--set", override] + (["-o", str(out)] if command == "run" else [])
    user_error(runner.invoke(main, args), field=field, contains=contains)
    assert not out.exists(), "a scenario that does not validate must not create a run folder"


def test_bad_set_path_names_the_file(quickstart_copy, runner, user_error):
    result = runner.invoke(main, ["validate", str(quickstart_copy), "--set", "serving.duraton_s=1"])
    user_error(result, file=quickstart_copy, field="serving.duraton_s")


# ---------------------------------------------------------------------------------------------
# Errors that only `run` meets


def test_output_folder_under_a_file(quickstart_copy, tmp_path, runner, user_error):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(main, ["run", str(quickstart_copy), "-o", str(blocker / "run")])
    user_error(result, contains=["cannot write the output folder", str(blocker / "run")])


def _trace_scenario(quickstart_data: dict[str, Any], trace: str) -> dict[str, Any]:
    wl = quickstart_data["serving"]["workloads"]["chat"]
    wl["arrival"] = {"kind": "trace", "path": trace}
    wl.pop("prompt_tokens")
    wl.pop("output_tokens")
    return quickstart_data


@pytest.mark.parametrize("command", ["validate", "run"])
def test_missing_trace_file(command, quickstart_data, write_scenario, tmp_path, runner, user_error):
    """A trace that is not there is found on load (validate too), before any run folder exists."""
    path = write_scenario(_trace_scenario(quickstart_data, "traces/missing.csv"))
    out = tmp_path / "out"
    args = [command, str(path)] + (["-o", str(out)] if command == "run" else [])
    user_error(runner.invoke(main, args), file=path, field="serving.workloads.chat.arrival.path",
               contains=["missing.csv", "does not exist"])
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Formerly known gaps, now fixed: keep them fixed.


def test_unknown_chip_names_the_line(write_scenario, runner, user_error):
    text = QUICK_TEXT.replace("chip: h20", "chip: h2O")
    path = write_scenario(text)
    user_error(runner.invoke(main, ["validate", str(path)]), file=path,
               field="serving.pools.h20.chip", line=_line_of(text, "chip: h2O"))


def test_name_with_line_break_stays_one_line(quickstart_data, write_scenario, runner, user_error):
    quickstart_data["serving"]["pools"]["h20"]["chip"] = "h2\n0"
    path = write_scenario(quickstart_data)
    user_error(runner.invoke(main, ["validate", str(path)]), file=path, field="serving.pools.h20.chip")


def test_boolean_is_not_a_number(write_scenario, runner, user_error):
    path = write_scenario(QUICK_TEXT.replace("rate_per_s: 4.5", "rate_per_s: true"))
    user_error(runner.invoke(main, ["validate", str(path)]), file=path,
               field="serving.workloads.chat.arrival.rate_per_s")



@pytest.mark.parametrize("case", ["output-is-a-file", "scenario-is-a-folder"])
def test_path_kind_errors_are_one_line(case, quickstart_copy, tmp_path, runner, user_error):
    if case == "output-is-a-file":
        target = tmp_path / "taken"
        target.write_text("x")
        args, text = ["run", str(quickstart_copy), "-o", str(target)], "cannot write the output folder"
    else:
        target = tmp_path / "folder.yaml"
        target.mkdir()
        args, text = ["validate", str(target)], "is a folder"
    user_error(runner.invoke(main, args), contains=[text, str(target)])


def test_duplicate_yaml_key_is_refused(tmp_path, runner):
    """YAML would keep the last of two equal keys silently; a scenario refuses it, with the line."""
    from fleetsim.cli import main

    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nseed: 1\nseed: 2\n")
    result = runner.invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "dup.yaml:3" in result.output and "given twice" in result.output


def test_set_indexes_into_lists(tmp_path):
    """`--set reliability.cohort_run.cohorts.0.count=100` reaches into a list; a bad index is refused."""
    import pytest as _pytest

    import fleetsim
    from fleetsim.errors import ScenarioError

    root = Path(__file__).resolve().parents[1] / "scenarios" / "llama3-reliability.yaml"
    scen = fleetsim.load_scenario(root, ["reliability.cohort_run.cohorts.0.count=100"])
    assert scen.reliability.cohort_run.cohorts[0].count == 100
    with _pytest.raises(ScenarioError, match="list of 1 item"):
        fleetsim.load_scenario(root, ["reliability.cohort_run.cohorts.5.count=100"])
