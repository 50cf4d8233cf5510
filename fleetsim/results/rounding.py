"""One rule for how many digits an estimate may show: as many as its interval supports.

The half-width of the 95% interval is shown to two significant digits and the mean to the same
decimal place; a figure without an interval keeps three
significant digits. The console (fleetsim.results.display), the report and the sweep tables all
format through `format_interval`, so they never disagree about a figure's precision.
"""

from __future__ import annotations

import math
from typing import Any

SCALES = ((1e12, " T"), (1e9, " B"), (1e6, " M"))
TINY = 1e-4  # a half-width below this share of the mean is shown as "± <0.01%"


def decimals(half: float) -> int:
    """Decimal places that show `half` (> 0) to two significant digits (may be negative)."""
    return 1 - math.floor(math.log10(half))


def _round(x: float, d: int) -> str:
    if d >= 0:
        return f"{x:,.{d}f}"
    step = 10 ** (-d)
    return f"{round(x / step) * step:,.0f}"


def _ok(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def format_interval(mean: Any, lo: Any = None, hi: Any = None, kind: str = "plain") -> str:
    """`mean ± half` with the digits the interval supports. kind: plain | share (as %) | usd
    (USD with B/M scaling) | count (whole numbers)."""
    if not _ok(mean):
        return "-"
    mean = float(mean)
    half = (float(hi) - float(lo)) / 2 if _ok(lo) and _ok(hi) else None
    prefix, suffix, scale = "", "", 1.0
    if kind == "share":
        scale, suffix = 100.0, "%"
    elif kind == "usd":
        prefix = "USD "
        big = max(abs(mean), half or 0.0)
        for s, name in SCALES:
            if big >= s:
                scale, suffix = 1.0 / s, name
                break
    m = mean * scale
    h = half * scale if half is not None else None
    if h is None or h <= 0:
        if kind == "count":
            return f"{prefix}{mean:,.0f}{suffix}"
        if h == 0 and m == 0:
            return f"{prefix}0{suffix}"
        if h == 0:  # every future agreed
            return f"{prefix}{_sig(m)}{suffix} (all futures)"
        return f"{prefix}{_sig(m)}{suffix}"
    if m != 0 and h / abs(m) < TINY:  # every future within a hair: four digits say it all
        return f"{prefix}{_sig(m, 4)}{suffix} (± <{TINY:.0e} of it)".replace("1e-04", "0.01%")
    d = decimals(h)
    if kind == "count":
        d = min(d, 0)
    return f"{prefix}{_round(m, d)} ± {_round(h, d)}{suffix}"


def _sig(x: float, n: int = 3) -> str:
    if x == 0:
        return "0"
    d = max(0, n - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{d}f}"
