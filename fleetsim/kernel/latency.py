"""Roofline latency and memory model of one replica (one model on `tp` chips of one kind).

time = max(FLOPs / (peak x MFU(tokens) x throttle), bytes / (HBM bandwidth x MBU))
       + tensor-parallel all-reduces + fixed overhead
Equations and sources: docs/kernel.md. Three entry points share one formula:
`iteration_time_s` (numpy arrays), `step_time_s` (one iteration, plain floats, microseconds) and
`decode_run` (a fixed decoding batch over many steps, closed form, O(1)).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from fleetsim.catalog.schema import BYTES_PER_VALUE, PEAK_FIELD, PRECISIONS, ChipSpec, ModelSpec
from fleetsim.errors import CapacityError, ScenarioError

ACT_BYTES = 2.0  # activations travel in bf16 in the all-reduces
MIN_KV_TOKENS = 1024  # a replica that cannot cache this many tokens is refused as useless


class ReplicaKernel:
    """Latency and KV-cache capacity of one replica; all coefficients precomputed here."""

    def __init__(
        self,
        chip: ChipSpec,
        model: ModelSpec,
        tp: int,
        precision: str = "bf16",
        *,
        kv_precision: str = "bf16",
    ) -> None:
        for name, val in (("precision", precision), ("kv_precision", kv_precision)):
            if val not in PRECISIONS:
                raise ScenarioError(f"unknown {name} '{val}'; allowed: {', '.join(PRECISIONS)}", field=name)
        if isinstance(tp, bool) or not isinstance(tp, (int, np.integer)) or tp < 1:
            raise ScenarioError(f"tp must be a whole number >= 1, got {tp!r}", field="tp")
        self.chip, self.model, self.tp = chip, model, int(tp)
        self.precision, self.kv_precision = precision, kv_precision
        self.assumptions: list[str] = []
        eff = chip.efficiency

        # ---- memory model ----
        bpp = BYTES_PER_VALUE[precision]
        self.weight_bytes = model.total_params * bpp
        if model.is_mla:
            kv_copies = 1.0  # data-parallel attention: each sequence's latent lives on one rank
        else:
            kv_copies = max(1.0, self.tp / model.num_kv_heads)  # KV heads replicated past tp > kv
        self.kv_bytes_per_token = model.kv_values_per_token() * BYTES_PER_VALUE[kv_precision] * kv_copies
        usable = chip.hbm_gb * 1e9 * self.tp * (1.0 - eff.reserve_hbm_fraction)
        if self.weight_bytes > usable:
            raise CapacityError(
                f"{model.name} weights need {self.weight_bytes / 1e9:.1f} GB in {precision} but "
                f"{self.tp} x {chip.name} give {usable / 1e9:.1f} GB after the "
                f"{eff.reserve_hbm_fraction:.0%} activation reserve; raise tp to at least "
                f"{math.ceil(self.weight_bytes / (chip.hbm_gb * 1e9 * (1 - eff.reserve_hbm_fraction))) if chip.hbm_gb else 'n/a (no device memory)'} "
                f"or use a smaller precision",
                field="tp",
            )
        self.kv_capacity_tokens = int((usable - self.weight_bytes) // self.kv_bytes_per_token)
        if self.kv_capacity_tokens < MIN_KV_TOKENS:
            raise CapacityError(
                f"{model.name} fits on {self.tp} x {chip.name} in {precision} but leaves room for "
                f"only {self.kv_capacity_tokens} KV-cache tokens (< {MIN_KV_TOKENS}); raise tp",
                field="tp",
            )

        # ---- compute peak, with an explicit fallback when the chip lacks the precision ----
        peak = chip.peak_tflops(precision)
        if peak is None:
            fallback = "bf16" if precision != "fp4" else ("fp8" if chip.fp8_tflops else "bf16")
            peak = chip.peak_tflops(fallback)
            if peak is None:
                raise ScenarioError(
                    f"{chip.name} has no {precision} or {fallback} peak in the catalog; give "
                    f"catalog.chips.<name>.{PEAK_FIELD[precision]} or choose another precision",
                    field="precision",
                )
            self.assumptions.append(
                f"{chip.name} publishes no {precision} peak: weights stored in {precision} "
                f"({bpp:g} B/param) but matmuls run at the {fallback} peak (weight-only quantisation)"
            )
        self.peak_flops = peak * 1e12 * self.tp
        self.bandwidth_bps = chip.hbm_tbps * 1e12 * self.tp * eff.hbm_efficiency

        # ---- per-iteration coefficients ----
        self._f_tok = 2.0 * model.matmul_params_per_token  # FLOPs per processed token
        self._f_head = 2.0 * model.embedding_params  # LM head, per sampled (decode) token
        self._a_pf = model.attn_flops_per_pair("prefill")
        self._a_dec = model.attn_flops_per_pair("decode")
        dense_read = model.dense_params - (0 if model.tie_word_embeddings else model.embedding_params)
        self._w_dense = dense_read * bpp  # read every iteration (input embedding: lookups only)
        self._w_expert_layer = model.moe_layers * model.expert_params * bpp  # one expert, all layers
        self._n_exp = float(model.num_experts)
        self._q_miss = 1.0 - model.experts_per_token / model.num_experts if model.is_moe else 0.0
        self._inv_peak = 1.0 / self.peak_flops
        self._inv_bw = 1.0 / self.bandwidth_bps
        if self.tp > 1:
            n_coll = 2.0 * model.num_layers
            link_bps = chip.interconnect_gbps * 1e9 / 2.0 * eff.interconnect_efficiency
            self._comm0 = n_coll * eff.collective_latency_s
            self._comm1 = n_coll * 2.0 * (self.tp - 1) / self.tp * model.hidden_size * ACT_BYTES / link_bps
        else:
            self._comm0 = self._comm1 = 0.0
        self._overhead = eff.overhead_s
        table = sorted(eff.mfu.items())
        self._mfu_x = [math.log(k) for k, _ in table]
        self._mfu_y = [v for _, v in table]
        self._mfu_xa = np.array(self._mfu_x)
        self._mfu_ya = np.array(self._mfu_y)

    def __repr__(self) -> str:
        return (
            f"ReplicaKernel({self.chip.name!r}, {self.model.name!r}, tp={self.tp}, "
            f"precision={self.precision!r}, kv_capacity_tokens={self.kv_capacity_tokens})"
        )

    # ---- memory ----
    def max_batch_for(self, context_tokens_per_seq):
        """Largest number of sequences whose KV cache fits, each holding this many tokens."""
        if np.ndim(context_tokens_per_seq) == 0:
            return int(self.kv_capacity_tokens // max(float(context_tokens_per_seq), 1.0))
        ctx = np.maximum(np.asarray(context_tokens_per_seq, dtype=float), 1.0)
        return (self.kv_capacity_tokens // ctx).astype(np.int64)

    # ---- scalar pieces ----
    def _mfu(self, tokens: float) -> float:
        xs, ys = self._mfu_x, self._mfu_y
        x = math.log(tokens) if tokens > 1.0 else 0.0
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        j = bisect_right(xs, x) - 1
        return ys[j] + (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]) * (x - xs[j])

    def _weights_read(self, tokens: float) -> float:
        if self._n_exp == 0.0:
            return self._w_dense
        return self._w_dense + self._w_expert_layer * self._n_exp * (1.0 - self._q_miss**tokens)

    def step_time_s(
        self,
        prefill_tokens: float,
        decode_seqs: float,
        decode_context_tokens: float,
        prefill_attended_tokens: float | None = None,
        throttle: float = 1.0,
    ) -> float:
        """One iteration in plain floats: the serving layer's per-batch-change call."""
        tokens = prefill_tokens + decode_seqs
        if tokens <= 0:
            return 0.0
        if prefill_attended_tokens is None:
            prefill_attended_tokens = 0.5 * prefill_tokens * prefill_tokens
        flops = (
            self._f_tok * tokens
            + self._f_head * decode_seqs
            + self._a_pf * prefill_attended_tokens
            + self._a_dec * decode_context_tokens
        )
        compute = flops * self._inv_peak / (self._mfu(tokens) * throttle)
        memory = (
            self._weights_read(tokens) + self.kv_bytes_per_token * (decode_context_tokens + tokens)
        ) * self._inv_bw
        return max(compute, memory) + self._comm0 + self._comm1 * tokens + self._overhead

    # ---- vectorised ----
    def iteration_time_s(
        self,
        prefill_tokens,
        decode_seqs,
        decode_context_tokens,
        prefill_attended_tokens=None,
        throttle=1.0,
    ) -> np.ndarray:
        """Iteration times for arrays of iterations (numpy broadcasting, no Python loop)."""
        if (
            np.ndim(prefill_tokens) == 0
            and np.ndim(decode_seqs) == 0
            and np.ndim(decode_context_tokens) == 0
            and np.ndim(prefill_attended_tokens) == 0
            and np.ndim(throttle) == 0
        ):
            return np.asarray(
                self.step_time_s(
                    float(prefill_tokens),
                    float(decode_seqs),
                    float(decode_context_tokens),
                    None if prefill_attended_tokens is None else float(prefill_attended_tokens),
                    float(throttle),
                )
            )
        p = np.asarray(prefill_tokens, dtype=float)
        d = np.asarray(decode_seqs, dtype=float)
        c = np.asarray(decode_context_tokens, dtype=float)
        a = 0.5 * p * p if prefill_attended_tokens is None else np.asarray(prefill_attended_tokens, dtype=float)
        tokens = p + d
        flops = self._f_tok * tokens
        flops += self._f_head * d
        flops += self._a_pf * a
        flops += self._a_dec * c
        mfu = np.interp(np.log(np.maximum(tokens, 1.0)), self._mfu_xa, self._mfu_ya)
        if np.ndim(throttle) == 0:
            mfu *= float(throttle)
        else:
            mfu = mfu * np.asarray(throttle, dtype=float)
        compute = flops
        compute *= self._inv_peak
        compute /= mfu
        memory = c + tokens
        memory *= self.kv_bytes_per_token
        if self._n_exp == 0.0:
            memory += self._w_dense
        else:
            memory += self._w_dense + self._w_expert_layer * self._n_exp * (
                1.0 - np.power(self._q_miss, tokens)
            )
        memory *= self._inv_bw
        out = np.maximum(compute, memory)
        out += self._comm1 * tokens
        out += self._comm0 + self._overhead
        return np.where(tokens > 0, out, 0.0)

    # ---- event skipping ----
    def decode_run(self, n_seqs: int, context_tokens: float, throttle: float = 1.0) -> "DecodeRun":
        """A fixed batch of n_seqs decoding; summed context starts at context_tokens and grows
        by n_seqs per step. Step j costs max(a1 + b1 j, a2 + b2 j) + c."""
        n = float(n_seqs)
        if n < 1:
            raise ValueError("decode_run needs n_seqs >= 1")
        scale = self._inv_peak / (self._mfu(n) * throttle)
        a1 = (self._f_tok * n + self._f_head * n + self._a_dec * context_tokens) * scale
        b1 = self._a_dec * n * scale
        a2 = (self._weights_read(n) + self.kv_bytes_per_token * (context_tokens + n)) * self._inv_bw
        b2 = self.kv_bytes_per_token * n * self._inv_bw
        c = self._comm0 + self._comm1 * n + self._overhead
        return DecodeRun(a1, b1, a2, b2, c)


