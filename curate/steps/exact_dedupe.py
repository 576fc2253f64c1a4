"""Drop rows whose key fields match an earlier row's exactly (after normalization)."""

from __future__ import annotations

import json
from typing import ClassVar

from curate.schema import Record
from curate.steps.base import BuildContext, Step
from curate.text import match_value


class ExactDedupe(Step):
    """Keep the first row of each group of rows with equal `match_key` on `fields`."""

    name: ClassVar[str] = "exact_dedupe"

    def __init__(self, fields: tuple[str, ...], lowercase: bool = False):
        self.fields = fields
        self.lowercase = lowercase

    def key(self, record: Record) -> str:
        """The comparison key of a record: its fields' match keys, JSON-encoded."""
        parts = [match_value(record.data.get(name), self.lowercase) for name in self.fields]
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
