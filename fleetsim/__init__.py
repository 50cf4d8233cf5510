"""fleetsim: plan an AI inference fleet of mixed accelerators under supply shocks."""

from __future__ import annotations

__version__ = "0.1.0"
