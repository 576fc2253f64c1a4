"""Outputs replace only what this tool wrote: a marker field in the output's own file, not the file's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app

DATA = Path(__file__).resolve().parents[3] / "data"
BUILD = ["build", str(DATA / "latex" / "pairs.jsonl"), "--map", "english=prompt", "--map", "latex=response", "-q"]


def foreign(directory: Path, marker: str) -> Path:
    """Someone else's folder: a file named like our marker (another tool's) and a user's file."""
    directory.mkdir()
    (directory / marker).write_text(json.dumps({"name": "their dataset", "version": 3}))
    (directory / "notes.txt").write_text("weeks of work")
    return directory


def untouched(directory: Path, marker: str) -> bool:
    return (
        sorted(p.name for p in directory.iterdir()) == sorted([marker, "notes.txt"])
        and (directory / "notes.txt").read_text() == "weeks of work"
    )


def test_build_never_replaces_a_foreign_folder_holding_a_manifest_json(tmp_path: Path) -> None:
    theirs = foreign(tmp_path / "theirs", "manifest.json")
    result = CliRunner().invoke(app, [*BUILD, "--out", str(theirs)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{theirs} exists and is not an earlier output of this command (its manifest.json was not written by " in (
        " ".join(result.output.split())
    )
    assert untouched(theirs, "manifest.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs"]  # no temp directory left either

    ours = tmp_path / "ours"
    assert CliRunner().invoke(app, [*BUILD, "--out", str(ours)]).exit_code == 0
    assert json.loads((ours / "manifest.json").read_text())["written_by"] == "curatrain"
    assert CliRunner().invoke(app, [*BUILD, "--out", str(ours), "--seed", "7"]).exit_code == 0  # ours: replaced


def test_dedupe_never_replaces_a_foreign_folder_holding_a_dedupe_json(tmp_path: Path) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("a cat sat", "a dog ran", "a cat sat")))
    args = ["dedupe", str(texts), "--index", "exact", "--embed-backend", "torch", "-q", "--out"]
    theirs = foreign(tmp_path / "theirs", "dedupe.json")
    result = CliRunner().invoke(app, [*args, str(theirs)])
    assert result.exit_code == 1 and "its dedupe.json was not written by curatrain" in " ".join(result.output.split())
    assert untouched(theirs, "dedupe.json")

    ours = tmp_path / "ours"
    assert CliRunner().invoke(app, [*args, str(ours)]).exit_code == 0
    assert json.loads((ours / "dedupe.json").read_text())["written_by"] == "curatrain"
    assert CliRunner().invoke(app, [*args, str(ours)]).exit_code == 0


def test_an_output_without_its_marker_is_a_bug_not_a_silent_unreplaceable_directory(tmp_path: Path) -> None:
    from curate.io.atomic import atomic_directory

    with pytest.raises(RuntimeError, match="without a manifest.json marked as ours"):
        atomic_directory(tmp_path / "out", lambda tmp: (tmp / "manifest.json").write_text("{}"), "manifest.json")
    assert list(tmp_path.iterdir()) == []
