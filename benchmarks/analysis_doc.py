"""docs/analysis.md, generated from runs: the story's questions answered by the reference case.

    python benchmarks/analysis_doc.py --write     # run everything (tens of CPU minutes), write
                                                  # docs/analysis_runs.json and docs/analysis.md
    python benchmarks/analysis_doc.py --render    # rewrite docs/analysis.md from the JSON alone
    python benchmarks/analysis_doc.py --check     # exit 1 if docs/analysis.md differs from the JSON
    python benchmarks/analysis_doc.py --write --resume   # rerun only the stages missing from
                                                  # outputs/analysis_doc/ (delete a stage's file to rerun it)

Stages (7 Dec 2026, loaded 2-core machine, warm capacity cache): the criteria's breaking points
(idle-attainment probes, no windows) and heat and crash thresholds (8 fleet runs of 8 futures,
two new goodput searches) 22 s CPU, 33 s wall; price and the ban table about a minute; the
scenarios and sensitivity stages most of the rest.

The runs are too costly for the test suite, so they are kept in docs/analysis_runs.json (every
future's figures, not only the means), and the page is rendered from that file alone.
tests/test_analysis_doc.py checks (a) that the page is what this script renders from the JSON,
(b) that the scenario comments and the backtest state what the JSON holds, and (c, slow) that
future 0 of every shipped scenario rerun today gives the JSON's future-0 figures, so the JSON
cannot silently go stale when the code changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _smoke, also when a test imports this file
from _smoke import SMOKE  # noqa: E402,I001 (takes --smoke out of sys.argv; smoke mode = --check)

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "analysis.md"
DATA = ROOT / "docs" / "analysis_runs.json"

SCENARIOS = ("alibaba_2025", "alibaba_2025_derated", "nvidia_only", "domestic_only", "licence_cycle")
METRICS = ("capex_usd_total", "capex_usd_by_year.2025", "unmet_demand_share", "peak_unmet_share",
           "all_in_cost_usd_per_mtok", "window_attainment_mean", "windows_missed", "energy_mwh_total",
           "budget_unspent_usd", "budget_bound_periods", "us_dependence_share_end", "impairment_usd",
           "served_mtok", "demand_mtok")
CHIP, VERSUS = "t-head-ppu", "h20"
BAN_PROBS = (0.0, 0.2, 0.4, 0.6, 0.8)
CRITERIA_FUTURES = 8
SENS_FUTURES = 8
GROWTH = (0.5, 1.0, 2.0)
BAN_DATES = ("2025-04-09", "2025-10-01", "2026-04-01", "2026-10-01")
H20_RULE = "2025-04-09"
HOURS = 1095 * 24  # the reference horizon: mean power = energy over its hours

# Public facts the backtest compares with (copied from the project's reference notes; sources
# as given there). RMB to USD at the scenario's own conversion: RMB 380 B = USD 53.1 B.
RMB_PER_USD = 380.0 / 53.1
FACTS = {
    "alibaba_capex_rmb_4q_to_2025_09": (120e9, "Alibaba results for the September 2025 quarter: about RMB 120 B "
                                               "of capex over the previous four quarters (RMB 38.7 B in the June "
                                               "2025 quarter, reported 2025-08-29)"),
    "alibaba_plan_rmb_3y": (380e9, "Xinhua 2025-02-24: RMB 380 B over three years; USD 53.1 B (toolstac.com 2025-09-01)"),
    "nvidia_h20_china_q1fy26_usd": (4.6e9, "Nvidia Q1 FY2026 results (quarter to 2025-04-27), 2025-05-28: USD 4.6 B "
                                           "of H20 sales before the licence rule, USD 2.5 B more could not ship "
                                           "(as reported by ai-360.online and gurufocus.com)"),
    "nvidia_h20_china_2024_chips": (1.0e6, "SemiAnalysis estimate via in.whatpsu.com/articles/1176: about 1 M H20 "
                                           "shipped to China in 2024, about USD 12 B"),
    "h20_price_usd": (13500.0, "catalog estimate (Reuters 2024-01: USD 12-15k a card)"),
}


def _load(name: str, overrides=()):
    import fleetsim

    return fleetsim.load_scenario(ROOT / "scenarios" / f"{name}.yaml", list(overrides))


def _summarise(res) -> dict:
    """Every future's figures (the render computes means, intervals and paired differences)."""
    rep = res.replicates.sort_values("future")
    mix = [c for c in rep.columns if c.startswith("fleet_mix_end.")]
    out = {m: [float(v) for v in rep[m]] for m in METRICS if m in rep}
    out["chips_end"] = [float(v) for v in rep[mix].sum(axis=1)]
    out["futures"] = int(len(rep))
    return out


