"""Read raw rows from JSON Lines, JSON arrays, CSV, Parquet and Hugging Face datasets.

Every reader yields `RawRow`s that remember their file and line/row so a later
validation error can point at them. Text files (`.jsonl`, `.json`, `.csv`) may be
compressed (`.gz`, `.bz2`, `.zst`): they are decompressed while read, line by line,
and lines are split at `\\n` only (U+2028 or U+0085 inside a string is text, not a line
break). A `.json` file holds JSON Lines or one JSON array of objects (Stanford Alpaca's
`alpaca_data.json`). Directories are read file by file (sorted); files that are not
data are skipped and listed with the reason. A directory written by
`Dataset.save_to_disk` is loaded with `datasets`; `hf:NAME` goes through
`datasets.load_dataset` (hub id or local path). What is read is counted against a
memory limit (`curate.io.limits`).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError, RowError
from curate.io.limits import MemoryBudget, MemoryLimit, format_bytes

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
TEXT_SUFFIXES = (".jsonl", ".json", ".csv")  # the formats read line by line, hence also compressed
PARQUET_BATCH_ROWS = 10_000
GZIP_MAX_RATIO = 1032


@dataclass
class RawRow:
    """One row as read, before validation."""

    data: dict[str, Any]
    source: str
    row: int
    unit: str  # "line" for text formats, "row" for tabular ones


@dataclass(frozen=True)
class Skipped:
    """A file in an input directory that was not read, and why."""

    path: str
    reason: str


def read_rows(
    inputs: list[str],
    column_map: dict[str, str] | None = None,
    ignore: list[str] | None = None,
    skipped: list[Skipped] | None = None,
    budget: MemoryBudget | None = None,
) -> Iterator[RawRow]:
    """Yield raw rows from every input, with columns renamed and ignored ones dropped.

    Files skipped in input directories are appended to `skipped`; rows are counted against `budget`
    (default: this machine's memory limit).
    """
    if not inputs:
        raise CurateError("no input given: pass one or more files or directories")
    column_map = column_map or {}
    drop = set(ignore or [])
    budget = budget or MemoryBudget(MemoryLimit.for_this_machine())
    skipped = skipped if skipped is not None else []
    for spec in inputs:
        for raw in _read_one(spec, skipped, budget):
            data = {column_map.get(k, k): v for k, v in raw.data.items() if k not in drop}
            raw.data = {k: v for k, v in data.items() if v is not None}
            yield raw


def file_format(path: Path) -> tuple[str, str | None]:
    """(data format suffix, compression or None) of a file name; CurateError with the reason if unreadable."""
    suffix = path.suffix.lower()
    compression = COMPRESSIONS.get(suffix)
    inner = Path(path.stem).suffix.lower() if compression else suffix
    readable = f"{', '.join(SUFFIXES)}, or {'/'.join(TEXT_SUFFIXES)} compressed as {'/'.join(COMPRESSIONS)}"
    if compression and inner == ".parquet":
        raise CurateError(f"{path}: a compressed Parquet file; Parquet compresses itself: decompress it ({readable})")
    if compression and inner not in TEXT_SUFFIXES:
        raise CurateError(
            f"{path}: compressed ({suffix}), but the name does not say what is inside: "
            f"name it like data.jsonl{suffix} or data.csv{suffix}"
        )
    if inner not in SUFFIXES:
        raise CurateError(f"{path}: unsupported file type '{suffix or path.name}' (use {readable})")
    return inner, compression


def _read_one(spec: str, skipped: list[Skipped], budget: MemoryBudget) -> Iterator[RawRow]:
    if spec.startswith("hf:"):
        yield from _read_hf(spec[3:], budget)
        return
    path = Path(spec)
    if not path.exists():
        raise CurateError(f"{spec}: no such file or directory")
    if not path.is_dir():
        yield from _read_file(path, budget)
        return
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        yield from _read_saved_dataset(path, budget)
        return
    files, passed_over = directory_files(path)
    skipped.extend(passed_over)
    if not files:
        listed = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in passed_over[:3])
        more = f" (skipped {len(passed_over)}: {listed}{' ...' if len(passed_over) > 3 else ''})" if passed_over else ""
        raise CurateError(f"{spec}: directory holds no readable data files{more}")
    for file in files:
        yield from _read_file(file, budget)


def directory_files(directory: Path) -> tuple[list[Path], list[Skipped]]:
    """The data files under `directory` (sorted, hidden ones left out) and every entry passed over, with why."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for root, dirs, names in os.walk(directory):
        for name in sorted(d for d in dirs if d.startswith(".")):
            skipped.append(Skipped(str(Path(root) / name), "hidden directory"))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            file = Path(root) / name
            if name.startswith("."):
                skipped.append(Skipped(str(file), "hidden file"))
                continue
            try:
                file_format(file)
            except CurateError as exc:
                skipped.append(Skipped(str(file), str(exc).removeprefix(f"{file}: ")))
                continue
            files.append(file)
    return sorted(files), sorted(skipped, key=lambda s: s.path)


def _read_file(path: Path, budget: MemoryBudget) -> Iterator[RawRow]:
    fmt, compression = file_format(path)
    if fmt == ".parquet":
        rows = _read_parquet(path, budget)
    else:
        _check_text_size(path, compression, budget)
        rows = (
            _read_csv(path, compression, budget)
            if fmt == ".csv"
            else _read_json(path, compression, budget, array=fmt == ".json")
        )
    count = 0
    for raw in rows:
        count += 1
        yield raw
    if count == 0:
        raise CurateError(f"{path}: the file holds no rows")


def _check_text_size(path: Path, compression: str | None, budget: MemoryBudget) -> None:
    """Refuse a text file whose (declared uncompressed) size alone would not fit in memory as rows."""
    size = _uncompressed_size(path, compression)
    if size is not None:
        what = "uncompressed" if compression else "of text"
        budget.check_declared(path, 0, size, f"{format_bytes(size)} {what}")


def _uncompressed_size(path: Path, compression: str | None) -> int | None:
    """The file's size, or what a compressed file declares it holds (gzip: size mod 4 GiB; bz2: unknown)."""
    try:
        size = path.stat().st_size
        if compression is None:
            return size
        with path.open("rb") as handle:
            if compression == "gzip" and size >= 18:
                handle.seek(-4, os.SEEK_END)
                declared = int.from_bytes(handle.read(4), "little")
                # Deflate packs at most ~1032:1; a larger figure is a damaged trailer, not a size.
                return declared if size <= declared <= size * GZIP_MAX_RATIO else None
            if compression == "zstd":
                import zstandard

                declared = zstandard.frame_content_size(handle.read(18))
                return declared if declared >= 0 else None
    except (OSError, ValueError, ImportError):
        return None  # unreadable here: the reader itself reports it
    return None


@contextmanager
def _open_binary(path: Path, compression: str | None) -> Iterator[io.BufferedIOBase]:
    """The file's bytes, decompressed while read."""
    try:
        if compression == "gzip":
            stream: io.BufferedIOBase = gzip.GzipFile(path, "rb")
        elif compression == "bz2":
            stream = bz2.BZ2File(path, "rb")
        elif compression == "zstd":
            import zstandard

            stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True))
        else:
            stream = path.open("rb")
    except OSError as exc:
        raise CurateError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    with stream:
        yield stream


