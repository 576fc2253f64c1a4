"""Normalize text fields and drop rows whose text is empty or too short."""

from __future__ import annotations

from typing import ClassVar

from curate.schema import TEXT_FIELDS, Kind, Record
from curate.steps.base import FilterStep
from curate.text import match_value, normalize_text

# Optional free-text fields: normalized, but allowed to be short or empty.
OPTIONAL_TEXT = frozenset({"system", "comment", "input"})


class Normalize(FilterStep):
    """Clean every text field in place (see `normalize_text`); drop rows with a field under `min_chars`."""

    name: ClassVar[str] = "normalize"

    def __init__(self, kind: Kind, min_chars: int = 1):
        self.fields = TEXT_FIELDS[kind]
        self.min_chars = min_chars

    def filter(self, record: Record) -> bool | tuple[bool, str]:
        data = record.data
        texts: dict[str, str] = {}
        for name in self.fields:
            if isinstance(data.get(name), str):
                data[name] = texts[name] = normalize_text(data[name])
            elif isinstance(data.get(name), list):  # turns of a conversational preference row
                for i, turn in enumerate(data[name]):
                    turn["content"] = texts[f"{name}[{i}]"] = normalize_text(turn["content"])
        for i, message in enumerate(data.get("messages", [])):
            message["content"] = texts[f"messages[{i}]"] = normalize_text(message["content"])
        for name, value in texts.items():
            if name not in OPTIONAL_TEXT and len(value) < self.min_chars:
                return False, f"'{name}' is empty" if not value else f"'{name}' is shorter than {self.min_chars} chars"
        if "chosen" in data and match_value(data["chosen"]) == match_value(data["rejected"]):
            # A pair with nothing to prefer teaches nothing (and would be exported with margin 0).
            if "prompt" not in data:
                return False, "the two conversations are identical"
            return False, "'chosen' and 'rejected' are the same answer"
        return True
