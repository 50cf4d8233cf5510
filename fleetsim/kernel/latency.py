"""Per-operator roofline latency and memory model of one replica (one model on `tp` chips).

An iteration is a sum of phases, each its own roofline (docs/kernel.md has the equations):

    dense GEMMs    max(FLOPs / (peak x eff(rows, width)), dense weight bytes / (HBM x MBU))
  + expert GEMMs   imbalance x max(FLOPs / (peak x eff(rows per expert)), expert bytes / (HBM x MBU))
  + attention      max(attention FLOPs / (attention peak x eff), KV bytes / (HBM x MBU x eff(batch)))
  + collectives    tensor-parallel all-reduces or expert-parallel all-to-alls, hidden under the
                   compute only as far as the engine overlaps them (comm_overlap)
  + the engine's fixed per-step overhead.

Speculative decoding (MTP, EAGLE) verifies 1 + draft tokens per sequence per step and keeps
`tokens_per_step` of them: the serving layer sees one token per sequence per iteration, so an
iteration here is 1 / tokens_per_step of a verify step (same tokens-per-second, TPOT divided).

Three entry points share one formula: `iteration_time_s` (numpy arrays), `step_time_s` (one
iteration, plain floats) and `decode_run` (a fixed decoding batch over many steps, closed form).
"""

from __future__ import annotations

import math

import numpy as np

from fleetsim.catalog.loader import load_engines
from fleetsim.catalog.schema import (
    BANDS,
    BYTES_PER_VALUE,
    PEAK_FIELD,
    PLATFORM_OF_FAMILY,
    PRECISIONS,
    ChipSpec,
    EngineProfile,
    ModelSpec,
)
from fleetsim.errors import CapacityError, ScenarioError

ACT_BYTES = 2.0  # activations travel in bf16 in the all-reduces
MIN_KV_TOKENS = 1024  # a replica that cannot cache this many tokens is refused as useless
DEFAULT_ENGINE = {"cuda": "vllm", "ascend": "vllm-ascend", "other": "vllm"}  # engine: None


def default_engine(chip: ChipSpec) -> str:
    """The engine a pool gets when it names none: vLLM, or its Ascend plugin on Ascend chips."""
    return DEFAULT_ENGINE[PLATFORM_OF_FAMILY.get(chip.family, "other")]


MAX_YEARS_BACK = 3.0  # an engine release older than this before the reference is held at it


def _years(date: str) -> float:
    y, m, *d = (int(x) for x in date.split("-"))
    day = d[0] if d else 15
    if not (1 <= m <= 12 and 1 <= day <= 31 and len(d) <= 1):
        raise ValueError(date)
    return y + (m - 1) / 12.0 + (day - 1) / 365.0


def software_factor(engine: EngineProfile, release: str | None) -> float:
    """Iteration-time multiplier of an engine release against the profile's reference_date:
    (1 + speedup_per_year) ** years_older, 1 for the reference or a newer release (no
    extrapolation past the newest fitted point), held at MAX_YEARS_BACK."""
    if release is None:
        return 1.0
    try:
        released = _years(release)
    except ValueError:
        raise ScenarioError(f"engine_release must be a date YYYY-MM or YYYY-MM-DD (month 1-12), got "
                            f"{release!r}", field="engine_release") from None
    if not engine.speedup_per_year or engine.reference_date is None:
        return 1.0
    older = _years(engine.reference_date) - released
    return (1.0 + engine.speedup_per_year) ** min(max(older, 0.0), MAX_YEARS_BACK)


def split_engine(engine):
    """'vllm-ascend@0.9.1' -> ('vllm-ascend', '0.9.1'); a profile or a bare name -> (it, None)."""
    if isinstance(engine, str) and "@" in engine:
        name, _, rel = engine.partition("@")
        return name, rel
    return engine, None


def allowed_tp(model: ModelSpec, attention: str | None = None) -> list[int] | None:
    """Tensor-parallel sizes that shard the model's heads evenly, as vLLM requires: attention
    heads % tp == 0, and KV heads % tp == 0 or tp % KV heads == 0 (KV heads replicated).
    MLA has one shared latent instead of KV heads: heads % tp == 0 only. None = any tp: an MLA
    MoE model (DeepSeek) is served with data-parallel attention and expert parallelism, where
    each of the tp chips runs every head for its own sequences (SGLang's 72-GPU EP72 decode,
    CloudMatrix-Infer's 160-NPU EP320 decode), so head counts do not limit the chip count."""
    if model.is_mla and model.is_moe and attention != "tp":
        return None
    heads, kv = model.num_heads, model.num_kv_heads
    return [
        t for t in range(1, heads + 1)
        if heads % t == 0 and (model.is_mla or kv % t == 0 or t % kv == 0)
    ]


def _interp_log(table: list[tuple[float, float]]):
    xs = [math.log(k) for k, _ in table]
    ys = [v for _, v in table]
    return xs, ys, np.array(xs), np.array(ys)


def _table(xa: np.ndarray, ya: np.ndarray, scale: float) -> np.ndarray:
    """Efficiency for every whole row count 0..N (N: where the table turns flat), interpolated
    in log(rows): scalar and vector paths both read it at floor(rows), so they agree exactly."""
    n = int(math.ceil(math.exp(xa[-1])))
    rows = np.maximum(np.arange(n + 1, dtype=float), 1.0)
    return np.interp(np.log(rows), xa, ya) * scale


