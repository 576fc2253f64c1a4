"""`curate review` as an admin uses it: init, import, labeler add, export, stats, serve."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.review.store import ReviewStore

ROOT = Path(__file__).resolve().parents[3]


def curate(*args: str, db: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["review", *args, "--db", db], env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'review.db'}"


def test_init_import_labeler_export(db: str, tmp_path: Path) -> None:
    assert curate("init", "--project", "qa", "--overlap", "2", db=db)[0] == 0
    code, out = curate("import", str(ROOT / "data/qa/items.jsonl"), "--project", "qa", "-q", db=db)
    assert code == 0 and "66 prompts read" in out and "200 new answers" in out
    code, out = curate("labeler", "add", "ann", db=db)
    assert code == 0
    password = out.strip().splitlines()[-1]
    store = ReviewStore(db)
    ann = store.accounts.authenticate("ann", password)  # the printed password logs in
    assert ann.role == "labeler"
    code, out = curate("labeler", "add", "boss", "--admin", db=db)
    assert store.accounts.authenticate("boss", out.strip().splitlines()[-1]).role == "admin"
    # ann rates the first answer of every item she gets 9, the others 2
    while (task := store.next_rating_task(ann.id, "qa")) is not None:
        store.submit_rating(ann.id, task.answer_id, 9 if task.answer_index == 1 else 2, None, 1.0)
    code, out = curate("export", "--project", "qa", "--kind", "preference", "--out", str(tmp_path / "p"), db=db)
    assert code == 0, out
    assert "Export written to" in out
    manifest = json.loads((tmp_path / "p/manifest.json").read_text())
    assert manifest["kind"] == "preference" and manifest["split"]["group_by"] == "prompt"
    pairs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "p/data").glob("*.parquet"))
    assert (pairs.margin == 7).all() and len(pairs) == manifest["derive"]["rows"] > 0
    code, out = curate("stats", "--project", "qa", db=db)
    assert code == 0 and "ann" in out and "done / assigned" in out
    code, out = curate("labeler", "deactivate", "ann", db=db)
    assert code == 0 and "ann deactivated; 0 untouched item(s) released" in out
    code, out = curate("labeler", "list", db=db)
    assert code == 0 and re.search(r"ann\s.*labeler\s.*False", out) and re.search(r"boss\s.*admin\s.*True", out)


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ('{"prompt": "p", "answers": "just one"}\n', ".jsonl", "line 1: field 'answers': Input should be a valid list"),
        ('{"prompt": "p", "answers": ["a"], "models": ["x", "y"]}\n', ".jsonl", "'models' has 2 entries for 1"),
        ('{"prompt": "p", "answers": ["a"], "rating": 3}\n', ".jsonl", "field 'rating': unknown column"),
        ('prompt,answers\nq,"[""a"", ""b""]"\nq2,\n', ".csv", "line 3: field 'answers': missing required field"),
    ],
)
def test_import_names_file_row_and_field(db: str, tmp_path: Path, content: str, suffix: str, message: str) -> None:
    curate("init", "--project", "qa", db=db)
    bad = tmp_path / f"items{suffix}"
    bad.write_text(content)
    code, out = curate("import", str(bad), "--project", "qa", "-q", db=db)
    assert code == 1 and message in out and "Traceback" not in out
    assert ReviewStore(db).reports.progress(1, "qa") == (0, 0)  # nothing half-imported


def test_csv_items_with_json_lists_import(db: str, tmp_path: Path) -> None:
    curate("init", "--project", "qa", db=db)
    good = tmp_path / "items.csv"
    good.write_text('prompt,answers,models\nq,"[""a"", ""b""]","[""m1"", ""m2""]"\n')
    code, out = curate("import", str(good), "--project", "qa", "-q", db=db)
    assert code == 0 and "2 new answers" in out


def test_errors_are_one_line(db: str) -> None:
    code, out = curate("import", "missing.jsonl", "--project", "qa", db=db)
    assert code == 1 and "missing.jsonl: no such file" in out
    curate("init", "--project", "qa", db=db)
    code, out = curate("init", "--project", "qa", db=db)
    assert code == 1 and "project 'qa' already exists" in out
    code, out = curate("export", "--project", "qa", "--out", "x", db=db)
    assert code == 1 and "has no ratings yet" in out
    code, out = curate("labeler", "add", "bad\tname", db=db)
    assert code == 1 and "labeler name must be" in out
    code, out = curate("init", "--project", "z", db="postgresql://nobody@127.0.0.1:1/none")
    assert code == 1 and "cannot open the review database" in out and "Traceback" not in out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_starts_streamlit_on_the_database(db: str, tmp_path: Path) -> None:
    assert curate("init", db=db)[0] == 0
    port = _free_port()
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CURATRAIN_REVIEW_DB", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "curate.cli", "review", "serve", "--db", db, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, health = time.monotonic() + 90, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    health = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert health == "ok", proc.stdout.read() if proc.poll() is not None else "no answer"
        # The server process IS `curate review serve` (exec), with the DB in its argv and environment.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"streamlit" in cmdline and db.encode() in cmdline
        # Labelers get the minimal toolbar (no Deploy, no developer menu) from the first page on.
        assert cmdline[cmdline.index(b"--client.toolbarMode") + 1] == b"minimal"
        # The Admin page writes exports only under one directory: --export-dir (default out/review, here).
        assert cmdline[cmdline.index(b"--export-dir") + 1] == str((tmp_path / "out/review").resolve()).encode()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"CURATRAIN_REVIEW_DB={db}".encode() in environ
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert re.search(rf"Review app on http://127\.0\.0\.1:{port}", proc.stdout.read())


def test_names_with_rich_markup_print_as_typed(db: str, tmp_path: Path) -> None:
    """Project and labeler names are people's text: "[/]" used to crash the CLI after the commit (the one-time
    password never shown), "[bold red]fake" printed as "fake". Every command prints them literally."""
    project, closer, styled = "[/]", "[/]x", "[bold red]fake"
    code, out = curate("init", "--project", project, db=db)
    assert code == 0 and "Project [/] (overlap 2" in out, out
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"prompt": "2 + 2?", "answers": ["4", "5"]}) + "\n")
    code, out = curate("import", str(items), "--project", project, "-q", db=db)
    assert code == 0 and "2 new answers added to [/]" in out, out
    passwords = {}
    for name in (closer, styled):
        code, out = curate("labeler", "add", name, db=db)
        assert code == 0 and f"Labeler {name} - one-time password" in out, out
        passwords[name] = out.strip().splitlines()[-1]
    store = ReviewStore(db)
    labeler = store.accounts.authenticate(closer, passwords[closer])  # the password was printed, and works
    task = store.next_rating_task(labeler.id, project)
    store.submit_rating(labeler.id, task.answer_id, 6, None, 1.0)
    store.close()
    code, out = curate("labeler", "list", db=db)
    assert code == 0 and closer in out and styled in out, out
    code, out = curate("stats", "--project", project, db=db)
    assert code == 0 and "project [/]" in out and closer in out, out
    code, out = curate("init", "--project", project, db=db)
    assert code == 1 and "project '[/]' already exists" in out and "Traceback" not in out


@pytest.mark.parametrize("name", ["ann\u202egnp.exe", "zero\u200bwidth", "bom\ufeff", "line\u2028break", "bell\x07"])
def test_names_with_control_or_direction_characters_are_refused(db: str, name: str) -> None:
    curate("init", db=db)
    code, out = curate("labeler", "add", name, db=db)
    assert code == 1 and "labeler name must be 1-100 printable characters" in out and "Traceback" not in out
    code, out = curate("init", "--project", name, db=db)
    assert code == 1 and "project name must be" in out
