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


def test_json_array_is_read_as_rows_with_the_line_each_starts_on(tmp_path: Path) -> None:
    # Stanford Alpaca's alpaca_data.json: one indented array of objects.
    alpaca = [{"instruction": "Give three tips.", "input": "", "output": "1. Eat\n2. Sleep"}, ROWS[0]]
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(alpaca, indent=4), encoding="utf-8")
    rows = list(read_rows([str(path)]))
    assert [r.data for r in rows] == alpaca
    assert [(r.row, r.unit) for r in rows] == [(2, "line"), (7, "line")]
    path.write_text(json.dumps(alpaca, indent=4).replace('"output"', "output", 1), encoding="utf-8")
    with pytest.raises(RowError, match=r"alpaca_data\.json line 5: field '\(line\)': not valid JSON"):
        list(read_rows([str(path)]))


def _compress(data: bytes, suffix: str) -> bytes:
    import bz2
    import gzip

    import zstandard

    return {".gz": gzip.compress, ".bz2": bz2.compress, ".zst": zstandard.ZstdCompressor().compress}[suffix](data)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst"])
def test_compressed_jsonl_and_csv_read_like_the_plain_files(tmp_path: Path, suffix: str) -> None:
    jsonl = (json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n").encode()
    csv_text = b'question,answer\n"What is 2+2?",4\n"Capital of\nFrance?",Paris\n'
    for name, data in (("a.jsonl", jsonl), ("a.csv", csv_text)):
        plain, packed = tmp_path / name, tmp_path / f"{name}{suffix}"
        plain.write_bytes(data)
        packed.write_bytes(_compress(data, suffix))
        expected = [(r.data, r.row) for r in read_rows([str(plain)])]
        assert [(r.data, r.row) for r in read_rows([str(packed)])] == expected
    bad = tmp_path / f"bad.jsonl{suffix}"
    bad.write_bytes(_compress(jsonl + b"{oops\n", suffix))
    with pytest.raises(RowError, match=rf"bad\.jsonl\{suffix} line 4: field '\(line\)': not valid JSON"):
        list(read_rows([str(bad)]))


def test_gzip_is_decompressed_while_read_not_first(tmp_path: Path) -> None:
    # A gzip file cut short: the rows before the cut arrive before the reader reaches the damage.
    import gzip

    body = "".join(json.dumps({"prompt": f"q{i}", "response": "a" * 50}) + "\n" for i in range(20_000)).encode()
    path = tmp_path / "hh.jsonl.gz"
    path.write_bytes(gzip.compress(body)[:-4000])
    rows = read_rows([str(path)])
    assert next(rows).data == {"prompt": "q0", "response": "a" * 50}
    with pytest.raises(CurateError, match=r"hh\.jsonl\.gz line \d+: cannot decompress the file \(gzip: .*truncated"):
        list(rows)


def test_directory_lists_the_files_it_skips_and_why(tmp_path: Path) -> None:
    import gzip

    from curate.io.readers import Skipped

    write_jsonl(tmp_path / "a.jsonl", ROWS[:1])
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress((json.dumps(ROWS[1]) + "\n").encode()))
    (tmp_path / "dump.gz").write_bytes(gzip.compress(b"x"))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "t.parquet.gz").write_bytes(b"x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    skipped: list[Skipped] = []
    assert [r.data for r in read_rows([str(tmp_path)], skipped=skipped)] == ROWS
    assert [(Path(s.path).name, s.reason.split(":")[0].split(" (")[0]) for s in skipped] == [
        (".DS_Store", "hidden file"),
        ("dump.gz", "compressed"),
        ("notes.txt", "unsupported file type '.txt'"),
        ("t.parquet.gz", "a compressed Parquet file; Parquet compresses itself"),
    ]
    assert "name it like data.jsonl.gz" in skipped[1].reason
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(CurateError, match=r"empty: directory holds no readable data files \(skipped 1: notes\.txt: "):
        list(read_rows([str(empty)]))
