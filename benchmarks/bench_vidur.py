"""Issue 24's Vidur case: fleetsim against Vidur (microsoft/vidur) as whole processes on the same
10,000 Azure conversation requests, 4 replicas of a 70B Llama on H100 at tp 4.

    python benchmarks/bench_vidur.py [--runs 3] [--vidur-python PATH --vidur-dir DIR]
        fleetsim's side (`fleetsim run CASE` with its defaults, plots and report included, and
        with --no-plots): wall and CPU seconds (user + system of the process and the children
        it waited for) per run. With --vidur-python (the interpreter of a venv with Vidur's
        requirements) and --vidur-dir (a Vidur checkout: its data/ paths are relative, so it
        runs there), Vidur's `python -m vidur.main` on the same requests, interleaved run by
        run, and the ratios. Without them: the Vidur figures recorded in
        benchmarks/vidur_recorded.json (date, commit, command) beside fleetsim's measured side.
    python benchmarks/bench_vidur.py --smoke
        fleetsim's side on the first 300 requests, one run, and the recorded Vidur figures.

The case (both sides read the same CSV, written to a temporary folder): the first 10,000 rows of
fleetsim/data/traces/azure_llm_2023_conv.csv (byte-identical to Vidur's
data/processed_traces/splitwise_conv.csv), with Vidur's trace_replay clip applied to both
sides: a request whose prompt + output exceeds 4,096 tokens (1,157 of the 10,000) has its prompt
cut so the total is 4,096 (Vidur's Llama-2 profiles stop at 4k context). Arrival times as in the
trace (0-1,787 s). Sarathi-like batching on both: 128 requests a batch, 512 tokens an iteration,
chunked prefill; round-robin routing (Vidur's defaults). What differs: the model (fleetsim
Llama-3.1-70B; Vidur has no Llama-3 profile for H100 and runs Llama-2-70B, the same shape: 80
layers, 8,192 hidden, 64 query / 8 KV heads, 28,672 FFN; vocabulary 32k against 128k), and the
kernel times (fleetsim's roofline kernel against Vidur's random forests over its profiles).
See docs/validation.md, "Against Vidur".
"""

from __future__ import annotations

from _smoke import SMOKE, pick  # noqa: F401,I001 (first: takes --smoke out of sys.argv)
import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "fleetsim" / "data" / "traces" / "azure_llm_2023_conv.csv"
RECORDED = ROOT / "benchmarks" / "vidur_recorded.json"
MAX_TOKENS = 4096  # Vidur's TraceRequestGeneratorConfig.max_tokens default

CASE = """\
# Written by benchmarks/bench_vidur.py: the Vidur comparison case (see its docstring).
name: vidur-azure-conv
seed: 42
serving:
  duration_s: {duration_s}
  warmup_s: 0
  workloads:
    conv:
      model: llama-3.1-70b
      arrival:
        kind: trace
        path: trace.csv
        columns: {{arrival_s: arrived_at, prompt_tokens: num_prefill_tokens, output_tokens: num_decode_tokens}}
  pools:
    h100: {{chip: h100, model: llama-3.1-70b, tp: 4, replicas: 4,
           batching: {{max_batch: 128, max_tokens_per_iter: 512, chunked_prefill: true}}}}
  router: {{kind: round_robin}}
"""

# Vidur's flags for the case; every other option at its default (metrics, plots, chrome trace,
# random-forest predictor with its model cache in DIR/cache).
VIDUR_FLAGS = [
    "--replica_config_device", "h100", "--replica_config_network_device", "h100_dgx",
    "--replica_config_model_name", "meta-llama/Llama-2-70b-hf",
    "--replica_config_tensor_parallel_size", "4", "--cluster_config_num_replicas", "4",
    "--request_generator_config_type", "trace_replay",
]