def _decompress_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return errors


def _lines(path: Path, compression: str | None, budget: MemoryBudget) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, split at b"\\n" only, decoded as UTF-8 and counted against `budget`."""
    number = 0
    with _open_binary(path, compression) as stream:
        lines = iter(stream)  # binary streams split at b"\n" and nothing else
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except _decompress_errors() as exc:
                raise CurateError(
                    f"{path} line {number + 1}: cannot {'decompress' if compression else 'read'} the file "
                    f"({compression + ': ' if compression else ''}{exc}); the file is damaged or truncated"
                ) from None
            number += 1
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            budget.charge(f"{path} line {number}", 1, len(line))
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CurateError(
                    f"{path} line {number}: not valid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
                    "re-encode the file as UTF-8"
                ) from None
            yield number, text


def _read_json(path: Path, compression: str | None, budget: MemoryBudget, array: bool) -> Iterator[RawRow]:
    """JSON Lines; or, when `array` (a `.json` file) and the text starts with `[`, one array of objects."""
    lines = _lines(path, compression, budget)
    for number, line in lines:
        if not line.strip():
            continue
        if array and line.lstrip().startswith("["):
            yield from _json_array(path, line + "".join(text for _, text in lines), first_line=number)
            return
        yield RawRow(_json_object(path, number, line), str(path), number, "line")


def _json_object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RowError(str(path), number, "(line)", f"not valid JSON: {exc.msg}", "line") from None
    except RecursionError:
        raise RowError(str(path), number, "(line)", "JSON nested too deeply to read", "line") from None
    if not isinstance(value, dict):
        raise RowError(
            str(path), number, "(line)", "expected a JSON object per line (or, in a .json file, one array)", "line"
        )
    return value


def _json_array(path: Path, text: str, first_line: int) -> Iterator[RawRow]:
    """The objects of a JSON array (`text` starts with it), each with the line it starts on, decoded one at a time."""
    decoder = json.JSONDecoder()
    counted, line = 0, first_line  # line breaks in text[:counted] are already added to `line`

    def skip_space(position: int) -> int:
        nonlocal counted, line
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        line += text.count("\n", counted, position)
        counted = position
        if position >= len(text):
            raise RowError(str(path), line, "(line)", "the JSON array is not closed with ']'", "line")
        return position

    position = skip_space(text.index("[") + 1)
    if text[position] != "]":
        while True:
            try:
                value, end = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                raise RowError(
                    str(path), first_line + exc.lineno - 1, "(line)", f"not valid JSON: {exc.msg}", "line"
                ) from None
            except RecursionError:
                raise RowError(str(path), line, "(line)", "JSON nested too deeply to read", "line") from None
            if not isinstance(value, dict):
                raise RowError(str(path), line, "(line)", "expected a JSON object as each element of the array", "line")
            yield RawRow(value, str(path), line, "line")
            position = skip_space(end)
            if text[position] == "]":
                break
            if text[position] != ",":
                raise RowError(
                    str(path), line, "(line)", f"expected ',' or ']' in the JSON array, got {text[position]!r}", "line"
                )
            position = skip_space(position + 1)
    if text[position + 1 :].strip():
        raise RowError(str(path), line, "(line)", "text after the end of the JSON array", "line")


def _read_csv(path: Path, compression: str | None, budget: MemoryBudget) -> Iterator[RawRow]:
    """CSV rows as dicts; an empty cell is a missing value. Quoting is checked: a quote never closed is named."""
    reader = csv.reader(_csv_lines(path, compression, budget), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise CurateError(f"{path} line 1: malformed CSV header ({exc})") from None
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise CurateError(f"{path} line 1: duplicated column(s) {duplicated}")
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise CurateError(
                    f"{path} line {start}: a quoted cell in the row starting on this line is never closed, so it "
                    f"would swallow the rest of the file (to line {reader.line_num}); close the quote, or double a "
                    'quote that is part of the text ("")'
                ) from None
            raise CurateError(
                f"{path} line {reader.line_num}: malformed CSV in the row starting on line {start} ({exc})"
            ) from None
        if not cells:
            continue
        if len(cells) > len(header):
            raise RowError(str(path), start, "(row)", "more cells than header columns", "line")
        # An empty CSV cell is a missing value, not an empty string.
        data = {name: (cell if cell != "" else None) for name, cell in zip(header, cells, strict=False)}
        yield RawRow(data, str(path), start, "line")


def _csv_lines(path: Path, compression: str | None, budget: MemoryBudget) -> Iterator[str]:
    """The file's lines for the csv module; a NUL byte (binary data, a corrupt file) stops with its line."""
    for number, line in _lines(path, compression, budget):
        if "\x00" in line:
            raise CurateError(
                f"{path} line {number}: NUL byte at column {line.index(chr(0)) + 1}: a text CSV holds none "
                "(binary data or a damaged file); remove it"
            )
        yield line


