"""What the docs say is what the code does: --help examples run, help is whole at 80 columns, dedupe defaults
and ids agree with the build, duplicates.parquet reads without a join, errors point at what was printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app as curate_app
from curate.errors import CurateError
from curate.pipeline import build
from curate.recipe import BuildRecipe, load_recipe
from train.cli import app as train_app

REPO = Path(__file__).resolve().parents[2]


def test_build_help_examples_name_recipes_that_load() -> None:
    result = CliRunner().invoke(curate_app, ["build", "--help"], env={"COLUMNS": "80"})
    recipes = re.findall(r"curate build (recipes/\S+\.yaml)", result.output)
    assert recipes
    for recipe in recipes:
        load_recipe(REPO / recipe)  # a `train` recipe here failed with "'model': unknown key"


@pytest.mark.parametrize(
    ("app", "verb", "option"),
    [
        (curate_app, ["build"], "--default-system-prompt / --no-default-system-prompt"),
        (curate_app, ["build"], "--kind <instruction|rated|preference|labelled|reward>"),
        (curate_app, ["dedupe"], "--embed-backend"),
        (train_app, ["sft"], "--completion-only-loss / --full-loss"),
        (train_app, ["sft"], "--gradient-checkpointing / --no-gradient-checkpointing"),
        (train_app, ["classify"], "--lora / --full"),
        (train_app, ["predict"], "--pair-column"),
    ],
)
def test_help_at_80_columns_cuts_no_option_name_or_choice(app: object, verb: list[str], option: str) -> None:
    result = CliRunner().invoke(app, [*verb, "--help"], env={"COLUMNS": "80"})  # type: ignore[arg-type]
    assert result.exit_code == 0
    assert option in result.output and "…" not in result.output
    assert max(len(line) for line in result.output.splitlines() if not line.startswith("    ")) <= 80


def rows_file(tmp_path: Path) -> Path:
    rows = [
        {"prompt": "How do I boil an egg?", "response": "Simmer it for nine minutes."},
        {"prompt": "Name a prime number.", "response": "Seven."},
        {"prompt": "How should I boil an egg?", "response": "Simmer it for nine minutes."},
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow  # the real all-MiniLM-L6-v2
def test_dedupe_defaults_to_the_kinds_text_with_build_ids_and_both_texts(tmp_path: Path) -> None:
    source = rows_file(tmp_path)
    out = tmp_path / "dd"
    result = CliRunner().invoke(curate_app, ["dedupe", str(source), "--threshold", "0.9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Comparing prompt + response" in result.output
    dups = pd.read_parquet(out / "duplicates.parquet")
    assert list(dups.id) == ["qa-3"] and list(dups.kept_id) == ["qa-1"]  # the ids `curate build` gives
    assert dups.text[0] == "How should I boil an egg?\n\nSimmer it for nine minutes."
    assert dups.kept_text[0] == "How do I boil an egg?\n\nSimmer it for nine minutes."
    export = tmp_path / "export"
    build(BuildRecipe(inputs=[str(source)], out=str(export), template="chatml", split={"test_size": 0.0}), quiet=True)
    assert sorted(pd.read_parquet(export / "data").id) == ["qa-1", "qa-2", "qa-3"]


def test_build_duplicates_hold_the_dropped_and_the_kept_text(tmp_path: Path) -> None:
    source = tmp_path / "d.jsonl"
    rows = [
        {"prompt": "hi", "response": "hello"},
        {"prompt": "hi", "response": "hello"},
        {"prompt": "a", "response": "b"},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build(BuildRecipe(inputs=[str(source)], out=str(tmp_path / "x"), template="chatml"), quiet=True)
    dups = pd.read_parquet(tmp_path / "x" / "duplicates.parquet")
    assert list(dups.id) == ["d-2"] and list(dups.kept_id) == ["d-1"]
    assert dups.text[0] == dups.kept_text[0] == "hi\n\nhello"


def test_every_row_dropped_says_why_in_the_error_itself(tmp_path: Path) -> None:
    source = tmp_path / "short.jsonl"
    source.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n")
    recipe = BuildRecipe(inputs=[str(source)], out=str(tmp_path / "x"), template="chatml", normalize={"min_chars": 5})
    with pytest.raises(CurateError, match=r"every row was dropped — normalize: 'prompt' is shorter than 5 chars \(1\)"):
        build(recipe, quiet=True)
