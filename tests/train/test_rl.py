"""`train rloo` / `train grpo`: TRL's trainers with a `train reward` run as the reward, the degeneration check
as a trainer callback, and one clear line for a batch TRL cannot split into whole groups.

Runs on the 2-layer word-level Llama (reward_fixtures.py) with the conftest.py runs as policy and reward.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from alignment_fixtures import PaysForGood
from typer.testing import CliRunner

from curate.errors import CurateError
from train.card import read_run_card
from train.cli import app
from train.config import load_recipe
from train.rl import RLRecipe, run_rl


def rl_recipe(data: Path, out: Path, **sections: dict) -> RLRecipe:
    """A CPU-sized recipe: 2 prompts x 4 answers of at most 8 tokens per step."""
    raw: dict = {
        "dataset": {"path": str(data)},
        "training": {"learning_rate": 1e-3, "batch_size": 8, "max_steps": 2, "save_total_limit": 1},
        "memory": {"gradient_checkpointing": False},
        "logging": {"output_dir": str(out), "logging_steps": 1},
        "rl": {"num_generations": 4, "beta": 0.05},
        "sampling": {"max_new_tokens": 8},
        "degeneration": {"max_new_tokens": 8, "check_every": 1, "stop_on_collapse": False},
    }
    return load_recipe(RLRecipe, None, raw, sections)  # each section merged into raw's


@pytest.mark.parametrize("verb", ["rloo", "grpo"])
def test_steps_with_a_reward_run_as_reward(
    verb: str, word_pairs: Path, word_sft_run: Path, word_reward_run: Path, tmp_path: Path
):
    """Two steps: TRL logs the reward run's mean score and the KL to the SFT policy; the card has the check."""
    sections = {"policy": {"run": str(word_sft_run)}, "reward_model": {"run": str(word_reward_run)}}
    run = run_rl(verb, rl_recipe(word_pairs, tmp_path / verb, **sections), quiet=True)
    card = json.loads((run.run_dir / "run_card.json").read_text())
    log = card["rl_log"]
    assert [e["step"] for e in log] == [1, 2]
    for entry in log:
        assert math.isfinite(entry["reward"]) and math.isfinite(entry["kl"])
        assert entry["rewards/reward_model/mean"] == pytest.approx(entry["reward"])  # the reward run is the only reward
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the SFT policy as it started
    assert "ref" in run.trainer.model.peft_config  # TRL's frozen copy of the SFT adapter, not a second model
    assert card["verb"] == verb and card["reward_model"]["run"] == str(word_reward_run)
    assert card["throughput"]["train_tokens"] > 0
    degeneration = card["degeneration"]
    assert [c["step"] for c in degeneration["checks"]] == [1, 2]
    for side in ("before", "after"):
        assert {"mean_reward", "distinct_1", "distinct_2", "mean_words", "identical_share"} <= set(degeneration[side])
    assert (run.run_dir / "adapter_model.safetensors").is_file()


def test_cli_shows_reward_and_kl_in_plain_progress_lines(word_pairs, word_sft_run, word_reward_run, tmp_path):
    """Off a terminal the run layer's plain lines carry TRL's logged reward and KL; tokens/s counts the tokens TRL
    saw in the steps (prompts + answers), timed without the held-out checks run after each step."""
    out = tmp_path / "run"
    args = ["grpo", "--data", str(word_pairs), "--policy", str(word_sft_run), "--reward", str(word_reward_run),
            "--out", str(out), "--max-steps", "2", "--lr", "1e-3", "--no-gradient-checkpointing",
            "sampling.max_new_tokens=8", "degeneration.max_new_tokens=8", "degeneration.check_every=1",
            "logging.logging_steps=1", "logging.progress_seconds=0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    number = r"-?\d+\.\d{4}"
    assert re.search(rf"train grpo · step 2/2 \(100%\) · .* · reward {number} · kl {number}", result.stdout)
    assert "\x1b[" not in result.stdout and "{'" not in result.stdout
    assert "train grpo done: last_reward" in result.stdout and "held-out (" in result.stdout
    speed = read_run_card(out)["throughput"]
    assert speed["train_tokens"] > 0 and speed["train_seconds"] < speed["wall_seconds"]


def test_collapse_guard_stops_a_trl_trainer(word_pairs: Path, wide_word_lm: Path, tmp_path: Path):
    """GRPO on a reward rigged to pay for one word: held-out distinct-2 halves and the callback stops TRL."""
    recipe = rl_recipe(
        word_pairs,
        tmp_path / "rigged",
        model={"name": str(wide_word_lm)},
        training={"learning_rate": 3e-2, "max_steps": 12},
        rl={"beta": 0.0},
        degeneration={"stop_on_collapse": True, "max_kl": 100.0},
    )
    run = run_rl("grpo", recipe, quiet=True, reward=PaysForGood())
    collapse = run.card["degeneration"]["collapse"]
    assert collapse is not None and collapse["stopped"] and "held-out distinct-2 fell" in collapse["reason"]
    assert run.trainer.state.global_step == collapse["step"] < 12


def test_a_batch_that_does_not_hold_whole_groups_is_one_clear_line(word_pairs: Path, word_sft_run: Path, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["rloo", "--data", str(word_pairs), "--policy", str(word_sft_run), "--reward", str(word_sft_run), "--out",
         str(out), "--num-generations", "3", "-q"],
    )  # fmt: skip
    assert result.exit_code == 1 and "not a reward model" in result.output  # inputs are checked first
    with pytest.raises(CurateError, match=r"train rloo: .*divisible by"):
        run_rl("rloo", rl_recipe(word_pairs, out, policy={"run": str(word_sft_run)}, rl={"num_generations": 3}),
               reward=PaysForGood())  # fmt: skip
    assert not out.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bitsandbytes 4-bit)")
@pytest.mark.parametrize("verb", ["rloo", "grpo"])
def test_qlora_steps_on_gpu(verb: str, word_pairs: Path, word_sft_run: Path, word_reward_run: Path, tmp_path: Path):
    sections = {"policy": {"run": str(word_sft_run)}, "reward_model": {"run": str(word_reward_run)}}
    recipe = rl_recipe(word_pairs, tmp_path / verb, memory={"quantize": "4bit"}, **sections)
    run = run_rl(verb, recipe, quiet=True)
    assert run.trainer.model.is_loaded_in_4bit and all(math.isfinite(e["reward"]) for e in run.card["rl_log"])
