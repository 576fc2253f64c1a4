"""Exports: loadable by datasets, byte-identical on re-run, atomic under a crash, with a manifest and card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset

import curate.io.export
from curate.pipeline import build
from curate.recipe import BuildRecipe, load_recipe

DATA = Path(__file__).resolve().parents[3] / "data"


def latex_recipe(out: Path) -> BuildRecipe:
    return BuildRecipe(
        inputs=[str(DATA / "latex" / "pairs.jsonl")],
        out=str(out),
        map={"english": "prompt", "latex": "response"},
        template="latex",
    )


def data_files(export: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((export / "data").glob("*.parquet"))}


def test_export_loads_in_datasets_with_manifest_and_card(tmp_path: Path) -> None:
    result = build(latex_recipe(tmp_path / "latex"), quiet=True)
    ds = load_dataset("parquet", data_dir=str(tmp_path / "latex" / "data"))
    assert set(ds) == {"train", "test"}
    assert ds["train"].column_names == ["id", "prompt", "completion"]
    assert ds["train"].num_rows + ds["test"].num_rows == sum(result.manifest.counts.splits.values())
    assert ds["train"][0]["prompt"].startswith("Convert English to LaTeX\nEnglish: ")
    assert ds["train"][0]["completion"].startswith(" ")
    assert load_dataset(str(tmp_path / "latex"))["test"].num_rows == ds["test"].num_rows  # via the card's configs

    manifest = json.loads((tmp_path / "latex" / "manifest.json").read_text())
    assert manifest["kind"] == "instruction"
    assert [s["step"] for s in manifest["steps"]][:2] == ["normalize", "exact_dedupe"]
    assert manifest["template"] == {
        "name": "latex",
        "format": "prompt-completion",
        "default_system_prompt": False,
        "last_turn_only_rows": 0,
    }
    assert manifest["sources"][0]["sha256"].startswith("sha256:")
    assert manifest["content_hash"] == curate.io.export.content_hash(tmp_path / "latex")
    assert manifest["versions"]["datasets"]
    card = (tmp_path / "latex" / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "| normalize |" in card


def test_same_inputs_give_byte_identical_data_files(tmp_path: Path) -> None:
    first = build(latex_recipe(tmp_path / "a"), quiet=True)
    second = build(latex_recipe(tmp_path / "b"), quiet=True)
    assert data_files(tmp_path / "a") == data_files(tmp_path / "b")
    assert first.manifest.content_hash == second.manifest.content_hash


def test_crash_mid_export_leaves_no_partial_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "latex"
    build(latex_recipe(out), quiet=True)
    before = data_files(out)
    real_write = curate.io.export.write_parquet
    calls = []

    def crash_on_second_file(rows: list, path: Path) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")
        real_write(rows, path)

    monkeypatch.setattr(curate.io.export, "write_parquet", crash_on_second_file)
    recipe = latex_recipe(out)
    recipe.split.seed = 99  # a different export that would replace the old one
    with pytest.raises(KeyboardInterrupt):
        build(recipe, quiet=True)
    assert data_files(out) == before  # the previous export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latex"]  # no temp or half directory left

    fresh = tmp_path / "fresh"
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        build(latex_recipe(fresh), quiet=True)
    assert not fresh.exists()


def test_repo_recipe_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = DATA.parent
    recipe = load_recipe(repo / "recipes" / "latex-build.yaml")
    recipe.inputs = [str(repo / p) for p in recipe.inputs]
    recipe.out = str(tmp_path / "latex")
    result = build(recipe, quiet=True)
    assert result.manifest.counts.splits["test"] > 0
    assert (tmp_path / "latex" / "duplicates.parquet").exists() or not result.manifest.dropped_reasons


def test_an_out_directory_that_is_not_an_export_is_never_replaced(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    mine = tmp_path / "my-data"
    mine.mkdir()
    (mine / "notes.txt").write_text("weeks of work")
    args = ["build", str(DATA / "latex" / "pairs.jsonl"), "--map", "english=prompt", "--map", "latex=response"]
    result = CliRunner().invoke(app, [*args, "--out", str(mine), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is not an earlier output of this command (no manifest.json written by curatrain): refusing" in result.output
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "weeks of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-data"]  # no temp directory left either

    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(app, [*args, "--out", str(empty), "-q"]).exit_code == 0  # an empty dir is fine
    assert (empty / "manifest.json").is_file()
    assert CliRunner().invoke(app, [*args, "--out", str(empty), "-q"]).exit_code == 0  # and so is our own export
