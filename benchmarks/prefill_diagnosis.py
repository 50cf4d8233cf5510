"""Why batch-1 prefill is too slow (issue 21, round 12 diagnosis; docs/validation.md, "Sixth
holdout"): prints, for every `prefill` row of the sixth holdout (or the development set with
--dev), the kernel's step term by term against the published TTFT and the ideal roofline
(matmul + causal attention FLOPs at 100% of the replica's peak), then a PROTOTYPE of the proposed
structural change (an Ampere GEMM ceiling of its own, a100/a800 mfu_scale x K) and of the
harness warm-up reading of the tt-inference-server rows, scored per partition. The prototype
changes nothing in fleetsim: it copies the chip catalog in memory.

    python benchmarks/prefill_diagnosis.py [--dev] [--smoke]
"""

from _smoke import SMOKE  # noqa: I001 (first: takes --smoke out of sys.argv)
import re
import sys
from dataclasses import replace

import numpy as np

from fleetsim.catalog import load_chips, load_engines, load_models
from fleetsim.kernel import measurements as M

CHIPS, MODELS, ENGINES = load_chips(), load_models(), load_engines()
AMPERE = ("a100", "a800")
K_PROTO = 1.3  # prototype only: an Ampere mfu_scale 1.3 x the shared Hopper fit, NOT a fit


def terms(m: M.Measurement, chips=CHIPS) -> dict:
    """The prefill step of one row, term by term (ms, before the release factor), as
    measurements.predict runs it: one step of the whole prompt, plus the per-request cost."""
    k = M._kernel(m, chips, MODELS, ENGINES)
    i, n, f = m.input_tokens, m.concurrency or 1, m.cached_fraction
    new = (1 - f) * i
    p, att = n * new, n * (new * f * i + 0.5 * new * new)
    d_eff = k._ld[min(int(p * k._dense_rows), k._nd)]
    out = {"dense": k._f_dense * p * k._inv_peak / d_eff, "dense_eff": d_eff, "exp": 0.0, "exp_eff": 0.0,
           "act": k._act * p, "attn": k._a_pf * att * k._inv_peak, "comm": k._comm1_p * p + k._comm0,
           "overhead": k._overhead, "request": k.request_overhead_s, "release_x": k.software_factor}
    if k._n_exp:
        out["exp_eff"] = k._le[min(int(p * k._rows_per_expert), k._ne)]
        out["exp"] = p * k._f_exp * k._inv_peak / out["exp_eff"] * k._imbalance
    out["kernel"] = k.step_time_s(p, 0, 0, att) + (k.request_overhead_s if "TTFT" in m.metric_definition else 0)
    out["ideal"], out["published"] = M.prefill_roofline_s(m, chips, MODELS, ENGINES)  # the load-time check's
    return out


def breakdown(points) -> None:
    print("| point | chip | tp | prompt | published ms | kernel ms | ideal ms at peak | published / kernel "
          "share of peak | dense ms (eff) | experts ms (eff) | attention ms | comm ms | fixed ms | release x |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|")
    for m in points:
        t = terms(m)
        print(f"| {m.key} | {m.chip} | {m.tp} | {m.input_tokens:.0f} | {t['published'] * 1e3:.1f} | "
              f"{t['kernel'] * 1e3:.1f} | {t['ideal'] * 1e3:.1f} | {t['ideal'] / t['published']:.0%} / "
              f"{t['ideal'] / t['kernel']:.0%} | {t['dense'] * 1e3:.1f} ({t['dense_eff']:.2f}) | "
              f"{t['exp'] * 1e3:.1f} ({t['exp_eff']:.3f}) | {t['attn'] * 1e3:.1f} | {t['comm'] * 1e3:.1f} | "
              f"{(t['overhead'] + t['request']) * 1e3:.1f} | {t['release_x']:.2f} |")


def ampere_chips(k: float) -> dict:
    out = dict(CHIPS)
    for name in AMPERE:
        c = CHIPS[name]
        out[name] = c.model_copy(update={"efficiency": c.efficiency.model_copy(
            update={"mfu_scale": c.efficiency.mfu_scale * k})})
    return out


def scored(points, chips) -> str:
    rows = M.compare(points, chips=chips, models=MODELS, engines=ENGINES, refused_fail=True)
    part = M.partitions(rows, "fit")
    cells = [f"all {M.summary(rows)['median_abs']:.1%}"]
    for key in ("metric=prefill", "metric=offline", "metric=tpot", "metric=concurrency"):
        if key in part:
            cells.append(f"{key.split('=')[1]} {part[key]['median_abs']:.1%} ({part[key]['points']})")
    amp = [r for r in rows if r["chip"] in AMPERE]
    cells.append(f"A100/A800 rows {M.summary(amp)['median_abs']:.1%} ({len(amp)})")
    return ", ".join(cells)


def warm_up(points, chips) -> list[float]:
    """tt-inference-server rows read as a mean over n requests of which the first is a full
    prefix-cache hit (vLLM benchmark_serving re-sends its initial test prompt): errors."""
    errs = []
    for m in points:
        k = M._kernel(m, chips, MODELS, ENGINES)
        i = m.input_tokens
        n = int(re.search(r"(\d+) requests", m.setup).group(1))
        cold = k.step_time_s(i, 0, 0, 0.5 * i * i) + k.request_overhead_s
        warm = k.step_time_s(1, 0, 0, i) + k.request_overhead_s
        errs.append(i / (((n - 1) * cold + warm) / n) / m.published - 1)
    return errs


def main() -> None:
    dev = M.development_set()
    h6 = tuple(replace(m, split="fit") for m in M.load_holdout6())  # scored once; in development_set now
    pts = dev if "--dev" in sys.argv else h6
    pre = [m for m in pts if m.metric == "prefill"]
    if SMOKE:
        breakdown(pre[:1])
        return
    print("Batch-1 prefill rows, term by term (python benchmarks/prefill_diagnosis.py"
          f"{' --dev' if '--dev' in sys.argv else ''}):\n")
    breakdown(pre)
    print("\nPrototype (not a fit): Ampere mfu_scale x K, median abs. error per metric partition")
    for k in (1.0, K_PROTO):
        ch = CHIPS if k == 1.0 else ampere_chips(k)
        print(f"  K={k:g}  dev: {scored(dev, ch)}")
        print(f"  K={k:g}  holdout 6: {scored(h6, ch)}")
    tt = [m for m in h6 if m.metric == "prefill" and m.source == "tt-inference-server-gpu-ref"]
    for k in (1.0, K_PROTO):
        e = warm_up(tt, CHIPS if k == 1.0 else ampere_chips(k))
        print(f"  tt-inference-server TTFT rows read with the harness warm-up (first of n requests cached), "
              f"K={k:g}: median abs. error {np.median(np.abs(e)):.1%} of {len(e)}, range {min(e):+.0%} to {max(e):+.0%}")
    over = [m.key for m in tt if M.physical_refusal(m, CHIPS, MODELS, ENGINES)]  # refused by compare()
    print(f"  tt-inference-server rows whose published TTFT is shorter than the cold prefill's FLOPs at 100% "
          f"of the A100's peak allow: {len(over)} of {len(tt)} ({', '.join(over)})")


if __name__ == "__main__":
    main()
