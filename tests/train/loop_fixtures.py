"""Pieces of the closed loop for tests: exports derived from data/qa, and tiny real runs trained on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
QA_RATINGS = REPO / "data/qa/ratings.jsonl"


def qa_export(out: Path, derive: str, source: Path = QA_RATINGS, **ratings: Any) -> Path:
    """A real export `curate build` derives (`derive`: sft | preference | reward) from rated rows, split by prompt."""
    from curate.pipeline import build
    from curate.recipe import recipe_from_dict

    recipe = {"inputs": [str(source)], "out": str(out), "derive": derive, "ratings": ratings}
    build(recipe_from_dict(recipe | {"split": {"group_by": "prompt", "test_size": 0.25, "seed": 0}}), quiet=True)
    return out


def sft_run(model: Path, data: Path, out: Path, steps: int = 2) -> Path:
    """A few LoRA SFT steps of `model` on `data` (no eval, no samples): a real, small `train sft` run."""
    from train.config import SFTRecipe, load_recipe
    from train.sft import run_sft

    keys = {
        "model.name": str(model),
        "dataset.path": str(data),
        "logging.output_dir": str(out),
        "training.max_steps": steps,
        "training.batch_size": 4,
        "training.learning_rate": 1e-3,
        "training.eval_each_epoch": False,
        "training.save_each_epoch": False,
        "memory.gradient_checkpointing": False,
        "generation.max_new_tokens": 8,
        "generation.samples": 0,
    }
    return run_sft(load_recipe(SFTRecipe, None, keys), quiet=True)


def reward_run(model: Path, data: Path, out: Path, epochs: float = 1, **training: Any) -> Path:
    """A LoRA reward model of `model` trained with `train reward` on the preference export `data`."""
    from train.config import load_recipe
    from train.reward import RewardRecipe, train_reward

    keys = {
        "model.name": str(model),
        "dataset.path": str(data),
        "logging.output_dir": str(out),
        "training.epochs": epochs,
        "training.batch_size": 8,
        "training.learning_rate": 5e-3,
        "training.save_each_epoch": False,
        "training.eval_each_epoch": False,
        "memory.gradient_checkpointing": False,
        **{f"training.{k}": v for k, v in training.items()},
    }
    train_reward(load_recipe(RewardRecipe, None, keys), quiet=True)
    return out
