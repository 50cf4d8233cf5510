"""Shared pydantic base for every scenario section: unknown keys are errors, not silence."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


def _numeric(tp: Any) -> bool:
    """int or float, possibly inside Annotated/Optional (bool itself is not numeric here)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in typing.get_args(tp))
    return tp in (int, float)


class StrictModel(BaseModel):
    """Base of all scenario models: forbid unknown keys, validate defaults and assignments."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False,
                              validate_assignment=True)

    def __setattr__(self, name: str, value: Any) -> None:
        """An edit in Python is checked like the file: `pool.replicas = -3` is a ScenarioError."""
        if name.startswith("_"):
            return super().__setattr__(name, value)
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            from fleetsim.errors import ScenarioError

            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(x) for x in err["loc"]) or name
            msg = err["msg"].removeprefix("Value error, ")
            raise ScenarioError(f"{type(self).__name__}.{loc}: {msg} (got {value!r})", field=loc) from None

    @model_validator(mode="before")
    @classmethod
    def _bool_is_not_a_number(cls, data: Any) -> Any:
        """YAML `true`/`false` is a boolean, never the number 1 or 0: pass it on as text so the
        field's own type check rejects it, with the field's path."""
        if isinstance(data, dict):
            for name, info in cls.model_fields.items():
                key = info.alias or name
                if isinstance(data.get(key), bool) and _numeric(info.annotation):
                    data = {**data, key: str(data[key]).lower()}
        return data
