"""The top-level scenario: what a user writes in a YAML/TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, ValidationError

from fleetsim.scenario.base import StrictModel
from fleetsim.scenario.overrides import apply_overrides, validation_error_to_scenario_error
from fleetsim.scenario.fleet import FleetConfig
from fleetsim.scenario.reliability import ReliabilityConfig
from fleetsim.scenario.serving import ServingConfig


class CatalogOverrides(StrictModel):
    """Chips and models to add or override; validated against the built-in catalog on load."""

    chips: dict[str, dict[str, Any]] = Field(
        {}, description="chip name -> fields to override (partial) or a new chip (complete); "
        "see `fleetsim chips` and docs/kernel.md")
    models: dict[str, dict[str, Any]] = Field(
        {}, description="model name -> fields to override (partial) or a new model (complete)")


class Scenario(StrictModel):
    """A scenario file: a serving window and/or a reliability cohort run, with catalog changes."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)] = Field(
        description="letters, digits, '_', '.', '-'; names the run folder")
    description: str = Field("", description="free text, kept in the manifest")
    seed: Annotated[int, Field(ge=0)] = Field(
        0, description="root seed: same scenario and seed give identical outputs")
    serving: ServingConfig | None = Field(None, description="a serving window")
    reliability: ReliabilityConfig | None = Field(
        None, description="thermal model, crashes and repair; with `cohort_run`, a reliability run")
    catalog: CatalogOverrides = Field(CatalogOverrides(), description="add or override chips and models")
    fleet: FleetConfig | None = Field(
        None, description="years of demand, supply, procurement and money around `serving` (the "
        "template of the fleet's replica types and windows); see docs/fleet.md")

    _source_path: Path | None = PrivateAttr(default=None)
    # What loading changed that the user did not write (fields dropped by a `--set ...kind=`):
    # the CLI prints each as a note.
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return list(self._notes)

    @property
    def source_path(self) -> Path | None:
        """The file the scenario was read from (None when built in Python)."""
        return self._source_path

    def with_overrides(self, overrides: "list[str] | tuple[str, ...]") -> "Scenario":
        """A copy with `a.b.c=VALUE` overrides applied (as `--set` does), revalidated as a whole,
        keeping the source path so relative files still resolve. The input is left unchanged."""
        data = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        notes: list[str] = []
        data = apply_overrides(data, overrides, notes, root=type(self))
        try:
            out = type(self).model_validate(data)
        except ValidationError as exc:
            file = str(self._source_path) if self._source_path else None
            raise validation_error_to_scenario_error(
                exc, data, file, None, {o.split("=", 1)[0].strip() for o in overrides},
                root=type(self)) from None
        out._source_path = self._source_path
        out._notes = self._notes + notes
        return out

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the scenario (trace CSVs) resolve against."""
        return self._source_path.parent if self._source_path else Path.cwd()
