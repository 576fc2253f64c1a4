"""`train reward`: a reward model from preference pairs (docs/design.md workflow 3b) with TRL's RewardTrainer.

The base model gets a sequence-classification head with one output (`score`), trained with LoRA or
in full on the pairwise loss  -log σ(r_chosen − r_rejected − margin)  (InstructGPT; the margin from
the rating gap, Llama-2 style), plus `center_rewards_coefficient · mean((r_chosen + r_rejected)²)`
when set. TRL's RewardTrainer computes exactly that when the dataset has a `margin` column
(tests/train/test_reward.py proves it on a hand-made batch).

Traps handled here: the `score` head is in LoRA's `modules_to_save`, so a reloaded adapter keeps the
trained head (without it the head is re-initialised at random on reload); the tokenizer and the
model config get a pad token, or batches of more than one pair cannot be scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from curate.config import Flag
from curate.errors import CurateError
from curate.render import Renderer
from train import options
from train.config import BaseRecipe, _Section
from train.formatting import reward_dataset
from train.model import upcast_trainable
from train.run import (
    eval_split,
    load_inputs,
    open_run,
    report,
    run_dir_for,
    train_and_evaluate,
    training_arguments,
    write_card,
)
from train.score import reward_scores
from train.speed import config_kwargs, fast_path


class RewardSection(_Section):
    """Reward-model loss and evaluation."""

    use_margin: bool = Field(default=True, description="Subtract the export's `margin` column inside the sigmoid.")
    center_rewards_coefficient: float | None = Field(
        default=None,
        ge=0.0,
        description="Add c * mean((r_chosen + r_rejected)^2), pulling rewards toward 0 (e.g. 0.01; Eisenstein et al. 2023).",
    )
    chat_template: bool = Field(
        default=True, description="Give untemplated prompt/answer strings as chat turns (the tokenizer's template)."
    )
    score_batch_size: int = Field(default=16, ge=1, description="Batch size when scoring the test split for metrics.")


class RewardRecipe(BaseRecipe):
    """`train reward`: pairwise reward modelling with TRL's RewardTrainer."""

    reward: RewardSection = Field(default_factory=RewardSection)


@dataclass
class RewardRun:
    """What `train_reward` produced: the run directory, the trained model and its test metrics."""

    run_dir: Path
    model: Any
    tokenizer: Any
    renderer: Renderer  # how prompts and answers were rendered (train score rebuilds it from the run card)
    metrics: dict[str, Any]


def head_name(model: Any) -> str:
    """Name of the classification head module (`score` on decoder LMs, `classifier` on encoders)."""
    return "score" if hasattr(model, "score") else "classifier"


def reward_peft_config(recipe: RewardRecipe, model: Any) -> Any:
    """LoRA for sequence classification with the head in `modules_to_save` (saved with the adapter)."""
    from train.model import lora_config

    head = head_name(model)
    lora = recipe.lora.model_copy(update={"modules_to_save": sorted({*(recipe.lora.modules_to_save or []), head})})
    return lora_config(lora, task_type="SEQ_CLS")


def reward_config(recipe: RewardRecipe, output_dir: Path, has_eval: bool, max_length: int | None) -> Any:
    """TRL's RewardConfig: the keys every verb shares (train/run.py), the fast path's that apply to pairs (Liger,
    compile: train/speed.py) and the reward loss's own."""
    from trl import RewardConfig

    return RewardConfig(
        **training_arguments(recipe, output_dir, has_eval),
        **config_kwargs(fast_path(recipe, packs=False)),
        max_length=max_length,
        center_rewards_coefficient=recipe.reward.center_rewards_coefficient,
    )


def build_trainer(
    model: Any,
    tokenizer: Any,
    recipe: RewardRecipe,
    train: Any,
    test: Any,
    output_dir: Path,
    max_length: int | None,
    args: Any = None,
    renderer: Renderer | None = None,
) -> Any:
    """A TRL RewardTrainer on (prompt, chosen, rejected[, margin]) splits; LoRA when the recipe asks.

    `args` is the run's RewardConfig (made from the recipe when not given); the rows reach the trainer
    tokenized by `renderer` (default: the tokenizer's plain rendering of the strings).
    """
    from trl import RewardTrainer

    renderer = renderer or Renderer(tokenizer)
    train = reward_dataset(train, renderer)
    test = reward_dataset(test, renderer) if test is not None else None
    if not recipe.reward.use_margin:
        train = train.remove_columns([c for c in ("margin",) if c in train.column_names])
        if test is not None:
            test = test.remove_columns([c for c in ("margin",) if c in test.column_names])
    args = args or reward_config(recipe, output_dir, test is not None, max_length)
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        peft_config=reward_peft_config(recipe, model) if recipe.lora.enabled else None,
    )
    if args.bf16 or args.fp16:
        upcast_trainable(trainer.model)
    return trainer


def pairwise_accuracy(chosen: list[float], rejected: list[float]) -> float:
    """Fraction of pairs where the chosen answer's reward is strictly higher: mean(r_chosen > r_rejected)."""
    if not chosen:
        raise CurateError("no pairs to evaluate")
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)


def rating_spearman(rewards: list[float], ratings: list[float]) -> float | None:
    """Spearman rank correlation of rewards and mean human ratings (None with < 3 answers or no spread)."""
    from scipy.stats import spearmanr

    if len(rewards) < 3 or len(set(ratings)) < 2 or len(set(rewards)) < 2:
        return None
    return float(spearmanr(rewards, ratings).statistic)


