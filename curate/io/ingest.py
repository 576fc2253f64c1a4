"""Ingest + validate: raw rows from the readers become `Record`s of one kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import CurateError, RowError
from curate.io.export import file_sha256
from curate.io.readers import Skipped, read_rows
from curate.schema import Kind, Record, detect_kind, validate_row
from curate.steps.base import BuildContext


@dataclass
class Ingested:
    """Validated records, the kind they share, and the rows that failed (with --skip-invalid)."""

    kind: Kind
    records: list[Record]
    invalid: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # files in input directories that are not data


def ingest(
    inputs: list[str],
    kind: Kind | None,
    column_map: dict[str, str],
    ignore: list[str],
    skip_invalid: bool,
    ctx: BuildContext | None = None,
) -> Ingested:
    """Read and validate every input row; stop at the first bad row unless `skip_invalid`."""
    records: list[Record] = []
    invalid: list[dict[str, Any]] = []
    seen_ids: dict[str, str] = {}
    skipped: list[Skipped] = []
    rows = read_rows(inputs, column_map, ignore, skipped)
    if ctx is not None:
        rows = ctx.track(rows, "ingest")
    count = 0
    for raw in rows:
        count += 1
        if kind is None:
            kind = detect_kind(list(raw.data), raw.source, raw.row, raw.unit)
        try:
            record = validate_row(kind, raw.data, raw.source, raw.row, raw.unit)
            where = f"{raw.source} {raw.unit} {raw.row}"
            if record.id in seen_ids:
                raise RowError(
                    raw.source, raw.row, "id", f"id '{record.id}' already used at {seen_ids[record.id]}", raw.unit
                )
            seen_ids[record.id] = where
        except RowError as exc:
            if not skip_invalid:
                raise CurateError(f"{exc} (pass --skip-invalid to drop bad rows and list them in the export)") from None
            invalid.append(exc.as_dict())
            continue
        records.append(record)
    if count == 0 or kind is None:
        raise CurateError(f"no rows in {', '.join(inputs)}")
    return Ingested(kind, records, invalid, count, skipped)


def source_hashes(inputs: list[str]) -> list[dict[str, str]]:
    """sha256 of every local input (a directory: all its files), for the manifest."""
    hashes = []
    for spec in inputs:
        path = Path(spec)
        hashes.append({"path": spec, "sha256": file_sha256(path) if path.exists() else "remote"})
    return hashes
