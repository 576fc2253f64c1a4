"""The rater keys on every command line: KEY=VALUE on `curate build`, flags generated from the same fields on
`curate review export` and `curate review judge` (help and default from the field; a bad value one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.commands.review import EXPORT_FLAGS, JUDGE_FLAGS
from curate.config import field_of, show_value
from curate.recipe import BuildRecipe
from curate.review.judge import JudgeConfig

ROOT = Path(__file__).resolve().parents[3]


def test_build_takes_the_rater_keys_as_key_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    args = ["build", "data/qa/ratings.jsonl", "--derive", "preference", "ratings.calibrate=true"]
    args += ["ratings.min_agreement=0.75", "ratings.judge_min_items=5", "--out", str(tmp_path / "p"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "p/manifest.json").read_text())
    rules = manifest["derive"]["rules"]
    assert (rules["calibrate"], rules["min_agreement"], rules["judge_min_items"]) == (True, 0.75, 5)
    assert manifest["derive"]["raters"]["calibrated"] is True
    pairs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "p/data").glob("*.parquet"))
    assert len(pairs) > 0 and (pairs.agreement >= 0.75).all()


@pytest.mark.parametrize(
    ("command", "model", "flags"),
    [(["review", "export"], BuildRecipe, EXPORT_FLAGS), (["review", "judge"], JudgeConfig, JUDGE_FLAGS)],
)
def test_flags_show_their_fields_help_and_default(command: list[str], model: type, flags: tuple) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    assert max(len(line) for line in result.output.splitlines()) <= 80
    text = " ".join(result.output.split())
    for flag in flags:
        info = field_of(model, flag.key)
        assert f"{info.description} [default: {show_value(info.get_default())}]" in text, flag.key
        assert flag.option in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--out", "/nonexistent/x", "--min-agreement", "2"], "'ratings.min_agreement': Input should be"),
        (["export", "--out", "/nonexistent/x", "--judge-min-items", "0"], "'ratings.judge_min_items': Input should"),
        (["judge", "--timeout", "0"], "--timeout: Input should be greater than 0"),
        (["judge", "--mode", "rank"], "--mode: Input should be 'rate' or 'compare'"),
    ],
)
def test_a_bad_value_is_one_line_before_the_database_is_opened(args: list[str], message: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'none.db'}"  # never created: the value is refused first
    result = CliRunner().invoke(app, ["review", *args, "--project", "qa", "--db", db])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "none.db").exists()
