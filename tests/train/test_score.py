"""`train score RUN_DIR --data FILE`: the same rows plus a `reward` column, for JSONL, CSV and Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from reward_fixtures import build_export, save_tiny_base, toy_pairs, write_jsonl
from typer.testing import CliRunner

from train.cli import app
from train.reward import RewardRecipe, train_reward
from train.score import load_reward_model, reward_scores


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory: pytest.TempPathFactory):
    """A briefly trained LoRA reward model on a toy export."""
    root = tmp_path_factory.mktemp("score")
    base = save_tiny_base(root / "base")
    export = build_export(toy_pairs(24, seed=4), root / "toy-pairs")
    recipe = RewardRecipe.model_validate(
        {
            "model": {"name": str(base)},
            "dataset": {"path": str(export)},
            "training": {"max_steps": 6, "batch_size": 4, "learning_rate": 5e-3, "save_each_epoch": False},
            "memory": {"gradient_checkpointing": False},
            "logging": {"output_dir": str(root / "run")},
        }
    )
    return train_reward(recipe, quiet=True)


def answers_frame() -> pd.DataFrame:
    """Rated-style rows (prompt, response, rating, labeler) with lengths that differ."""
    rows = toy_pairs(5, seed=11)
    return pd.DataFrame(
        [{"prompt": r["prompt"], "response": r["chosen"], "rating": 9, "labeler": "ann"} for r in rows]
        + [{"prompt": r["prompt"], "response": r["rejected"], "rating": 2, "labeler": "bob"} for r in rows]
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_score_writes_the_rows_back_with_a_reward(reward_run, tmp_path: Path, suffix: str):
    frame = answers_frame()
    data = tmp_path / f"answers{suffix}"
    if suffix == ".jsonl":
        write_jsonl(frame.to_dict(orient="records"), data)
    elif suffix == ".csv":
        frame.to_csv(data, index=False)
    else:
        frame.to_parquet(data, index=False)

    result = CliRunner().invoke(app, ["score", str(reward_run.run_dir), "--data", str(data), "--quiet"])

    assert result.exit_code == 0, result.output
    out = tmp_path / f"answers.scored{suffix}"
    scored = (
        pd.read_json(out, lines=True)
        if suffix == ".jsonl"
        else pd.read_csv(out)
        if suffix == ".csv"
        else pd.read_parquet(out)
    )
    assert list(scored.columns) == [*frame.columns, "reward"]
    pd.testing.assert_frame_equal(scored[frame.columns], frame, check_dtype=False)
    model, tokenizer, fmt = load_reward_model(reward_run.run_dir)
    expected = reward_scores(model, tokenizer, list(zip(frame.prompt, frame.response, strict=True)), fmt)
    assert scored["reward"].tolist() == pytest.approx(expected, abs=1e-4)
    assert "Scored 10 answers" in result.output


def test_score_keeps_jsonl_rows_exactly(reward_run, tmp_path: Path):
    """An optional key present on some rows only stays absent on the others (no NaN, valid JSON out)."""
    rows = [
        {"prompt": "how do i make tea ?", "response": "good tea", "rating": 9, "comment": "nice"},
        {"prompt": "how do i make tea ?", "response": "bad", "rating": 2},
    ]
    data = write_jsonl(rows, tmp_path / "rated.jsonl")
    result = CliRunner().invoke(app, ["score", str(reward_run.run_dir), "--data", str(data), "-q"])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "rated.scored.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in row.items() if k != "reward"} for row in out] == rows
    assert all(isinstance(row["reward"], float) for row in out)


def test_score_names_the_missing_column(reward_run, tmp_path: Path):
    data = write_jsonl([{"question": "how do i make tea ?", "response": "good"}], tmp_path / "answers.jsonl")
    result = CliRunner().invoke(app, ["score", str(reward_run.run_dir), "--data", str(data)])
    assert result.exit_code == 1
    assert "no 'prompt' column" in result.output and "--prompt-column" in result.output
    assert "Traceback" not in result.output


def test_score_refuses_a_run_that_is_not_a_reward_model(reward_run, tmp_path: Path):
    card = json.loads((reward_run.run_dir / "run_card.json").read_text())
    sft_run = tmp_path / "sft-run"
    sft_run.mkdir()
    (sft_run / "run_card.json").write_text(json.dumps({**card, "verb": "sft"}))
    data = write_jsonl([{"prompt": "how do i make tea ?", "response": "good"}], tmp_path / "answers.jsonl")
    result = CliRunner().invoke(app, ["score", str(sft_run), "--data", str(data)])
    assert result.exit_code == 1
    assert "not a reward model" in result.output