def evaluate_pairs(model: Any, tokenizer: Any, test: Any, renderer: Renderer, batch_size: int) -> dict[str, Any]:
    """Pairwise accuracy on the test pairs and, when the export carries ratings, Spearman vs mean ratings.

    `test` holds the export's own rows (plain strings or turn lists); each distinct answer is scored once.
    """
    has_ratings = {"chosen_rating", "rejected_rating"} <= set(test.column_names)
    answers: dict[str, tuple[Any, Any, float | None]] = {}  # json key -> (prompt, answer, mean rating)
    pairs: list[tuple[str, str]] = []
    for row in test:
        keys = []
        for side in ("chosen", "rejected"):
            key = json.dumps([row["prompt"], row[side]])
            answers[key] = (row["prompt"], row[side], row[f"{side}_rating"] if has_ratings else None)
            keys.append(key)
        pairs.append((keys[0], keys[1]))
    keys = list(answers)
    rewards = reward_scores(model, tokenizer, [answers[k][:2] for k in keys], renderer, batch_size)
    score = dict(zip(keys, rewards, strict=True))
    metrics: dict[str, Any] = {
        "test_pairs": len(pairs),
        "test_pairwise_accuracy": pairwise_accuracy([score[c] for c, _ in pairs], [score[r] for _, r in pairs]),
        "test_mean_reward_gap": sum(score[c] - score[r] for c, r in pairs) / len(pairs),
    }
    if has_ratings:
        rated = [k for k in keys if answers[k][2] is not None]
        metrics["test_answers"] = len(rated)
        metrics["test_spearman_vs_mean_rating"] = rating_spearman(
            [score[k] for k in rated], [float(answers[k][2] or 0.0) for k in rated]
        )
    return metrics


def train_reward(
    recipe: RewardRecipe, resume: bool = False, overwrite: bool = False, quiet: bool = False, inspect: int = 0
) -> RewardRun | None:
    """Train a reward model on `recipe.dataset.path`; write adapter (+ head) or model, tokenizer and run card.

    `inspect` > 0: print that many pairs as the trainer would receive them, and stop (None) before any model.
    """
    from transformers import AutoModelForSequenceClassification

    from train.model import load_model

    inputs = load_inputs(recipe, "reward", quiet, inspect, chat_strings=recipe.reward.chat_template)
    if inputs is None:
        return None
    data, renderer, max_length = inputs.data, inputs.renderer, inputs.max_length
    tokenizer = renderer.tokenizer
    if "prompt" not in data.columns:
        raise CurateError(f"{data.source}: `train reward` needs a `prompt` column beside chosen and rejected")
    test = eval_split(recipe, data.eval)
    args = reward_config(recipe, run_dir_for(recipe, data.name, "reward"), test is not None, max_length)
    run = open_run("reward", args, resume, overwrite)
    attention = fast_path(recipe, packs=False).attention
    model = load_model(
        recipe.model, recipe.memory, AutoModelForSequenceClassification, num_labels=1, attn_implementation=attention
    )
    trainer = build_trainer(
        model, tokenizer, recipe, data.dataset["train"], test, run.dir, max_length, args, renderer=renderer
    )
    trained = train_and_evaluate(trainer, run, recipe, quiet)
    if test is not None:  # pairwise accuracy and Spearman vs ratings, scored as `train score` scores
        trained.metrics.update(evaluate_pairs(trainer.model, tokenizer, test, renderer, recipe.reward.score_batch_size))
    own = {
        "head": "AutoModelForSequenceClassification, num_labels=1 (the reward)",
        "data": {
            "chat_strings": renderer.chat_strings,
            "default_system_prompt": renderer.default_system_prompt,
            "margin": recipe.reward.use_margin and "margin" in data.columns,
        },
        "hyperparameters": {**recipe.reward.model_dump(), "max_length": max_length},
    }
    write_card(run, trainer, recipe, data, trained, own)
    return RewardRun(run.dir, trainer.model, tokenizer, renderer, trained.metrics)


def finish_reward(run: RewardRun, quiet: bool) -> None:
    """The end of `train reward`: the losses and test metrics (with --quiet, the run directory)."""
    shown = ["train_loss", "eval_loss", *(k for k in run.metrics if k.startswith("test_"))]
    report(run.run_dir, quiet, shown, "adapter + score head, tokenizer, run_card.json, README.md")


reward_command = options.verb_command(
    "reward",
    RewardRecipe,
    (
        *options.TRAIN_FLAGS,
        Flag("dataset.strict_template", "--strict/--no-strict"),
        Flag("lora.enabled", "--lora/--full"),
        Flag("reward.use_margin", "--margin/--no-margin"),
        Flag("reward.center_rewards_coefficient", "--center-rewards"),
    ),
    train_reward,
    finish_reward,
    """Train a reward model on preference pairs with TRL's RewardTrainer (LoRA or full).

    Loss: -log σ(r_chosen − r_rejected − margin), the margin taken from the export's rating gap.
    Reports test pairwise accuracy and Spearman correlation with mean human ratings. Writes the
    adapter (with its score head), tokenizer and run_card.json (with the export's content hash).

    \b
    Examples:
      train reward --config recipes/qa-reward.yaml
      train reward --config recipes/qa-reward.yaml --center-rewards 0.01
      train reward --data out/qa-pairs --model smollm2 --no-margin
      train reward --config recipes/qa-reward.yaml --inspect 2
    """,
)
