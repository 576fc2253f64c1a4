"""Ingest + validate: raw rows from the readers become `Record`s of one kind, source by source.

A build's inputs are sources (curate.recipe.InputSource): each is read with its own column map,
validated, and sampled with the build's seed when it has a `weight` or `max_rows`. Every record
remembers its source's name in `record.extra["source"]`, so each step's counts can be told per source.
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate.errors import CurateError, RowError
from curate.io.export import file_sha256
from curate.io.limits import MemoryBudget, MemoryLimit
from curate.io.readers import RawRow, Skipped, read_rows
from curate.recipe import InputSource
from curate.schema import Kind, Record, detect_kind, validate_row
from curate.steps.base import BuildContext
from curate.steps.store import RecordStore

SKIP_HINT = "pass --skip-invalid to drop bad rows and list them in the export"


@dataclass
class SourceCount:
    """What one source gave a build: rows read, rows invalid, valid rows kept by its sample."""

    path: str
    rows_read: int = 0
    invalid: int = 0
    kept: int = 0
    sample: str | None = None  # "weight 0.5" / "max_rows 100" when the source was sampled


@dataclass
class Ingested:
    """Validated records, the kind they share, and the rows that failed (with --skip-invalid).

    From `ingest`, `records` is a stream: the counts (rows_read, invalid, skipped, by_source) are final
    once it has been read to the end.
    """

    kind: Kind
    records: Iterable[Record]
    invalid: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # files in input directories that are not data
    by_source: dict[str, SourceCount] = field(default_factory=dict)


def ingest(
    inputs: list[str | InputSource],
    kind: Kind | None,
    column_map: dict[str, str],
    ignore: list[str],
    skip_invalid: bool,
    ctx: BuildContext | None = None,
    seed: int = 0,
) -> Ingested:
    """Read, validate and sample every source, as a stream; stop at the first bad row unless `skip_invalid`.

    The first row is read here (it tells the kind, unless `kind` is given); the rest as the stream is read.
    """
    if not inputs:
        raise CurateError("no input given: pass one or more files or directories")
    sources = [i if isinstance(i, InputSource) else InputSource(path=i) for i in inputs]
    ingested = Ingested(kind or Kind.instruction, [])
    stream = _stream(sources, kind, column_map, ignore, skip_invalid, ctx, seed, ingested)
    first = next(stream, None)  # reads up to the first valid row: the kind is known from there
    if ingested.rows_read == 0:
        raise CurateError(f"no rows in {', '.join(s.path for s in sources)}")
    ingested.records = itertools.chain([first], stream) if first is not None else iter(())
    return ingested


class SeenIds:
    """Every id a build has read and where, to refuse a repeated id with the place of its first use.

    Compact: per id, a 64-bit hash (sorted, numpy), the id's text (Arrow, a batch at a time) and its file
    and row (typed arrays), not a Python dict entry; a hash match is confirmed against the stored text.
    """

    BATCH = 65_536

    def __init__(self) -> None:
        self._hashes = np.zeros(0, dtype=np.int64)  # sorted hashes of the ids of full batches
        self._positions = np.zeros(0, dtype=np.int64)  # the position (order of first use) of each hash
        self._texts: list[pa.Array] = []  # the ids of each full batch
        self._pending: dict[str, int] = {}  # the current batch: id -> position
        self._files: dict[str, int] = {}  # file -> its number
        self._file_of = array("i")  # position -> file number
        self._row_of = array("q")  # position -> row or line
        self._units: list[str] = []

    def first_use(self, record_id: str) -> str | None:
        """Where `record_id` was used before ('file line N'), or None for a new id."""
        position = self._pending.get(record_id)
        if position is None:
            hashed = hash(record_id)
            at = int(np.searchsorted(self._hashes, hashed))
            while at < len(self._hashes) and self._hashes[at] == hashed:
                candidate = int(self._positions[at])
                if self._texts[candidate // self.BATCH][candidate % self.BATCH].as_py() == record_id:
                    position = candidate
                    break
                at += 1
        if position is None:
            return None
        file = self._file_of[position]
        return f"{list(self._files)[file]} {self._units[file]} {self._row_of[position]}"

    def add(self, record_id: str, file: str, row: int, unit: str) -> None:
        """Remember a new id, read at `file` row `row`."""
        number = self._files.setdefault(file, len(self._files))
        if number == len(self._units):
            self._units.append(unit)
        self._pending[record_id] = len(self._file_of)
        self._file_of.append(number)
        self._row_of.append(row)
        if len(self._pending) == self.BATCH:
            ids = list(self._pending)
            hashes = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
            start = len(self._texts) * self.BATCH
            merged = np.concatenate([self._hashes, hashes])
            order = np.argsort(merged, kind="stable")  # two sorted runs: a merge
            self._hashes = merged[order]
            self._positions = np.concatenate([self._positions, np.arange(start, start + len(ids))])[order]
            self._texts.append(pa.array(ids, type=pa.string()))
            self._pending = {}


@dataclass
class _Validator:
    """Validates the rows of a build's sources in turn: one kind for all, ids unique across all."""

    sources: list[InputSource]
    given: Kind | None
    skip_invalid: bool
    ingested: Ingested
    kind: Kind | None = None
    kind_from: str | None = None
    seen_ids: SeenIds = field(default_factory=SeenIds)  # the duplicate-id check needs every id, not every row

    def records(self, number: int, rows: Iterable[RawRow], count: SourceCount) -> Iterator[Record]:
        """The valid records of source `number`, counted into `count` and the build's totals."""
        source = self.sources[number]
        self.kind = self.kind or self.given
        for raw in rows:
            count.rows_read += 1
            self.ingested.rows_read += 1
            if count.rows_read == 1 and self.given is None:  # each source's kind, from its first row
                self.check_kind(detect_kind(list(raw.data), raw.source, raw.row, raw.unit), source)
            assert self.kind is not None
            try:
                record = validate_row(self.kind, raw.data, raw.source, raw.row, raw.unit)
                if source.name and "id" not in raw.data:  # generated ids of a named source carry its name
                    record.id = f"{source.name}/{record.id}"
                where = self.seen_ids.first_use(record.id)
                if where is not None:
                    raise RowError(raw.source, raw.row, "id", f"id '{record.id}' already used at {where}", raw.unit)
                self.seen_ids.add(record.id, raw.source, raw.row, raw.unit)
            except RowError as exc:
                if not self.skip_invalid:
                    raise CurateError(f"{exc} ({SKIP_HINT})") from None
                self.ingested.invalid.append(exc.as_dict())
                count.invalid += 1
                continue
            record.extra["source"] = source.label
            yield record

    def check_kind(self, found: Kind, source: InputSource) -> None:
        if self.kind is not None and found is not self.kind:
            raise CurateError(
                f"{source.path}: its rows are '{found.value}' data, but {self.kind_from} gave '{self.kind.value}' "
                "data; a build holds one kind (map the columns with the source's `map`, or pass --kind)"
            )
        self.kind, self.kind_from = found, self.kind_from or source.path
        self.ingested.kind = found


