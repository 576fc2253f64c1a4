"""Drop rows whose key fields match an earlier row's exactly (after normalization)."""

from __future__ import annotations

import json
from typing import ClassVar

from curate.schema import Record
from curate.steps.base import BuildContext, Step
from curate.text import match_key


class ExactDedupe(Step):
    """Keep the first row of each group of rows with equal `match_key` on `fields`."""

    name: ClassVar[str] = "exact_dedupe"

    def __init__(self, fields: tuple[str, ...], lowercase: bool = False):
        self.fields = fields
        self.lowercase = lowercase

    def key(self, record: Record) -> str:
        """The comparison key of a record: its fields' match keys, JSON-encoded."""
        parts = []
        for name in self.fields:
            value = record.data.get(name)
            if name == "messages" and value is not None:
                value = [[m["role"], match_key(m["content"], self.lowercase)] for m in value]
            elif isinstance(value, str):
                value = match_key(value, self.lowercase)
            parts.append(value)
        return json.dumps(parts, ensure_ascii=False)

    def run(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        first_seen: dict[str, Record] = {}
        kept = []
        for record in ctx.track(records, self.name):
            key = self.key(record)
            if key in first_seen:
                ctx.drop(record, self.name, "exact duplicate", kept=first_seen[key], similarity=1.0)
            else:
                first_seen[key] = record
                kept.append(record)
        return kept
