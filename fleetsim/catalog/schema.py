"""Typed chip and model entries. Units are in the field names; every figure carries a source."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from fleetsim.scenario.base import StrictModel

PRECISIONS = ("bf16", "fp8", "int8", "fp4")
BYTES_PER_VALUE = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
# Which chip field holds the dense peak for each precision.
PEAK_FIELD = {"bf16": "bf16_tflops", "fp8": "fp8_tflops", "int8": "int8_tops", "fp4": "fp4_tflops"}


class _NoBoolNumbers(StrictModel):
    """YAML `true` must not become 1.0 in a numeric field, nor `.inf`/`.nan` a figure."""

    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _reject_bools(cls, data):
        if isinstance(data, dict):
            for name, val in data.items():
                f = cls.model_fields.get(name)
                if isinstance(val, bool) and f is not None and f.annotation is not bool:
                    raise ValueError(f"{name} must be a number, got {val!r}")
        return data


BANDS = ("low", "mid", "high")


class Band(_NoBoolNumbers):
    """Assumed efficiencies of a chip with no serving measurements, one of low / mid / high."""

    mfu_scale: float = Field(gt=0, description="multiplies the chip's GEMM efficiency table")
    hbm_efficiency: float = Field(gt=0, le=1, description="achieved / peak HBM bandwidth")
    overhead_s: float = Field(ge=0, description="extra per-step cost on top of the engine's")


class Efficiency(_NoBoolNumbers):
    """Achieved fractions of peak of one serving iteration, per operator (roofline inputs).

    `mfu` maps the rows of a GEMM (tokens in the iteration, or tokens per expert for MoE expert
    GEMMs) to the fraction of dense peak it reaches; values between breakpoints are interpolated
    linearly in log(rows), read at whole rows and held flat beyond the ends; `mfu_scale` multiplies
    the whole table (what `fleetsim calibrate` fits). Narrow per-chip matrices lose efficiency by
    n / (n + gemm_width_half), n = per-chip FFN width after tensor parallelism. `attention` maps
    tokens in the iteration (decoding sequences, plus prompt tokens in a mixed iteration) to the
    fraction of `hbm_efficiency` the KV-cache reads reach: few rows underfill the chip.
    """

    mfu: dict[float, float] = Field(description="GEMM rows -> fraction of dense peak")
    mfu_scale: float = Field(1.0, gt=0, description="multiplies every mfu value (fitted)")
    gemm_width_half: float = Field(
        256.0, ge=0, description="per-chip FFN width at which GEMM efficiency halves")
    hbm_efficiency: float = Field(gt=0, le=1, description="achieved / peak HBM bandwidth (MBU)")
    attention: dict[float, float] = Field(
        default_factory=lambda: {1.0: 1.0},
        description="tokens in the iteration -> KV-read efficiency as a fraction of hbm_efficiency")
    attn_compute_efficiency: float = Field(
        0.5, gt=0, le=1, description="fraction of peak reached by attention FLOPs (prefill)")
    interconnect_efficiency: float = Field(gt=0, le=1, description="achieved / peak link bandwidth")
    overhead_s: float = Field(
        ge=0, description="extra fixed per-iteration cost of this chip on top of the engine's")
    collective_latency_s: float = Field(ge=0, description="fixed latency of one collective")
    expert_gemm_scale: float = Field(
        1.0, gt=0, le=1, description="grouped expert GEMMs' efficiency as a fraction of dense GEMMs "
        "of the same rows and width (routing, permute and grouped-matmul kernels; fitted)")
    activation_passes: float = Field(
        0.0, ge=0, description="non-GEMM activation traffic per token and layer, in passes over "
        "the hidden vector (norms, rotary, activation, quantise, residual; fitted)")
    measured: bool = Field(
        True, description="False: no published serving measurement on this chip; `bands` apply")
    bands: dict[Literal["low", "mid", "high"], Band] | None = Field(
        None, description="assumed efficiencies a scenario picks (pool band) for unmeasured chips")
    basis: str = Field(description="where these figures come from")

    @field_validator("mfu", "attention", mode="before")
    @classmethod
    def _scalar_table(cls, v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return {1.0: float(v)}
        return v

    @field_validator("mfu", "attention")
    @classmethod
    def _check_table(cls, v: dict[float, float]) -> dict[float, float]:
        if not v:
            raise ValueError("an efficiency table needs at least one point (rows: fraction)")
        for rows, frac in v.items():
            if not (rows >= 1 and math.isfinite(rows)):
                raise ValueError(f"efficiency table keys are counts >= 1, got {rows}")
            if not (0 < frac <= 1):
                raise ValueError(f"efficiency values must be in (0, 1], got {frac} at {rows}")
        return dict(sorted(v.items()))

    @model_validator(mode="after")
    def _bands_when_unmeasured(self) -> "Efficiency":
        if not self.measured and not self.bands:
            raise ValueError("an unmeasured chip (measured: false) needs bands low/mid/high")
        if self.bands and set(self.bands) != set(BANDS):
            raise ValueError(f"bands must give all of {', '.join(BANDS)}")
        if max(self.mfu.values()) * self.mfu_scale > 1.0:
            raise ValueError("mfu_scale x mfu must stay <= 1")
        return self


# Vendors whose chips are US-origin items under the Export Administration Regulations (15 CFR
# 734.3(a): items of US origin; 3A090/4A090 advanced-computing controls), by the catalog's `vendor`
# spelling. A rented chip of one of them counts as US-supplied (fleet US dependence) unless its
# rent channel says otherwise with `us_controlled`.
US_VENDORS = frozenset({"NVIDIA", "AMD", "Intel", "Google"})


def us_origin(chip: "ChipSpec") -> bool:
    """True for a chip whose vendor is a US company (US_VENDORS)."""
    return chip.vendor in US_VENDORS


class ChipSpec(_NoBoolNumbers):
    """One accelerator. Peaks are dense (not 2:4 sparse); `interconnect_gbps` is GB/s (bytes)."""

    name: str = Field(description="full product name")
    vendor: str
    family: str = Field(
        "unmeasured", description="efficiency family whose fitted figures the chip shares "
        "(chips.yaml families: nvidia-hopper, nvidia-blackwell, ascend, unmeasured)")
    year: int | None = None
    supply_channel: str = Field(description="export regime / supplier channel that governs it")
    memory_type: str = Field(description="HBM3, HBM2e, GDDR6, LPDDR5, SRAM only ...")
    # Peaks and bandwidths divide in the kernel: > 0, or None (left out) when the chip lacks one.
    bf16_tflops: float | None = Field(default=None, gt=0, description="dense BF16/FP16 peak")
    fp8_tflops: float | None = Field(default=None, gt=0, description="dense FP8 peak")
    int8_tops: float | None = Field(default=None, gt=0, description="dense INT8 peak")
    fp4_tflops: float | None = Field(default=None, gt=0, description="dense FP4 peak")
    hbm_gb: float = Field(ge=0, description="device memory (HBM or other DRAM) in GB; 0 = none")
    hbm_tbps: float = Field(
        ge=0, description="device memory bandwidth in TB/s; > 0 unless hbm_gb is 0"
    )
    interconnect_gbps: float = Field(
        gt=0, description="chip-to-chip bandwidth, GB/s aggregate both directions"
    )
    scaleup_domain_chips: int = Field(
        default=8, ge=1, description="chips joined by interconnect_gbps (NVLink/HCCS domain)"
    )
    scaleout_gbps: float = Field(
        default=100, gt=0,
        description="per-chip network beyond the scale-up domain, GB/s both directions "
        "(default: one 400 Gb/s NIC per chip)",
    )
    tdp_w: float = Field(gt=0)
    price_usd: float | None = Field(default=None, gt=0, description="unit price; None = not sold")
    efficiency: Efficiency
    sources: dict[str, str] = Field(
        description="citation per field; key '*' covers every field not listed"
    )
    estimated: list[str] = Field(default_factory=list, description="published estimates (EST)")
    assumed: list[str] = Field(
        default_factory=list, description="fields with NO published figure: fleetsim placeholders"
    )
    overridden: list[str] = Field(default_factory=list, description="fields set by the scenario")
    notes: str = ""

    @field_validator("hbm_tbps")
    @classmethod
    def _bandwidth_with_memory(cls, v: float, info: ValidationInfo) -> float:
        """Only a chip without device memory (SRAM only, which the kernel refuses for lack of
        room for weights) may have no memory bandwidth; any other chip divides by it."""
        if v <= 0 and info.data.get("hbm_gb", 0) > 0:
            raise ValueError(
                "hbm_tbps must be > 0 for a chip with device memory (hbm_gb > 0); "
                "0 is allowed only with hbm_gb 0"
            )
        return v

    @model_validator(mode="after")
    def _flags_are_fields(self) -> "ChipSpec":
        names = set(type(self).model_fields)
        for flag in ("estimated", "assumed", "overridden"):
            bad = [f for f in getattr(self, flag) if f not in names]
            if bad:
                raise ValueError(f"{flag} lists unknown fields {bad}; allowed: {sorted(names)}")
        bad = [k for k in self.sources if k != "*" and k not in names]
        if bad:
            raise ValueError(f"sources keys {bad} are not fields; use '*' or a field name")
        if "*" not in self.sources:
            raise ValueError("sources needs a '*' entry (the main source for this chip)")
        if self.assumed and not self.notes:
            raise ValueError("assumed fields need a note saying what was assumed and why")
        if not any(getattr(self, f) for f in PEAK_FIELD.values()):
            raise ValueError("a chip needs at least one compute peak (bf16_tflops, int8_tops ...)")
        return self

    def source_of(self, field: str) -> str:
        return self.sources.get(field, self.sources["*"])

    def peak_tflops(self, precision: str) -> float | None:
        return getattr(self, PEAK_FIELD[precision])


class ModelSpec(_NoBoolNumbers):
    """One transformer, from its public config.json. MoE and MLA fields are zero/None if unused."""

    name: str
    family: str
    source_url: str = Field(description="the config.json (or model card) the figures come from")
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0, description="dense MLP width (dense layers)")
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    max_context_tokens: int = Field(gt=0)
    # mixture of experts
    num_experts: int = Field(default=0, ge=0, description="routed experts per MoE layer")
    experts_per_token: int = Field(default=0, ge=0)
    num_shared_experts: int = Field(default=0, ge=0)
    moe_intermediate_size: int = Field(default=0, ge=0)
    first_dense_layers: int = Field(default=0, ge=0, description="leading layers with dense MLP")
    expert_groups_per_token: int | None = Field(
        default=None, ge=1,
        description="node-limited routing (config topk_group): groups a token's experts span",
    )
    # multi-head latent attention (DeepSeek)
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    # published totals (checked against the structure in tests)
    total_params_b: float = Field(gt=0, description="published total parameters, billions")
    active_params_b: float = Field(gt=0, description="published active parameters per token")
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSpec":
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if (self.num_experts > 0) != (self.experts_per_token > 0):
            raise ValueError("num_experts and experts_per_token are both set (MoE) or both 0")
        if self.experts_per_token > self.num_experts:
            raise ValueError("experts_per_token cannot exceed num_experts")
        if self.num_experts and not self.moe_intermediate_size:
            raise ValueError("an MoE model needs moe_intermediate_size")
        mla = (self.kv_lora_rank, self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim)
        if any(x is not None for x in mla) and any(x is None for x in mla):
            raise ValueError(
                "MLA needs all of kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim"
            )
        if self.first_dense_layers > self.num_layers:
            raise ValueError("first_dense_layers cannot exceed num_layers")
        return self

    # ---- structure-derived counts (parameters, not bytes) ----
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def attn_params_per_layer(self) -> float:
        h = self.hidden_size
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank * self.num_heads * qk
            else:
                q = h * self.num_heads * qk
            kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank * (
                self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            )
            o = self.num_heads * self.v_head_dim * h
            return float(q + kv + o)
        q = h * self.num_heads * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        o = self.num_heads * self.head_dim * h
        return float(q + kv + o)

    @property
    def moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def expert_params(self) -> float:
        """Parameters of one routed expert in one layer (gate, up, down projections)."""
        return 3.0 * self.hidden_size * self.moe_intermediate_size

    @property
    def embedding_params(self) -> float:
        return float(self.vocab_size * self.hidden_size)

    @property
    def dense_params(self) -> float:
        """Every weight outside the routed experts: attention, dense MLPs, shared experts,
        routers, embeddings and LM head."""
        h = self.hidden_size
        dense_mlp_layers = self.num_layers - self.moe_layers
        body = self.num_layers * self.attn_params_per_layer
        body += dense_mlp_layers * 3.0 * h * self.intermediate_size
        body += self.moe_layers * (self.num_shared_experts * self.expert_params + h * self.num_experts)
        emb = self.embedding_params * (1 if self.tie_word_embeddings else 2)
        return body + emb

    @property
    def total_params(self) -> float:
        return self.dense_params + self.moe_layers * self.num_experts * self.expert_params

    @property
    def active_params(self) -> float:
        return self.dense_params + self.moe_layers * self.experts_per_token * self.expert_params

    @property
    def matmul_params_per_token(self) -> float:
        """Weights each token multiplies through, excluding the input-embedding lookup and the
        LM head (charged per sequence that samples a token)."""
        emb = self.embedding_params * (1 if self.tie_word_embeddings else 2)
        return self.active_params - emb

    def attn_flops_per_pair(self, phase: Literal["prefill", "decode"]) -> float:
        """FLOPs of QK^T and AV for one (query token, cached token) pair over all layers.

        MLA decode runs in the absorbed form over the compressed latent (kv_lora + rope per head);
        MLA prefill runs the expanded heads (qk_nope + rope for scores, v_head for values)."""
        if self.is_mla:
            if phase == "decode":
                per_head = 2 * self.kv_lora_rank + self.qk_rope_head_dim
            else:
                per_head = self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim
            return 2.0 * self.num_heads * per_head * self.num_layers
        return 4.0 * self.num_heads * self.head_dim * self.num_layers

    def kv_values_per_token(self) -> float:
        """Cached values per token over all layers: K and V per KV head, or MLA's latent + rope."""
        if self.is_mla:
            return float(self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim))
        return float(2 * self.num_layers * self.num_kv_heads * self.head_dim)


