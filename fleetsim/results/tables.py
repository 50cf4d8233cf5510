"""Records in, typed tables out: units in column names, categories for repeated strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fleetsim.serving.metrics import latencies, slo_met
from fleetsim.serving.requests import REJECT_REASONS, STATUS_NAMES
from fleetsim.serving.window import WindowResult


def requests_table(res: WindowResult) -> pd.DataFrame:
    """One row per request of the window (the `requests.parquet` contract)."""
    r = res.requests
    lat = latencies(res)
    met, judged = slo_met(res, lat)
    # slo_met: true/false for every judged request, null for one still inside its TTFT target
    slo = pd.array(np.where(judged, met, False), dtype="boolean")
    slo[~judged] = pd.NA
    pools = list(res.config.pools.values())
    pool_names = np.array(list(res.config.pools) + [""], dtype=object)
    chips = np.array([p.chip for p in pools] + [""], dtype=object)
    models = np.array([res.config.workloads[w].model for w in r.class_workloads], dtype=object)
    pidx = np.where(r.pool_idx >= 0, r.pool_idx, len(pools))
    df = pd.DataFrame({
        "request_id": np.arange(len(r), dtype=np.int64),
        "window": np.full(len(r), res.window, dtype=np.int32),
        "class": pd.Categorical.from_codes(r.class_idx.astype(np.int32), categories=r.class_names),
        "model": pd.Categorical(models[r.class_idx]),
        "pool": pd.Categorical(pool_names[pidx]),
        "chip": pd.Categorical(chips[pidx]),
        "replica": r.replica,
        "arrival_s": r.arrival_s,
        "admitted_s": r.admitted_s,
        "first_token_s": r.first_token_s,
        "finish_s": r.finish_s,
        "prompt_tokens": r.prompt_tokens.astype(np.int64),
        "output_tokens": r.output_tokens.astype(np.int64),
        "status": pd.Categorical.from_codes(r.status.astype(np.int32), categories=list(STATUS_NAMES)),
        "reject_reason": pd.Categorical.from_codes(r.reject_reason.astype(np.int32), categories=list(REJECT_REASONS)),
        "attempts": r.attempts.astype(np.int16),
        "queue_s": lat["queue_s"],
        "ttft_s": lat["ttft_s"],
        "tpot_s": lat["tpot_s"],
        "e2e_s": lat["e2e_s"],
        "measured": r.arrival_s >= res.warmup_s,  # false: arrived in warm-up, out of the metrics
        "slo_met": slo,
    })
    if r.cached_tokens is not None and r.cached_tokens.any():  # prefix caching in use
        df.insert(df.columns.get_loc("output_tokens"), "cached_tokens", r.cached_tokens.astype(np.int64))
    return df


EVENT_COLUMNS = ("time_s", "window", "pool", "replica", "chip", "kind", "temp_c", "detail")


def events_table(records: dict[str, Any] | None) -> pd.DataFrame:
    """Reliability events (throttle, crash, repair) as a table; empty but typed when none."""
    records = records or {}
    n = len(records.get("time_s", []))
    cols: dict[str, Any] = {}
    for key in EVENT_COLUMNS:
        values = records.get(key, [None] * n if key not in ("time_s", "temp_c") else [np.nan] * n)
        cols[key] = values
    for key, values in records.items():
        if key not in cols:
            cols[key] = values
    df = pd.DataFrame(cols)
    df["time_s"] = df["time_s"].astype(float)
    df["temp_c"] = pd.to_numeric(df["temp_c"], errors="coerce").astype(float)
    for key in ("pool", "chip", "kind", "cohort", "detail"):
        if key in df:
            df[key] = df[key].astype("string")
    for key in ("pool", "chip", "kind", "cohort"):
        if key in df:
            df[key] = df[key].astype("category")
    return df


def columns_table(records: dict[str, Any]) -> pd.DataFrame:
    """A dict of equal-length columns as a table, strings as categories."""
    df = pd.DataFrame({k: np.asarray(v) for k, v in records.items()})
    for key in df.columns:
        if df[key].dtype == object:
            df[key] = df[key].astype("category")
    return df


# -- fleet run tables (docs/tables.md) ---------------------------------------------------
FLEET_CATEGORIES = ("chip", "kind", "channel", "pool", "fate", "regime_state", "workload", "cause", "model",
                    "workloads")


def fleet_table(columns: dict[str, Any] | None) -> pd.DataFrame | None:
    """A fleet record (timeline, ledger, orders, windows, events) as a typed table: dates as
    datetime64, repeated strings as categories, units already in the column names."""
    if columns is None:
        return None
    df = pd.DataFrame({k: (np.asarray(v) if not isinstance(v, list) else v) for k, v in columns.items()})
    for key in df.columns:
        if key in FLEET_CATEGORIES:
            df[key] = df[key].astype("string").astype("category")
        elif key in ("date", "ordered_on", "due_on", "delivered_on", "cancelled_on"):
            df[key] = pd.to_datetime(df[key])
        elif df[key].dtype == object and key in ("detail",):
            df[key] = df[key].astype("string")
    if "predicted_attainment_ok" in df:
        df["predicted_attainment_ok"] = df["predicted_attainment_ok"].astype("boolean")
    return df
