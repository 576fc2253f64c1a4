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


# A run killed (SIGKILL: no except, no finally) at one point of atomic_directory; argv: target, point, version.
KILLED_RUN = """
import json, os, signal, sys
from pathlib import Path
import curate.io.atomic as atomic

target, point, version = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
real_rename, real_rmtree, renames = os.rename, atomic.shutil.rmtree, []

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def rename(src, dst):
    renames.append(src)
    if point == f"rename{len(renames)}":
        die()
    real_rename(src, dst)

def rmtree(path, **kwargs):
    if point == "cleanup" and ".old-" in str(path):
        die()
    real_rmtree(path, **kwargs)

def fill(tmp):
    (tmp / "data.txt").write_text(version)
    if point == "fill":
        die()
    (tmp / "manifest.json").write_text(json.dumps({"written_by": "curatrain", "version": version}))

atomic.os.rename, atomic.shutil.rmtree = rename, rmtree
atomic.atomic_directory(target, fill, "manifest.json")
"""


def write_version(target: Path, version: str) -> None:
    from curate.io.atomic import atomic_directory

    def fill(tmp: Path) -> None:
        (tmp / "data.txt").write_text(version)
        (tmp / "manifest.json").write_text(json.dumps({"written_by": "curatrain", "version": version}))

    atomic_directory(target, fill, "manifest.json")


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("point", "left_in_place", "after_recovery"),
    [
        ("fill", "v1", "v1"),  # killed while writing the new output: the old one stays
        ("rename1", "v1", "v1"),  # killed before the old output moved aside
        ("rename2", None, "v2"),  # between the renames: no out/ at all until the swap is completed
        ("cleanup", "v2", "v2"),  # swapped, but the old output was not removed yet
    ],
)
def test_a_swap_killed_at_any_point_is_recovered_by_the_next_run(
    point: str, left_in_place: str | None, after_recovery: str, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from curate.io.manifest import has_manifest

    out = tmp_path / "out"
    write_version(out, "v1")
    env = {**os.environ, "PYTHONPATH": str(DATA.parent)}
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(out), point, "v2"], env=env, check=False)
    assert killed.returncode == -9  # SIGKILL at the chosen point
    assert ((out / "data.txt").read_text() if out.exists() else None) == left_in_place
    assert hidden(tmp_path)  # the killed run left its hidden directories

    assert has_manifest(out)  # the next reader (train's loader asks this) finds an export: swap completed if cut
    assert (out / "data.txt").read_text() == after_recovery
    assert json.loads((out / "manifest.json").read_text())["version"] == after_recovery
    write_version(out, "v3")  # the next writer replaces it as usual, and removes what the dead run left
    assert (out / "data.txt").read_text() == "v3" and hidden(tmp_path) == []


def test_the_next_writer_alone_completes_a_cut_swap(tmp_path: Path) -> None:
    from curate.io.atomic import recover

    out = tmp_path / "out"
    write_version(out, "v2")
    (tmp_path / ".out.old-999999999-0123abcd").mkdir()  # what a run killed between the renames leaves ...
    (out / "data.txt").write_text("v1")
    out.rename(tmp_path / ".out.tmp-999999999-0123abcd")  # ... with a new output that is whole (marked)
    assert recover(out, "manifest.json") == [
        f"{out}: completed the swap a killed run left half done (the new output is in place)",
        f"{out}: removed .out.old-999999999-0123abcd, left by a killed run",
    ]
    assert (out / "data.txt").read_text() == "v1" and hidden(tmp_path) == []


def test_a_cut_swap_whose_new_output_is_not_whole_restores_the_old_one(tmp_path: Path) -> None:
    from curate.io.atomic import check_replaceable

    out = tmp_path / "out"
    write_version(out, "v1")
    out.rename(tmp_path / ".out.old-999999999-0123abcd")
    (tmp_path / ".out.tmp-999999999-0123abcd").mkdir()  # no marker: not whole
    (tmp_path / ".out.tmp-0badc0de").mkdir()  # named before hidden dirs carried a process id
    check_replaceable(out, "manifest.json")  # any writer recovers first
    assert (out / "data.txt").read_text() == "v1" and hidden(tmp_path) == []


def test_hidden_directories_of_a_live_run_are_left_alone(tmp_path: Path) -> None:
    from curate.io.atomic import recover

    write_version(tmp_path / "out", "v1")
    busy = tmp_path / ".out.tmp-1-0123abcd"  # pid 1 is always alive: that run may still be writing
    busy.mkdir()
    assert recover(tmp_path / "out", "manifest.json") == [] and busy.is_dir()


def test_an_exception_between_the_renames_puts_the_old_export_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import curate.io.atomic

    out = tmp_path / "latex"
    assert CliRunner().invoke(app, [*BUILD, "--out", str(out)]).exit_code == 0
    before = (out / "manifest.json").read_text()
    real_rename, renames = os.rename, []

    def cut_after_the_first(src: Path, dst: Path) -> None:
        if out.resolve() in (Path(src), Path(dst)):  # the swap's renames (out -> old, tmp -> out)
            renames.append(src)
            if len(renames) == 2:
                raise KeyboardInterrupt("power cut")
        real_rename(src, dst)

    monkeypatch.setattr(curate.io.atomic.os, "rename", cut_after_the_first)
    result = CliRunner().invoke(app, [*BUILD, "--out", str(out), "--seed", "7"])
    assert result.exit_code == 130  # "Aborted!"
    assert len(renames) == 3  # out -> old, tmp -> out (cut), old -> out (the undo)
    assert (out / "manifest.json").read_text() == before  # moved aside, then put back by the same process
    assert hidden(tmp_path) == []
