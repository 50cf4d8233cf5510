"""Two published comparisons reproduced (issue 22; docs/validation.md "Prefill/decode and prefix
caching against published runs"): the published figures, setups, sources and tolerances are
read from tests/data/published_pd_prefix.yaml (written before the first run).

1. DistServe's 2P1D experiment: goodput per GPU of 2 prefill + 1 decode A100 instances against
   a colocated A100 (a 13B model, 512 in / 64 out, P90 TTFT 0.4 s, P90 TPOT 0.04 s), through the
   capacity function's goodput search (its 95% intervals), plus each role's own rate
   (serving.capacity.role_capacities) against the blog's 5.6 and 10 req/s.
2. vLLM #1983's prefix cache: requests/s one A100 serves at 25 QPS offered (200-token shared
   prefix + 30 tokens, 50 out), with `prefix_cache_hit_share` 200/230 against 0, on the same
   arrivals (common random numbers), in independent windows for an interval.

    python benchmarks/validate_pd_prefix.py            # prints both rows
    python benchmarks/validate_pd_prefix.py --write    # ... and keeps them in docs/pd_prefix_runs.json,
                                                       # rewriting docs/validation.md's block validation-pd
    python benchmarks/validate_pd_prefix.py --smoke    # shorter windows, looser search: seconds (tests/test_benchmarks.py)

tests/test_docs.py checks that the block is what the runs file renders and reruns the prefix row's first
pair of windows against the file (the whole run takes 80-110 CPU s, too long for a test).
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

from _smoke import SMOKE, pick

import numpy as np
import yaml

import fleetsim
from fleetsim.scenario.model import Scenario
from fleetsim.stats import t_interval

ROOT = Path(__file__).resolve().parents[1]
DATA = yaml.safe_load((ROOT / "tests/data/published_pd_prefix.yaml").read_text())

# Llama-2-13B's config.json (meta-llama/Llama-2-13b-hf): the "13B LLM" of both setups
LLAMA2_13B = {
    "name": "Llama-2-13B", "family": "llama2",
    "source_url": "https://huggingface.co/meta-llama/Llama-2-13b-hf/blob/main/config.json",
    "num_layers": 40, "hidden_size": 5120, "num_heads": 40, "num_kv_heads": 40, "head_dim": 128,
    "intermediate_size": 13824, "vocab_size": 32000, "tie_word_embeddings": False,
    "max_context_tokens": 4096, "total_params_b": 13.0, "active_params_b": 13.0,
}
GOODPUT = pick({"precision": 0.05}, {"precision": 0.25, "min_windows": 3, "max_windows": 8,
                                     "requests_per_window": 150, "duration_s": 60, "warmup_s": 10})


def distserve_scenario() -> Scenario:
    # today's vLLM profile (the profile has no fitted speed-up per year to date it back)
    pool = {"chip": "a100", "model": "llama-2-13b", "tp": 1, "engine": "vllm"}
    return Scenario.model_validate({
        "name": "distserve_2p1d", "seed": 5, "catalog": {"models": {"llama-2-13b": LLAMA2_13B}},
        "serving": {
            "duration_s": 120, "warmup_s": 20, "goodput": GOODPUT,
            "workloads": {"synthetic": {
                "model": "llama-2-13b", "arrival": {"kind": "poisson", "rate_per_s": 1.0},
                "prompt_tokens": {"kind": "fixed", "value": 512},
                "output_tokens": {"kind": "fixed", "value": 64},
                "slo": {"ttft_s": 0.4, "tpot_s": 0.04, "percentile": 90}}},
            "pools": {
                "colocated": pool,
                # one node: NVLink between the A100s (300 GB/s each way)
                "prefill": pool | {"role": "prefill", "handoff": {
                    "decode_pool": "decode", "link_gbps": 300, "prefill_per_unit": 2, "decode_per_unit": 1}},
                "decode": pool | {"role": "decode"}},
            "router": {"kind": "jsq"}}})


def distserve_row() -> dict:
    from fleetsim.serving.capacity import capacity, role_capacities

    s = distserve_scenario()
    colo = capacity(s, "colocated", "synthetic")
    unit = capacity(s, "prefill", "synthetic")  # one 2P1D unit
    pre, dec = role_capacities(s, "prefill", "synthetic")
    per_gpu = unit.goodput_rps / 3.0
    ratio = per_gpu / colo.goodput_rps
    # interval of the ratio from the two independent searches' intervals (delta method on logs)
    def half_log(c):
        lo, hi = c.goodput_ci95_rps
        return (np.log(hi) - np.log(lo)) / 2.0 if lo > 0 else np.inf
    h = float(np.hypot(half_log(unit), half_log(colo)))
    return {"colocated_rps_per_gpu": colo.goodput_rps, "colocated_ci": colo.goodput_ci95_rps,
            "pd_rps_per_gpu": per_gpu, "pd_ci": tuple(x / 3.0 for x in unit.goodput_ci95_rps),
            "prefill_role_rps": pre.goodput_rps, "decode_role_rps": dec.goodput_rps,
            "ratio": ratio, "ratio_ci": (ratio * np.exp(-h), ratio * np.exp(h))}


def prefix_scenario(hit_share: float, duration_s: float) -> Scenario:
    return Scenario.model_validate({
        "name": "vllm_prefix_cache", "seed": 7, "catalog": {"models": {"llama-2-13b": LLAMA2_13B}},
        "serving": {
            "duration_s": duration_s, "warmup_s": 20,
            "workloads": {"shared_prefix": {
                "model": "llama-2-13b", "arrival": {"kind": "poisson", "rate_per_s": 25.0},
                "prompt_tokens": {"kind": "fixed", "value": 230},
                "output_tokens": {"kind": "fixed", "value": 50},
                "prefix_cache_hit_share": hit_share}},
            "pools": {"a100": {"chip": "a100", "model": "llama-2-13b", "tp": 1, "engine": "vllm"}},
            "router": {"kind": "jsq"}}})


def served_rps(res) -> float:
    """Requests completed per second after the warm-up (the replica is saturated at 25 QPS)."""
    sv = res.scenario.serving
    f = res.requests["finish_s"].to_numpy()
    return float(np.count_nonzero((f >= sv.warmup_s) & (f < sv.duration_s))) / (sv.duration_s - sv.warmup_s)


def prefix_row() -> dict:
    reps = pick(6, 2)
    dur = pick(300.0, 60.0)
    base, cached = [], []
    for w in range(reps):  # window w: the same arrivals with and without the cache
        b, c = prefix_window(w, dur)
        base.append(b)
        cached.append(c)
    base, cached = np.array(base), np.array(cached)
    ratio = cached / base
    m, lo, hi = t_interval(ratio)
    return {"base_rps": float(base.mean()), "cached_rps": float(cached.mean()), "ratio": m,
            "ratio_ci": (lo, hi), "windows": reps, "duration_s": dur,
            "base_rps_per_window": base.tolist(), "cached_rps_per_window": cached.tolist()}


RUNS = ROOT / "docs" / "pd_prefix_runs.json"


def prefix_window(w: int, duration_s: float) -> tuple[float, float]:
    """Window w of the prefix row: requests/s served without and with the cache (same arrivals)."""
    hit = 200.0 / 230.0
    sb = prefix_scenario(0.0, duration_s).model_copy(update={"seed": 7 + w})
    sc = prefix_scenario(hit, duration_s).model_copy(update={"seed": 7 + w})
    return served_rps(fleetsim.run(sb)), served_rps(fleetsim.run(sc))


def main() -> int:
    """Both rows; the number of rows outside their tolerance (the exit code: a test runs this)."""
    d = DATA["distserve_2p1d"]
    r = distserve_row()
    lo, hi = d["published"] * (1 - d["tolerance_rel"]), d["published"] * (1 + d["tolerance_rel"])
    print(f"DistServe 2P1D (A100, 13B, 512/64, P90 TTFT 0.4 s / TPOT 0.04 s):")
    print(f"  colocated {r['colocated_rps_per_gpu']:.2f} req/s per GPU [{r['colocated_ci'][0]:.2f}, {r['colocated_ci'][1]:.2f}] (published 1.6)")
    print(f"  2P1D      {r['pd_rps_per_gpu']:.2f} req/s per GPU [{r['pd_ci'][0]:.2f}, {r['pd_ci'][1]:.2f}] (published 3.3)")
    print(f"  roles: prefill {r['prefill_role_rps']:.2f} req/s per instance (published ~5.6), "
          f"decode {r['decode_role_rps']:.2f} (published ~10)")
    ok = lo <= r["ratio"] <= hi
    outside = int(not ok)
    print(f"  ratio {r['ratio']:.2f} [{r['ratio_ci'][0]:.2f}, {r['ratio_ci'][1]:.2f}] against {d['published']} "
          f"(tolerance {d['tolerance_rel']:.0%}: [{lo:.2f}, {hi:.2f}]): {'within' if ok else 'OUTSIDE'}")
    p = DATA["vllm_prefix_cache"]
    q = prefix_row()
    lo, hi = p["published"] * (1 - p["tolerance_rel"]), p["published"] * (1 + p["tolerance_rel"])
    ok = lo <= q["ratio"] <= hi
    print(f"vLLM #1983 prefix cache (A100, 13B, 200 shared + 30 in / 50 out, 25 QPS offered):")
    print(f"  served {q['cached_rps']:.2f} req/s with the cache against {q['base_rps']:.2f} without "
          f"(published 19.81 against 14.08), {q['windows']} paired windows")
    print(f"  ratio {q['ratio']:.3f} [{q['ratio_ci'][0]:.3f}, {q['ratio_ci'][1]:.3f}] against {p['published']} "
          f"(tolerance {p['tolerance_rel']:.0%}: [{lo:.2f}, {hi:.2f}]): {'within' if ok else 'OUTSIDE'}")
    if "--write" in sys.argv and not SMOKE:
        RUNS.write_text(json.dumps({"date": date.today().isoformat(), "distserve": r, "prefix": q},
                                   indent=1, sort_keys=True) + "\n")
        sys.path.insert(0, str(Path(__file__).parent))
        import doc_tables

        doc_tables.write({"validation-pd"})
        print(f"wrote {RUNS.relative_to(ROOT)}")
    return outside + (not ok)


if __name__ == "__main__":
    sys.exit(main())
