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

import numpy as np

from fleetsim.catalog.schema import BYTES_PER_VALUE, PEAK_FIELD, PRECISIONS, ChipSpec, ModelSpec
from fleetsim.errors import CapacityError, ScenarioError

ACT_BYTES = 2.0  # activations travel in bf16 in the all-reduces
MIN_KV_TOKENS = 1024  # a replica that cannot cache this many tokens is refused as useless


def allowed_tp(model: ModelSpec) -> list[int] | None:
    """Tensor-parallel sizes that shard the model's heads evenly, as vLLM requires: attention
    heads % tp == 0, and KV heads % tp == 0 or tp % KV heads == 0 (KV heads replicated).
    MLA has one shared latent instead of KV heads: heads % tp == 0 only. None = any tp: an MLA
    MoE model (DeepSeek) is served with data-parallel attention and expert parallelism, where
    each of the tp chips runs every head for its own sequences (SGLang's 72-GPU EP72 decode,
    CloudMatrix-Infer's 160-NPU EP320 decode), so head counts do not limit the chip count."""
    if model.is_mla and model.is_moe:
        return None
    heads, kv = model.num_heads, model.num_kv_heads
    return [
        t for t in range(1, heads + 1)
        if heads % t == 0 and (model.is_mla or kv % t == 0 or t % kv == 0)
    ]


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
        allowed = allowed_tp(model)
        if allowed is not None and int(tp) not in allowed:
            rule = (
                f"its {model.num_heads} attention heads must split evenly (heads % tp == 0)"
                if model.is_mla else
                f"its {model.num_heads} attention heads must split evenly (heads % tp == 0) and "
                f"its {model.num_kv_heads} KV heads must split or be replicated evenly "
                "(kv_heads % tp == 0 or tp % kv_heads == 0)"
            )
            raise CapacityError(
                f"tp={int(tp)} does not shard {model.name}: {rule}, as serving engines (vLLM) "
                f"require; allowed tp: {', '.join(map(str, allowed))}",
                field="tp",
            )
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
            per_chip = chip.hbm_gb * 1e9 * (1.0 - eff.reserve_hbm_fraction)
            fix = (
                f"raise tp to at least {math.ceil(self.weight_bytes / per_chip)} or use a "
                "smaller precision" if per_chip > 0 else "this chip has no device memory for weights"
            )
            raise CapacityError(
                f"{model.name} weights need {self.weight_bytes / 1e9:.1f} GB in {precision} but "
                f"{self.tp} x {chip.name} give {usable / 1e9:.1f} GB after the "
                f"{eff.reserve_hbm_fraction:.0%} activation reserve; {fix}",
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
        # Attention (QK^T, AV over the cache) multiplies activations by cached K/V, not by the
        # weights: it runs at the fp8 peak with an fp8 cache (FP8 attention kernels), else bf16.
        attn_peak = chip.fp8_tflops if kv_precision == "fp8" and chip.fp8_tflops else chip.bf16_tflops
        self.attention_peak_flops = (attn_peak or peak) * 1e12 * self.tp
        self.bandwidth_bps = chip.hbm_tbps * 1e12 * self.tp * eff.hbm_efficiency
        # The schema refuses these; a ChipSpec built without validation must not divide by zero.
        for what, val in (
            ("compute peak", self.peak_flops), ("hbm_tbps", self.bandwidth_bps),
            ("interconnect_gbps", chip.interconnect_gbps), ("scaleout_gbps", chip.scaleout_gbps),
        ):
            if not (val > 0 and math.isfinite(val)):
                raise ScenarioError(
                    f"{chip.name}: {what} must be a finite number > 0 for the kernel, got {val!r}",
                    field=what,
                )

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
        # attention FLOPs are charged at the attention peak by scaling their coefficients
        attn_scale = self.peak_flops / self.attention_peak_flops
        self._a_pf *= attn_scale
        self._a_dec *= attn_scale
        self._inv_bw = 1.0 / self.bandwidth_bps
        # Beyond the scale-up domain (an 8-GPU NVLink board, a CloudMatrix supernode) the
        # collectives cross the scale-out network, whose per-chip NIC is far slower.
        self.scaled_out = self.tp > chip.scaleup_domain_chips
        link_gbps = chip.scaleout_gbps if self.scaled_out else chip.interconnect_gbps
        link_bps = link_gbps * 1e9 / 2.0 * eff.interconnect_efficiency
        self.parallelism = "tp-allreduce"
        self.comm_overlapped = False
        self._comm1_p = None
        if self.tp == 1:
            self._comm0 = self._comm1 = 0.0
        elif model.is_mla and model.is_moe:
            # DeepSeek-style serving: data-parallel attention + expert parallelism. Each MoE layer
            # has two all-to-alls: dispatch in fp8 (1 B/value) and combine in bf16 (2 B/value)
            # (DeepSeek-V3 report; DeepEP). A chip sends its tokens/tp hidden vectors to k
            # experts, (tp-1)/tp of them elsewhere; across the scale-out network node-limited
            # routing sends each token to at most `expert_groups_per_token` nodes.
            self.parallelism = "dp-attention+ep-alltoall"
            self.comm_overlapped = True  # two-micro-batch overlap hides all-to-alls under compute
            # Decode tokens use the low-latency kernels (direct to all k experts); prefill tokens
            # use the normal kernels, whose node-limited routing crosses the scale-out network
            # at most `expert_groups_per_token` times per token (DeepEP docs/legacy.md).
            n_coll = 2.0 * model.moe_layers
            fan_d = fan_p = model.experts_per_token
            if self.scaled_out and model.expert_groups_per_token:
                fan_p = min(fan_p, model.expert_groups_per_token)
            unit = model.hidden_size * (1.0 + ACT_BYTES) / 2.0  # mean bytes a value, per collective
            share = n_coll * (self.tp - 1) / (self.tp * self.tp) / link_bps
            self._comm0 = n_coll * eff.collective_latency_s
            self._comm1 = fan_d * unit * share
            self._comm1_p = fan_p * unit * share
        else:
            # Megatron tensor parallelism: two ring all-reduces of the activations per layer.
            n_coll = 2.0 * model.num_layers
            self._comm0 = n_coll * eff.collective_latency_s
            self._comm1 = n_coll * 2.0 * (self.tp - 1) / self.tp * model.hidden_size * ACT_BYTES / link_bps
        if self._comm1_p is None:
            self._comm1_p = self._comm1  # per prefill token; _comm1 is per decode token
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
        comm = self._comm0 + self._comm1 * decode_seqs + self._comm1_p * prefill_tokens
        if self.comm_overlapped:
            return max(compute, memory, comm) + self._overhead
        return max(compute, memory) + comm + self._overhead

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
        comm = self._comm1 * d + self._comm1_p * p
        comm += self._comm0
        if self.comm_overlapped:
            np.maximum(out, comm, out=out)
        else:
            out += comm
        out += self._overhead
        return np.where(tokens > 0, out, 0.0)

    # ---- event skipping ----
    def decode_run(self, n_seqs: int, context_tokens: float, throttle: float = 1.0) -> "DecodeRun":
        """A fixed batch of n_seqs decoding; summed context starts at context_tokens and grows
        by n_seqs per step. Step j costs max(a1 + b1 j, a2 + b2 j [, comm]) + c."""
        n = float(n_seqs)
        if n < 1:
            raise ValueError("decode_run needs n_seqs >= 1")
        scale = self._inv_peak / (self._mfu(n) * throttle)
        a1 = (self._f_tok * n + self._f_head * n + self._a_dec * context_tokens) * scale
        b1 = self._a_dec * n * scale
        a2 = (self._weights_read(n) + self.kv_bytes_per_token * (context_tokens + n)) * self._inv_bw
        b2 = self.kv_bytes_per_token * n * self._inv_bw
        comm = self._comm0 + self._comm1 * n
        if self.comm_overlapped:
            return DecodeRun(((a1, b1), (a2, b2), (comm, 0.0)), self._overhead)
        return DecodeRun(((a1, b1), (a2, b2)), comm + self._overhead)


_BIG = 2**62  # "never" in steps


def _arith(a: float, b: float, m0: int, m1: int) -> float:
    """sum_{j=m0}^{m1-1} (a + b j)."""
    if m1 <= m0:
        return 0.0
    return (m1 - m0) * a + b * 0.5 * (m1 * (m1 - 1) - m0 * (m0 - 1))


def _solve(a: float, b: float, r: float) -> int:
    """Largest m with a m + b m (m - 1) / 2 <= r, for a > 0, b >= 0 (stable root form)."""
    if r <= 0:
        return 0
    h = a - 0.5 * b
    denom = h + math.sqrt(h * h + 2.0 * b * r)
    if denom <= 0:
        return 0
    m = 2.0 * r / denom
    return _BIG if m >= _BIG else int(m)


def _envelope(lines) -> tuple[tuple[int, float, float], ...]:
    """Upper envelope over integer steps j >= 0 of lines a + b j, as (first_step, a, b) pieces.
    The envelope of lines is convex, so pieces come in increasing slope (at most len(lines))."""
    cur = max(lines, key=lambda ab: (ab[0], ab[1]))
    pieces = [(0, cur[0], cur[1])]
    x = 0.0
    while True:
        best = None
        for a, b in lines:
            if b > cur[1]:
                cross = (cur[0] - a) / (b - cur[1])
                if cross >= x and (best is None or cross < best[0] or (cross == best[0] and b > best[2])):
                    best = (cross, a, b)
        if best is None:
            break
        x, cur = best[0], (best[1], best[2])
        start = _BIG if x >= _BIG else max(0, math.ceil(x))
        if start >= _BIG:
            break
        if start == pieces[-1][0]:
            pieces[-1] = (start, cur[0], cur[1])
        else:
            pieces.append((start, cur[0], cur[1]))
    return tuple(pieces)


class DecodeRun:
    """Step j of a fixed decoding batch takes max over lines (a + b j) plus c: the compute line,
    the memory line and, when communication overlaps compute, a flat communication line.
    Sums and their inverse in closed form over the (at most three) pieces of the envelope."""

    __slots__ = ("lines", "c", "_pieces")

    def __init__(self, lines, c: float) -> None:
        self.lines = tuple((float(a), float(b)) for a, b in lines)
        self.c = float(c)
        self._pieces = _envelope(self.lines)

    def __repr__(self) -> str:
        return f"DecodeRun(lines={self.lines}, c={self.c})"

    def step_s(self, j: int) -> float:
        return max(a + b * j for a, b in self.lines) + self.c

    def time_for_steps(self, k: int) -> float:
        """Total time of steps 0..k-1."""
        if k <= 0:
            return 0.0
        total = self.c * k
        p = self._pieces
        for i, (start, a, b) in enumerate(p):
            if start >= k:
                break
            end = p[i + 1][0] if i + 1 < len(p) else k
            total += _arith(a, b, start, min(end, k))
        return total

    def steps_within(self, t_s: float) -> int:
        """Largest k with time_for_steps(k) <= t_s (exact against time_for_steps)."""
        if t_s < self.step_s(0):
            return 0
        if not math.isfinite(t_s):
            return _BIG  # unbounded: the caller's other limits (completions, KV) decide
        p = self._pieces
        done = 0.0
        k = 0
        for i, (start, a, b) in enumerate(p):
            end = p[i + 1][0] if i + 1 < len(p) else None
            seg = None if end is None else _arith(a, b, start, end) + self.c * (end - start)
            if seg is None or done + seg > t_s:
                k = start + _solve(a + self.c + b * start, b, t_s - done)
                break
            done += seg
        # settle rounding on the exact integer (a step or two at most)
        while k > 0 and self.time_for_steps(k) > t_s:
            k -= 1
        while k < _BIG and self.time_for_steps(k + 1) <= t_s:
            k += 1
        return k
