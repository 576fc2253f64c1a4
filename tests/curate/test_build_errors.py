"""`curate build` when the output cannot be written: one line, and an earlier export survives."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

import curate.io.export
from curate.errors import CurateError
from curate.pipeline import build
from curate.recipe import BuildRecipe


def test_disk_full_at_the_write_is_one_line_and_keeps_the_earlier_export(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = BuildRecipe(inputs=[str(repo / "data/latex/pairs.jsonl")], out=str(tmp_path / "out"))
    recipe.map = {"english": "prompt", "latex": "response"}
    build(recipe, quiet=True)
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    real_write = curate.io.export.write_parquet

    def write_then_fill_the_disk(rows: list[dict[str, Any]], path: Path) -> None:
        real_write(rows, path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(curate.io.export, "write_parquet", write_then_fill_the_disk)
    recipe.split.seed = 7
    with pytest.raises(CurateError) as info:
        build(recipe, quiet=True)
    assert str(info.value) == (
        f"{tmp_path / 'out'}: cannot write the export (No space left on device); an earlier export there is untouched"
    )
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
