"""Schema of the serving window: workloads, pools of replicas, the router."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationInfo, field_validator, model_serializer, model_validator

from fleetsim.scenario.base import StrictModel
from fleetsim.scenario.workload import Arrival, TokenDist

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SLOConfig(StrictModel):
    """A request meets its SLO when it completes with TTFT <= ttft_s AND TPOT <= tpot_s; the class
    meets it when at least `percentile` % of its judged requests do (docs/serving.md, Metrics).
    This joint, per-request test is stricter than 'p99 TTFT <= 2 s and p99 TPOT <= 0.1 s' taken
    separately, and rejected requests count as misses."""

    ttft_s: PositiveFloat = Field(2.0, description="time to first token target, seconds")
    tpot_s: PositiveFloat = Field(0.2, description="time per output token target, seconds")
    percentile: Annotated[float, Field(gt=0, le=100)] = Field(
        99.0, description="share of requests (%) that must meet both targets")


class WorkloadConfig(StrictModel):
    """A class of requests: which model serves it, when requests arrive, how long they are."""

    model: str = Field(description="model name from the catalog (fleetsim models)")
    arrival: Arrival = Field(description="arrival process, by kind")
    prompt_tokens: TokenDist | None = Field(
        None, description="prompt length distribution (not needed when a trace gives lengths)")
    output_tokens: TokenDist | None = Field(
        None, description="output length distribution (not needed when a trace gives lengths)")
    slo: SLOConfig = Field(SLOConfig(), description="latency targets")
    prefix_cache_hit_share: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.0, description="share of prompt tokens that hit a cached prefix: priced as cache-hit "
        "input in a fleet's token economics; prefill starts past the cached prefix, whose KV is held")

    @model_validator(mode="after")
    def _tokens_given(self) -> "WorkloadConfig":
        if self.arrival.kind != "trace" and (self.prompt_tokens is None or self.output_tokens is None):
            raise ValueError(
                "prompt_tokens and output_tokens are required unless arrival.kind is 'trace' "
                "(a trace carries its own token counts)"
            )
        return self


class ContinuousBatching(StrictModel):
    """Iteration-level batching (Orca/vLLM). max_batch 1 makes a replica a plain FCFS server."""

    kind: Literal["continuous"] = "continuous"
    max_batch: Annotated[int, Field(ge=1, le=4096)] = Field(
        128, description="most sequences in a batch (vLLM max_num_seqs)")
    max_tokens_per_iter: Annotated[int, Field(ge=1)] = Field(
        8192, description="token budget of one iteration: prompt tokens plus one per decoder")
    chunked_prefill: bool = Field(
        False, description="split long prompts into chunks that fill the token budget")


class SpeculativeConfig(StrictModel):
    """Speculative decoding (MTP, EAGLE): each step verifies 1 + draft_tokens per sequence and
    keeps tokens_per_step of them on average (the acceptance length)."""

    draft_tokens: Annotated[int, Field(ge=1, le=16)] = Field(description="draft tokens per step")
    tokens_per_step: Annotated[float, Field(ge=1, allow_inf_nan=False)] = Field(
        description="mean tokens kept per verify step (1 + accepted drafts), <= draft_tokens + 1")


#: KV link presets (fleetsim/catalog/links.yaml, with sources): name -> {gbps, latency_s, ...}
LINK_PRESETS: dict[str, dict] = yaml.safe_load(
    resources.files("fleetsim").joinpath("catalog/links.yaml").read_text(encoding="utf-8"))["links"]
LinkPreset = Literal[tuple(LINK_PRESETS)]  # type: ignore[valid-type]


class KVHandoff(StrictModel):
    """Where a prefill pool sends each request's KV cache, and the link it goes over
    (fleetsim.serving.disagg): a preset (`link`) or figures by hand."""

    decode_pool: str = Field(description="the `role: decode` pool that decodes these requests")
    link: LinkPreset | None = Field(
        None, description="KV link preset from fleetsim/catalog/links.yaml (sourced line rates, "
        "one direction): " + "; ".join(f"{k}: {v['description']}, {v['gbps']:g} GB/s, "
                                       f"{v['latency_s']:g} s" for k, v in LINK_PRESETS.items())
        + ". It sets link_gbps and link_latency_s; a figure also given by hand must equal it")
    link_gbps: PositiveFloat | None = Field(
        None, description="KV transfer bandwidth per request, GB/s (NVLink inside a node: hundreds; "
        "RDMA across nodes: 25-50 per 200-400 Gb/s NIC); required unless `link` is given")
    link_latency_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="fixed latency of one transfer, seconds (None: the preset's, else 0)")
    prefill_per_unit: Annotated[int, Field(ge=1, le=64)] = Field(
        1, description="capacity function (`fleetsim goodput`): prefill instances in one unit of "
        "this prefill/decode type (its goodput is per unit); a fleet measures each role per "
        "instance and buys the roles separately, at the ratio its planner chooses")
    decode_per_unit: Annotated[int, Field(ge=1, le=64)] = Field(
        1, description="capacity function: decode instances in one unit")

    @model_validator(mode="after")
    def _link_figures(self) -> "KVHandoff":
        """`link` sets link_gbps and link_latency_s from its preset; a figure also given by hand
        must equal the preset's. Without `link`, link_gbps is required and link_latency_s is 0
        unless given."""
        # resolved figures are written past validation and not marked as set: a dump for --set
        # keeps only what the file gave
        names = ", ".join(LINK_PRESETS)
        if self.link is None:
            if self.link_gbps is None:
                raise ValueError(f"give link_gbps (GB/s) or a link preset ({names})")
            if self.link_latency_s is None:
                self.__dict__["link_latency_s"] = 0.0
            return self
        p = LINK_PRESETS[self.link]
        for field, key in (("link_gbps", "gbps"), ("link_latency_s", "latency_s")):
            given = getattr(self, field)
            if given is not None and given != float(p[key]):
                raise ValueError(f"link '{self.link}' sets {field} {p[key]:g}, but {field} {given:g} is "
                                 f"also given: drop one (presets: {names})")
            self.__dict__[field] = float(p[key])
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """No `link: null` in dumps: scenarios without a preset dump as before."""
        out = handler(self)
        if isinstance(out, dict) and out.get("link", 0) is None:
            out.pop("link")
        return out


class PoolConfig(StrictModel):
    """Identical replicas: one model on `tp` chips of one kind each, with a batching policy."""

    chip: str = Field(description="chip name from the catalog (fleetsim chips)")
    model: str = Field(description="model name from the catalog (fleetsim models)")
    tp: Annotated[int, Field(ge=1, le=64)] = Field(
        1, description="tensor-parallel degree: chips per replica (must shard the model's heads)")
    replicas: Annotated[int, Field(ge=0)] = Field(1, description="number of replicas in the pool")
    precision: Literal["bf16", "fp8", "int8", "fp4"] = Field(
        "bf16", description="weight precision (the chip must publish a peak for it)")
    kv_precision: Literal["bf16", "fp8", "int8"] = Field(
        "bf16", description="KV-cache precision (the chip must publish a peak for it)")
    engine: Annotated[str, Field(pattern=r"^(trtllm|vllm|sglang|vllm-ascend|mindie|cloudmatrix-infer|deepseek)"
                                         r"(@[A-Za-z0-9._-]+)?$")] | None = Field(
        None, description="serving engine profile (fleetsim/catalog/engines.yaml): trtllm, vllm, "
        "sglang, vllm-ascend, mindie, cloudmatrix-infer or deepseek, optionally pinned to a release "
        "as NAME@VERSION (the profile's releases table) or NAME@YYYY-MM[-DD]; None: vllm, or "
        "vllm-ascend on Ascend chips. Unpinned: the profile as fitted, noted in the kernel assumptions")
    band: Literal["low", "mid", "high"] | None = Field(
        None, description="assumed efficiency band for chips without serving measurements "
        "(None: mid); refused on measured chips")
    speculative: SpeculativeConfig | None = Field(None, description="speculative decoding")
    engine_release: Annotated[str, Field(pattern=r"^\d{4}-\d{2}(-\d{2})?$")] | None = Field(
        None, description="engine software release YYYY-MM[-DD]; older than the engine profile's "
        "reference_date is slower by its fitted speedup_per_year (None: the reference, today's "
        "software)")
    attention: Literal["tp", "dp"] | None = Field(
        None, description="attention layout over the tp chips: tp (heads sharded, all-reduces) or dp "
        "(each chip runs all heads for its own sequences and holds its own copy of the attention "
        "weights; MoE only); None: dp for MLA MoE models (DeepSeek), tp otherwise")
    expert_parallel: Annotated[int, Field(ge=1, le=64)] | None = Field(
        None, description="expert-parallel degree, a divisor of tp: 1 (experts sharded "
        "tensor-parallel), tp (one expert group per chip) or between (groups of tp / ep chips share "
        "an expert group); all-to-all only with dp attention and ep = tp; None: tp for MoE models "
        "on tp > 1")
    memory_fraction: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="share of memory the engine takes (gpu_memory_utilization, "
        "--mem-fraction-static, kv_cache_free_gpu_mem_fraction under its own policy); None: the "
        "engine's default (engines.yaml kv_fraction)")
    pipeline_stages: Annotated[int, Field(ge=1, le=64)] | None = Field(
        None, description="pipeline stages the replica's tp chips are split into (tp / "
        "pipeline_stages chips a stage, tensor parallel within it; vLLM/TensorRT-LLM "
        "--pipeline-parallel-size); None: one stage")
    graph_capture: bool | None = Field(
        None, description="replay decode steps as captured graphs (CUDA graphs, ACL graphs); false: "
        "eager (vLLM --enforce-eager), every layer's kernels launched from the host; None: the "
        "engine's default")
    batching: ContinuousBatching = Field(ContinuousBatching(), description="batching policy")
    queue_limit: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Waiting requests a replica accepts before the router rejects (None: unbounded)"
    )
    hall: str = Field("default", description="data hall (reliability.halls) the pool sits in")
    role: Literal["both", "prefill", "decode"] = Field(
        "both", description="both: prefill and decode here; prefill: prompts only, the KV cache "
        "then goes to `handoff.decode_pool`; decode: receives prefilled requests")
    handoff: KVHandoff | None = Field(None, description="prefill pools: the decode pool and the KV link")

    @model_validator(mode="after")
    def _role_handoff(self) -> "PoolConfig":
        if self.role == "prefill" and self.handoff is None:
            raise ValueError("a role: prefill pool needs handoff: {decode_pool, link_gbps} or {decode_pool, link}")
        if self.role != "prefill" and self.handoff is not None:
            raise ValueError("handoff applies to role: prefill pools only")
        return self


class RouterConfig(StrictModel):
    """How requests pick a replica among the up replicas serving their model.

    round_robin, jsq (fewest requests), power_of_two (less loaded of two random replicas) and
    least_tokens (fewest outstanding prompt + output tokens) send each request to a replica's
    own queue at arrival; central holds requests in one queue per model and dispatches a request
    when a replica has a free batch slot (with max_batch 1 a pool is then an M/G/c queue).
    """

    kind: Literal["round_robin", "jsq", "power_of_two", "least_tokens", "central"] = Field(
        "power_of_two", description="routing policy")


class GoodputConfig(StrictModel):
    """Search each (pool, workload) pair for the highest arrival rate per replica meeting the SLO,
    to a stated precision: independent windows, a monotone fit, a 95% interval on the rate."""

    enabled: bool = Field(False, description="run the search as part of `fleetsim run`")
    cell_replicas: Annotated[int, Field(ge=1, le=64)] = Field(
        4, description="identical replicas simulated per evaluation")
    duration_s: PositiveFloat = Field(600.0, description="simulated seconds per evaluation")
    warmup_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        60.0, description="seconds excluded from each evaluation's metrics")
    precision: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.03, description="stop when the 95% interval's half-width is at most this share of the rate")
    requests_per_window: Annotated[int, Field(ge=0, le=10_000_000)] = Field(
        2000, description="lengthen a window past duration_s until it expects this many measured requests")
    min_windows: Annotated[int, Field(ge=3, le=10_000)] = Field(
        20, description="fewest windows in the final fit")
    max_windows: Annotated[int, Field(ge=5, le=100_000)] = Field(
        300, description="budget: most windows simulated per (pool, workload)")

    @model_validator(mode="after")
    def _budget_holds_the_fit(self) -> "GoodputConfig":
        if self.min_windows > self.max_windows:
            raise ValueError(f"min_windows ({self.min_windows}) must not exceed max_windows "
                             f"({self.max_windows}): the budget must hold the fit")
        return self


class ServingConfig(StrictModel):
    """One serving window: workload classes sent to pools of replicas through a router."""

    duration_s: PositiveFloat = Field(600.0, description="simulated seconds of the window")
    warmup_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        60.0, description="requests arriving before this are left out of the metrics")
    start_hour: Annotated[float, Field(ge=0, lt=24)] = Field(
        default=14.0, description="Hour of day at t=0: one clock for the halls' ambient temperature "
        "cycle and diurnal arrivals (unless an arrival sets its own start_hour)"
    )
    workloads: dict[str, WorkloadConfig] = Field(description="workload classes, by name")
    pools: dict[str, PoolConfig] = Field(description="pools of identical replicas, by name")
    router: RouterConfig = Field(RouterConfig(), description="how requests pick a replica")
    goodput: GoodputConfig = Field(GoodputConfig(), description="goodput-at-SLO search")

    @field_validator("warmup_s")
    @classmethod
    def _warmup_inside(cls, warmup_s: float, info: ValidationInfo) -> float:
        """Warm-up must end before the window does."""
        duration_s = info.data.get("duration_s")
        if duration_s is not None and warmup_s >= duration_s:
            raise ValueError(f"warmup_s ({warmup_s:g}) must be shorter than duration_s ({duration_s:g})")
        return warmup_s

    @model_validator(mode="after")
    def _consistent(self) -> "ServingConfig":
        if not self.workloads:
            raise ValueError("at least one workload is required")
        if not self.pools:
            raise ValueError("at least one pool is required")
        return self
