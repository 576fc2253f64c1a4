"""Drop rows whose key fields match an earlier row's exactly (after normalization)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import ClassVar

import numpy as np

from curate.schema import Record
from curate.steps.base import BuildContext, Step
from curate.steps.keys import first_rows
from curate.text import match_value


class ExactDedupe(Step):
    """Keep the first row of each group of rows with equal `match_key` on `fields`.

    Two passes over the stored rows: the first keeps a 16-byte digest of each row's key (curate/steps/keys.py,
    not a dict of keys) and finds each key's first row; the second drops the later rows of each key.
    """

    name: ClassVar[str] = "exact_dedupe"
    passes = 2

    def __init__(self, fields: tuple[str, ...], lowercase: bool = False):
        self.fields = fields
        self.lowercase = lowercase

    def key(self, record: Record) -> str:
        """The comparison key of a record: its fields' match keys, JSON-encoded."""
        parts = [match_value(record.data.get(name), self.lowercase) for name in self.fields]
        return json.dumps(parts, ensure_ascii=False)

    def first_of_key(self, records: Iterable[Record], ctx: BuildContext) -> np.ndarray:
        """For each row, the position of the first row with its key (its own position when it is the first)."""
        return first_rows(self.key(r) for r in ctx.track(records, f"{self.name} keys"))

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        first = self.first_of_key(records, ctx)
        repeated = np.zeros(len(first), dtype=bool)  # rows a later row repeats
        repeated[first[first != np.arange(len(first))]] = True
        kept: dict[int, Record] = {}  # those rows, for the kept text of duplicates.parquet
        for i, record in enumerate(ctx.track(records, self.name)):
            j = int(first[i])
            if j != i:
                ctx.drop(record, self.name, "exact duplicate", kept=kept[j], similarity=1.0)
                continue
            if repeated[i]:
                kept[i] = record
            yield record
