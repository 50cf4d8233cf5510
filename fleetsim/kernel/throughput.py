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


def server_throughput(
    kernel: ReplicaKernel,
    prompt_tokens: float,
    output_tokens: float,
    tpot_s: float | None,
    max_batch: int | None = None,
    throttle: float = 1.0,
) -> SteadyState:
    """Best steady-state output rate whose iteration time (TPOT) stays within tpot_s."""
    cap = kv_limited_batch(kernel, prompt_tokens, output_tokens)
    if max_batch is not None:
        cap = min(cap, int(max_batch))
    batch = np.arange(1, cap + 1, dtype=float)
    step, rate = _steady(kernel, batch, prompt_tokens, output_tokens, throttle)
    if tpot_s is not None:
        rate = np.where(step <= tpot_s, rate, -np.inf)
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