def _stream(
    sources: list[InputSource],
    given: Kind | None,
    column_map: dict[str, str],
    ignore: list[str],
    skip_invalid: bool,
    ctx: BuildContext | None,
    seed: int,
    ingested: Ingested,
) -> Iterator[Record]:
    """The valid (and sampled) records of every source in order, counting into `ingested` as they are read."""
    validator = _Validator(sources, given, skip_invalid, ingested)
    budget = MemoryBudget(MemoryLimit.for_this_machine())  # one for the whole build
    for number, source in enumerate(sources):
        count = ingested.by_source[source.label] = SourceCount(source.path)
        rows = read_rows([source.path], {**column_map, **source.map}, ignore, ingested.skipped, budget)
        if ctx is not None:
            rows = ctx.track(rows, f"ingest {source.label}" if len(sources) > 1 else "ingest")
        valid = validator.records(number, rows, count)
        kept: Iterable[Record] = valid
        spilled: RecordStore[Record] | None = None
        if source.weight is not None or source.max_rows is not None:
            count.sample = f"weight {source.weight:g}" if source.weight is not None else f"max_rows {source.max_rows}"
            spilled = RecordStore(valid)  # the sample needs the number of valid rows first
            kept = sample_source(spilled, source, seed)
        for record in kept:
            count.kept += 1
            yield record
        if spilled is not None:
            spilled.remove()


def sample_source(records: Sequence[Record] | RecordStore[Record], source: InputSource, seed: int) -> Iterator[Record]:
    """The rows a source keeps: all, or a seeded sample of `weight` x n (at least 1) or `max_rows`, in input order.

    The sample depends only on the seed, the source's name and its number of rows, so the same inputs and
    recipe keep the same rows.
    """
    n = len(records)
    if source.weight is not None:
        k = max(1, round(source.weight * n))
    elif source.max_rows is not None:
        k = source.max_rows
    else:
        k = n
    if k >= n:
        yield from records
        return
    rng = random.Random(f"{seed}:{source.label}")
    keep = np.zeros(n, dtype=bool)
    keep[rng.sample(range(n), k)] = True
    yield from (record for i, record in enumerate(records) if keep[i])


def source_hashes(inputs: list[str | InputSource]) -> list[dict[str, str]]:
    """sha256 of every local input (a directory: all its files), for the manifest."""
    hashes = []
    for spec in inputs:
        path = spec.path if isinstance(spec, InputSource) else spec
        hashes.append({"path": path, "sha256": file_sha256(Path(path)) if Path(path).exists() else "remote"})
    return hashes
