"""The one exception type a user can cause, caught once in the CLI (exit code 2)."""

from __future__ import annotations


class FleetsimError(Exception):
    """A problem the user can fix: bad scenario field, unknown chip, unreadable file.

    The message names the file, the field path (dotted), the line when known, and what is
    allowed, so the CLI can print it as one line without a traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.field = field
        self.line = line
        super().__init__(self.__str__())

    def with_file(self, file: str | None) -> "FleetsimError":
        """Return the same error tagged with the scenario file it came from."""
        if file is None or self.file is not None:
            return self
        return type(self)(self.message, file=file, field=self.field, line=self.line)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}" + (f":{self.line}" if self.line else ""))
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class ScenarioError(FleetsimError):
    """A scenario file or override that does not validate."""


class CapacityError(FleetsimError):
    """A model that does not fit on the chips it is given (weights exceed HBM x tp)."""
