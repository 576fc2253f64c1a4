"""Ingest of every supported format, column mapping, and read errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict

from curate.errors import CurateError, RowError
from curate.io.readers import read_rows

ROWS = [{"question": "What is 2+2?", "answer": "4"}, {"question": "Capital of France?", "answer": "Paris"}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_rows_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    rows = list(read_rows([str(path)]))
    assert [r.data for r in rows] == ROWS
    assert [(r.row, r.unit) for r in rows] == [(1, "line"), (3, "line")]


def test_csv_empty_cells_are_missing_and_mapping_renames(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["question", "answer", "note"])
        writer.writeheader()
        writer.writerow({**ROWS[0], "note": ""})
    rows = list(read_rows([str(path)], {"question": "prompt", "answer": "response"}, ignore=["note"]))
    assert rows[0].data == {"prompt": "What is 2+2?", "response": "4"}
    assert rows[0].row == 2


def test_parquet_and_saved_hf_dataset_and_directory(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    saved = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(str(saved))
    folder = tmp_path / "folder"
    folder.mkdir()
    write_jsonl(folder / "b.jsonl", ROWS)

    assert [r.data for r in read_rows([str(tmp_path / "a.parquet")])] == ROWS
    from_saved = list(read_rows([str(saved)]))
    assert len(from_saved) == 3 and from_saved[0].source.endswith("[train]")
    assert [r.data for r in read_rows([str(folder)])] == ROWS


def test_hf_prefix_loads_through_load_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "hub_like"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(ROWS), folder / "train.parquet")
    rows = list(read_rows([f"hf:{folder}:train"]))
    assert [r.data for r in rows] == ROWS


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"prompt": "ok", "response": "fine"}\n{"prompt": "caf\xe9"}\n', "line 2: not valid UTF-8"),
        (b'{"prompt": "ok"}\n{not json}\n', "line 2: field '(line)': not valid JSON"),
        (b"[1, 2]\n", "expected a JSON object"),
        (b"\n\n", "holds no rows"),
    ],
)
def test_bad_jsonl_names_the_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises((CurateError, RowError), match=expected.replace("(", r"\(").replace(")", r"\)")):
        list(read_rows([str(path)]))


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="no such file"):
        list(read_rows([str(tmp_path / "nope.jsonl")]))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(CurateError, match="unsupported file type"):
        list(read_rows([str(tmp_path / "a.txt")]))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(CurateError, match="not a readable Parquet"):
        list(read_rows([str(tmp_path / "broken.parquet")]))