def _h20_before_rule(res) -> dict:
    """Mean over futures of the H20 capex committed from the start to the day before the rule."""
    q = res.quantiles
    q = q[(q.chip == "h20")]
    day = (dt.date.fromisoformat(H20_RULE) - dt.timedelta(days=1)).isoformat()
    at = q[q.date.astype(str).str[:10] == day]
    cols = [c for c in q.columns if c.startswith("capex_cum_usd")]
    return {c: float(at[c].iloc[0]) for c in cols}


def run_scenarios(log=print) -> dict:
    import fleetsim

    out = {}
    for name in SCENARIOS:
        sc = _load(name)
        res = fleetsim.run(sc)
        d = _summarise(res)
        s = res.summary["fleet"]
        d["unmet_causes"] = s.get("unmet_causes")
        if name == "alibaba_2025":
            d["h20_capex_before_rule"] = _h20_before_rule(res)
            d["capacity"] = {r.pool: {"goodput_tokens_per_s": float(r.goodput_tokens_per_s),
                                      "availability": float(r.availability),
                                      "goodput_rps": float(r.goodput_rps)}
                             for r in res.capacity.itertuples()}
            f = sc.fleet
            d["inputs"] = {"demand_tokens_per_s": float(f.demand["chat"].tokens_per_s),
                           "peak_to_mean": float(f.demand["chat"].peak_to_mean),
                           "initial_h20": int(sum(b.count for b in f.initial_fleet if b.chip == "h20")),
                           "h20_tp": int(sc.serving.pools["h20"].tp),
                           "h20_cap_per_month": float(f.channels["nvidia-h20"].cap_per_month),
                           "budget_usd": float(f.budget.total_usd)}
        out[name] = d
        log(f"... {name}: {d['futures']} futures")
    return out


def _ban_date_overrides(date: str) -> list[str]:
    return ["fleet.reference_events={h200: nvidia-h200, nvidia: [nvidia-h200], t-head: t-head, huawei: huawei}",
            f"fleet.events=[{{date: {date}, channel: nvidia-h20, exporter: banned}}]"]


def run_sensitivity(log=print) -> dict:
    import fleetsim

    base = [f"fleet.replications={SENS_FUTURES}", "fleet.windows.enabled=false"]
    out = {"futures": SENS_FUTURES, "growth": [], "ban_date": []}
    for g in GROWTH:
        res = fleetsim.run(_load("alibaba_2025", [*base, f"fleet.demand.chat.growth_per_year={g}"]))
        out["growth"].append({"value": g, **_summarise(res)})
        log(f"... growth {g}")
    for date in (*BAN_DATES, "record"):
        ov = [] if date == "record" else _ban_date_overrides(date)
        res = fleetsim.run(_load("alibaba_2025", [*base, *ov]))
        out["ban_date"].append({"value": date, **_summarise(res)})
        log(f"... H20 ban from {date}")
    return out


def run_criteria(log=print, resume: bool = False) -> dict:
    """fleetsim.sweep.criteria.criteria, piece by piece (each piece kept in PARTS for --resume)."""
    from fleetsim.results.cache import ResultCache
    from fleetsim.sweep import criteria as cr
    from fleetsim.sweep.decide import _pool_of

    import pandas as pd

    sc, cache = _load("alibaba_2025"), ResultCache()
    pieces = {"price": lambda: cr.break_even_price(sc, CHIP, VERSUS, cache=cache),
              "ban": lambda: cr.ban_threshold(sc, CHIP, VERSUS, list(BAN_PROBS), futures=CRITERIA_FUTURES, log=log),
              "chip_breaks": lambda: cr.breaking_points(sc, _pool_of(sc, CHIP, "chip"), cache=cache),
              "versus_breaks": lambda: cr.breaking_points(sc, _pool_of(sc, VERSUS, "versus"), cache=cache),
              "stress": lambda: cr.stress_criteria(sc, CHIP, VERSUS, futures=CRITERIA_FUTURES, cache=cache, log=log)}
    out = {"chip": CHIP, "versus": VERSUS}
    for name, fn in pieces.items():
        part = PARTS / f"criteria-{name}.pickle"
        if resume and part.exists():
            out[name] = pd.read_pickle(part)
        elif SKIP_BREAKS and (name.endswith("_breaks") or name == "stress"):
            out[name] = None
        else:
            out[name] = fn()
            pd.to_pickle(out[name], part)
        log(f"... criteria: {name}")
    t = out["ban"]["table"]

    def clean(x):
        if isinstance(x, pd.DataFrame):
            return clean(x.to_dict(orient="list"))
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (float, np.floating)):
            x = float(x)
            return None if math.isnan(x) else ("inf" if x == math.inf else "-inf" if x == -math.inf else x)
        if isinstance(x, np.integer):
            return int(x)
        return x

    return clean({"price": out["price"],
                  "ban": {k: v for k, v in out["ban"].items() if k != "table"},
                  "ban_table": t.to_dict(orient="list"),
                  "chip_breaks": out["chip_breaks"], "versus_breaks": out["versus_breaks"],
                  "stress": out["stress"]})


