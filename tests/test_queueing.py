"""The serving layer with batch size 1 and Poisson arrivals is a classical queue: check mean waits.

Every case goes through the ordinary path (workload generator -> router -> replica loop -> latency
kernel); nothing bypasses the simulator. qwen2.5-7b on one H100, prompt fixed at 1 token, so a
request's service time is a deterministic function of its output length n:

    s(n) = step_time_s(1, 0, 0, 0.5) + sum_{j=0}^{n-2} iteration_time_s(0, 1, 2 + j)

(one prefill iteration, which yields the first token, then n - 1 decode steps whose context grows
by one token each). Each test first checks that every simulated service time finish_s -
admitted_s equals s(n) (to 100 float eps x the window length: a few roundings of timestamps), so
the service law is exactly s(N) with N the output length law, and its moments E[S], E[S^2] are
computed exactly from N's probability mass function.

Theory, exact for what is simulated where an exact formula exists:
- one replica: Pollaczek-Khinchine, Wq = lambda E[S^2] / (2 (1 - rho)), exact for any service law
  (geometric output -> M/M/1-like, cs^2 = 1.001; fixed -> M/D/1; uniform, lognormal -> M/G/1).
- c replicas behind the `jsq` router: each replica keeps its own FCFS queue, which is NOT the
  central queue of M/M/c (a freed replica cannot take a request waiting at another one). The exact
  answer for JSQ with exponential service is a quasi-birth-death chain (queueing_theory.jsq_qbd);
  Erlang C is printed beside it to show the gap. The service is exponential up to cs^2 = 1.001;
  the Allen-Cunneen factor (1 + cs^2) / 2 bounds that bias at 0.05 %, asserted to be below a tenth
  of the interval's half-width.
- c replicas behind a `central` router (a pool-level FCFS queue, dispatch when a replica frees),
  if the router exists: Erlang C. Skipped otherwise.

Tolerance: the simulated mean of queue_s (admitted_s - arrival_s) over requests arriving after the
warm-up (5 % of the window) and before 98 % of it, split in arrival order into 25 batches; the
99 % batch-means confidence interval (t with 24 degrees of freedom) must contain the theory value.
Fixed seeds. `python tests/test_queueing.py` prints the table of docs/validation.md.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from queueing_theory import batch_means, jsq_qbd, mmc_wq, pk_wq  # noqa: E402

from fleetsim.catalog import load_chips, load_models  # noqa: E402
from fleetsim.kernel import ReplicaKernel  # noqa: E402
from fleetsim.scenario.serving import ServingConfig  # noqa: E402
from fleetsim.serving.metrics import latencies  # noqa: E402
from fleetsim.serving.requests import COMPLETED, REJECTED  # noqa: E402
from fleetsim.serving.window import run_window  # noqa: E402
from fleetsim.serving.workload import token_distribution  # noqa: E402

CHIPS, MODELS = load_chips(), load_models()
CHIP, MODEL = "h100", "qwen2.5-7b"
LEVEL, BATCHES, WARMUP_FRAC, END_FRAC = 0.99, 25, 0.05, 0.98

OUTPUTS = {
    "geometric": {"kind": "geometric", "mean": 500},
    "fixed": {"kind": "fixed", "value": 500},
    "uniform": {"kind": "uniform", "low": 1, "high": 999},
    "lognormal": {"kind": "lognormal", "median": 300, "sigma": 1.0, "max": 8000},
}


@dataclass(frozen=True)
class Case:
    name: str  # queue in Kendall notation, as the table shows it
    output: str  # key of OUTPUTS
    replicas: int
    load: float  # rho = lambda E[S] / c
    customers: int  # expected arrivals in the window
    router: str = "jsq"
    seed: int = 1

    @property
    def id(self) -> str:
        return f"{self.name}-{self.router}-rho{self.load}"


_CASES = [
    Case("M/M/1", "geometric", 1, 0.5, 100_000),
    Case("M/M/1", "geometric", 1, 0.8, 200_000),
    Case("M/M/1", "geometric", 1, 0.9, 400_000),
    Case("M/D/1", "fixed", 1, 0.5, 60_000),
    Case("M/D/1", "fixed", 1, 0.8, 100_000),
    Case("M/D/1", "fixed", 1, 0.9, 200_000),
    Case("M/G/1 uniform", "uniform", 1, 0.5, 60_000),
    Case("M/G/1 uniform", "uniform", 1, 0.8, 120_000),
    Case("M/G/1 uniform", "uniform", 1, 0.9, 250_000),
    Case("M/G/1 lognormal", "lognormal", 1, 0.5, 100_000),
    Case("M/G/1 lognormal", "lognormal", 1, 0.8, 200_000),
    Case("M/G/1 lognormal", "lognormal", 1, 0.9, 400_000),
    Case("M/M/3", "geometric", 3, 0.5, 100_000),
    Case("M/M/3", "geometric", 3, 0.8, 200_000),
    Case("M/M/3", "geometric", 3, 0.9, 400_000),
    Case("M/M/8", "geometric", 8, 0.5, 200_000),
    Case("M/M/8", "geometric", 8, 0.8, 200_000),
    Case("M/M/8", "geometric", 8, 0.9, 400_000),
]
# Each case its own seed: with one seed every case would replay the same unit arrival stream and
# their errors would share a sign.
CASES = [Case(c.name, c.output, c.replicas, c.load, c.customers, seed=101 + i)
         for i, c in enumerate(_CASES)]
CENTRAL_CASES = [
    Case(c.name, c.output, c.replicas, c.load, c.customers, router="central", seed=c.seed + 100)
    for c in CASES if c.replicas > 1
]
SLOW = {"M/M/1-jsq-rho0.9", "M/G/1 lognormal-jsq-rho0.9", "M/M/3-jsq-rho0.9", "M/M/8-jsq-rho0.9"}


def serving_config(rate: float, output: dict, replicas: int, router: str, duration: float,
                   warmup: float) -> ServingConfig:
    return ServingConfig.model_validate({
        "duration_s": duration, "warmup_s": warmup,
        "workloads": {"w": {"model": MODEL, "arrival": {"kind": "poisson", "rate_per_s": rate},
                            "prompt_tokens": {"kind": "fixed", "value": 1},
                            "output_tokens": output}},
        "pools": {"p": {"chip": CHIP, "model": MODEL, "tp": 1, "replicas": replicas,
                        "batching": {"max_batch": 1}}},
        "router": {"kind": router},
    })


def router_available(kind: str) -> bool:
    try:
        serving_config(1.0, OUTPUTS["fixed"], 2, kind, 10.0, 0.0)
    except Exception:
        return False
    return True


# ---- exact service law ------------------------------------------------------------------------
def service_table(kernel: ReplicaKernel, n_max: int) -> np.ndarray:
    """s(n) for n = 1..n_max (index n - 1), from the kernel's vectorised entry point."""
    decode = kernel.iteration_time_s(0.0, 1.0, 2.0 + np.arange(n_max - 1))
    return kernel.step_time_s(1, 0, 0.0, 0.5) + np.concatenate([[0.0], np.cumsum(decode)])