def _read_parquet(path: Path, budget: MemoryBudget) -> Iterator[RawRow]:
    """Parquet rows, read batch by batch after the file's declared size is checked against the memory limit."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise CurateError(f"{path}: not a readable Parquet file ({exc})") from None
    meta = parquet.metadata
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    budget.check_declared(path, meta.num_rows, size, f"{meta.num_rows:,} rows, {format_bytes(size)} uncompressed")
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            budget.charge(f"{path} row {number + batch.num_rows}", batch.num_rows, batch.nbytes)
            for row in batch.to_pylist():
                number += 1
                yield RawRow(row, str(path), number, "row")
    except OSError as exc:
        raise CurateError(f"{path} row {number + 1}: not a readable Parquet file ({exc})") from None


def _read_dataset(dataset: Any, source: str, budget: MemoryBudget) -> Iterator[RawRow]:
    budget.check_declared(source, len(dataset), dataset.data.nbytes, f"{len(dataset):,} rows")
    for number, row in enumerate(dataset, start=1):
        yield RawRow(dict(row), source, number, "row")
    budget.charge(source, len(dataset), dataset.data.nbytes)


def _read_saved_dataset(path: Path, budget: MemoryBudget) -> Iterator[RawRow]:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(path))
    splits = {"": loaded} if isinstance(loaded, Dataset) else dict(loaded)
    for split, dataset in splits.items():
        yield from _read_dataset(dataset, f"{path}[{split}]" if split else str(path), budget)


def _read_hf(name: str, budget: MemoryBudget) -> Iterator[RawRow]:
    from datasets import load_dataset

    repo, _, split = name.partition(":")
    try:
        loaded = load_dataset(repo, split=split or None)
    except Exception as exc:  # hub/network/format errors all mean: cannot load this dataset
        raise CurateError(f"hf:{name}: cannot load the dataset ({exc})") from None
    splits = {split: loaded} if split else dict(loaded)
    for split_name, dataset in splits.items():
        yield from _read_dataset(dataset, f"hf:{repo}[{split_name}]", budget)
