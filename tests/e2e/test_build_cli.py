"""`curate build` run as a user runs it: a subprocess, then the export loaded back with datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from datasets import load_dataset

REPO = Path(__file__).resolve().parents[2]
CURATE = [sys.executable, "-m", "curate.cli"]


def run_curate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CURATE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_build_latex_as_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "latex"
    result = run_curate(
        "build", "data/latex", "--map", "english=prompt", "--map", "latex=response",
        "--template", "latex", "--out", str(out), "--test-size", "0.2", "--seed", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Export written to" in result.stdout and "train" in result.stdout
    ds = load_dataset("parquet", data_dir=str(out / "data"))
    total = ds["train"].num_rows + ds["test"].num_rows
    assert total >= 50
    assert round(total * 0.2) == ds["test"].num_rows
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["split"]["seed"] == 3


def test_bad_input_is_one_red_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "response": "a", "rating": 42, "labeler": "ann"}\n')
    result = run_curate("build", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "bad.jsonl line 1: field 'rating'" in result.stderr.replace("\n", " ")
    assert not (tmp_path / "out").exists()


def test_recipe_with_unknown_key_is_rejected(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inputs: [data/latex]\nout: out/x\nsplitt: {seed: 1}\n")
    result = run_curate("build", str(recipe))
    assert result.returncode == 1
    assert "'splitt': unknown key" in result.stderr


def test_directory_of_compressed_and_stray_files_builds_and_lists_what_it_skipped(tmp_path: Path) -> None:
    import gzip

    data = tmp_path / "in"
    data.mkdir()
    lines = (REPO / "data" / "latex" / "pairs.jsonl").read_bytes().splitlines(keepends=True)
    (data / "part1.jsonl.gz").write_bytes(gzip.compress(b"".join(lines[:30])))
    (data / "part2.jsonl").write_bytes(b"".join(lines[30:]))
    (data / "backup.gz").write_bytes(gzip.compress(b"".join(lines)))
    (data / "NOTES.txt").write_text("where the pairs came from\n")
    out = tmp_path / "out"
    result = run_curate("build", str(data), "--map", "english=prompt", "--map", "latex=response", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Skipped 2 file(s) in the input directories:" in result.stdout
    assert "backup.gz: compressed (.gz), but the name does not say what is inside" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["rows_read"] == len(lines)
    assert [Path(s["path"]).name for s in manifest["skipped_files"]] == ["NOTES.txt", "backup.gz"]
    assert "`" + str(data / "backup.gz") + "`" in (out / "README.md").read_text()
