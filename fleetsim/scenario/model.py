"""The top-level scenario: what a user writes in a YAML/TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PrivateAttr

from fleetsim.scenario.base import StrictModel
from fleetsim.scenario.reliability import ReliabilityConfig
from fleetsim.scenario.serving import ServingConfig


class CatalogOverrides(StrictModel):
    """Chips and models to add or override; validated against the built-in catalog on load."""

    chips: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}


class Scenario(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    serving: ServingConfig | None = None
    reliability: ReliabilityConfig | None = None
    catalog: CatalogOverrides = CatalogOverrides()

    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        """The file the scenario was read from (None when built in Python)."""
        return self._source_path

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the scenario (trace CSVs) resolve against."""
        return self._source_path.parent if self._source_path else Path.cwd()
