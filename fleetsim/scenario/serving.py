"""Schema of the serving window: workloads, pools of replicas, the router."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fleetsim.scenario.base import StrictModel
from fleetsim.scenario.workload import Arrival, TokenDist

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class SLOConfig(StrictModel):
    """A request meets its SLO when it completes with TTFT <= ttft_s AND TPOT <= tpot_s; the class
    meets it when at least `percentile` % of its judged requests do (docs/serving.md, Metrics).
    This joint, per-request test is stricter than 'p99 TTFT <= 2 s and p99 TPOT <= 0.1 s' taken
    separately, and rejected requests count as misses."""

    ttft_s: PositiveFloat = 2.0
    tpot_s: PositiveFloat = 0.2
    percentile: Annotated[float, Field(gt=0, le=100)] = 99.0


class WorkloadConfig(StrictModel):
    model: str
    arrival: Arrival
    prompt_tokens: TokenDist | None = None
    output_tokens: TokenDist | None = None
    slo: SLOConfig = SLOConfig()

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
    max_batch: Annotated[int, Field(ge=1, le=4096)] = 128
    max_tokens_per_iter: Annotated[int, Field(ge=1)] = 8192
    chunked_prefill: bool = False


class PoolConfig(StrictModel):
    chip: str
    model: str
    tp: Annotated[int, Field(ge=1, le=64)] = 1
    replicas: Annotated[int, Field(ge=0)] = 1
    precision: Literal["bf16", "fp8", "int8"] = "bf16"
    batching: ContinuousBatching = ContinuousBatching()
    queue_limit: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Waiting requests a replica accepts before the router rejects (None: unbounded)"
    )
    hall: str = "default"


class RouterConfig(StrictModel):
    """How requests pick a replica among the up replicas serving their model.

    round_robin, jsq (fewest requests), power_of_two (less loaded of two random replicas) and
    least_tokens (fewest outstanding prompt + output tokens) send each request to a replica's
    own queue at arrival; central holds requests in one queue per model and dispatches a request
    when a replica has a free batch slot (with max_batch 1 a pool is then an M/G/c queue).
    """

    kind: Literal["round_robin", "jsq", "power_of_two", "least_tokens", "central"] = "power_of_two"


class GoodputConfig(StrictModel):
    """Search each (pool, workload) pair for the highest arrival rate per replica meeting the SLO."""

    enabled: bool = False
    cell_replicas: Annotated[int, Field(ge=1, le=64)] = 4
    duration_s: PositiveFloat = 600.0
    warmup_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 60.0
    rel_tol: Annotated[float, Field(gt=0, lt=1)] = 0.02


class ServingConfig(StrictModel):
    duration_s: PositiveFloat = 600.0
    warmup_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 60.0
    start_hour: Annotated[float, Field(ge=0, lt=24)] = Field(
        default=14.0, description="Hour of day at t=0: sets the data halls' ambient temperature cycle"
    )
    workloads: dict[str, WorkloadConfig]
    pools: dict[str, PoolConfig]
    router: RouterConfig = RouterConfig()
    goodput: GoodputConfig = GoodputConfig()

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
        for wl in self.workloads.values():  # one clock of day for traffic and hall heat
            if wl.arrival.kind == "diurnal" and wl.arrival.start_hour is None:
                wl.arrival.start_hour = self.start_hour
        if not self.workloads:
            raise ValueError("at least one workload is required")
        if not self.pools:
            raise ValueError("at least one pool is required")
        return self