def output_pmf(output: dict) -> np.ndarray:
    """P(N = n) for n = 1..n_max, from the distribution's own CDF (tail beyond n_max < 1e-15)."""
    dist = token_distribution(ServingConfig.model_validate({
        "workloads": {"w": {"model": MODEL, "arrival": {"kind": "poisson", "rate_per_s": 1.0},
                            "prompt_tokens": {"kind": "fixed", "value": 1},
                            "output_tokens": output}},
        "pools": {"p": {"chip": CHIP, "model": MODEL}},
    }).workloads["w"].output_tokens)
    n_max = 64
    while dist.cdf(n_max) < 1.0 - 1e-15:
        n_max *= 2
    cdf = dist.cdf(np.arange(0, n_max + 1))
    return np.diff(cdf)


@dataclass
class Row:
    case: Case
    rate: float
    mean_s: float  # exact E[S]
    cs2: float  # exact squared coefficient of variation of S
    sim_mean_s: float  # sample mean of finish - admitted
    sim_cs2: float
    theory: float
    theory_name: str
    erlang_c: float
    ci: object  # BatchMeans
    measured: int
    wall_s: float
    bias_bound: float  # relative bias of the theory from a non-exponential service (c > 1)
    service_max_rel_err: float  # max |S - s(n)| in units of 100 eps x window length
    note: str = ""

    @property
    def rel_err(self) -> float:
        return self.ci.mean / self.theory - 1.0

    @property
    def inside(self) -> bool:
        return self.ci.contains(self.theory)


