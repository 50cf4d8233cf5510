"""Short plain-text tables of a summary, for the terminal."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def summary_text(summary: dict[str, Any]) -> str:
    parts = []
    if "classes" in summary:
        req = summary["requests"]
        parts.append(
            f"requests: {req['arrived']} arrived = {req['completed']} completed + "
            f"{req['rejected']} rejected + {req['unfinished']} unfinished"
        )
        rows = [
            [name, _fmt(c["arrived"]), _fmt(c["throughput_req_per_s"]), _fmt(c["ttft_p50_s"]),
             _fmt(c["ttft_p99_s"]), _fmt(c["tpot_p50_s"]), _fmt(c["tpot_p99_s"]),
             _fmt(c["slo_attainment"], ".1%"), _fmt(c["goodput_req_per_s"])]
            for name, c in summary["classes"].items()
        ]
        parts.append(_table(["class", "arrived", "req/s", "TTFT p50 s", "TTFT p99 s", "TPOT p50 s",
                             "TPOT p99 s", "SLO att.", "goodput req/s"], rows))
        rows = [
            [name, p["chip"], _fmt(p["replicas"]), _fmt(p["throughput_req_per_s"]),
             _fmt(p["output_tokens_per_s"], ".4g"), _fmt(p["utilisation"], ".1%"),
             _fmt(p["mean_batch_size"]), _fmt(p["ttft_p99_s"]), _fmt(p["availability"], ".1%")]
            for name, p in summary["pools"].items()
        ]
        parts.append(_table(["pool", "chip", "replicas", "req/s", "out tok/s", "util.", "mean batch",
                             "TTFT p99 s", "avail."], rows))
        if summary.get("goodput_search"):
            parts.append(goodput_text(summary["goodput_search"]))
    else:
        keys = [k for k, v in summary.items() if not isinstance(v, (dict, list))]
        parts.append("\n".join(f"{k}: {_fmt(summary[k])}" for k in keys))
    return "\n\n".join(parts)


def goodput_text(rows: list[dict[str, Any]]) -> str:
    body = [
        [r["pool"], r["workload"], r["chip"], _fmt(r["goodput_req_per_s_per_replica"], ".4g"),
         _fmt(r["goodput_tokens_per_s_per_replica"], ".4g"), "yes" if r.get("cached") else "no",
         r.get("note", "")]
        for r in rows
    ]
    return _table(["pool", "workload", "chip", "goodput req/s/replica", "out tok/s/replica", "cached",
                   "note"], body)
