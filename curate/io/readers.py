"""Read raw rows from JSONL, CSV, Parquet and Hugging Face datasets.

Every reader yields `RawRow`s that remember their file and line/row so a later
validation error can point at them. Directories are read file by file (sorted);
a directory written by `Dataset.save_to_disk` is loaded with `datasets`; `hf:NAME`
goes through `datasets.load_dataset` (hub id or local path).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError, RowError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class RawRow:
    """One row as read, before validation."""

    data: dict[str, Any]
    source: str
    row: int
    unit: str  # "line" for text formats, "row" for tabular ones


def read_rows(
    inputs: list[str], column_map: dict[str, str] | None = None, ignore: list[str] | None = None
) -> Iterator[RawRow]:
    """Yield raw rows from every input, with columns renamed and ignored ones dropped."""
    if not inputs:
        raise CurateError("no input given: pass one or more files or directories")
    column_map = column_map or {}
    drop = set(ignore or [])
    for spec in inputs:
        for raw in _read_one(spec):
            data = {column_map.get(k, k): v for k, v in raw.data.items() if k not in drop}
            raw.data = {k: v for k, v in data.items() if v is not None}
            yield raw


def _read_one(spec: str) -> Iterator[RawRow]:
    if spec.startswith("hf:"):
        yield from _read_hf(spec[3:])
        return
    path = Path(spec)
    if not path.exists():
        raise CurateError(f"{spec}: no such file or directory")
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            yield from _read_saved_dataset(path)
            return
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise CurateError(f"{spec}: directory holds no {'/'.join(SUFFIXES)} files")
        for file in files:
            yield from _read_file(file)
        return
    yield from _read_file(path)


def _read_file(path: Path) -> Iterator[RawRow]:
    readers = {".jsonl": _read_jsonl, ".json": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}
    reader = readers.get(path.suffix)
    if reader is None:
        raise CurateError(f"{path}: unsupported file type '{path.suffix}' (use {', '.join(SUFFIXES)})")
    count = 0
    for raw in reader(path):
        count += 1
        yield raw
    if count == 0:
        raise CurateError(f"{path}: the file holds no rows")


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CurateError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CurateError(
            f"{path} line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
            "re-encode the file as UTF-8"
        ) from None


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    text = _decode(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RowError(str(path), number, "(line)", f"not valid JSON: {exc.msg}", "line") from None
        if not isinstance(value, dict):
            raise RowError(str(path), number, "(line)", "expected a JSON object per line", "line")
        yield RawRow(value, str(path), number, "line")


def _read_csv(path: Path) -> Iterator[RawRow]:
    reader = csv.DictReader(io.StringIO(_decode(path), newline=""))
    header = reader.fieldnames or []
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise CurateError(f"{path} line 1: duplicated column(s) {duplicated}")
    for row in reader:
        if None in row:
            raise RowError(str(path), reader.line_num, "(row)", "more cells than header columns", "line")
        # An empty CSV cell is a missing value, not an empty string.
        yield RawRow({k: (v if v != "" else None) for k, v in row.items()}, str(path), reader.line_num, "line")


def _read_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise CurateError(f"{path}: not a readable Parquet file ({exc})") from None
    for number, row in enumerate(table.to_pylist(), start=1):
        yield RawRow(row, str(path), number, "row")


def _read_saved_dataset(path: Path) -> Iterator[RawRow]:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(path))
    splits = {"": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    for split, dataset in splits.items():
        source = f"{path}[{split}]" if split else str(path)
        for number, row in enumerate(dataset, start=1):
            yield RawRow(dict(row), source, number, "row")


def _read_hf(name: str) -> Iterator[RawRow]:
    from datasets import load_dataset

    repo, _, split = name.partition(":")
    try:
        loaded = load_dataset(repo, split=split or None)
    except Exception as exc:  # hub/network/format errors all mean: cannot load this dataset
        raise CurateError(f"hf:{name}: cannot load the dataset ({exc})") from None
    splits = {split: loaded} if split else dict(loaded)
    for split_name, dataset in splits.items():
        for number, row in enumerate(dataset, start=1):
            yield RawRow(dict(row), f"hf:{repo}[{split_name}]", number, "row")
