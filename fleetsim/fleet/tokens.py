"""Token economics of a fleet: each class's input/output mix and what its tokens earn.

Demand is counted in output tokens (the capacity function's unit); a class's input tokens follow
from its workload's own length distributions: mean prompt tokens per mean output token, of which
`prefix_cache_hit_share` hit a cached prefix. Revenue is priced per token type (cache-hit input,
cache-miss input, output) when the class gives `prices`, else output tokens at
`finance.revenue_usd_per_mtok` (one price for every token, the older form).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOKEN_TYPES = ("output", "input_cache_hit", "input_cache_miss")


@dataclass(frozen=True)
class ClassTokens:
    """One class: lengths, cache share and the USD a million output tokens earn, by token type."""

    prompt_tokens_mean: float
    output_tokens_mean: float
    cache_hit_share: float
    usd_per_output_mtok: tuple[float, float, float]  # (output, input hit, input miss) per output Mtok

    @property
    def input_per_output(self) -> float:
        return self.prompt_tokens_mean / self.output_tokens_mean


def _mean_lengths(wl, base_dir, field: str) -> tuple[float, float]:
    """Mean prompt and output tokens per request, from the distributions or the trace."""
    from fleetsim.serving.workload import compile_workload, token_distribution

    if wl.prompt_tokens is not None and wl.output_tokens is not None:
        return (float(token_distribution(wl.prompt_tokens, base_dir, f"{field}.prompt_tokens").mean),
                float(token_distribution(wl.output_tokens, base_dir, f"{field}.output_tokens").mean))
    w = compile_workload(wl, base_dir=base_dir, field_prefix=field)
    trace = w.arrival

    def mean(col, dist) -> float:
        return float(np.mean(col)) if col is not None else float(dist.mean)

    return (mean(getattr(trace, "prompt_tokens", None), w.prompt_tokens),
            mean(getattr(trace, "output_tokens", None), w.output_tokens))


def class_tokens(scenario) -> dict[str, ClassTokens]:
    """Per demand class of `scenario.fleet`, its token mix and prices (see the module docstring)."""
    f, sv = scenario.fleet, scenario.serving
    out = {}
    for c, d in f.demand.items():
        wl = sv.workloads[c]
        prompt, output = _mean_lengths(wl, scenario.base_dir, f"serving.workloads.{c}")
        output = max(output, 1e-9)
        hit = float(wl.prefix_cache_hit_share)
        inp = prompt / output
        if d.prices is not None:
            p = d.prices
            p_hit = p.input_cache_hit_usd_per_mtok if p.input_cache_hit_usd_per_mtok is not None \
                else p.input_cache_miss_usd_per_mtok
            usd = (p.output_usd_per_mtok, inp * hit * p_hit, inp * (1 - hit) * p.input_cache_miss_usd_per_mtok)
        else:
            usd = (f.finance.revenue_usd_per_mtok or 0.0, 0.0, 0.0)
        out[c] = ClassTokens(prompt, output, hit, usd)
    return out


def base_tokens_per_s(demand_cfg, tokens: ClassTokens) -> float:
    """A class's daily-mean output tokens/s at the start date, from tokens or requests per second."""
    if demand_cfg.tokens_per_s is not None:
        return float(demand_cfg.tokens_per_s)
    return float(demand_cfg.requests_per_s) * tokens.output_tokens_mean


def priced(scenario) -> bool:
    """Whether any revenue is counted (a class price list or the finance price)."""
    f = scenario.fleet
    return f.finance.revenue_usd_per_mtok is not None or any(d.prices is not None for d in f.demand.values())


def per_type_matrix(tokens: dict[str, ClassTokens], classes: list[str]) -> np.ndarray:
    """class x token type: USD per output Mtok served (the daily step multiplies by served Mtok)."""
    return np.array([tokens[c].usd_per_output_mtok for c in classes], dtype=float)
