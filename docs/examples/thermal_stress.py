"""Thermal-stress comparison: SLO attainment and effective capacity as a hall's cooling worsens.

    python docs/examples/thermal_stress.py [--factors 1.0 1.2 1.4 1.6 1.8] [--duration-s 21600]

Runs scenarios/thermal-stress.yaml once per cooling factor (same seed: common random numbers)
and prints a markdown table. Effective capacity = availability x mean clock fraction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import fleetsim

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "thermal-stress.yaml"


def compare(factors: list[float], duration_s: float | None = None) -> list[dict]:
    rows = []
    for f in factors:
        overrides = [f"reliability.halls.stress.cooling_factor={f}"]
        if duration_s:
            overrides.append(f"serving.duration_s={duration_s}")
        s = fleetsim.run(fleetsim.load_scenario(SCENARIO, overrides)).summary
        rel, cls, pool = s["reliability"]["domestic"], s["classes"]["chat"], s["pools"]["domestic"]
        rows.append({
            "cooling_factor": f,
            "mean_temp_c": rel["mean_temp_c"],
            "throttled_share": rel["throttled_share"],
            "mean_clock": rel["mean_clock"],
            "crashes": rel["crashes"],
            "availability": pool["availability"],
            "effective_capacity": pool["availability"] * rel["mean_clock"],
            "ttft_p99_s": cls["ttft_p99_s"],
            "tpot_p99_s": cls["tpot_p99_s"],
            "slo_attainment": cls["slo_attainment"],
        })
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| cooling factor | mean die temp C | throttled share | mean clock | crashes | "
            "availability | effective capacity | TTFT p99 s | TPOT p99 s | SLO attainment |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['cooling_factor']:.1f} | {r['mean_temp_c']:.1f} | {r['throttled_share']:.0%} | "
            f"{r['mean_clock']:.3f} | {r['crashes']} | {r['availability']:.1%} | "
            f"{r['effective_capacity']:.1%} | {r['ttft_p99_s']:.2f} | {r['tpot_p99_s']:.3f} | "
            f"{r['slo_attainment']:.2%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 1.2, 1.4, 1.6, 1.8])
    parser.add_argument("--duration-s", type=float, default=None)
    args = parser.parse_args()
    print(markdown(compare(args.factors, args.duration_s)))
