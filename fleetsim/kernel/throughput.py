"""Steady-state throughput of one replica on top of the latency kernel.

Used to compare the kernel with published benchmark figures (docs/validation.md), which
report throughput rather than iteration times. Continuous batching in steady state: every
iteration decodes `batch` sequences one token each and, to keep the batch full, prefills the
prompts of batch / output_tokens new requests (mixed / chunked prefill). Sequences are spread
evenly over their lifetimes, so the mean context per decoding sequence is prompt + output / 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetsim.kernel.latency import ReplicaKernel


@dataclass(frozen=True)
class SteadyState:
    batch: int
    step_s: float  # one iteration = the time between two tokens of one sequence (TPOT)
    output_tokens_per_s: float  # per replica
    prefill_tokens_per_s: float  # per replica


def _steady(kernel: ReplicaKernel, batch: np.ndarray, prompt: float, output: float, throttle: float):
    new_per_step = batch / output
    p = new_per_step * prompt
    a = new_per_step * 0.5 * prompt * prompt  # each new prompt attends to itself
    c = batch * (prompt + 0.5 * output)
    step = kernel.iteration_time_s(p, batch, c, a, throttle)
    return step, batch / step


def steady_state(
    kernel: ReplicaKernel, batch: int, prompt: float, output: float, throttle: float = 1.0,
    *, decode_only: bool = False,
) -> SteadyState:
    """Exactly `batch` sequences in flight (a fixed-concurrency benchmark). decode_only: a
    disaggregated decode instance (prompts are prefilled elsewhere)."""
    b = np.array([float(batch)])
    if decode_only:
        step = kernel.iteration_time_s(0.0, b, b * (prompt + 0.5 * output), None, throttle)
    else:
        step, _ = _steady(kernel, b, prompt, output, throttle)
    s = float(step[0])
    return SteadyState(int(batch), s, float(batch) / s, 0.0 if decode_only else batch / s * prompt / output)


def kv_limited_batch(kernel: ReplicaKernel, prompt: float, output: float) -> int:
    """Largest steady-state batch whose mean KV footprint (prompt + output/2 a sequence) fits."""
    return max(1, int(kernel.kv_capacity_tokens // (prompt + 0.5 * output)))


def offline_throughput(
    kernel: ReplicaKernel,
    prompt_tokens: float,
    output_tokens: float,
    max_batch: int | None = None,
    throttle: float = 1.0,
) -> SteadyState:
    """Best steady-state output rate over batch sizes up to the KV limit (and engine cap)."""
    return server_throughput(kernel, prompt_tokens, output_tokens, None, max_batch, throttle)


def md1_decay(rho):
    """x = theta * S of the M/D/1 waiting-time tail P(W > t) ~ rho exp(-theta t): the positive root
    of rho (e^x - 1) = x (Cramer-Lundberg for Poisson arrivals and one fixed service time S), for
    utilisations 0 < rho < 1. Newton from x0 = 2 ln(1/rho) + 2, above the root where f is convex and
    increasing, so the iterates fall monotonically onto it (no overflow: x0 <= 43 at rho 1e-9)."""
    r = np.clip(np.asarray(rho, dtype=float), 1e-9, 1.0 - 1e-6)  # rho >= 1: no steady state (ttft_p99_s: inf)
    x = 2.0 * np.log(1.0 / r) + 2.0
    for _ in range(40):
        ex = np.exp(x)
        x = x - (r * (ex - 1.0) - x) / (r * ex - 1.0)
    return np.maximum(x, 1e-9)


def ttft_p99_s(kernel: ReplicaKernel, batch: np.ndarray, step: np.ndarray, prompt: float, output: float,
               throttle: float = 1.0) -> np.ndarray:
    """p99 TTFT of the steady state at each batch under Poisson arrivals (MLPerf LoadGen's server
    and interactive scenarios): prompts wait in arrival order for the prefill, one at a time, each
    taking S = the marginal time one more prompt adds to the steady mixed step; utilisation
    rho = lambda S with lambda = batch / (output x step) requests/s. M/D/1 (every prompt the mean
    length, as the steady state assumes): p99 = S + ln(100 rho) / theta (S alone when rho <= 1%),
    within 6% of a simulated M/D/1 at rho 0.5 and 0.8 (tests/test_kernel_ttft.py); inf at rho >= 1."""
    c = batch * (prompt + 0.5 * output)
    new = batch / output
    with_one = kernel.iteration_time_s((new + 1.0) * prompt, batch, c, (new + 1.0) * 0.5 * prompt * prompt, throttle)
    s = np.maximum(with_one - step, 1e-12)
    rho = batch / (output * step) * s
    x = md1_decay(rho)
    p99 = s + s * np.log(np.maximum(100.0 * rho, 1.0)) / x
    return np.where(rho < 1.0, p99, np.inf)


def server_throughput(
    kernel: ReplicaKernel,
    prompt_tokens: float,
    output_tokens: float,
    tpot_s: float | None,
    max_batch: int | None = None,
    throttle: float = 1.0,
    ttft_p99_limit_s: float | None = None,
) -> SteadyState:
    """Best steady-state output rate whose iteration time (TPOT) stays within tpot_s and, given
    ttft_p99_limit_s (MLPerf's p99 TTFT bound), whose Poisson-load p99 TTFT (ttft_p99_s) stays within it."""
    cap = kv_limited_batch(kernel, prompt_tokens, output_tokens)
    if max_batch is not None:
        cap = min(cap, int(max_batch))
    batch = np.arange(1, cap + 1, dtype=float)
    step, rate = _steady(kernel, batch, prompt_tokens, output_tokens, throttle)
    if tpot_s is not None:
        rate = np.where(step <= tpot_s, rate, -np.inf)
    if ttft_p99_limit_s is not None:
        p99 = ttft_p99_s(kernel, batch, step, prompt_tokens, output_tokens, throttle)
        rate = np.where(p99 <= ttft_p99_limit_s, rate, -np.inf)
    i = int(np.argmax(rate))
    if not np.isfinite(rate[i]):
        i = 0  # even batch 1 misses the TPOT target: report it, the error will show
    return SteadyState(
        batch=int(batch[i]),
        step_s=float(step[i]),
        output_tokens_per_s=float(batch[i] / step[i]),
        prefill_tokens_per_s=float(batch[i] / step[i] * prompt_tokens / output_tokens),
    )


def prefill_throughput(
    kernel: ReplicaKernel, prompt_tokens: float, prompts_per_iteration: int, throttle: float = 1.0
) -> float:
    """Prompt tokens per second of a prefill-only replica (disaggregated prefill instance)."""
    p = prompt_tokens * prompts_per_iteration
    a = prompts_per_iteration * 0.5 * prompt_tokens * prompt_tokens
    return p / kernel.step_time_s(p, 0, 0, a, throttle)


def decode_throughput(
    kernel: ReplicaKernel,
    context_tokens: float,
    tpot_s: float | None = None,
    max_batch: int | None = None,
    throttle: float = 1.0,
) -> SteadyState:
    """Output rate of a decode-only replica (disaggregated decode instance): every sequence holds
    `context_tokens`; the best batch whose step time stays within tpot_s."""
    cap = max(1, int(kernel.kv_capacity_tokens // max(context_tokens, 1.0)))
    if max_batch is not None:
        cap = min(cap, int(max_batch))
    batch = np.arange(1, cap + 1, dtype=float)
    step = kernel.iteration_time_s(0.0, batch, batch * context_tokens, None, throttle)
    rate = batch / step
    if tpot_s is not None:
        rate = np.where(step <= tpot_s, rate, -np.inf)
    i = int(np.argmax(rate))
    if not np.isfinite(rate[i]):
        i = 0
    return SteadyState(int(batch[i]), float(step[i]), float(batch[i] / step[i]), 0.0)


# vllm bench's ShareGPT sampler keeps a conversation only if prompt <= 1024 and prompt + output <=
# 2048 tokens (vllm/benchmarks/datasets.py, is_valid_sequence): the longest output a run can hold.
SHAREGPT_MAX_SEQ_TOKENS = 2048
# Tokens a step prefills at most when all prompts arrive at once: vLLM V1's and SGLang's default
# prefill chunk on 80 GB-class devices (max_num_batched_tokens / chunked_prefill_size 8192).
# An ASSUMPTION for engines that publish no such default (TensorRT-LLM, vllm-ascend, MindIE).
BURST_CHUNK_TOKENS = 8192


def burst_output_lengths(n: int, output: float, prompt: float, dataset: str,
                         max_output: float | None = None) -> np.ndarray:
    """Per-request output lengths of a finite benchmark run with mean `output`. 'fixed': random
    datasets (every request asks for the same length). 'sharegpt': the conversation lengths are
    heavy-tailed; ASSUMED exponential with the run's mean, cut at the sampler's filter
    (SHAREGPT_MAX_SEQ_TOKENS - prompt) or at the run's generation cap (max_output: the max_tokens
    a run states, e.g. AccelMark's 512), whichever is lower, and rescaled to the mean, in a fixed
    shuffled order. The cut sets the drain: the longest output decides the makespan."""
    if dataset != "sharegpt":
        return np.full(n, max(1.0, round(output)))
    q = (np.arange(n) + 0.5) / n
    top = max(2.0, SHAREGPT_MAX_SEQ_TOKENS - prompt)
    if max_output:
        top = max(2.0, min(top, float(max_output)))
    x = -np.log1p(-q)
    lengths = np.minimum(x * output, top)
    for _ in range(8):  # rescale to the published mean under the cut
        lengths = np.minimum(lengths * output / lengths.mean(), top)
    lengths = np.maximum(1.0, np.round(lengths))
    return lengths[np.random.default_rng(0).permutation(n)]


def burst_throughput(
    kernel: ReplicaKernel,
    n_requests: int,
    prompt_tokens: float,
    output_tokens: float,
    max_batch: int | None = None,
    dataset: str = "fixed",
    chunk_tokens: int = BURST_CHUNK_TOKENS,
    max_output_tokens: float | None = None,
) -> float:
    """Output tokens/s of a FINITE run: n_requests issued at once (request rate inf, as vllm bench
    serve runs them), = total output / makespan. Unlike offline_throughput (the best steady
    batch), this pays the ramp (prompts prefilled in chunks of chunk_tokens while the first
    sequences decode) and the drain: once the queue is empty the batch shrinks and the longest
    outputs finish at small batch, where a step costs nearly as much as at full batch. Step by
    step in first-come order; a request is admitted while the batch cap (KV limit for its prompt,
    and max_batch) allows; each step's time is the kernel's step_time_s."""
    lengths = burst_output_lengths(int(n_requests), output_tokens, prompt_tokens, dataset, max_output_tokens)
    prompt = max(1.0, float(prompt_tokens))
    cap_kv = float(kernel.kv_capacity_tokens)
    cap_n = int(max_batch) if max_batch else 1 << 30
    remaining = np.empty(0)  # decode tokens still to produce, per running sequence
    ctx = np.empty(0)
    nxt, pf_left, t = 0, 0.0, 0.0  # next waiting request, prompt tokens left of the one in prefill
    n = len(lengths)
    while nxt < n or pf_left > 0 or remaining.size:
        used = ctx.sum()
        if remaining.size and pf_left <= 0 and (
                nxt >= n or remaining.size + 1 > cap_n or used + prompt > cap_kv):
            # nothing can be admitted: decode-only steps until the next sequence finishes, in
            # one jump (step time is linear in context; taken at the jump's mean context)
            k = float(remaining.min())
            d = float(remaining.size)
            t += k * kernel.step_time_s(0.0, d, float(used) + d * 0.5 * (k - 1.0))
            remaining = remaining - k
            ctx = ctx + k
            keep = remaining > 0
            remaining, ctx = remaining[keep], ctx[keep]
            continue
        budget, p_tok, att, joined = float(chunk_tokens), 0.0, 0.0, []
        while budget > 0:
            if pf_left <= 0:
                if nxt >= n or remaining.size + len(joined) + 1 > cap_n or used + prompt > cap_kv:
                    break
                pf_left, nxt = prompt, nxt + 1
                used += prompt
            c = min(budget, pf_left)
            done_before = prompt - pf_left
            p_tok += c
            att += c * done_before + 0.5 * c * c
            pf_left -= c
            budget -= c
            if pf_left <= 0:
                joined.append(lengths[nxt - 1] - 1.0)  # the prefill step emits the first token
        d = float(remaining.size)
        if p_tok + d <= 0:
            break  # nothing fits (a prompt above the KV capacity): the run cannot proceed
        t += kernel.step_time_s(p_tok, d, float(ctx.sum()), att if p_tok else None)
        if remaining.size:
            remaining = remaining - 1.0
            ctx = ctx + 1.0
            keep = remaining > 0
            remaining, ctx = remaining[keep], ctx[keep]
        if joined:
            j = np.array(joined)
            keep = j > 0
            remaining = np.concatenate([remaining, j[keep]])
            ctx = np.concatenate([ctx, np.full(int(keep.sum()), prompt + 1.0)])
    return float(lengths.sum()) / t if t > 0 else 0.0