def run_case(case: Case) -> Row:
    kernel = ReplicaKernel(CHIPS[CHIP], MODELS[MODEL], 1)
    pmf = output_pmf(OUTPUTS[case.output])
    s = service_table(kernel, len(pmf))
    m1, m2 = float(pmf @ s), float(pmf @ s**2)
    cs2 = m2 / m1**2 - 1.0
    c = case.replicas
    rate = case.load * c / m1
    duration = case.customers / rate
    cfg = serving_config(rate, OUTPUTS[case.output], c, case.router, duration,
                         WARMUP_FRAC * duration)

    t0 = time.perf_counter()
    res = run_window(cfg, CHIPS, MODELS, case.seed)
    wall = time.perf_counter() - t0
    r = res.requests

    done = ~np.isnan(r.finish_s)
    # the replica is busy from admission to its last step; the client sees the finish the
    # engine's per-request host cost later (docs/kernel.md "Overheads"), which is not service
    service = r.finish_s[done] - r.admitted_s[done] - kernel.request_overhead_s
    expected = s[r.output_tokens[done] - 1]
    # absolute: timestamps near t carry rounding ~ eps t, so allow 100 eps x the window length
    service_err = float(np.max(np.abs(service - expected))) / (100 * np.finfo(float).eps * duration)

    m = (r.arrival_s >= WARMUP_FRAC * duration) & (r.arrival_s < END_FRAC * duration)
    wait = latencies(res)["queue_s"][m]
    assert not np.isnan(wait).any(), "a measured request was never admitted: window too short"
    ci = batch_means(wait, BATCHES, LEVEL)

    erl = mmc_wq(rate, m1, c)
    bias = 0.0
    if c == 1:
        theory, name = pk_wq(rate, m1, m2), "Pollaczek-Khinchine"
    elif case.router == "central":
        theory, name = erl, "Erlang C"
        bias = abs(cs2 - 1.0) / 2.0
    else:
        theory, name = jsq_qbd(rate, m1, c).wq, "JSQ exact (QBD)"
        bias = abs(cs2 - 1.0) / 2.0
    sim_cs2 = float(service.var() / service.mean() ** 2)
    return Row(case, rate, m1, cs2, float(service.mean()), sim_cs2, theory, name, erl, ci,
               int(m.sum()), wall, bias, service_err)


def _check(row: Row) -> None:
    print(f"\n{row.case.id}: theory {row.theory:.5f} ({row.theory_name}), sim {row.ci.mean:.5f} "
          f"+/- {row.ci.half_width:.5f} ({row.rel_err:+.2%}), Erlang C {row.erlang_c:.5f}, "
          f"cs2 {row.cs2:.4f} (sample {row.sim_cs2:.4f}), batch lag-1 {row.ci.lag1:+.2f}, "
          f"{row.measured} requests, {row.wall_s:.1f} s")
    assert row.service_max_rel_err <= 1.0, "service time differs from the kernel's s(n)"
    assert row.bias_bound * row.theory < 0.1 * row.ci.half_width, "service too far from exponential"
    assert row.inside, (
        f"{row.case.id}: theory {row.theory:.6g} outside the 99% CI "
        f"[{row.ci.lo:.6g}, {row.ci.hi:.6g}]"
    )


def _param(case: Case):
    marks = [pytest.mark.slow] if case.id in SLOW else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_mean_wait_matches_theory(case: Case):
    """Batch-size-1 pool vs P-K (one replica) or exact JSQ (c replicas): 99% batch-means CI."""
    _check(run_case(case))


def test_features_the_validation_needs_exist():
    """The probes are part of the test: a missing feature is a failure, never a skip."""
    assert router_available("central"), "no 'central' router: per-replica queues are not M/M/c"
    assert queue_limit_zero_admits_idle(), "queue_limit 0 rejects even on an idle replica"


@pytest.mark.parametrize("case", [_param(c) for c in CENTRAL_CASES])
def test_central_queue_is_erlang_c(case: Case):
    """A pool-level FCFS queue with c batch-1 replicas is M/M/c: Erlang C inside the 99% CI."""
    _check(run_case(case))


def queue_limit_zero_admits_idle() -> bool:
    """Does queue_limit 0 mean "no waiting room" (an idle replica still takes the request)?"""
    cfg = serving_config(0.01, OUTPUTS["fixed"], 1, "jsq", 1000.0, 0.0)
    cfg.pools["p"].queue_limit = 0
    r = run_window(cfg, CHIPS, MODELS, 1).requests
    return len(r) > 0 and bool((r.status == COMPLETED).any())


LOSS_CASES = [(0.5, 60_000, 201), (0.8, 60_000, 202), (0.9, 60_000, 203)]


@pytest.mark.parametrize("load,customers,seed", LOSS_CASES, ids=[f"rho{c[0]}" for c in LOSS_CASES])
def test_loss_system_is_erlang_b(load, customers, seed):
    """Three batch-1 replicas, jsq, queue_limit 0: M/G/3/3, blocking = Erlang B(3, a).

    Erlang B is insensitive to the service law, so the lognormal outputs (cs^2 = 1.6) give an
    exact test. The rejected fraction of requests arriving after the warm-up, in 25 batches in
    arrival order: the 99% batch-means CI must contain Erlang B.
    """
    from queueing_theory import erlang_b

    kernel = ReplicaKernel(CHIPS[CHIP], MODELS[MODEL], 1)
    pmf = output_pmf(OUTPUTS["lognormal"])
    m1 = float(pmf @ service_table(kernel, len(pmf)))
    rate = load * 3 / m1
    duration = customers / rate
    cfg = serving_config(rate, OUTPUTS["lognormal"], 3, "jsq", duration, WARMUP_FRAC * duration)
    cfg.pools["p"].queue_limit = 0
    res = run_window(cfg, CHIPS, MODELS, seed)
    r = res.requests
    m = r.arrival_s >= cfg.warmup_s
    ci = batch_means((r.status[m] == REJECTED).astype(float), BATCHES, LEVEL)
    theory = erlang_b(3, load * 3)
    print(f"\nM/G/3/3 rho {load}: Erlang B {theory:.5f}, "
          f"simulated {ci.mean:.5f} +/- {ci.half_width:.5f}")
    assert ci.contains(theory)


