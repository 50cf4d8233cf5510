"""Shared pydantic base for every scenario section: unknown keys are errors, not silence."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of all scenario models: forbid unknown keys, validate defaults and assignments."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False)
