"""Trace replay, empirical lengths from files, and the config -> requests glue."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter

from fleetsim.errors import ScenarioError
from fleetsim.scenario.workload import Arrival, TokenDist
from fleetsim.serving.arrivals import TraceReplay
from fleetsim.serving.distributions import Empirical
from fleetsim.serving.workload import RequestBlock, build_requests, compile_workload

TRACES = Path(__file__).resolve().parents[1] / "fleetsim" / "data" / "traces"  # shipped copies
PREFIX = "serving.workloads.chat"
AZURE_COLUMNS = {
    "arrival_s": "arrived_at",
    "prompt_tokens": "num_prefill_tokens",
    "output_tokens": "num_decode_tokens",
}


def arrival(data: dict):
    return TypeAdapter(Arrival).validate_python(data)


def tokens(data: dict):
    return TypeAdapter(TokenDist).validate_python(data)


def workload(arr: dict, prompt: dict | None = None, output: dict | None = None):
    """Duck-typed workload config: the glue reads only these three attributes."""
    return SimpleNamespace(
        arrival=arrival(arr),
        prompt_tokens=tokens(prompt) if prompt else None,
        output_tokens=tokens(output) if output else None,
    )


@pytest.fixture()
def small_trace(tmp_path: Path) -> Path:
    """Five requests, written out of order, with a class column; period = 8 x 5/4 = 10 s."""
    pd.DataFrame(
        {
            "arrival_s": [102.0, 100.0, 104.0, 101.0, 108.0],
            "prompt_tokens": [30, 10, 50, 20, 90],
            "output_tokens": [3, 1, 5, 2, 9],
            "tenant": ["b", "a", "c", "a", "b"],
        }
    ).to_csv(tmp_path / "trace.csv", index=False)
    return tmp_path


def trace_cfg(**extra) -> dict:
    return {"kind": "trace", "path": "trace.csv", **extra}


def test_replay_as_recorded(small_trace: Path) -> None:
    """Times relative to the first record, sorted, each row's tokens and class carried along;
    period n x span / (n - 1) = 10 s, mean rate 0.5 /s."""
    wl = workload(trace_cfg(columns={"class": "tenant"}))
    w = compile_workload(wl, small_trace, PREFIX)
    assert w.mean_rate_per_s == pytest.approx(0.5) and w.arrival.period_s == pytest.approx(10.0)
    b = w.requests(np.random.default_rng(0), 100.0)
    assert isinstance(b, RequestBlock) and len(b) == 5
    assert b.arrival_s.tolist() == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert b.prompt_tokens.tolist() == [10, 20, 30, 50, 90]
    assert b.output_tokens.tolist() == [1, 2, 3, 5, 9]
    assert b.request_class.tolist() == ["a", "a", "b", "c", "b"]
    assert b.arrival_s.dtype == np.float64 and b.prompt_tokens.dtype == np.int64


def test_replay_window_cuts_and_loops(small_trace: Path) -> None:
    """Without loop a window ends with the trace; with loop the trace repeats every period, so
    a 30 s window holds 3 x 5 requests at 0,1,2,4,8, 10,11,... and the mean rate is kept."""
    rng = np.random.default_rng(0)
    short = build_requests(workload(trace_cfg()), rng, 3.0, base_dir=small_trace)
    assert short.arrival_s.tolist() == [0.0, 1.0, 2.0]
    once = build_requests(workload(trace_cfg()), rng, 30.0, base_dir=small_trace)
    assert len(once) == 5
    looped = build_requests(
        workload(trace_cfg(loop=True)), np.random.default_rng(0), 30.0, base_dir=small_trace
    )
    base = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    assert looped.arrival_s.tolist() == np.concatenate([base, base + 10, base + 20]).tolist()
    assert looped.prompt_tokens.tolist() == [10, 20, 30, 50, 90] * 3


def test_replay_start_scale_and_rate(small_trace: Path) -> None:
    """start_s skips earlier rows (loop wraps round to them); time_scale multiplies times;
    target_rate_per_s sets time_scale = native rate / target; rate_scale divides times."""
    rng = np.random.default_rng(0)
    b = build_requests(workload(trace_cfg(start_s=3.0)), rng, 100.0, base_dir=small_trace)
    assert b.arrival_s.tolist() == [1.0, 5.0] and b.prompt_tokens.tolist() == [50, 90]
    b = build_requests(workload(trace_cfg(start_s=3.0, loop=True)), rng, 12.0, base_dir=small_trace)
    assert b.arrival_s.tolist() == [1.0, 5.0, 7.0, 8.0, 9.0, 11.0]
    b = build_requests(workload(trace_cfg(time_scale=0.5)), rng, 100.0, base_dir=small_trace)
    assert b.arrival_s.tolist() == [0.0, 0.5, 1.0, 2.0, 4.0]
    w = compile_workload(workload(trace_cfg(target_rate_per_s=2.0, loop=True)), small_trace)
    assert w.mean_rate_per_s == pytest.approx(2.0)
    assert len(w.requests(rng, 100.0)) == 200
    b = build_requests(workload(trace_cfg()), rng, 100.0, rate_scale=4.0, base_dir=small_trace)
    assert b.arrival_s.tolist() == [0.0, 0.25, 0.5, 1.0, 2.0]


def test_trace_without_token_columns_samples_them(small_trace: Path) -> None:
    wl = workload(
        trace_cfg(columns={"output_tokens": None}),
        output={"kind": "fixed", "value": 7},
    )
    b = build_requests(wl, np.random.default_rng(0), 100.0, base_dir=small_trace)
    assert b.prompt_tokens.tolist() == [10, 20, 30, 50, 90] and b.output_tokens.tolist() == [7] * 5


def test_absolute_path_ignores_base_dir(small_trace: Path) -> None:
    wl = workload({"kind": "trace", "path": str(small_trace / "trace.csv")})
    block = build_requests(wl, np.random.default_rng(0), 100.0, base_dir=Path("/nonexistent"))
    assert len(block) == 5


def test_empirical_lengths_from_csv(tmp_path: Path) -> None:
    """Relative path resolved against base_dir; values resampled, scaled and rounded."""
    (tmp_path / "data").mkdir()
    pd.DataFrame({"p": [100, 200, 300, 400]}).to_csv(tmp_path / "data" / "lengths.csv", index=False)
    wl = workload(
        {"kind": "poisson", "rate_per_s": 50},
        prompt={"kind": "empirical", "path": "data/lengths.csv", "column": "p", "scale": 0.5},
        output={"kind": "fixed", "value": 4},
    )
    w = compile_workload(wl, tmp_path, PREFIX)
    assert isinstance(w.prompt_tokens, Empirical) and w.prompt_tokens.mean == 125.0
    b = w.requests(np.random.default_rng(1), 100.0)
    assert set(np.unique(b.prompt_tokens).tolist()) == {50, 100, 150, 200}


# --- errors name the file and the field -----------------------------------------------------


def _raises(wl, base: Path, field: str, *fragments: str) -> None:
    with pytest.raises(ScenarioError) as info:
        compile_workload(wl, base, PREFIX)
    assert info.value.field == field, info.value
    for fragment in fragments:
        assert fragment in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    path = f"{PREFIX}.arrival.path"
    _raises(workload(trace_cfg()), tmp_path, path, "trace.csv", "does not exist")
    _raises(
        workload(trace_cfg(path=".")), tmp_path, f"{PREFIX}.arrival.path", "is a folder"
    )
    wl = workload(
        {"kind": "poisson", "rate_per_s": 1},
        prompt={"kind": "empirical", "path": "nope.csv", "column": "x"},
        output={"kind": "fixed", "value": 1},
    )
    _raises(wl, tmp_path, f"{PREFIX}.prompt_tokens.path", str(tmp_path / "nope.csv"))


def test_missing_column(small_trace: Path) -> None:
    _raises(
        workload(trace_cfg(columns={"prompt_tokens": "prompt_len"})),
        small_trace,
        f"{PREFIX}.arrival.columns.prompt_tokens",
        "'prompt_len' not found",
        "arrival_s, prompt_tokens, output_tokens, tenant",
    )
    wl = workload(
        {"kind": "poisson", "rate_per_s": 1},
        prompt={"kind": "fixed", "value": 1},
        output={"kind": "empirical", "path": "trace.csv", "column": "out"},
    )
    _raises(wl, small_trace, f"{PREFIX}.output_tokens.column", "'out' not found")


def test_bad_values(tmp_path: Path) -> None:
    header = "arrival_s,prompt_tokens,output_tokens\n"
    (tmp_path / "zero.csv").write_text(header + "0,5,1\n1,0,1\n2,3,1\n")
    _raises(
        workload(trace_cfg(path="zero.csv")),
        tmp_path,
        f"{PREFIX}.arrival.columns.prompt_tokens",
        "token counts >= 1",
        "data row 2",
    )
    (tmp_path / "text.csv").write_text(header + "0,1,1\nsoon,1,1\n")
    _raises(
        workload(trace_cfg(path="text.csv")),
        tmp_path,
        f"{PREFIX}.arrival.columns.arrival_s",
        "finite numbers",
    )
    (tmp_path / "one.csv").write_text(header + "0,1,1\n")
    path = f"{PREFIX}.arrival.path"
    _raises(workload(trace_cfg(path="one.csv")), tmp_path, path, "at least 2 records")
    (tmp_path / "empty.csv").write_text(header)
    _raises(workload(trace_cfg(path="empty.csv")), tmp_path, path, "no rows")


def test_start_beyond_trace(small_trace: Path) -> None:
    field = f"{PREFIX}.arrival.start_s"
    _raises(workload(trace_cfg(start_s=10.0)), small_trace, field, "period 10 s")


def test_token_source_must_be_unambiguous(small_trace: Path) -> None:
    """Tokens from the trace and a distribution for the same length: error; neither: error."""
    both = workload(trace_cfg(), prompt={"kind": "fixed", "value": 3})
    _raises(both, small_trace, f"{PREFIX}.prompt_tokens", "remove this distribution")
    neither = workload(trace_cfg(columns={"output_tokens": None}))
    _raises(neither, small_trace, f"{PREFIX}.output_tokens", "the trace maps no output_tokens")
    plain = workload({"kind": "poisson", "rate_per_s": 1}, prompt={"kind": "fixed", "value": 3})
    _raises(plain, small_trace, f"{PREFIX}.output_tokens", "required")


# --- streams --------------------------------------------------------------------------------


def test_same_rng_state_same_requests_and_crn() -> None:
    """Same generator state: identical requests. At rate_scale 2 the first requests are the
    same requests (same tokens) at half the times: common random numbers for the goodput
    search. Changing the output distribution leaves arrivals and prompts untouched."""
    wl = workload(
        {"kind": "poisson", "rate_per_s": 40},
        prompt={"kind": "lognormal", "median": 1000, "sigma": 0.9, "max": 8192},
        output={"kind": "geometric", "mean": 200},
    )
    a = build_requests(wl, np.random.default_rng(42), 60.0)
    b = build_requests(wl, np.random.default_rng(42), 60.0)
    fields = ("arrival_s", "prompt_tokens", "output_tokens")
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)
    c = build_requests(wl, np.random.default_rng(42), 60.0, rate_scale=2.0)
    n = len(a)
    assert np.array_equal(c.arrival_s[:n], a.arrival_s / 2)
    assert np.array_equal(c.prompt_tokens[:n], a.prompt_tokens)
    assert np.array_equal(c.output_tokens[:n], a.output_tokens)
    other = tokens({"kind": "uniform", "low": 1, "high": 9})
    changed = SimpleNamespace(**{**vars(wl), "output_tokens": other})
    d = build_requests(changed, np.random.default_rng(42), 60.0)
    assert np.array_equal(d.arrival_s, a.arrival_s)
    assert np.array_equal(d.prompt_tokens, a.prompt_tokens)
    e = build_requests(wl, np.random.default_rng(43), 60.0)
    assert not np.array_equal(e.arrival_s[:10], a.arrival_s[:10])


# --- the real Azure traces ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, records, rate", [("conv", 19_366, 5.53), ("code", 8_819, 2.57)]
)
def test_azure_trace_replays_as_recorded(name: str, records: int, rate: float) -> None:
    """With the column mapping the trace replays unchanged: over one period every record once,
    at its recorded time, with its recorded tokens; the mean rate is the README's."""
    path = f"azure_llm_2023_{name}.csv"
    cfg = workload({"kind": "trace", "path": path, "columns": AZURE_COLUMNS})
    w = compile_workload(cfg, TRACES, PREFIX)
    assert isinstance(w.arrival, TraceReplay) and w.arrival.n_records == records
    assert w.mean_rate_per_s == pytest.approx(rate, abs=0.005)
    b = w.requests(np.random.default_rng(0), w.arrival.period_s)
    raw = pd.read_csv(TRACES / f"azure_llm_2023_{name}.csv")
    assert len(b) == records
    np.testing.assert_array_equal(b.arrival_s, raw.arrived_at.to_numpy() - raw.arrived_at.iloc[0])
    np.testing.assert_array_equal(b.prompt_tokens, raw.num_prefill_tokens.to_numpy())
    np.testing.assert_array_equal(b.output_tokens, raw.num_decode_tokens.to_numpy())
    # Looped at ten times the native rate: one period of simulated time holds ten copies.
    fast = cfg.arrival.model_copy(
        update={"loop": True, "target_rate_per_s": 10 * w.mean_rate_per_s}
    )
    w10 = compile_workload(SimpleNamespace(**{**vars(cfg), "arrival": fast}), TRACES, PREFIX)
    n10 = len(w10.requests(np.random.default_rng(0), w.arrival.period_s))
    assert abs(n10 - 10 * records) <= 1  # the copy boundary may fall either side of the end


def test_shipped_traces_are_the_published_files() -> None:
    """The copies inside the package are byte-for-byte the files the README cites."""
    import hashlib

    readme = (TRACES / "README.md").read_text()
    assert "CC-BY-4.0" in readme and "Splitwise" in readme
    for name in ("conv", "code"):
        digest = hashlib.sha256((TRACES / f"azure_llm_2023_{name}.csv").read_bytes()).hexdigest()
        assert digest in readme