def write_case(folder: Path, n: int) -> Path:
    """The first `n` trace rows, clipped as Vidur clips them, and the fleetsim scenario."""
    with TRACE.open(newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    with (folder / "trace.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["arrived_at", "num_prefill_tokens", "num_decode_tokens"])
        for r in rows:
            p, o = max(1, int(r["num_prefill_tokens"])), max(1, int(r["num_decode_tokens"]))
            w.writerow([r["arrived_at"], p - max(0, p + o - MAX_TOKENS), o])
    last = float(rows[-1]["arrived_at"])
    (folder / "case.yaml").write_text(CASE.format(duration_s=int(last) + 13))
    return folder / "case.yaml"


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall s, CPU s) of a whole process and the children it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def vidur_version(python: str, vidur_dir: Path) -> str:
    r = subprocess.run(["git", "-C", str(vidur_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = r.stdout.strip() if r.returncode == 0 else ""
    if not commit and (vidur_dir / "COMMIT").is_file():  # a checkout made without .git
        commit = (vidur_dir / "COMMIT").read_text().strip()
    libs = subprocess.run([python, "-c", "import sys, numpy, pandas, sklearn; print("
                           "f'Python {sys.version.split()[0]}, numpy {numpy.__version__}, pandas "
                           "{pandas.__version__}, scikit-learn {sklearn.__version__}')"],
                          capture_output=True, text=True).stdout.strip()
    return f"Vidur {commit or 'commit unknown'} ({libs})"


def fmt(vals: list[tuple[float, float]]) -> str:
    return (f"CPU s {' / '.join(f'{c:.2f}' for _, c in vals)} (median {statistics.median(c for _, c in vals):.2f}), "
            f"wall s {' / '.join(f'{w:.2f}' for w, _ in vals)} (median {statistics.median(w for w, _ in vals):.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=pick(3, 1))
    ap.add_argument("--requests", type=int, default=pick(10_000, 300))
    ap.add_argument("--vidur-python", help="interpreter of a venv with Vidur's requirements")
    ap.add_argument("--vidur-dir", type=Path, help="Vidur checkout (runs there: data/ paths are relative)")
    args = ap.parse_args()
    if args.vidur_python and not args.vidur_dir:
        ap.error("--vidur-python needs --vidur-dir (the Vidur checkout it runs in)")
    import fleetsim

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"fleetsim {fleetsim.__version__} ({sys.executable}), {args.requests} requests, {args.runs} runs")
    sides: dict[str, list[tuple[float, float]]] = {"fleetsim": [], "fleetsim --no-plots": [], "vidur": []}
    with tempfile.TemporaryDirectory() as tmp:
        case = write_case(Path(tmp), args.requests)
        exe = [sys.executable, "-m", "fleetsim.cli", "run", str(case), "-q", "--overwrite"]
        cmds = {"fleetsim": exe + ["-o", f"{tmp}/run"],
                "fleetsim --no-plots": exe + ["--no-plots", "-o", f"{tmp}/run-np"]}
        if args.vidur_python:
            cmds["vidur"] = [args.vidur_python, "-m", "vidur.main", *VIDUR_FLAGS,
                             "--trace_request_generator_config_trace_file", f"{tmp}/trace.csv",
                             "--metrics_config_output_dir", f"{tmp}/vidur_out"]
        for name, cmd in cmds.items():  # one unmeasured run each: caches (fleetsim's, Vidur's models)
            timed(cmd, args.vidur_dir if name == "vidur" else ROOT)
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                sides[name].append(timed(cmd, args.vidur_dir if name == "vidur" else ROOT))
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    req, conv = summary["requests"], summary["classes"]["conv"]
    print(f"fleetsim: {req['arrived']} arrived, {req['completed']} completed; TTFT p50/p99 "
          f"{conv['ttft_p50_s']:.3f}/{conv['ttft_p99_s']:.3f} s, TPOT p50 {conv['tpot_p50_s'] * 1e3:.1f} ms, "
          f"e2e p50 {conv['e2e_p50_s']:.2f} s")
    for name in ("fleetsim", "fleetsim --no-plots"):
        print(f"{name:<20} {fmt(sides[name])}")
    if args.vidur_python:
        vid, version = sides["vidur"], vidur_version(args.vidur_python, args.vidur_dir)
        print(f"{'vidur':<20} {fmt(vid)}\n  {version}")
    else:
        rec = json.loads(RECORDED.read_text())
        vid = [(w, c) for w, c in zip(rec["wall_s"], rec["cpu_s"])]
        print(f"{'vidur (recorded)':<20} {fmt(vid)}\n  recorded {rec['date']}, Vidur {rec['vidur_commit']}"
              f" ({rec['environment']}); command: {rec['command']}")
    v_cpu, v_wall = statistics.median(c for _, c in vid), statistics.median(w for w, _ in vid)
    for name in ("fleetsim", "fleetsim --no-plots"):
        f_cpu = statistics.median(c for _, c in sides[name])
        f_wall = statistics.median(w for w, _ in sides[name])
        print(f"ratio Vidur / {name:<20} {v_cpu / f_cpu:6.1f}x CPU, {v_wall / f_wall:6.1f}x wall (medians)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
