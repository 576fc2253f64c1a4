"""Ingest + validate: raw rows from the readers become `Record`s of one kind, source by source.

A build's inputs are sources (curate.recipe.InputSource): each is read with its own column map,
validated, and sampled with the build's seed when it has a `weight` or `max_rows`. Every record
remembers its source's name in `record.extra["source"]`, so each step's counts can be told per source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, RowError
from curate.io.export import file_sha256
from curate.io.limits import MemoryBudget, MemoryLimit
from curate.io.readers import Skipped, read_rows
from curate.recipe import InputSource
from curate.schema import Kind, Record, detect_kind, validate_row
from curate.steps.base import BuildContext

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
    """Validated records, the kind they share, and the rows that failed (with --skip-invalid)."""

    kind: Kind
    records: list[Record]
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
    """Read, validate and sample every source; stop at the first bad row unless `skip_invalid`."""
    if not inputs:
        raise CurateError("no input given: pass one or more files or directories")
    sources = [i if isinstance(i, InputSource) else InputSource(path=i) for i in inputs]
    records: list[Record] = []
    invalid: list[dict[str, Any]] = []
    seen_ids: dict[str, str] = {}
    skipped: list[Skipped] = []
    by_source: dict[str, SourceCount] = {}
    budget = MemoryBudget(MemoryLimit.for_this_machine())  # one for the whole build: every source's rows are held
    given, kind_from = kind, None
    for source in sources:
        count = by_source[source.label] = SourceCount(source.path)
        rows = read_rows([source.path], {**column_map, **source.map}, ignore, skipped, budget)
        if ctx is not None:
            rows = ctx.track(rows, f"ingest {source.label}" if len(sources) > 1 else "ingest")
        valid: list[Record] = []
        for raw in rows:
            count.rows_read += 1
            if count.rows_read == 1 and given is None:  # each source's kind, from its first row
                found = detect_kind(list(raw.data), raw.source, raw.row, raw.unit)
                if kind is not None and found is not kind:
                    raise CurateError(
                        f"{source.path}: its rows are '{found.value}' data, but {kind_from} gave '{kind.value}' "
                        "data; a build holds one kind (map the columns with the source's `map`, or pass --kind)"
                    )
                kind, kind_from = found, kind_from or source.path
            assert kind is not None
            try:
                record = validate_row(kind, raw.data, raw.source, raw.row, raw.unit)
                if source.name and "id" not in raw.data:  # generated ids of a named source carry its name
                    record.id = f"{source.name}/{record.id}"
                if record.id in seen_ids:
                    raise RowError(
                        raw.source, raw.row, "id", f"id '{record.id}' already used at {seen_ids[record.id]}", raw.unit
                    )
                seen_ids[record.id] = f"{raw.source} {raw.unit} {raw.row}"
            except RowError as exc:
                if not skip_invalid:
                    raise CurateError(f"{exc} ({SKIP_HINT})") from None
                invalid.append(exc.as_dict())
                count.invalid += 1
                continue
            record.extra["source"] = source.label
            valid.append(record)
        kept = sample_source(valid, source, seed)
        count.kept = len(kept)
        if source.weight is not None or source.max_rows is not None:
            count.sample = f"weight {source.weight:g}" if source.weight is not None else f"max_rows {source.max_rows}"
        records.extend(kept)
    rows_read = sum(c.rows_read for c in by_source.values())
    if rows_read == 0 or kind is None:
        raise CurateError(f"no rows in {', '.join(s.path for s in sources)}")
    return Ingested(kind, records, invalid, rows_read, skipped, by_source)


def sample_source(records: list[Record], source: InputSource, seed: int) -> list[Record]:
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
        return records
    if k >= n:
        return records
    rng = random.Random(f"{seed}:{source.label}")
    return [records[i] for i in sorted(rng.sample(range(n), k))]


def source_hashes(inputs: list[str | InputSource]) -> list[dict[str, str]]:
    """sha256 of every local input (a directory: all its files), for the manifest."""
    hashes = []
    for spec in inputs:
        path = spec.path if isinstance(spec, InputSource) else spec
        hashes.append({"path": path, "sha256": file_sha256(Path(path)) if Path(path).exists() else "remote"})
    return hashes
