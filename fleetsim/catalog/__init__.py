"""Chip and model catalogs: built-in data files with sources, merged with scenario overrides."""

from fleetsim.catalog.loader import get_chip, get_model, load_chips, load_engines, load_models
from fleetsim.catalog.schema import (
    BYTES_PER_VALUE, PRECISIONS, ChipSpec, Efficiency, EngineProfile, ModelSpec,
)
from fleetsim.catalog.table import catalog_table

__all__ = [
    "BYTES_PER_VALUE", "PRECISIONS", "ChipSpec", "Efficiency", "EngineProfile", "ModelSpec",
    "catalog_table", "get_chip", "get_model", "load_chips", "load_engines", "load_models",
]
