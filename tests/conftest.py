"""Shared fixtures: a private cache per test, the quickstart scenario, a CLI runner."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import os

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

# The property tests draw the same examples on every run, in CI and locally alike (a red run
# names a real bug, not a lucky draw, and the same suite gives the same answer everywhere); no
# example database, so a local run never replays examples CI does not. To hunt for new failing
# examples, run with HYPOTHESIS_PROFILE=explore (random draws each run).
# No deadline and no too-slow health check in any profile: on a loaded machine (the suite shares
# cores with other jobs) an example's time says nothing of the code, and a deadline missed once then
# met on Hypothesis's rerun fails the test as Flaky.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("deterministic"))
settings.register_profile("explore", derandomize=False, database=None, print_blob=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = REPO_ROOT / "scenarios" / "serving_quickstart.yaml"


@pytest.fixture(scope="session")
def lasting_cache(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """lasting_cache(name, compute, depends=(__file__,)) -> compute(), kept across test runs in pytest's cache folder
    (.pytest_cache/d/fleetsim-results) under a key of `name` and the package's source and data
    digest: any edit of fleetsim recomputes it, an unchanged package reads it back. For costly
    results whose inputs are the package alone (the calibration refit); a fresh clone (CI)
    computes them once. Without pytest's cache plugin it just computes."""
    import hashlib
    import pickle

    from fleetsim.serving.goodput import source_digest

    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("fleetsim-results")) if cache is not None else None
    digest = source_digest()

    def get(name: str, compute: Callable[[], Any], depends: tuple[str | Path, ...] = ()) -> Any:
        """`depends`: files outside the package the result rests on (the test module that
        defines the case): their contents join the key."""
        if root is None:
            return compute()
        h = hashlib.sha256(f"{name}\0{digest}".encode())
        for f in depends:
            h.update(Path(f).read_bytes())
        key = h.hexdigest()[:24]
        path = root / f"{name}-{key}.pickle"
        try:
            return pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass
        value = compute()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(pickle.dumps(value))
            os.replace(tmp, path)
            for old in root.glob(f"{name}-*.pickle"):  # earlier digests: never read again
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError:
            tmp.unlink(missing_ok=True)
        return value

    return get


