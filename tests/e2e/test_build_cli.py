"""`curate build` run as a user runs it: a subprocess, then the export loaded back with datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_memory_limit_follows_ulimit_and_stops_in_one_line() -> None:
    # A 33 KB Parquet file of 3.6M rows under `ulimit -v 3GB`: once a 2.9 GB MemoryError traceback.
    import resource

    def limit_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    env = {k: v for k, v in os.environ.items() if k != "CURATRAIN_MAX_MEMORY"}
    result = subprocess.run(
        [*CURATE, "build", "tests/corpus/build/millions_of_rows.parquet", "--out", "/nonexistent/never-written"],
        cwd=REPO, env={**env, "COLUMNS": "400"}, capture_output=True, text=True, timeout=120,
        preexec_fn=limit_address_space,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "3,600,000 rows" in result.stderr and "what `ulimit -v` still allows" in result.stderr
    assert "CURATRAIN_MAX_MEMORY=" in result.stderr


def test_full_disk_while_writing_is_one_line_and_keeps_the_old_export(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes every write past 4 KB fail (EFBIG), as a full disk fails it (ENOSPC).
    import resource
    import signal

    out = tmp_path / "latex"
    args = ("build", "data/latex", "--map", "english=prompt", "--map", "latex=response", "--out", str(out), "-q")
    assert run_curate(*args).returncode == 0
    before = {p.name: p.read_bytes() for p in (out / "data").iterdir()}

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run(
        [*CURATE, *args, "--seed", "7"], cwd=REPO, capture_output=True, text=True, timeout=300,
        preexec_fn=limit_file_size,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {out}: cannot write the export (File too large)")
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latex"]  # no temporary directory left behind


def test_read_only_output_directory_fails_before_the_work(tmp_path: Path) -> None:
    import shutil
    import stat

    # Root writes anywhere: as root, the build runs without the capability that overrides file modes.
    drop_override: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and util-linux's setpriv is missing: a read-only directory cannot be made")
        drop_override = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    args = ["build", "data/latex", "--map", "english=prompt", "--map", "latex=response", "--out", str(locked / "out")]
    result = subprocess.run([*drop_override, *CURATE, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    locked.chmod(stat.S_IRWXU)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{locked / 'out'}: cannot write the export in {locked} (Permission denied)" in result.stderr
    assert "ingest" not in result.stdout  # stopped before reading a row
