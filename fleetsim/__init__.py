"""fleetsim: plan an AI inference fleet of mixed accelerators under supply shocks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_scenario", "run", "RunResult"]


def __getattr__(name: str):
    # Lazy, so `import fleetsim` stays cheap and does no work at import time.
    if name in ("load_scenario", "run", "RunResult"):
        from fleetsim import api

        return getattr(api, name)
    raise AttributeError(name)