def test_jsq_qbd_against_full_chain_and_mm1():
    """The QBD solver against the full truncated CTMC (c = 3) and against M/M/1 (c = 1).

    Two independent constructions of the same chain (cap 40 a queue: truncated mass < 1e-9; spread
    14: mass < 1e-9) agree to 1e-7; `jsq_qbd`'s error estimate is honest (true error below twice
    the estimate, the estimate below its 2e-3 target). With one server JSQ is M/M/1.
    """
    from queueing_theory import jsq_exact, jsq_qbd_spread

    assert jsq_qbd(0.8, 1.0, 1).wq == pytest.approx(0.8 / 0.2, rel=1e-9)
    for rho in (0.5, 0.8):
        full = jsq_exact(3 * rho, 1.0, 3, cap=40)
        assert full.truncated_mass < 1e-9
        wide = jsq_qbd_spread(3 * rho, 1.0, 3, 14)
        assert wide.truncated_mass < 1e-9
        assert wide.wq == pytest.approx(full.wq, rel=1e-7)
        assert wide.p_wait == pytest.approx(full.p_wait, rel=1e-7)
        auto = jsq_qbd(3 * rho, 1.0, 3)
        assert abs(auto.wq - full.wq) <= 2 * auto.error <= 2 * 2e-3 * auto.wq


def test_formulas_known_values():
    """Hand-checkable values: M/M/1 Wq = rho / (mu - lambda); Erlang C(3, 2.4) = 0.6472 so
    Wq = 0.6472 / 0.6 = 1.0787; Erlang B(3, 2.4) = 0.2684; M/D/1 Wq is half of M/M/1's;
    Allen-Cunneen reduces to Erlang C at cs^2 = 1 and to P-K for one server."""
    from queueing_theory import allen_cunneen_wq, erlang_b, md1_wq

    assert mmc_wq(0.8, 1.0, 1) == pytest.approx(4.0, rel=1e-12)
    assert mmc_wq(2.4, 1.0, 3) == pytest.approx(1.0786516853932584, rel=1e-9)
    assert erlang_b(3, 2.4) == pytest.approx(2.4**3 / 6 / (1 + 2.4 + 2.4**2 / 2 + 2.4**3 / 6))
    assert md1_wq(0.8, 1.0) == pytest.approx(mmc_wq(0.8, 1.0, 1) / 2, rel=1e-12)
    assert allen_cunneen_wq(2.4, 1.0, 3, 1.0) == pytest.approx(mmc_wq(2.4, 1.0, 3), rel=1e-12)
    assert allen_cunneen_wq(0.8, 1.0, 1, 0.3) == pytest.approx(pk_wq(0.8, 1.0, 1.3), rel=1e-12)
    bm = batch_means(np.arange(100.0), batches=25, level=0.99)
    assert bm.mean == pytest.approx(49.5) and bm.batches == 25


# ---- the table for docs/validation.md ---------------------------------------------------
def markdown_table(rows: list[Row]) -> str:
    head = ("| case | router | load | requests | service cs^2 (exact / sample) | theory "
            "| Wq theory (s) | Wq simulated (s), 99% CI | rel. error | inside CI "
            "| M/M/c, same E[S] (s) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for w in rows:
        lines.append(
            f"| {w.case.name} | {w.case.router if w.case.replicas > 1 else '-'} | {w.case.load} "
            f"| {w.measured:,} | {w.cs2:.4f} / {w.sim_cs2:.4f} | {w.theory_name} | {w.theory:.4f} "
            f"| {w.ci.mean:.4f} +/- {w.ci.half_width:.4f} | {w.rel_err:+.2%} "
            f"| {'yes' if w.inside else 'NO'} | {w.erlang_c:.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    cases = CASES + (CENTRAL_CASES if router_available("central") else [])
    rows = []
    for case in cases:
        rows.append(run_case(case))
        print(f"{case.id}: {rows[-1].wall_s:.1f} s", file=sys.stderr)
    print(markdown_table(rows))
