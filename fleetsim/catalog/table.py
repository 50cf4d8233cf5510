"""`fleetsim chips` / `fleetsim models`: the catalogs as text, CSV or JSON, sources included."""

from __future__ import annotations

import csv
import io
import json
from typing import Literal

from fleetsim.catalog.loader import load_chips, load_models
from fleetsim.errors import ScenarioError

_CHIP_COLS = [
    "bf16_tflops", "fp8_tflops", "int8_tops", "fp4_tflops", "hbm_gb", "hbm_tbps",
    "interconnect_gbps", "tdp_w", "price_usd",
]
_MODEL_COLS = [
    "num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
    "vocab_size", "num_experts", "experts_per_token", "total_params_b", "active_params_b",
    "max_context_tokens",
]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _chip_rows(overrides) -> list[dict]:
    rows = []
    for key, c in load_chips(overrides).items():
        row = {"chip": key, "name": c.name, "vendor": c.vendor, "year": c.year,
               "supply_channel": c.supply_channel, "memory_type": c.memory_type}
        row.update({f: getattr(c, f) for f in _CHIP_COLS})
        row["estimated"] = " ".join(c.estimated)
        row["assumed"] = " ".join(c.assumed)
        row["overridden"] = " ".join(c.overridden)
        row["sources"] = " | ".join(f"{k}: {v}" for k, v in c.sources.items())
        row["notes"] = c.notes
        rows.append(row)
    return rows


def _model_rows(overrides) -> list[dict]:
    rows = []
    for key, m in load_models(overrides).items():
        row = {"model": key, "name": m.name}
        row.update({f: getattr(m, f) for f in _MODEL_COLS})
        row["attention"] = "MLA" if m.is_mla else ("GQA" if m.num_kv_heads < m.num_heads else "MHA")
        row["kv_kib_per_token_bf16"] = round(m.kv_values_per_token() * 2 / 1024, 1)
        row["source_url"] = m.source_url
        row["notes"] = m.notes
        rows.append(row)
    return rows


def _text_table(rows: list[dict], cols: list[str]) -> str:
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def catalog_table(
    kind: Literal["chips", "models"],
    fmt: Literal["table", "csv", "json"] = "table",
    overrides: dict | None = None,
) -> str:
    """Render one catalog. `overrides` is the scenario's `catalog` section's chips or models."""
    if kind == "chips":
        rows = _chip_rows(overrides)
        key, short = "chip", ["chip", "vendor", "year", "supply_channel", *_CHIP_COLS]
    elif kind == "models":
        rows = _model_rows(overrides)
        key, short = "model", ["model", *_MODEL_COLS, "attention", "kv_kib_per_token_bf16"]
    else:
        raise ScenarioError(f"unknown catalog '{kind}'; allowed: chips, models", field="kind")
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    if fmt != "table":
        raise ScenarioError(f"unknown format '{fmt}'; allowed: table, csv, json", field="format")
    out = [_text_table(rows, short), "", "Sources and caveats (EST = published estimate, "
           "ASSUMED = no published figure, fleetsim placeholder; override in a scenario):"]
    for r in rows:
        out.append(f"- {r[key]}: {r['name']}")
        if kind == "chips":
            out.append(f"    sources: {r['sources']}")
            for flag in ("estimated", "assumed", "overridden"):
                if r[flag]:
                    out.append(f"    {flag.upper()}: {r[flag]}")
        else:
            out.append(f"    source: {r['source_url']}")
        if r["notes"]:
            out.append(f"    notes: {r['notes']}")
    return "\n".join(out)