SKIP_BREAKS = False  # --skip-breaks: leave the breaking-point searches out (the page says so)
PARTS = ROOT / "outputs" / "analysis_doc"  # each stage's result, so --write --resume skips finished stages


def compute(log=print, resume: bool = False) -> dict:
    out = {"generated_by": "python benchmarks/analysis_doc.py --write"}
    PARTS.mkdir(parents=True, exist_ok=True)
    for stage, fn in (("scenarios", run_scenarios), ("sensitivity", run_sensitivity), ("criteria", run_criteria)):
        part = PARTS / f"{stage}.json"
        if resume and part.exists():
            out[stage] = json.loads(part.read_text())
            continue
        out[stage] = json.loads(json.dumps(fn(log, resume) if stage == "criteria" else fn(log)))
        part.write_text(json.dumps(out[stage]))
    return out


# ---- rendering (from the JSON alone) -------------------------------------------------------------

def t_interval(x):
    from fleetsim.stats import t_interval as ti

    return ti(np.asarray(x, float))


def fmt_ci(x, scale=1.0, fmt="{:.2f}") -> str:
    m, lo, hi = t_interval(np.asarray(x, float) * scale)
    return f"{fmt.format(m)} ({fmt.format(lo)} to {fmt.format(hi)})"


def paired(a, b, scale=1.0, fmt="{:+.2f}") -> str:
    return fmt_ci(np.asarray(b, float) - np.asarray(a, float), scale, fmt)


def backtest(data: dict) -> dict:
    """The reference case's 2025 against the public facts (figures the doc and the test use)."""
    ref = data["scenarios"]["alibaba_2025"]
    capex25 = t_interval(ref["capex_usd_by_year.2025"])
    ali = FACTS["alibaba_capex_rmb_4q_to_2025_09"][0] / RMB_PER_USD
    plan_year = FACTS["alibaba_plan_rmb_3y"][0] / 3 / RMB_PER_USD
    h20 = ref["h20_capex_before_rule"]
    inp = ref["inputs"]
    per_chip = FACTS["h20_price_usd"][0] + 188000 / 8  # the run's capex per H20: chip + server share
    h20_chips = h20["capex_cum_usd_mean"] / per_chip
    nv_chips_q = FACTS["nvidia_h20_china_q1fy26_usd"][0] / FACTS["h20_price_usd"][0]
    return {"run_capex_2025_usd": capex25, "alibaba_capex_4q_usd": ali, "plan_usd_per_year": plan_year,
            "capex_ratio": capex25[0] / ali,
            "run_budget_unspent_usd": t_interval(ref["budget_unspent_usd"]),
            "run_h20_capex_before_rule_usd": h20["capex_cum_usd_mean"],
            "run_h20_chips_before_rule": h20_chips,
            "nvidia_h20_chips_q1fy26": nv_chips_q,
            "h20_share_of_nvidia_quarter": h20_chips / nv_chips_q,
            "cap_share_of_q1fy26_rate": inp["h20_cap_per_month"] * 3 / nv_chips_q,
            "cap_share_of_2024_rate": inp["h20_cap_per_month"] * 12 / FACTS["nvidia_h20_china_2024_chips"][0]}


def initial_load(data: dict) -> dict:
    """Initial demand against the initial H20 fleet's goodput at SLO (the scenario comment's claim)."""
    ref = data["scenarios"]["alibaba_2025"]
    inp, cap = ref["inputs"], ref["capacity"]["h20"]
    fleet = inp["initial_h20"] / inp["h20_tp"] * cap["goodput_tokens_per_s"] * cap["availability"]
    return {"fleet_tokens_per_s": fleet, "mean_share": inp["demand_tokens_per_s"] / fleet,
            "peak_share": inp["demand_tokens_per_s"] * inp["peak_to_mean"] / fleet}


def _equalising(t: dict, i: int, pen: float) -> str:
    """The unmet price at which both fleets cost the same per Mtok of demand (means; cost is
    linear in the price: served cost + price x unmet share)."""
    a_v = t[f"{VERSUS}_cost_usd_per_demand_mtok"][i] - pen * t[f"{VERSUS}_unmet_demand_share"][i]
    a_c = t[f"{CHIP}_cost_usd_per_demand_mtok"][i] - pen * t[f"{CHIP}_unmet_demand_share"][i]
    du = t[f"{CHIP}_unmet_demand_share"][i] - t[f"{VERSUS}_unmet_demand_share"][i]
    if du == 0:
        return "n/a"
    x = (a_v - a_c) / du
    return f"{x:.1f}" + (f" ({CHIP}-only dearer above it)" if du > 0 else f" ({VERSUS}-only dearer above it)")


