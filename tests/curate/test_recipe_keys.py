"""One config surface: recipe keys declared once, set from a file, KEY=VALUE or a flag, all listed by --help."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.commands.build import BUILD_FLAGS
from curate.config import field_of, iter_sections, load_recipe, merge, parse_overrides, show_value
from curate.errors import CurateError
from curate.recipe import BuildRecipe

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "expected"),
    [  # after a recipe (the rest of the file stands), and after input files
        (
            ["recipes/latex-build.yaml", "split.seed=3", "normalize.min_chars=3"],
            {"split": {"seed": 3}, "normalize": {"min_chars": 3}, "template": "latex"},
        ),
        (
            ["data/latex", "map={english: prompt, latex: response}", "template=latex"],
            {"inputs": ["data/latex"], "map": {"english": "prompt", "latex": "response"}, "template": "latex"},
        ),
    ],
)
def test_build_takes_key_value_overrides(
    args: list[str], expected: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(app, ["build", *args, "--out", str(tmp_path / "latex"), "-q"])
    assert result.exit_code == 0, result.output
    recipe = json.loads((tmp_path / "latex" / "manifest.json").read_text())["recipe"]
    for key, value in expected.items():
        assert {k: recipe[key][k] for k in value} == value if isinstance(value, dict) else recipe[key] == value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recipes/latex-build.yaml", "splitt.seed=3"], "recipes/latex-build.yaml: 'splitt': unknown key"),
        (["recipes/latex-build.yaml", "split.test_size=2"], "'split.test_size': Input should be less than 1"),
        (["data/latex", "--format", "html"], "'format': Input should be 'prompt-completion', 'messages' or 'text'"),
        (["recipes/latex-build.yaml", "data/latex"], "give a recipe (recipes/latex-build.yaml) or input files"),
    ],
)
def test_bad_keys_are_one_line_naming_the_key(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(app, ["build", *args, "--out", "/nonexistent/never-written"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_merge_sets_dotted_keys_turns_sections_on_and_merges_dicts() -> None:
    data = {"map": {"question": "prompt"}, "lengths": None, "dedupe": {"semantic": {"threshold": 0.8}}}
    merge(data, {"map": {"answer": "response"}, "lengths.tokenizer": "smollm2", "dedupe.semantic": {}})
    assert data["map"] == {"question": "prompt", "answer": "response"}
    assert data["lengths"] == {"tokenizer": "smollm2"}
    assert data["dedupe"]["semantic"] == {"threshold": 0.8}  # `{}` turns a section on, keeping what it holds
    with pytest.raises(CurateError, match="'split.seed.x': 'seed' is not a section"):
        merge({"split": {"seed": 1}}, {"split.seed.x": 2})


def test_key_value_null_resets_a_key_the_file_set() -> None:
    recipe = load_recipe(BuildRecipe, REPO / "recipes" / "latex-build.yaml", parse_overrides(["lengths=null"]))
    assert recipe.lengths is None  # the file turns the length analysis on; `null` turns it off again


def test_build_help_lists_every_key_and_flag_whole_at_80_columns() -> None:
    result = CliRunner().invoke(app, ["build", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    for flag in BUILD_FLAGS:  # every flag by its whole name, with its field's help and default
        names = flag.names or (f"--{flag.key.rsplit('.', 1)[-1].replace('_', '-')}",)
        for name in (part for n in names for part in n.split("/")):
            assert re.search(rf"(^|[ ,/]){re.escape(name)}([ ,/]|$)", result.output, re.M), name
    text = " ".join(result.output.split())
    assert "Share of rows (or groups) in the test split. [default: 0.2]" in text
    for _, _, _, keys in iter_sections(BuildRecipe):
        for key, info in keys:
            assert f"{key}={show_value(info.get_default(call_default_factory=True))}" in result.output, key
    assert field_of(BuildRecipe, "ratings.min_gap").description in text
