"""Errors a user can act on. The CLIs print them as one red line and exit non-zero."""

from __future__ import annotations


class CurateError(Exception):
    """Bad input or configuration, with a message that says what to fix."""


class RowError(CurateError):
    """A single input row failed validation; names the file, row and field."""

    def __init__(self, source: str, row: int, field: str, message: str, unit: str = "row"):
        self.source = source
        self.row = row
        self.field = field
        self.message = message
        self.unit = unit
        super().__init__(f"{source} {unit} {row}: field '{field}': {message}")

    def as_dict(self) -> dict[str, object]:
        """The error as a JSON-able dict (for the export's invalid-rows report)."""
        return {
            "source": self.source,
            self.unit: self.row,
            "field": self.field,
            "message": self.message,
        }