class ReplicaKernel:
    """Latency and KV-cache capacity of one replica; all coefficients precomputed here.

    engine: name in fleetsim/catalog/engines.yaml or an EngineProfile (None: default_engine). band: low | mid | high,
    for chips without serving measurements (catalog `measured: false`); refused on measured chips.
    speculative: (draft_tokens, tokens_per_step) or None. engine_release: YYYY-MM[-DD] of the engine
    software (None: the profile's reference_date; older is slower by its speedup_per_year)."""

    def __init__(
        self,
        chip: ChipSpec,
        model: ModelSpec,
        tp: int,
        precision: str = "bf16",
        *,
        kv_precision: str = "bf16",
        engine: str | EngineProfile | None = None,
        band: str | None = None,
        speculative: tuple[int, float] | None = None,
        engine_release: str | None = None,
        attention: str | None = None,
        expert_parallel: int | None = None,
        memory_fraction: float | None = None,
        graph_capture: bool | None = None,
        pipeline_stages: int | None = None,
    ) -> None:
        # Named steps, in the order their checks run (the first bad input is the one reported).
        self._check_scalars(precision, kv_precision, tp)
        pp, t, dp_attn, ep_degree = self._layout(model, int(tp), attention, expert_parallel, pipeline_stages)
        self.chip, self.model, self.tp = chip, model, int(tp)
        self.pipeline_stages, self.tensor_parallel = pp, t
        self.precision, self.kv_precision = precision, kv_precision
        self.assumptions: list[str] = []
        engine, pinned = split_engine(engine)
        self.engine = self._engine(engine, chip)
        engine_release = self._release(pinned, engine_release)
        self.engine_release = engine_release
        peak = self._peak(chip, precision, kv_precision)
        mfu_scale, hbm_eff, chip_overhead = self._efficiencies(chip, band)
        self._speculation(model, speculative, engine_release)
        self._memory(chip, model, precision, kv_precision, memory_fraction, dp_attn, t)
        self._peaks(chip, peak, kv_precision, hbm_eff)
        self._parallelism(dp_attn, ep_degree, t, pp)
        self._coefficients(chip, model, mfu_scale, dp_attn, ep_degree, t, pp)
        self._collectives(chip, model, ep_degree, t, pp)
        self._overheads(model, graph_capture, chip_overhead, pp)

    @staticmethod
    def _check_scalars(precision: str, kv_precision: str, tp) -> None:
        """Precision names known, tp a whole number >= 1."""
        for name, val in (("precision", precision), ("kv_precision", kv_precision)):
            if val not in PRECISIONS:
                raise ScenarioError(f"unknown {name} '{val}'; allowed: {', '.join(PRECISIONS)}", field=name)
        if isinstance(tp, bool) or not isinstance(tp, (int, np.integer)) or tp < 1:
            raise ScenarioError(f"tp must be a whole number >= 1, got {tp!r}", field="tp")

    @staticmethod
    def _layout(model: ModelSpec, tp: int, attention, expert_parallel, pipeline_stages):
        """(stages, chips a stage, data-parallel attention?, expert-parallel degree), refusing
        layouts the model or the engines cannot take."""
        # ---- pipeline stages: the tp chips split into pp stages of tp / pp chips, each holding
        # num_layers / pp layers; tensor parallelism (and expert parallelism) within a stage ----
        pp = 1 if pipeline_stages is None else pipeline_stages
        if (isinstance(pp, bool) or not isinstance(pp, (int, np.integer)) or pp < 1 or tp % pp
                or pp > model.num_layers):
            raise ScenarioError(
                f"pipeline_stages must be a whole number >= 1 dividing tp = {tp} (the replica's "
                f"chips, split into stages of tp / pipeline_stages) and at most the {model.num_layers} "
                f"layers; got {pipeline_stages!r}", field="pipeline_stages")
        pp = int(pp)
        t = tp // pp  # chips of one stage: the tensor-parallel group
        if pp > 1 and attention == "dp":
            raise ScenarioError("attention: dp with pipeline_stages > 1 is not modelled; use "
                                "attention: tp or one stage", field="pipeline_stages")
        # ---- parallel layout: attention tensor- or data-parallel, expert-parallel degree ----
        default_dp = model.is_mla and model.is_moe
        if attention not in (None, "tp", "dp"):
            raise ScenarioError(f"attention must be tp or dp, got {attention!r}", field="attention")
        if attention == "dp" and not model.is_moe:
            raise ScenarioError(
                f"attention: dp needs a MoE model (experts shared across the data-parallel ranks); "
                f"{model.name} is dense: use more replicas instead", field="attention")
        dp_attn = (default_dp if attention is None else attention == "dp") and t > 1 and pp == 1
        if expert_parallel is not None:
            divisors = [d for d in range(1, t + 1) if t % d == 0]
            if (isinstance(expert_parallel, bool) or not isinstance(expert_parallel, (int, np.integer))
                    or expert_parallel not in divisors or (expert_parallel > 1 and not model.is_moe)
                    or (model.is_moe and expert_parallel > model.num_experts)):
                raise ScenarioError(
                    f"expert_parallel must divide tp = {t}{' per stage' if pp > 1 else ''} (1: experts sharded tensor-parallel; "
                    f"tp: one expert group per chip; between: groups of tp / ep chips sharing an "
                    f"expert group) on a MoE model, allowed: {', '.join(map(str, divisors))}; got "
                    f"{expert_parallel!r}" + ("" if model.is_moe else f" ({model.name} is dense)"),
                    field="expert_parallel")
        # expert-parallel degree: default one expert group per chip on a MoE model over tp > 1
        ep_degree = (t if expert_parallel is None else int(expert_parallel)) if (
            model.is_moe and t > 1) else 1
        allowed = None if dp_attn or (default_dp and t == 1) else allowed_tp(model, attention="tp")
        if allowed is not None and t not in allowed:
            rule = (
                f"its {model.num_heads} attention heads must split evenly (heads % tp == 0)"
                if model.is_mla else
                f"its {model.num_heads} attention heads must split evenly (heads % tp == 0) and "
                f"its {model.num_kv_heads} KV heads must split or be replicated evenly "
                "(kv_heads % tp == 0 or tp % kv_heads == 0)"
            )
            raise CapacityError(
                f"tp={t}{' per pipeline stage' if pp > 1 else ''} does not shard {model.name}: {rule}, as serving engines (vLLM) "
                f"require; allowed tp: {', '.join(map(str, allowed))}",
                field="tp",
            )
        return pp, t, dp_attn, ep_degree

    @staticmethod
    def _peak(chip: ChipSpec, precision: str, kv_precision: str) -> float:
        """The chip's peak TFLOPS in `precision`; a precision without a catalog peak is refused."""
        # ---- precisions: a precision the chip has no peak for is an error, not a fallback ----
        supported = [p for p in PRECISIONS if chip.peak_tflops(p)]
        for what, val in (("precision", precision), ("kv_precision", kv_precision)):
            if val != "bf16" and not chip.peak_tflops(val):
                raise ScenarioError(
                    f"{chip.name} does not support {val} ({what}): the catalog gives no "
                    f"{PEAK_FIELD[val]}; supported: {', '.join(supported) or 'none'}",
                    field=what,
                )
        peak = chip.peak_tflops(precision)
        if peak is None:  # bf16 without a bf16 peak (an int8-only chip)
            raise ScenarioError(
                f"{chip.name} has no {precision} peak in the catalog; supported: "
                f"{', '.join(supported)}", field="precision")
        return peak

    def _efficiencies(self, chip: ChipSpec, band: str | None) -> tuple[float, float, float]:
        """(mfu_scale, hbm_efficiency, chip overhead): the family's fit, or the scenario's band on
        a chip nobody has measured (said in the assumptions)."""
        # ---- efficiencies, with the scenario's band on a chip nobody has measured ----
        eff = chip.efficiency
        mfu_scale, hbm_eff, chip_overhead = eff.mfu_scale, eff.hbm_efficiency, eff.overhead_s
        if band is not None and band not in BANDS:
            raise ScenarioError(f"unknown band '{band}'; allowed: {', '.join(BANDS)}", field="band")
        if eff.measured:
            if band is not None:
                raise ScenarioError(
                    f"{chip.name}'s efficiency family ({chip.family}) is fitted on published serving "
                    "measurements; band applies only to chips the catalog marks measured: false "
                    "(family unmeasured)", field="band")
        else:
            band = band or "mid"
            b = eff.bands[band]
            mfu_scale, hbm_eff, chip_overhead = b.mfu_scale, b.hbm_efficiency, chip_overhead + b.overhead_s
            self.assumptions.append(
                f"{chip.name}: no published serving measurements; efficiencies are the ASSUMED "
                f"'{band}' band (mfu x{mfu_scale:g}, MBU {hbm_eff:g}); compare low/mid/high")
        self.band = band
        self.platform = PLATFORM_OF_FAMILY.get(chip.family, "other")
        return mfu_scale, hbm_eff, chip_overhead

    def _speculation(self, model: ModelSpec, speculative, engine_release: str | None) -> None:
        """Draft tokens and tokens kept per verify step; the engine release's software factor."""
        # ---- speculative decoding ----
        if speculative is None:
            self.draft_tokens, self.tokens_per_step = 0, 1.0
        else:
            k, a = speculative
            if not (isinstance(k, (int, np.integer)) and k >= 1 and 1.0 <= a <= k + 1):
                raise ScenarioError(
                    f"speculative decoding needs draft_tokens >= 1 and 1 <= tokens_per_step <= "
                    f"draft_tokens + 1, got {k!r}, {a!r}", field="speculative")
            self.draft_tokens, self.tokens_per_step = int(k), float(a)
        # software maturity: an older release of the engine than its profile's reference is slower
        self.software_factor = software_factor(self.engine, engine_release)
        if engine_release is not None and not self.engine.speedup_per_year:
            self.assumptions.append(
                f"engine_release {engine_release} has no effect: {self.engine.name} has no fitted "
                "software speedup per year, so every release runs as its profile")
        self._inv_a = self.software_factor / self.tokens_per_step
        self._q = 1.0 + self.draft_tokens  # query tokens per decoding sequence per verify step
        self._draft = 1.0 + self.draft_tokens / model.num_layers  # MTP module ~ one extra layer a draft

    def _memory(self, chip: ChipSpec, model: ModelSpec, precision: str, kv_precision: str,
                memory_fraction: float | None, dp_attn: bool, t: int) -> None:
        """Weights (with data-parallel copies), KV bytes per token and the KV-cache capacity under
        the engine's memory policy; a replica without room is refused."""
        # ---- memory model: the engine's KV policy ----
        bpp = BYTES_PER_VALUE[precision]
        # data-parallel attention: every rank holds (and reads, each step) its own copy of the
        # attention projections and shared experts; routed experts, dense MLPs and the vocab-
        # parallel embeddings stay sharded (SGLang --enable-dp-attention with DeepEP, DeepSeek-V3
        # report s3.4). The copies beyond the first cost memory and bandwidth.
        replicated = (model.num_layers * model.attn_params_per_layer
                      + model.moe_layers * model.num_shared_experts * model.expert_params)
        self._replica_extra_bytes = replicated * bpp * (self.tp - 1) if dp_attn else 0.0
        self.weight_bytes = model.total_params * bpp + self._replica_extra_bytes
        if model.is_mla:
            # data-parallel attention: each sequence's latent lives on one rank; tensor-parallel
            # attention: every rank holds the whole latent of every sequence
            kv_copies = 1.0 if (dp_attn or t == 1) else float(t)
        elif dp_attn:
            kv_copies = 1.0  # data-parallel attention: each sequence's KV lives on one rank
        else:
            kv_copies = max(1.0, t / model.num_kv_heads)  # KV heads replicated past tp > kv
        self.kv_bytes_per_token = model.kv_values_per_token() * BYTES_PER_VALUE[kv_precision] * kv_copies
        total = chip.hbm_gb * 1e9 * self.tp
        reserve = self.engine.activation_reserve_gb * 1e9 * self.tp
        f = self.engine.kv_fraction
        if memory_fraction is not None:
            if not (0.0 < memory_fraction <= 1.0):
                raise ScenarioError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}",
                                    field="memory_fraction")
            f = float(memory_fraction)
        self.memory_fraction = f
        if self.engine.kv_policy == "free_fraction":
            kv_room = f * (total - self.weight_bytes - reserve)
        else:
            kv_room = f * total - self.weight_bytes - reserve
        if kv_room <= 0:
            per_chip = chip.hbm_gb * 1e9
            need = self.weight_bytes / max(per_chip * (f if self.engine.kv_policy == "total_fraction" else 1.0)
                                           - self.engine.activation_reserve_gb * 1e9, 1.0)
            fix = (f"raise tp to at least {max(self.tp + 1, math.ceil(need))} or use a smaller precision"
                   if per_chip > 0 else "this chip has no device memory for weights")
            raise CapacityError(
                f"{model.name} weights need {self.weight_bytes / 1e9:.1f} GB in {precision} but "
                f"{self.tp} x {chip.name} ({total / 1e9:.0f} GB) leave no KV-cache room under "
                f"{self.engine.name}'s memory policy ({self.engine.kv_policy} {f:g}, "
                f"{self.engine.activation_reserve_gb:g} GB reserve per chip); {fix}",
                field="tp",
            )
        self.kv_capacity_tokens = int(kv_room // self.kv_bytes_per_token)
        if self.kv_capacity_tokens < MIN_KV_TOKENS:
            raise CapacityError(
                f"{model.name} fits on {self.tp} x {chip.name} in {precision} but leaves room for "
                f"only {self.kv_capacity_tokens} KV-cache tokens (< {MIN_KV_TOKENS}); raise tp",
                field="tp",
            )

    def _peaks(self, chip: ChipSpec, peak: float, kv_precision: str, hbm_eff: float) -> None:
        """The replica's compute peaks and delivered HBM bandwidth (all its chips)."""
        # ---- peaks ----
        self.peak_flops = peak * 1e12 * self.tp
        # Attention multiplies activations by cached K/V: fp8 peak with an fp8 cache, else bf16.
        attn_peak = chip.fp8_tflops if kv_precision == "fp8" and chip.fp8_tflops else chip.bf16_tflops
        self.attention_peak_flops = (attn_peak or peak) * 1e12 * self.tp
        self.bandwidth_bps = chip.hbm_tbps * 1e12 * self.tp * hbm_eff
        for what, val in (
            ("compute peak", self.peak_flops), ("hbm_tbps", self.bandwidth_bps),
            ("interconnect_gbps", chip.interconnect_gbps), ("scaleout_gbps", chip.scaleout_gbps),
        ):
            if not (val > 0 and math.isfinite(val)):
                raise ScenarioError(
                    f"{chip.name}: {what} must be a finite number > 0 for the kernel, got {val!r}",
                    field=what,
                )

    def _parallelism(self, dp_attn: bool, ep_degree: int, t: int, pp: int) -> None:
        """The layout flags and the label capacity rows and provenance show."""
        # ---- parallelism ----
        self.dp_attention = dp_attn
        self.expert_parallel = ep_degree > 1
        self.ep_degree = ep_degree
        # all-to-all only where the layout needs it: data-parallel attention with one expert group
        # per chip. DP attention with experts sharded over groups of tp / ep chips gathers every
        # token to its group (all-gather, reduce-scatter); TP attention already holds every token
        # on every chip, so experts reduce with the layer's all-reduce.
        self.parallelism = ("dp-attention+ep-alltoall" if dp_attn and ep_degree == t else
                            "dp-attention+tp-experts-gather" if dp_attn else
                            "tp-attention+ep-allreduce" if ep_degree > 1 else "tp-allreduce")
        if pp > 1:
            self.parallelism += f"+pp{pp}"

    def _coefficients(self, chip: ChipSpec, model: ModelSpec, mfu_scale: float, dp_attn: bool,
                      ep_degree: int, t: int, pp: int) -> None:
        """Per-iteration FLOPs and bytes, expert coverage and imbalance, activation traffic and
        the GEMM efficiency tables every entry point reads."""
        # ---- per-iteration coefficients (FLOPs per token, bytes per iteration) ----
        eff = chip.efficiency
        bpp = BYTES_PER_VALUE[self.precision]
        dense_mm = model.matmul_params_per_token - model.moe_layers * model.experts_per_token * model.expert_params
        self._f_dense = 2.0 * dense_mm  # attention projections, dense MLPs, shared experts, routers
        self._f_exp = 2.0 * model.moe_layers * model.experts_per_token * model.expert_params
        self._f_head = 2.0 * model.embedding_params  # LM head, per sampled (decode) token
        attn_scale = self.peak_flops / self.attention_peak_flops
        attn_eff = eff.attn_compute_efficiency
        self._a_pf = model.attn_flops_per_pair("prefill") * attn_scale / attn_eff
        self._a_dec = model.attn_flops_per_pair("decode") * attn_scale / attn_eff
        dense_read = model.dense_params - (0 if model.tie_word_embeddings else model.embedding_params)
        # read every iteration (input embedding: lookups only), every replicated copy included:
        # over the replica's summed bandwidth, that is each rank reading its own copy
        self._w_dense = dense_read * bpp + self._replica_extra_bytes
        self._w_expert_layer = model.moe_layers * model.expert_params * bpp  # one expert, all layers
        self._n_exp = float(model.num_experts)
        self._q_miss = 1.0 - model.experts_per_token / model.num_experts if model.is_moe else 0.0
        self._rows_per_expert = model.experts_per_token / model.num_experts if model.is_moe else 0.0
        self._dense_rows = 1.0 / self.tp if self.dp_attention else 1.0
        if pp > 1:
            # an iteration of the replica is one cycle of pp micro-batches through the pipeline:
            # each stage reads its weights once per micro-batch (pp times its 1/pp share, at its
            # tp / pp chips' bandwidth: pp times the replica's summed bandwidth), touches the
            # experts one micro-batch routes to, and runs GEMMs a micro-batch tall
            self._w_dense *= pp
            self._w_expert_layer *= pp
            self._q_miss = self._q_miss ** (1.0 / pp)
            self._rows_per_expert /= pp
            self._dense_rows /= pp
        # expert load imbalance: the busiest of ep groups sets the pace. The engine's figure is for
        # one group per chip; with fewer groups each holds more experts and the maximum of ep
        # group loads exceeds the mean by ~ sqrt(ep ln ep) (max of ep roughly normal loads whose
        # relative spread falls as 1 / sqrt(experts per group)), scaled to the full-EP figure.
        if ep_degree <= 1:
            self._imbalance = 1.0
        elif ep_degree == t:
            self._imbalance = self.engine.moe_imbalance
        else:
            shrink = math.sqrt(ep_degree * math.log(ep_degree) / (t * math.log(t)))
            self._imbalance = 1.0 + (self.engine.moe_imbalance - 1.0) * shrink
        self._inv_peak = 1.0 / self.peak_flops
        # non-GEMM kernels (norms, rotary, activation, quantisation, residual adds) stream each
        # token's hidden vector `activation_passes` times a layer. Under tensor parallelism every
        # rank holds every token's full hidden vector, so the traffic is paid at ONE chip's
        # bandwidth; data-parallel attention splits the tokens across the ranks.
        # With pipeline stages a chip runs only its stage's num_layers / pp layers.
        per_chip_bw = self.bandwidth_bps * pp / (self.tp if not dp_attn else 1)
        self._act = (eff.activation_passes * model.num_layers * model.hidden_size * ACT_BYTES
                     / per_chip_bw)
        self._inv_bw = 1.0 / self.bandwidth_bps
        # GEMM efficiency: table by rows x width factor x engine multiplier x fitted scale
        width_d = model.intermediate_size if model.moe_layers < model.num_layers else model.hidden_size
        width_d = width_d / (1 if self.dp_attention else t)
        width_e = model.moe_intermediate_size / (t // ep_degree) if model.is_moe else 1.0
        wh = eff.gemm_width_half
        g = mfu_scale * self.engine.gemm_efficiency
        self._g_dense = g * width_d / (width_d + wh)
        self._g_exp = g * width_e / (width_e + wh) * eff.expert_gemm_scale
        self._mfu_x, self._mfu_y, self._mfu_xa, self._mfu_ya = _interp_log(sorted(eff.mfu.items()))
        self._att_x, self._att_y, self._att_xa, self._att_ya = _interp_log(sorted(eff.attention.items()))
        # efficiency by whole rows (tokens, tokens per expert, decoding sequences), read at floor()
        self._tab_d = _table(self._mfu_xa, self._mfu_ya, self._g_dense)
        self._tab_e = _table(self._mfu_xa, self._mfu_ya, self._g_exp)
        self._tab_a = _table(self._att_xa, self._att_ya, 1.0)
        top = float(max(self._tab_d.max(), self._tab_e.max()))
        if top > 1.0:
            raise ScenarioError(
                f"{chip.name} under {self.engine.name}: GEMM efficiency {top:.2f} of peak (the "
                f"family's mfu table x mfu_scale {mfu_scale:g} x the engine's gemm_efficiency "
                f"{self.engine.gemm_efficiency:g}) is above 1; lower mfu_scale or gemm_efficiency",
                field="gemm_efficiency")
        self._nd, self._ne, self._na = len(self._tab_d) - 1, len(self._tab_e) - 1, len(self._tab_a) - 1
        self._ld, self._le, self._la = self._tab_d.tolist(), self._tab_e.tolist(), self._tab_a.tolist()
        self._log_q_miss = math.log(self._q_miss) if self._q_miss > 0 else 0.0

    def _collectives(self, chip: ChipSpec, model: ModelSpec, ep_degree: int, t: int, pp: int) -> None:
        """All-reduces, all-gathers or all-to-alls as the layout needs them, pipeline hops, and
        how far the engine hides them under compute."""
        # ---- collectives ----
        eff = chip.efficiency
        self.scaled_out = t > chip.scaleup_domain_chips  # the tensor group crosses nodes
        link_gbps = chip.scaleout_gbps if self.scaled_out else chip.interconnect_gbps
        link_bps = link_gbps * 1e9 / 2.0 * eff.interconnect_efficiency
        self._comm1_p = None
        if t == 1:
            self._comm0 = self._comm1 = 0.0
        elif self.dp_attention and ep_degree < self.tp:
            # DP attention, experts sharded over groups of tp / ep chips: every MoE layer gathers
            # each rank's tokens to the chips holding its experts and reduce-scatters the outputs
            # back (SGLang --enable-dp-attention without DeepEP): one all-reduce's volume a layer.
            n_coll = 2.0 * model.moe_layers
            self._comm0 = n_coll * eff.collective_latency_s
            self._comm1 = n_coll * (self.tp - 1) / self.tp * model.hidden_size * ACT_BYTES / link_bps
        elif self.dp_attention:
            # DeepSeek-style serving: two all-to-alls per MoE layer, dispatch in fp8 (1 B/value)
            # and combine in bf16 (2 B/value) (DeepSeek-V3 report; DeepEP). A chip sends its
            # tokens/tp hidden vectors to k experts, (tp-1)/tp of them elsewhere; decode tokens go
            # to all k experts (low-latency kernels), prefill tokens across the scale-out network
            # at most `expert_groups_per_token` times (node-limited routing, DeepEP docs/legacy.md).
            n_coll = 2.0 * model.moe_layers
            fan_d = fan_p = model.experts_per_token
            if self.scaled_out and model.expert_groups_per_token:
                fan_p = min(fan_p, model.expert_groups_per_token)
            unit = model.hidden_size * (1.0 + ACT_BYTES) / 2.0
            share = n_coll * (self.tp - 1) / (self.tp * self.tp) / link_bps
            self._comm0 = n_coll * eff.collective_latency_s
            self._comm1 = fan_d * unit * share
            self._comm1_p = fan_p * unit * share
        else:
            # Megatron tensor parallelism: two ring all-reduces of the activations per layer (a
            # stage all-reduces its num_layers / pp layers for every token of the cycle; the pp
            # micro-batches pay the latency of 2 num_layers collectives between them).
            n_coll = 2.0 * model.num_layers
            self._comm0 = n_coll * eff.collective_latency_s
            self._comm1 = n_coll * 2.0 * (t - 1) / t * model.hidden_size * ACT_BYTES / link_bps / pp
        if pp > 1:
            # stage to stage: each token's hidden vector once a hop, split over the stage's chips
            # (point-to-point; across nodes when the replica spans more than one scale-up domain)
            hop_gbps = chip.scaleout_gbps if self.tp > chip.scaleup_domain_chips else chip.interconnect_gbps
            hop_bps = hop_gbps * 1e9 / 2.0 * eff.interconnect_efficiency
            self._comm1 += model.hidden_size * ACT_BYTES / (t * hop_bps)
            self._comm0 += pp * eff.collective_latency_s  # one receive per micro-batch a cycle
        if self._comm1_p is None:
            self._comm1_p = self._comm1
        self._ov = self.engine.comm_overlap
        self.comm_overlapped = self._ov > 0

    def _overheads(self, model: ModelSpec, graph_capture: bool | None, chip_overhead: float, pp: int) -> None:
        """Per-step, per-layer and per-request fixed costs (docs/kernel.md "Overheads")."""
        # ---- overheads with physical meaning (docs/kernel.md "Overheads") ----
        # per step: the engine's fixed cost on this platform, the chip's extra, and one launch per
        # layer (graph replay or eager host launches); per request: a host cost paid in TTFT.
        self.graph_capture = self.engine.graph_capture if graph_capture is None else bool(graph_capture)
        mode = "graph" if self.graph_capture else "eager"
        # every micro-batch of a pipeline cycle is its own engine step
        self.step_overhead_s = (self.engine.overhead_s[self.platform] + chip_overhead) * pp
        self.layer_launch_s = self.engine.layer_launch_s[mode] * model.num_layers
        self.request_overhead_s = self.engine.request_overhead_s
        self._overhead = self.step_overhead_s + self.layer_launch_s
        self._run_templates: dict = {}

    def _release(self, pinned: str | None, engine_release: str | None) -> str | None:
        """The release date the kernel runs the engine at: `NAME@VERSION` (the profile's releases
        table) or `NAME@YYYY-MM[-DD]`, or engine_release; none pinned: the profile as fitted
        (its reference_date, the newest release it has figures for), said in the assumptions."""
        prof = self.engine
        if pinned is not None:
            if engine_release is not None:
                raise ScenarioError(f"engine {prof.name} is pinned twice ({pinned!r} and engine_release "
                                    f"{engine_release!r}); give one", field="engine_release")
            if pinned in prof.releases:
                return prof.releases[pinned]
            try:
                _years(pinned)
            except ValueError:
                known = ", ".join(prof.releases) or "none listed; pin a date YYYY-MM[-DD]"
                raise ScenarioError(f"unknown release {pinned!r} of engine {prof.name}; known: {known}",
                                    field="engine") from None
            return pinned
        if engine_release is None:
            ref = (f"reference {prof.reference_date}, the newest release it has figures for"
                   if prof.reference_date else "undated: no release trend fitted")
            self.assumptions.append(
                f"engine {prof.name}: no release pinned (engine: NAME@VERSION or engine_release); "
                f"the profile as fitted is used ({ref})")
        return engine_release

    @staticmethod
    def _engine(engine, chip: ChipSpec) -> EngineProfile:
        if engine is None:
            engine = default_engine(chip)
        if isinstance(engine, EngineProfile):
            prof = engine
        else:
            engines = load_engines()
            if engine not in engines:
                raise ScenarioError(f"unknown engine '{engine}'; allowed: {', '.join(engines)}", field="engine")
            prof = engines[engine]
        platform = PLATFORM_OF_FAMILY.get(chip.family, "other")
        if platform not in prof.platforms:
            raise ScenarioError(
                f"engine {prof.name} does not run on {chip.name} (platform {platform}); it runs on "
                f"{', '.join(prof.platforms)}", field="engine")
        return prof

    def __repr__(self) -> str:
        return (
            f"ReplicaKernel({self.chip.name!r}, {self.model.name!r}, tp={self.tp}, "
            f"precision={self.precision!r}, engine={self.engine.name!r}, "
            f"kv_capacity_tokens={self.kv_capacity_tokens})"
        )

    # ---- memory ----
    def max_batch_for(self, context_tokens_per_seq):
        """Largest number of sequences whose KV cache fits, each holding this many tokens."""
        if np.ndim(context_tokens_per_seq) == 0:
            return int(self.kv_capacity_tokens // max(float(context_tokens_per_seq), 1.0))
        ctx = np.maximum(np.asarray(context_tokens_per_seq, dtype=float), 1.0)
        return (self.kv_capacity_tokens // ctx).astype(np.int64)

    # ---- scalar pieces ----
    def _weights_read(self, tokens: float) -> float:
        if self._n_exp == 0.0:
            return self._w_dense
        return self._w_dense + self._w_expert_layer * self._n_exp * (1.0 - self._q_miss**tokens)

    def _phases(self, p: float, d: float, throttle: float) -> tuple[float, float, float, float, float]:
        """Scalar pieces for a real (verify) step with p prefill and d decoding sequences:
        (gemm seconds, attention compute per FLOP-coefficient, KV seconds per byte, comm, tokens)."""
        tokens = p + d * self._q
        t = min(int(tokens * self._dense_rows), self._nd)
        dense = max(
            (self._f_dense * tokens + self._f_head * self._q * d) * self._inv_peak
            / (self._ld[t] * throttle),
            self._w_dense * self._inv_bw,
        )
        gemm = dense + self._act * tokens
        if self._n_exp:
            exp = max(
                tokens * (self._f_exp * self._inv_peak) / (self._le[min(int(tokens * self._rows_per_expert), self._ne)] * throttle),
                self._w_expert_layer * self._n_exp * self._inv_bw * (1.0 - self._q_miss**tokens),
            )
            gemm += exp * self._imbalance
        kv_eff = self._la[min(int(tokens), self._na)]
        comm = d * (self._comm1 * self._q) + self._comm1_p * p + self._comm0
        return gemm, self._inv_peak / throttle, self._inv_bw / kv_eff, comm, tokens

    def step_time_s(
        self,
        prefill_tokens: float,
        decode_seqs: float,
        decode_context_tokens: float,
        prefill_attended_tokens: float | None = None,
        throttle: float = 1.0,
    ) -> float:
        """One iteration in plain floats: the serving layer's per-batch-change call."""
        if prefill_tokens + decode_seqs <= 0:
            return 0.0
        if prefill_attended_tokens is None:
            prefill_attended_tokens = 0.5 * prefill_tokens * prefill_tokens
        a = self.tokens_per_step
        p, d = prefill_tokens * a, float(decode_seqs)
        gemm, ac, kvc, comm, tokens = self._phases(p, d, throttle)
        attn = max(
            (self._a_pf * prefill_attended_tokens * a + self._a_dec * decode_context_tokens * self._q) * ac,
            self.kv_bytes_per_token * (decode_context_tokens + tokens) * kvc,
        )
        x = (gemm + attn) * self._draft
        return (x + comm - min(comm, self._ov * x) + self._overhead) * self._inv_a

    # ---- vectorised ----
    def iteration_time_s(
        self,
        prefill_tokens,
        decode_seqs,
        decode_context_tokens,
        prefill_attended_tokens=None,
        throttle=1.0,
    ) -> np.ndarray:
        """Iteration times for arrays of iterations (numpy broadcasting, no Python loop beyond
        a handful of rows, where per-call numpy overhead would dominate)."""
        p0 = np.asarray(prefill_tokens, dtype=float)
        d = np.asarray(decode_seqs, dtype=float)
        c = np.asarray(decode_context_tokens, dtype=float)
        att = 0.5 * p0 * p0 if prefill_attended_tokens is None else np.asarray(prefill_attended_tokens, dtype=float)
        thr_a = np.asarray(throttle, dtype=float)
        p0, d, c, att, thr_a = np.broadcast_arrays(p0, d, c, att, thr_a)
        if p0.size <= _SMALL:
            out = np.empty(p0.shape)
            flat = out.reshape(-1)
            for i, args in enumerate(zip(p0.flat, d.flat, c.flat, att.flat, thr_a.flat)):
                flat[i] = self.step_time_s(*args)
            return out if out.ndim else np.asarray(float(out))
        scalar_thr = np.ndim(throttle) == 0
        thr = float(throttle) if scalar_thr else thr_a
        a = self.tokens_per_step
        p = p0 * a if a != 1.0 else p0
        tokens = p + d * self._q if self._q != 1.0 else p + d
        rows = tokens if self._dense_rows == 1.0 else tokens * self._dense_rows
        eff = self._tab_d[np.minimum(rows.astype(np.intp), self._nd)]
        if not scalar_thr or thr != 1.0:
            eff *= thr
        gemm = self._f_dense * tokens
        if self._f_head:
            gemm += (self._f_head * self._q) * d
        gemm *= self._inv_peak
        gemm /= eff
        np.maximum(gemm, self._w_dense * self._inv_bw, out=gemm)
        if self._act:
            gemm += self._act * tokens
        if self._n_exp:
            eff = self._tab_e[np.minimum((tokens * self._rows_per_expert).astype(np.intp), self._ne)]
            if not scalar_thr or thr != 1.0:
                eff *= thr
            exp_c = tokens * (self._f_exp * self._inv_peak)
            exp_c /= eff
            exp_m = np.exp(tokens * self._log_q_miss) if self._q_miss > 0 else np.zeros_like(tokens)
            np.subtract(1.0, exp_m, out=exp_m)
            exp_m *= self._w_expert_layer * self._n_exp * self._inv_bw
            np.maximum(exp_c, exp_m, out=exp_c)
            exp_c *= self._imbalance
            gemm += exp_c
        att_c = att * (self._a_pf * a * self._inv_peak)
        att_c += (self._a_dec * self._q * self._inv_peak) * c
        if not scalar_thr or thr != 1.0:
            att_c /= thr
        att_m = c + tokens
        att_m *= self.kv_bytes_per_token * self._inv_bw
        att_m /= self._tab_a[np.minimum(tokens.astype(np.intp), self._na)]
        np.maximum(att_c, att_m, out=att_m)
        x = att_m
        x += gemm
        if self._draft != 1.0:
            x *= self._draft
        comm = d * (self._comm1 * self._q)
        comm += self._comm1_p * p
        comm += self._comm0
        if self._ov > 0:
            hidden = np.minimum(comm, self._ov * x)
            x += comm
            x -= hidden
        else:
            x += comm
        x += self._overhead
        if self._inv_a != 1.0:
            x *= self._inv_a
        x[tokens <= 0] = 0.0
        return x

    # ---- event skipping ----
    def decode_run(self, n_seqs: int, context_tokens: float, throttle: float = 1.0) -> "DecodeRun":
        """A fixed batch of n_seqs decoding; summed context starts at context_tokens and grows
        by n_seqs per step. Step j costs max over linear lines (a + b j) plus c, exactly
        `step_time_s(0, n, context_tokens + n j)`: attention compute and KV reads are the two
        lines of the attention roofline; with overlap each gives a second, overlapped line.
        Each line's intercept is affine in context_tokens: the coefficients are worked out once
        per (n_seqs, throttle) and kept (the serving loop asks for a few batch sizes, often)."""
        key = (n_seqs, throttle)
        tpl = self._run_templates.get(key)
        if tpl is None:
            tpl = self._decode_template(n_seqs, throttle)
            if len(self._run_templates) >= 4096:  # a throttle that drifts tick by tick: start over
                self._run_templates.clear()
            self._run_templates[key] = tpl
        lines, c = tpl
        if len(lines) == 2:  # no overlap (the common case): the attention roofline's two lines
            (p0, p1, pb), (q0, q1, qb) = lines
            run = _new_run(DecodeRun)  # `DecodeRun._of`, inline (one call less per decode run)
            run.lines = ab = ((p0 + p1 * context_tokens, pb), (q0 + q1 * context_tokens, qb))
            run.c = c
            run._pieces = _envelope(ab)
            return run
        return DecodeRun._of(tuple((a0 + a1 * context_tokens, b) for a0, a1, b in lines), c)

    def _decode_template(self, n_seqs: int, throttle: float):
        """((intercept at 0 context, intercept per context token, slope) per line, c)."""
        n = float(n_seqs)
        if n < 1:
            raise ValueError("decode_run needs n_seqs >= 1")
        gemm, ac, kvc, comm, tokens = self._phases(0.0, n, throttle)
        s, ia = self._draft, self._inv_a
        kvb = self.kv_bytes_per_token
        attn = (  # (a at 0 context, a per context token, b) of the attention roofline's lines
            (0.0, self._a_dec * self._q * ac, self._a_dec * self._q * n * ac),
            (kvb * tokens * kvc, kvb * kvc, kvb * n * kvc),
        )
        lines = []
        for a0, a1, b0 in attn:
            x0, x0c, x1 = (gemm + a0) * s, a1 * s, b0 * s
            lines.append((x0 * ia, x0c * ia, x1 * ia))
            if self._ov > 0:
                o = 1.0 - self._ov
                lines.append(((o * x0 + comm) * ia, o * x0c * ia, o * x1 * ia))
        c = self._overhead * ia if self._ov > 0 else (comm + self._overhead) * ia
        return tuple(lines), c


_BIG = 2**62  # "never" in steps
_new_run = object.__new__
_SMALL = 8  # arrays up to this size go through step_time_s (numpy call overhead dominates)


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
    if len(lines) == 2:  # the common case (no overlap), in closed form: the same pieces
        (a1, b1), (a2, b2) = lines
        if (a2, b2) > (a1, b1):
            a1, b1, a2, b2 = a2, b2, a1, b1
        if b2 <= b1:
            return ((0, a1, b1),)
        x = (a1 - a2) / (b2 - b1)  # where the steeper line overtakes (>= 0)
        if x >= _BIG:
            return ((0, a1, b1),)
        start = max(0, math.ceil(x))
        return ((0, a2, b2),) if start == 0 else ((0, a1, b1), (start, a2, b2))
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
    """Step j of a fixed decoding batch takes max over lines (a + b j) plus c: the attention
    roofline's compute and KV-read lines (and, when communication overlaps compute, their
    overlapped variants). Sums and their inverse in closed form over the envelope's pieces."""

    __slots__ = ("lines", "c", "_pieces")

    def __init__(self, lines, c: float) -> None:
        self.lines = tuple((float(a), float(b)) for a, b in lines)
        self.c = float(c)
        self._pieces = _envelope(self.lines)

    @classmethod
    def _of(cls, lines: tuple, c: float) -> "DecodeRun":
        """From lines already as float pairs (the kernel's own): no conversions."""
        run = cls.__new__(cls)
        run.lines, run.c = lines, c
        run._pieces = _envelope(lines)
        return run

    def __repr__(self) -> str:
        return f"DecodeRun(lines={self.lines}, c={self.c})"

    def step_s(self, j: int) -> float:
        return max(a + b * j for a, b in self.lines) + self.c

    def time_for_steps(self, k: int) -> float:
        """Total time of steps 0..k-1."""
        if k <= 0:
            return 0.0
        p = self._pieces
        if len(p) == 1:  # one line over the whole run: `_arith(a, b, 0, k)` inline (same bits)
            _, a, b = p[0]
            return self.c * k + (k * a + b * 0.5 * (k * (k - 1)))
        total = self.c * k
        for i, (start, a, b) in enumerate(p):
            if start >= k:
                break
            end = p[i + 1][0] if i + 1 < len(p) else k
            total += _arith(a, b, start, min(end, k))
        return total

    def steps_within(self, t_s: float) -> int:
        """Largest k with time_for_steps(k) <= t_s (exact against time_for_steps)."""
        ln = self.lines  # (step 0 costs the largest intercept: `step_s(0)` without its generator)
        if t_s < (max(ln[0][0], ln[1][0]) if len(ln) == 2 else max(a for a, _ in ln)) + self.c:
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
