"""Demand per workload class, day by day: the forecast the planner sees and the realised demand.

forecast(d) = tokens_per_s x growth(d), growth compound annual or log-linear through a dated
table; realised(d) = forecast(d) x exp(W(d)), W a Gaussian random walk with standard deviation
`sigma_per_year` after a year. Both are DAILY MEANS; the diurnal profile is a 24-hour sinusoid
with the class's peak-to-mean, so the peak is mean x peak_to_mean.
"""

from __future__ import annotations

import numpy as np

from fleetsim.scenario.fleet import DemandConfig, FleetConfig


def growth(cfg: DemandConfig, fleet: FleetConfig, days: np.ndarray) -> np.ndarray:
    if cfg.table:
        pts = sorted((float((d - fleet.start).days), float(m)) for d, m in cfg.table.items())
        if pts[0][0] > 0:
            pts.insert(0, (0.0, 1.0))
        x = np.array([p[0] for p in pts])
        y = np.log(np.array([p[1] for p in pts]))
        return np.exp(np.interp(days, x, y))
    return (1.0 + cfg.growth_per_year) ** (days / 365.0)


def forecast(cfg: DemandConfig, fleet: FleetConfig, n_days: int, base_tokens_per_s: float) -> np.ndarray:
    """Daily-mean output tokens/s the planner expects, days 0..n_days-1 (may run past the
    horizon), from the class's tokens/s at the start (fleetsim.fleet.tokens.base_tokens_per_s)."""
    return base_tokens_per_s * growth(cfg, fleet, np.arange(n_days, dtype=float))


def realised(cfg: DemandConfig, fc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = cfg.forecast_error.sigma_per_year
    if sigma == 0:
        return fc.copy()
    steps = rng.standard_normal(len(fc)) * sigma * np.sqrt(1.0 / 365.0)
    steps[0] = 0.0
    return fc * np.exp(np.cumsum(steps))


def diurnal(peak_to_mean: float, peak_hour: float) -> np.ndarray:
    """24 hourly multipliers of the daily mean (mean 1, max peak_to_mean)."""
    h = np.arange(24) + 0.5
    m = np.clip(1.0 + (peak_to_mean - 1.0) * np.cos(2 * np.pi * (h - peak_hour) / 24.0), 0.0, None)
    return m / m.mean()