def _unjson(x):
    if isinstance(x, dict):
        return {k: _unjson(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_unjson(v) for v in x]
    return {"inf": math.inf, "-inf": -math.inf}.get(x, x) if isinstance(x, str) else (math.nan if x is None else x)


def decision_rows_of(C: dict) -> list[dict]:
    """The decision table from the stored criteria (fleetsim.sweep.criteria.decision_rows)."""
    import pandas as pd

    from fleetsim.sweep.criteria import decision_rows

    ban = {**{k: _unjson(v) for k, v in C["ban"].items()}, "table": pd.DataFrame(C["ban_table"])}
    return decision_rows({"chip": CHIP, "versus": VERSUS, "price": _unjson(C["price"]), "ban": ban,
                          "chip_breaks": C["chip_breaks"], "versus_breaks": C["versus_breaks"],
                          **_stress_of(C)})


def _stress_of(C: dict) -> dict:
    """The stored heat and crash-rate thresholds with their tables as DataFrames (none: {})."""
    import pandas as pd

    out = {}
    for k, v in (C.get("stress") or {}).items():
        v = {**_unjson(v)}
        v["table"] = pd.DataFrame(v["table"])
        out[k] = v
    return out


def _b(x):  # USD B
    return f"{x / 1e9:.1f}"


def render(data: dict) -> str:
    S = data["scenarios"]
    C = data["criteria"]
    L = []
    w = L.append
    w("# Decision analysis: the domestic chip or Nvidia, computed from runs")
    w("")
    w("<!-- generated by `python benchmarks/analysis_doc.py --write` from docs/analysis_runs.json; "
      "edit the script, not this page -->")
    w("")
    w("Every figure below comes from runs of the shipped scenarios (`scenarios/alibaba_2025.yaml` and its "
      "variants) and is regenerated by `python benchmarks/analysis_doc.py --write` (tens of CPU minutes). "
      "The runs are kept in `docs/analysis_runs.json` (every future's figures); "
      "`tests/test_analysis_doc.py` checks that this page is what the script renders from that file, and "
      "(marked slow) that future 0 of every shipped scenario rerun today gives the file's future-0 "
      "figures. The test does not rerun the criteria search, the sensitivity runs or all 16 futures: "
      "those are as fresh as the last `--write`. Intervals are 95% Student-t intervals of the mean over "
      "futures; differences between scenarios are paired future by future (common random numbers: the "
      "same demand, yields and lead times in each). All results rest on the scenario's ASSUMPTION "
      "figures (the demand level above all): they are scenario outputs, not forecasts.")
    w("")

    # decision table
    w("## The decision table")
    w("")
    w(f"`fleetsim criteria scenarios/alibaba_2025.yaml --chip {CHIP} --versus {VERSUS} --futures "
      f"{CRITERIA_FUTURES} --ban-prob {BAN_PROBS[0]}:{BAN_PROBS[-1]}:{len(BAN_PROBS)}` "
      "(fleetsim/sweep/criteria.py explains each threshold):")
    w("")
    w(f"| criterion | choose the {CHIP} when | choose the {VERSUS} when |")
    w("|---|---|---|")
    for r in decision_rows_of(C):
        w(f"| {r['criterion']} | {r['choose_chip']} | {r['choose_versus']} |")
    w("")
    pr = C["price"]
    w(f"Read with the story's claims: the {CHIP} is stated at {pr['perf_fraction']:.2f} of an "
      f"{pr['reference']} at {pr['price_fraction']:.2f} of its price (`relative_to`); one tp-4 replica has "
      f"goodput {pr['chip_goodput_rps']:.3f} req/s at the SLO against {pr['versus_goodput_rps']:.3f} for the "
      f"{VERSUS}. \"Training\" and \"maximum performance\" are outside fleetsim (inference only); "
      "\"inside the Chinese regulatory environment\" is the scenario's (the 2025-11-05 removals and the "
      "power subsidy for domestic chips).")
    w("")

    # break-even against ban risk
    w("## The break-even line against ban risk")
    w("")
    t = C["ban_table"]
    w(f"Two fleets from the reference case, both with its installed 200,000 H20 and its demand: one buys "
      f"only the {CHIP} (T-Head channel, fab-capped), the other only the {VERSUS}, whose scripted 2025 "
      f"events are replaced by random bans with probability p a year lasting {C['ban']['ban_days']:.0f} days "
      f"on average (ASSUMPTION). {C['ban']['futures']} paired futures a point, windows off (served tokens are "
      f"at the SLO by the capacity function). Command: as the decision table.")
    w("")
    w(f"| ban p / yr | {VERSUS}-only USD/Mtok of demand | {CHIP}-only USD/Mtok of demand | difference (paired) | "
      f"difference per Mtok served (paired) | {VERSUS}-only unmet % | {CHIP}-only unmet % | difference, points (paired) | "
      f"unmet price that equalises them, USD/Mtok |")
    w("|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(t["ban_probability_per_year"]):
        def c3(k, sc=1.0, f="{:.2f}"):
            return f"{f.format(t[k][i] * sc)} ({f.format(t[k + '_lo'][i] * sc)} to {f.format(t[k + '_hi'][i] * sc)})"
        w(f"| {p:.2f} | {c3(f'{VERSUS}_cost_usd_per_demand_mtok')} | {c3(f'{CHIP}_cost_usd_per_demand_mtok')} | "
          f"{c3('diff_cost_usd_per_demand_mtok', f='{:+.2f}')} | {c3('diff_all_in_cost_usd_per_mtok', f='{:+.2f}')} | "
          f"{c3(f'{VERSUS}_unmet_demand_share', 100, '{:.1f}')} | "
          f"{c3(f'{CHIP}_unmet_demand_share', 100, '{:.1f}')} | {c3('diff_unmet_demand_share', 100, '{:+.1f}')} | "
          f"{_equalising(t, i, C['ban']['unmet_usd_per_mtok'])} |")
    w("")
    w(f"A positive difference favours the domestic chip. Cost per Mtok of demand: the all-in cost of the "
      f"tokens served (depreciation, impairments of stranded orders, power, opex) plus unmet tokens at USD "
      f"{C['ban']['unmet_usd_per_mtok']:g} a million (ASSUMPTION: the optimal planner's default penalty; "
      f"`--unmet-usd-per-mtok`), over all demand. Per Mtok served alone, a fleet that buys less looks "
      f"cheaper: the unmet columns say how much less it serves.")
    w("")

    # supply security
    ref, nv, dom = S["alibaba_2025"], S["nvidia_only"], S["domestic_only"]
    w("## What supply security buys")
    w("")
    w("The shipped scenarios as they are (16 futures each, windows on), paired on common random numbers. "
      "Commands: `fleetsim run scenarios/alibaba_2025.yaml`, `fleetsim run scenarios/nvidia_only.yaml`, "
      "`fleetsim run scenarios/domestic_only.yaml` (and `alibaba_2025_derated.yaml`, `licence_cycle.yaml`).")
    w("")
    w("| scenario | capex USD B | unmet demand % | peak unmet % | SLO windows met (mean share) | windows missed | "
      "mean power MW | chips at end (k) | servers at end (k, 8 a node) | all-in USD/Mtok |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for name in SCENARIOS:
        d = S[name]
        w(f"| {name} | {fmt_ci(d['capex_usd_total'], 1e-9, '{:.1f}')} | {fmt_ci(d['unmet_demand_share'], 100, '{:.1f}')} | "
          f"{fmt_ci(d['peak_unmet_share'], 100, '{:.1f}')} | {fmt_ci(d['window_attainment_mean'], 1, '{:.2f}')} | "
          f"{fmt_ci(d['windows_missed'], 1, '{:.1f}')} | {fmt_ci(d['energy_mwh_total'], 1 / HOURS, '{:.0f}')} | "
          f"{fmt_ci(d['chips_end'], 1e-3, '{:.0f}')} | {fmt_ci(d['chips_end'], 1e-3 / 8, '{:.0f}')} | "
          f"{fmt_ci(d['all_in_cost_usd_per_mtok'], 1, '{:.2f}')} |")
    w("")
    w("Paired differences, the reference mix (Nvidia and domestic channels) minus each single-side fleet:")
    w("")
    w("| reference minus | capex USD B | unmet demand, points | windows missed | mean power MW | servers (k) |")
    w("|---|---|---|---|---|---|")
    for name in ("nvidia_only", "domestic_only"):
        d = S[name]
        w(f"| {name} | {paired(d['capex_usd_total'], ref['capex_usd_total'], 1e-9, '{:+.1f}')} | "
          f"{paired(d['unmet_demand_share'], ref['unmet_demand_share'], 100, '{:+.1f}')} | "
          f"{paired(d['windows_missed'], ref['windows_missed'], 1, '{:+.1f}')} | "
          f"{paired(d['energy_mwh_total'], ref['energy_mwh_total'], 1 / HOURS, '{:+.0f}')} | "
          f"{paired(d['chips_end'], ref['chips_end'], 1e-3 / 8, '{:+.0f}')} |")
    w("")
    w("Supply security here is what the domestic channels add to an Nvidia-only buyer: the unmet demand "
      "avoided, paid for in capex, energy and floor space (servers of eight chips: the domestic chips "
      "deliver less per chip, so the same demand takes more of them).")
    w("")

    # sensitivity
    sens = data["sensitivity"]
    w("## Sensitivity to growth and ban timing")
    w("")
    w(f"The reference case, {sens['futures']} futures a point, windows off. Growth: "
      "`fleetsim run scenarios/alibaba_2025.yaml --set fleet.demand.chat.growth_per_year=G --set "
      f"fleet.replications={sens['futures']} --set fleet.windows.enabled=false`.")
    w("")
    w("| demand growth / yr | capex USD B | unmet demand % | budget unspent USD B | all-in USD/Mtok |")
    w("|---|---|---|---|---|")
    for d in sens["growth"]:
        w(f"| {d['value']:+.0%} | {fmt_ci(d['capex_usd_total'], 1e-9, '{:.1f}')} | {fmt_ci(d['unmet_demand_share'], 100, '{:.1f}')} | "
          f"{fmt_ci(d['budget_unspent_usd'], 1e-9, '{:.1f}')} | {fmt_ci(d['all_in_cost_usd_per_mtok'], 1, '{:.2f}')} |")
    w("")
    w("Ban timing: the H20 channel banned for good from a date instead of the 2025 record (`--set "
      "'fleet.reference_events={h200: nvidia-h200, nvidia: [nvidia-h200], t-head: t-head, huawei: huawei}' "
      "--set 'fleet.events=[{date: D, channel: nvidia-h20, exporter: banned}]'`, same futures and "
      "windows settings); the last row is the scripted record.")
    w("")
    w("| H20 banned from | capex USD B | unmet demand % | impaired USD B | US-supplied share at end |")
    w("|---|---|---|---|---|")
    for d in sens["ban_date"]:
        w(f"| {d['value']} | {fmt_ci(d['capex_usd_total'], 1e-9, '{:.1f}')} | {fmt_ci(d['unmet_demand_share'], 100, '{:.1f}')} | "
          f"{fmt_ci(d['impairment_usd'], 1e-9, '{:.2f}')} | {fmt_ci(d['us_dependence_share_end'], 1, '{:.3f}')} |")
    w("")

    # good enough
    w("## Where \"good enough\" stops")
    w("")
    w("From the capacity function (`fleetsim criteria`, as the decision table): the largest model of a "
      "ladder of dense catalog models from the replica's own model up (each at the replica's tp, or its "
      "smallest working tp within a node where it does not fit; smaller models only serve faster), the longest prompt "
      "median (the scenario's lognormal median and cap scaled together) and the tightest TTFT target at "
      "which one replica still has positive goodput at the SLO: the share of the goodput search's own "
      "request sample that meets the SLO on an idle replica reaches the percentile (the test the search "
      "itself makes first; no window is simulated). The value is the bisection's last passing value on that "
      "one sample (common random numbers, 0.5% resolution); the 95% interval comes from the share's Wilson "
      "interval (from the value where it lies wholly above the percentile to the last where it still "
      "reaches it). The sample is the search's, a few hundred requests, so the interval is wide; the "
      "prompt and output length distributions are ASSUMPTIONS of the scenario.")
    w("")
    if not (C["chip_breaks"] and C["versus_breaks"]):
        w("Not computed in this write (`--skip-breaks`: the searches did not finish in the time available); "
          f"`fleetsim criteria scenarios/alibaba_2025.yaml --chip {CHIP} --versus {VERSUS}` computes them.")
        w("")
    else:
        w("| replica type | goodput at the scenario's SLO, req/s | largest model (idle attainment of each rung) | "
          "longest prompt median, tokens (95%) | tightest TTFT, s (95%) |")
        w("|---|---|---|---|---|")
    for who in ("chip_breaks", "versus_breaks") if C["chip_breaks"] and C["versus_breaks"] else ():
        b = C[who]
        m, p, tt = b["model"], b["prompt"], b["ttft"]
        ladder = ", ".join(f"{r['model']} " + (f"{r['idle_attainment']:.1%} (tp {r['tp']})" if r["tp"] else "does not fit a node")
                           for r in m["ladder"])
        pc, tc = p.get("ci95") or (None, None), tt.get("ci95") or (None, None)
        w(f"| {b['chip']} ({b['pool']}) | {_g(b['goodput_rps'])} | {m['largest']} ({ladder}; needs {b['percentile']:.0%}) | "
          f"{_n(p['median_tokens'])} ({_n(pc[0])} to {_n(pc[1])}) {p['note']} | {_n(tt['tightest_s'], '{:.3g}')} "
          f"({_n(tc[0], '{:.3g}')} to {_n(tc[1], '{:.3g}')}) {tt['note']} |")
    w("")

    # heat and crash rate
    stress = _stress_of(C)
    w("## Heat and crash rate: where the domestic chip stops being the right choice")
    w("")
    if not stress:
        w("Not computed in this write (`--skip-breaks`).")
        w("")
    else:
        from fleetsim.sweep.criteria import _scale

        w(f"The story's domestic chips \"overheat and crash under long high load\". Two stresses on the {CHIP} "
          f"alone, each a scale on its catalog figure (`fleetsim/catalog/reliability.yaml`, the `_domestic` "
          f"defaults: ASSUMPTIONS, no public failure data): **crash**, the hazard multiplier "
          f"(`reliability.chips.{CHIP}.hazard_multiplier`: the capacity's availability and the fleet's crashes); "
          f"**heat**, the thermal resistance (`r_th_c_per_w`: a hotter die at the same power, so DVFS and "
          f"throttling in every goodput window, and a higher Arrhenius and over-temperature hazard). Two "
          f"thresholds each. Fleet: the {CHIP}-only against the {VERSUS}-only fleet of the ban table, the "
          f"{VERSUS} never banned (the case least favourable to the {CHIP}), {CRITERIA_FUTURES} paired futures "
          f"a probe, geometric bisection on the sign of the paired difference in cost per Mtok of demand "
          f"(unmet at USD {C['ban']['unmet_usd_per_mtok']:g}/Mtok, ASSUMPTION), its interval where the "
          f"difference's interval ends cross 0 (linear in log scale between probes). Capacity only: the scale at "
          f"which the {CHIP}'s break-even price fraction falls to 0 (dearer per Mtok at SLO than the {VERSUS} "
          f"even free), its interval from the break-even interval's ends.")
        w("")
        w("| stress | fleet: cheaper per Mtok of demand up to (95%) | capacity: dearer even free beyond (95%) |")
        w("|---|---|---|")
        for axis in ("crash", "heat"):
            fl, pr = stress[f"{axis}_fleet"], stress[f"{axis}_price"]
            lo, hi = fl["threshold_ci95"]
            sm = fl["scale_max"]
            w(f"| {fl['label']} | {_scale(fl['threshold'], sm)} ({_scale(lo, sm)} to {_scale(hi, sm)}) {fl['note']} | "
              f"{_scale(None, pr['scale_max'], pr['estimate'])} ({_scale(None, pr['scale_max'], pr['low'])} to "
              f"{_scale(None, pr['scale_max'], pr['high'])}) |")
        w("")
        w(f"The probes (fleet: {VERSUS}-only minus {CHIP}-only, paired; capacity figures of one {CHIP} replica):")
        w("")
        w(f"| stress | scale | difference, USD/Mtok of demand | difference in unmet demand, points | "
          f"{CHIP} availability | {CHIP} goodput, req/s | break-even price fraction (95%) |")
        w("|---|---|---|---|---|---|---|")
        for axis in ("crash", "heat"):
            t = stress[f"{axis}_fleet"]["table"]
            for r in t.itertuples():
                w(f"| {axis} | x{r.scale:.3g} | {r.diff_cost_usd_per_demand_mtok:+.2f} ({r.diff_cost_usd_per_demand_mtok_lo:+.2f} "
                  f"to {r.diff_cost_usd_per_demand_mtok_hi:+.2f}) | {r.diff_unmet_demand_share * 100:+.1f} "
                  f"({r.diff_unmet_demand_share_lo * 100:+.1f} to {r.diff_unmet_demand_share_hi * 100:+.1f}) | "
                  f"{r.chip_availability:.3f} | {r.chip_goodput_rps:.3f} | {r.break_even_price_fraction:.3f} "
                  f"({r.break_even_ci95_lo:.3f} to {r.break_even_ci95_hi:.3f}) |")
        w("")
        w(f"The fleet threshold rests on the unmet price: the {CHIP}-only fleet leaves more demand unmet at every "
          f"scale (the unmet column), so on unmet demand alone the {VERSUS} is the choice at the catalog's "
          f"figures already; per Mtok of demand the {CHIP}'s fleet stays cheaper because unmet tokens are priced "
          f"below what the {VERSUS}-only fleet pays to serve them. The capacity threshold does not depend on it.")
        w("")

    # backtest
    bt = backtest(data)
    li = initial_load(data)
    w("## Backtest: the reference case's 2025 against public facts")
    w("")
    w("| figure | public | run | gap, and what it means |")
    w("|---|---|---|---|")
    c = bt["run_capex_2025_usd"]
    w(f"| capex in 2025 | USD {_b(bt['alibaba_capex_4q_usd'])} B (RMB 120 B, four quarters to 2025-09) | "
      f"USD {_b(c[0])} B ({_b(c[1])} to {_b(c[2])}), calendar 2025 | the run spends {bt['capex_ratio']:.0%} of it. "
      f"Explained, not corrected: the run buys accelerators plus a server and data-centre share "
      f"(USD 188k a node) for one inference workload; Alibaba's capex also pays for training, general cloud "
      f"and land. Within the run, supply binds, not money: USD {_b(bt['run_budget_unspent_usd'][0])} B of the "
      f"budget is unspent over three years (fab outputs and the H20 rules cap what can be bought). |")
    w(f"| the plan's yearly rate | USD {_b(bt['plan_usd_per_year'])} B a year (RMB 380 B / 3) | budget released evenly "
      f"(`schedule: even`) | the reported four quarters (USD {_b(bt['alibaba_capex_4q_usd'])} B) run at the plan's rate |")
    w(f"| H20 bought before the 2025-04-09 rule | Nvidia sold USD 4.6 B of H20 in the quarter to 2025-04-27 "
      f"(about {bt['nvidia_h20_chips_q1fy26'] / 1e3:.0f}k chips at USD 13.5k) to all Chinese buyers | "
      f"USD {_b(bt['run_h20_capex_before_rule_usd'])} B (about {bt['run_h20_chips_before_rule'] / 1e3:.0f}k chips "
      f"with servers), this buyer alone | {bt['h20_share_of_nvidia_quarter']:.0%} of Nvidia's China quarter; the "
      f"channel's cap of {data['scenarios']['alibaba_2025']['inputs']['h20_cap_per_month']:,.0f} a month is "
      f"{bt['cap_share_of_q1fy26_rate']:.0%} of the quarter's rate and {bt['cap_share_of_2024_rate']:.0%} of the "
      f"2024 rate (1 M a year): the scenario comment's \"~20%\" was wrong and now says so (input kept: Alibaba "
      f"was one of the largest H20 buyers; no source gives its share) |")
    w(f"| initial load | (not published) | initial demand is {li['mean_share']:.0%} of the 200,000 H20's goodput at "
      f"SLO ({li['peak_share']:.0%} at the diurnal peak) | the scenario comment said ~90%; corrected |")
    w("")
    w("Sources (copied from the project's reference notes):")
    w("")
    for k, (v, src) in FACTS.items():
        w(f"- `{k}` = {v:,.0f}: {src}.")
    w(f"- RMB per USD: {RMB_PER_USD:.3f}, the scenario's own conversion of RMB 380 B to USD 53.1 B.")
    w("")
    w("## Limits (what this page does not show)")
    w("")
    w("- Freshness: the test rechecks the page against docs/analysis_runs.json and reruns future 0 of the "
      "five shipped scenarios; the other futures, the criteria search and the sensitivity runs are as fresh "
      "as the last `--write`.")
    w("- The ban-probability fleets buy one chip each (plus the installed H20s); a mixed buyer's hedge is the "
      "reference case (its planner mixes both sides: the supply-security tables); the value of hedging (VSS, EVPI) is not on this page. In the scenario tables cost per Mtok is over "
      "tokens served, with unmet demand beside it; only the ban fleets also price unmet tokens (an ASSUMPTION).")
    w("- Criteria and sensitivity runs have windows off (SLO misses are counted only in the shipped "
      "scenarios' runs); a ban in the timing table is permanent from its date.")
    w("- Model, prompt and TTFT breaking points test positive goodput (an idle replica meets the SLO), not "
      "goodput enough to pay off; heat and crash rate are located by cost (the section above). The heat "
      "axis scales the chip's thermal resistance in a hall held at its mean inlet; the hall's own "
      "temperature and the fleet's day-by-day heat are not varied here.")
    w("- H20 bought before the rule is the mean over futures of the capex committed to the H20 channel to "
      "2025-04-08, from quantiles.parquet; Alibaba's capex window (four quarters to 2025-09) is not the "
      "run's calendar 2025.")
    w("")
    return "\n".join(L) + "\n"


def _g(x) -> str:
    """A goodput figure; None: positive (an idle replica meets the SLO) but the search gave no rate."""
    return "positive (no rate fitted)" if x is None else f"{x:.3f}"


def _n(x, fmt="{:,.0f}"):
    return "n/a" if x is None or isinstance(x, str) else fmt.format(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="run everything, write the JSON and the page")
    g.add_argument("--render", action="store_true", help="rewrite the page from the JSON")
    g.add_argument("--check", action="store_true", help="exit 1 if the page differs from the JSON's render")
    ap.add_argument("--resume", action="store_true", help="with --write: reuse stages already in outputs/analysis_doc/")
    ap.add_argument("--skip-breaks", action="store_true", help="with --write: leave out the breaking-point searches")
    a = ap.parse_args(argv)
    a.check = a.check or (SMOKE and not (a.write or a.render))
    global SKIP_BREAKS
    SKIP_BREAKS = a.skip_breaks
    if a.write:
        data = compute(lambda m: print(m, file=sys.stderr, flush=True), resume=a.resume)
        DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    data = json.loads(DATA.read_text())
    text = render(data)
    if a.check:
        ok = DOC.exists() and DOC.read_text() == text
        print("docs/analysis.md is " + ("up to date" if ok else "stale: run python benchmarks/analysis_doc.py --render"))
        return 0 if ok else 1
    if a.write or a.render:
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
