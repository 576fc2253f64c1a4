"""Rows kept as Arrow columns, converted a batch at a time: what a build holds of its exported and dropped rows.

A row as Python objects (a dict, its strings, its lists of turns) takes several times its text; as
Arrow columns it takes about its text. A streaming build appends each exported or dropped row here
and holds only the current batch as Python objects. Types are `datasets`' own inference per batch;
the batches are joined with Arrow's type promotion (a column that is all null in one batch takes
its type from the others), so the table equals `Dataset.from_list` of all the rows, and writes the
same Parquet bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

BATCH = 10_000  # rows converted to Arrow at once


class RowTable:
    """An append-only table of dict rows; the columns are the first row's keys (as `Dataset.from_list`)."""

    def __init__(self, rows: Iterable[dict[str, Any]] = ()):
        self._tables: list[pa.Table] = []
        self._pending: list[dict[str, Any]] = []
        self._columns: list[str] | None = None
        self._rows = 0
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return self._rows

    @property
    def columns(self) -> list[str]:
        """The column names (the first row's keys; [] while empty)."""
        return list(self._columns or [])

    def append(self, row: dict[str, Any]) -> None:
        """Add one row (keys the first row lacks are left out, as `Dataset.from_list` does)."""
        if self._columns is None:
            self._columns = list(row)
        self._pending.append(row)
        self._rows += 1
        if len(self._pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        from datasets import Dataset

        columns = self._columns or []
        batch = Dataset.from_dict({name: [row.get(name) for row in self._pending] for name in columns})
        self._tables.append(batch.data.table.replace_schema_metadata(None))
        self._pending = []

    def table(self) -> pa.Table:
        """All rows as one contiguous Arrow table (types promoted across batches)."""
        self._flush()
        if not self._tables:
            return pa.table({})
        # One chunk per batch (no combine_chunks: that would hold every row twice); `to_parquet` writes the same bytes.
        joined = pa.concat_tables(self._tables, promote_options="default")
        self._tables = [joined]
        return joined

    def dataset(self) -> Any:
        """All rows as a `datasets.Dataset` (features inferred from the Arrow types)."""
        from datasets import Dataset

        return Dataset(self.table())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The rows as dicts, a batch at a time."""
        self._flush()
        for table in self._tables:
            for batch in table.to_batches(max_chunksize=BATCH):
                yield from batch.to_pylist()