PLATFORMS = ("cuda", "ascend", "other")
PLATFORM_OF_FAMILY = {"nvidia-hopper": "cuda", "nvidia-blackwell": "cuda", "ascend": "ascend"}


class EngineProfile(_NoBoolNumbers):
    """A serving engine as part of the replica type: what it adds to every iteration, what it
    overlaps, how much memory it gives the KV cache. Figures are tagged like the chip catalog's:
    `sources` per field ('*' for the rest), `fitted` (by fleetsim calibrate from the fitting split
    of fleetsim/catalog/measurements.csv), `assumed` (no published figure)."""

    name: str
    platforms: list[Literal["cuda", "ascend", "other"]] = Field(
        description="chip platforms the engine runs on")
    overhead_s: dict[Literal["cuda", "ascend", "other"], float] = Field(
        description="fixed per-step cost by platform (scheduling, sampling, host sync, one graph "
        "launch), independent of model and batch: the fit bounds it (calibrate BOUNDS) so it cannot "
        "absorb model- or batch-dependent work")
    graph_capture: bool = Field(
        True, description="the engine replays decode steps as captured graphs (CUDA graphs, torchair "
        "/ ACL graphs); False: eager, every kernel launched from the host")
    layer_launch_s: dict[Literal["graph", "eager"], float] = Field(
        default_factory=lambda: {"graph": 5e-6, "eager": 1e-4},
        description="per-layer launch cost of one step, with and without graph capture (paid per "
        "layer on each chip, so it grows with depth, not with batch)")
    request_overhead_s: float = Field(
        0.002, ge=0, le=0.1, description="per-request host cost paid once in TTFT (tokenisation, "
        "admission, first-token detokenisation and streaming); not part of any step")
    transfers: dict[str, str] = Field(
        default_factory=dict, description="fitted figure -> the transfer rule it was borrowed under "
        "(written by fleetsim calibrate where the engine's own points do not qualify: >= 5 points "
        "from >= 2 sources)")
    gemm_efficiency: float = Field(
        1.0, gt=0, le=5.0, description="multiplies the chip family's GEMM efficiency (the family "
        "fit is set by the engines with most points on it, so a far better-tuned stack, Huawei's own "
        "on Ascend, sits well above 1); the kernel refuses a product that puts a GEMM above peak")
    comm_overlap: float = Field(
        0.0, ge=0, le=1, description="share of compute time under which collectives hide "
        "(1 = two-micro-batch overlap hides communication up to the compute time)")
    kv_policy: Literal["free_fraction", "total_fraction"] = Field(
        description="free_fraction: KV = kv_fraction x (memory - weights - reserve) "
        "(TensorRT-LLM); total_fraction: KV = kv_fraction x memory - weights - reserve (vLLM, SGLang)")
    kv_fraction: float = Field(gt=0, le=1, description="kv_cache_free_gpu_mem_fraction / gpu_memory_utilization")
    activation_reserve_gb: float = Field(ge=0, description="per chip, for activations and runtime")
    moe_imbalance: float = Field(
        1.0, ge=1, description="busiest / mean expert load with expert parallelism (EPLB lowers it)")
    speedup_per_year: float = Field(
        0.0, ge=0, le=1.0, description="software maturity: iterations get this much faster per year "
        "of releases (fitted where the fitting set has the engine at several dates)")
    reference_date: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}(-\d{2})?$",
        description="release (YYYY-MM[-DD]) the profile's figures hold for; an older engine_release "
        "is slower by speedup_per_year, a newer one is not extrapolated")
    releases: dict[str, Annotated[str, Field(pattern=r"^\d{4}-\d{2}(-\d{2})?$")]] = Field(
        default_factory=dict, description="version -> release date, so a pool can pin "
        "`engine: NAME@VERSION` (or `NAME@YYYY-MM[-DD]` for any engine)")
    sources: dict[str, str]
    fitted: list[str] = Field(default_factory=list)
    assumed: list[str] = Field(default_factory=list)
    worked_example: str = Field(description="one small iteration worked out by hand (tested)")
    notes: str = ""

    @model_validator(mode="after")
    def _tags_are_fields(self) -> "EngineProfile":
        names = set(type(self).model_fields)
        for flag in ("fitted", "assumed"):
            bad = [f for f in getattr(self, flag) if f not in names]
            if bad:
                raise ValueError(f"{flag} lists unknown fields {bad}")
        if "*" not in self.sources:
            raise ValueError("sources needs a '*' entry")
        missing = [p for p in self.platforms if p not in self.overhead_s]
        if missing:
            raise ValueError(f"overhead_s needs a value for platform(s) {missing}")
        return self