@pytest.fixture(scope="session")
def lasting_results_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that lasts across test runs (pytest's cache folder) for fleetsim's own
    content-keyed caches (the goodput cache: keys hash the scenario and the package's code), so
    a rerun of an unchanged search reads it back. Without pytest's cache, a temporary folder that
    every xdist worker of this session shares (as they share .pytest_cache): the doc-block and
    runs-file tests search the same replica types, so a type searched on one worker is read on
    the other. The cache writes each entry by an atomic rename, so two workers can share it."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("fleetsim-goodput"))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's basetemp is a folder of the session's
        shared = tmp_path_factory.getbasetemp().parent / "fleetsim-goodput"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("goodput")


@pytest.fixture(autouse=True)
def _no_forked_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite already runs a test on every core (xdist `-n auto`), so a run that forks a child
    for half its windows or figures (fleetsim.forked) only adds the fork's own CPU (measured 7 Dec
    2026: 12.8 CPU s with children against 11.8 without on two tests/test_report.py tests). The
    forked probes (tests/test_fleet_windows.py, tests/test_report.py, tests/test_cli_report.py) set
    FLEETSIM_FORK=1 themselves; a user's own FLEETSIM_FORK is kept."""
    if "FLEETSIM_FORK" not in os.environ:
        monkeypatch.setenv("FLEETSIM_FORK", "0")


@pytest.fixture(autouse=True)
def _sweeps_in_process_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep, seek or decide that names no executor (no --workers, --scheduler, --dask-local)
    runs its points in the test's own process (SerialExecutor), as FLEETSIM_FORK=0 above: the
    suite already runs a test on every core, and the default pool spawned one process per core,
    each importing fleetsim and searching the scenario's replica types again with a cold memo
    (measured 8 Dec 2026, cold, -n 2: tests/test_sweep*.py and test_decide.py 103.5 CPU s
    with the pool, 84.6 without). A test that asks for workers gets the real pool (tests/test_sweep_dask.py,
    tests/test_sweep_docs.py and tests/test_sweep.py's resume with workers=2; test_sweep.py's
    kill test runs a real `fleetsim sweep` process)."""
    from fleetsim.sweep import executors, runner

    real = runner._make_executor

    def make(workers, scheduler, dask_local, dask_processes):
        if workers is None and scheduler is None and dask_local is None:
            return executors.SerialExecutor()
        return real(workers, scheduler, dask_local, dask_processes)

    monkeypatch.setattr(runner, "_make_executor", make)


# The longest tests (a cold fresh-clone run, 8 Dec 2026, durations on a loaded machine) go first:
# xdist's `load` scheduler hands tests out in collection order, so a 30-90 s test collected last ran
# alone on one core at the end of the suite while the other core sat idle. planner-shock first: it
# searches the reference case's replica types cold into the session's shared capacity cache
# (lasting_results_dir), which planner-rules and analysis_doc's runs-file test then read (beside it
# on the other core, both would search the same types cold): rules is left in its place, analysis
# comes after the coverage, bench and PD tests. test_calibrate's refit: its fixture (the suite's
# longest set-up) is computed on the first call.
LONGEST_FIRST = (
    "tests/test_docs.py::test_generated_block_matches_what_its_script_gives[planner.md:planner-shock]",
    "tests/test_sweep_surface.py::test_every_docs_command_runs",
    "tests/test_goodput_coverage.py::test_interval_covers_mm1_answer",
    "tests/test_goodput_coverage.py::test_interval_covers_pinned_continuous_batching_answer",
    "tests/test_benchmarks.py::test_benchmark_runs_in_smoke_mode[bench_report.py]",
    "tests/test_calibrate.py::test_refit_from_the_fit_split_reproduces_the_shipped_parameters",
    "tests/test_disagg_capacity.py::test_pd_search_rounds_stay_within_the_narrow_design",
    "tests/test_disagg_capacity.py::test_role_capacities_measure_each_side_with_the_other_in_surplus",
    "tests/test_analysis_doc.py::test_runs_file_is_what_the_code_gives_today",
    "tests/test_queueing.py::test_mean_wait_matches_theory[M/M/8-jsq-rho0.9]",
    "tests/test_queueing.py::test_mean_wait_matches_theory[M/M/8-jsq-rho0.8]",
    "tests/test_benchmarks.py::test_benchmark_runs_in_smoke_mode[bench_vidur.py]",
    "tests/test_goodput_property.py::test_issue_scenario_that_overflowed_gives_an_answer",
    "tests/test_benchmarks.py::test_benchmark_runs_in_smoke_mode[validate_pd_prefix.py]",
    "tests/test_benchmarks.py::test_benchmark_runs_in_smoke_mode[bench_futures.py]",
    "tests/test_queueing.py::test_mean_wait_matches_theory[M/M/8-jsq-rho0.5]",
    "tests/test_decide.py::test_a_dated_ban_with_a_probability_is_drawn_per_future",
    "tests/test_report.py::test_quickstart_is_a_fleet_run_with_plots_and_report",
    "tests/test_benchmarks.py::test_benchmark_runs_in_smoke_mode[bench_speed.py]",
    "tests/test_benchmarks.py::test_benchmark_runs_in_smoke_mode[bench_disagg.py]",
    "tests/test_sweep_surface.py::test_every_sweep_help_example_runs",
    "tests/test_docs.py::test_generated_block_matches_what_its_script_gives[validation.md:validation-goodput]",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move LONGEST_FIRST to the front, in that order (the rest keep theirs; every xdist worker
    sorts the same collection the same way, as xdist requires)."""
    rank = {nodeid: i for i, nodeid in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(it.nodeid, len(rank)))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own FLEETSIM_CACHE_DIR, so no test reads another's (or the user's) cache."""
    cache = tmp_path / "fleetsim-cache"
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(cache))
    return cache


@pytest.fixture()
def quickstart_path() -> Path:
    """The committed serving quickstart scenario (read it, do not write it)."""
    return QUICKSTART


@pytest.fixture()
def quickstart_copy(tmp_path: Path) -> Path:
    """A private copy of the quickstart scenario, safe to edit."""
    dst = tmp_path / "quickstart.yaml"
    shutil.copyfile(QUICKSTART, dst)
    return dst


@pytest.fixture()
def quickstart_data() -> dict[str, Any]:
    """The quickstart scenario as plain data (a fresh copy per test)."""
    return yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))


@pytest.fixture()
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    """write_scenario(data_or_text, name="scenario.yaml") -> path of a scenario file in tmp_path."""

    def write(content: dict[str, Any] | str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture()
def runner() -> CliRunner:
    """click's test runner; stdout and stderr are kept apart (result.stdout, result.stderr)."""
    return CliRunner()


def _user_error_line(result: Any) -> str:
    """The one error line of a CLI result that ended in a user error (checks the contract)."""
    assert result.exit_code == 2, f"exit {result.exit_code}, output:\n{result.output}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output
    # `run` may print progress lines ("... serving window") before the error; nothing else.
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("... ")]
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture()
def user_error() -> Callable[..., str]:
    """user_error(result, file=, field=, line=, contains=[...]) -> the error line, checked.

    The contract of every user error: exit code 2, no traceback, exactly one line on stderr
    starting 'error: ', naming the file ('FILE:LINE' when the line is known) and the field.
    """

    def check(result: Any, *, file: str | Path | None = None, field: str | None = None,
              line: int | None = None, contains: tuple[str, ...] | list[str] = ()) -> str:
        msg = _user_error_line(result)
        if file is not None:
            assert str(file) in msg, msg
        if line is not None:
            assert f"{file}:{line}," in msg or f"{file}:{line}:" in msg, msg
        if field is not None:
            assert f"field '{field}'" in msg, msg
        for text in contains:
            assert text in msg, msg
        return msg

    return check