def _arith(a: float, b: float, m0: int, m1: int) -> float:
    """sum_{j=m0}^{m1-1} (a + b j)."""
    if m1 <= m0:
        return 0.0
    return (m1 - m0) * a + b * 0.5 * (m1 * (m1 - 1) - m0 * (m0 - 1))


@dataclass(frozen=True)
class DecodeRun:
    """Step j of a fixed decoding batch takes max(a1 + b1 j, a2 + b2 j) + c seconds
    (compute line, memory line, comm + overhead). Sums and inverses in closed form."""

    a1: float
    b1: float
    a2: float
    b2: float
    c: float

    def step_s(self, j: int) -> float:
        return max(self.a1 + self.b1 * j, self.a2 + self.b2 * j) + self.c

    def _split(self) -> tuple[int, bool]:
        """(s, compute_first): the dominant line changes at step s (the lines cross once)."""
        da, db = self.a1 - self.a2, self.b1 - self.b2
        if db == 0.0:
            return 0, da < 0.0  # one line dominates throughout: memory if compute is lower
        root = -da / db  # compute - memory = da + db j changes sign here
        if db > 0:  # compute wins from ceil(root) on
            s = 0 if root <= 0 else (math.ceil(root) if root < 4e18 else 2**62)
            return s, False
        s = 0 if root < 0 else (math.floor(root) + 1 if root < 4e18 else 2**62)
        return s, True

    def time_for_steps(self, k: int) -> float:
        """Total time of steps 0..k-1."""
        if k <= 0:
            return 0.0
        s, compute_first = self._split()
        first = (self.a1, self.b1) if compute_first else (self.a2, self.b2)
        second = (self.a2, self.b2) if compute_first else (self.a1, self.b1)
        m = min(k, s)
        return _arith(*first, 0, m) + _arith(*second, m, k) + self.c * k

    def steps_within(self, t_s: float) -> int:
        """Largest k with time_for_steps(k) <= t_s (exact against time_for_steps)."""
        if t_s < self.step_s(0):
            return 0
        if not math.isfinite(t_s):
            return 2**62  # unbounded: the caller's other limits (completions, KV) decide
        s, compute_first = self._split()
        first = (self.a1, self.b1) if compute_first else (self.a2, self.b2)
        second = (self.a2, self.b2) if compute_first else (self.a1, self.b1)
        t_split = self.time_for_steps(s) if s > 0 else 0.0
        if s > 0 and t_s < t_split:
            k = _solve(first[0] + self.c, first[1], 0, t_s)
        else:
            k = s + _solve(second[0] + self.c + second[1] * s, second[1], 0, t_s - t_split)
        # guard against rounding: settle on the exact integer (at most a step or two)
        while k > 0 and self.time_for_steps(k) > t_s:
            k -= 1
        while k < 2**62 and self.time_for_steps(k + 1) <= t_s:
            k += 1
        return k


def _solve(a: float, b: float, _m0: int, r: float) -> int:
    """Largest m with a m + b m (m - 1) / 2 <= r, for a > 0, b >= 0 (stable root form)."""
    if r <= 0:
        return 0
    h = a - 0.5 * b
    disc = h * h + 2.0 * b * r
    denom = h + math.sqrt(disc)
    if denom <= 0:
        return 0
    m = 2.0 * r / denom
    if m > 2**62:
        return 2**62
    return max(0, int(math.floor(m)))
