"""`train rloo` / `train grpo`: online RL with TRL's RLOOTrainer / GRPOTrainer, a `train reward` run as the reward.

Both sample `rl.num_generations` answers per prompt and need no value model, which makes them the cheaper
alternatives to `train ppo`: RLOO's baseline for an answer is the mean reward of the other answers to the
same prompt (Ahmadian et al. 2024), GRPO normalises rewards within each prompt's group (Shao et al. 2024).
TRL does the work; this module configures it: the policy, prompts and reward of train/alignment.py
(reward = the reward run's score, rendered as `train score` renders it), the KL coefficient `rl.beta`
against the starting policy (the adapter disabled, or TRL's frozen copy of an SFT run's adapter), and the
degeneration check with its collapse guard as a trainer callback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from curate.config import Flag
from curate.errors import CurateError
from train import options
from train.alignment import (
    ALIGNMENT_FLAGS,
    ONLINE_FLAGS,
    AlignmentRecipe,
    AlignmentRun,
    CollapseGuard,
    Degeneration,
    RewardModel,
    SamplingSection,
    Scorer,
    alignment_card,
    alignment_finish,
    heldout_check,
    load_policy,
    online_inputs,
)
from train.config import _Section
from train.run import open_run, run_dir_for, train_and_evaluate, training_arguments


class RLSection(_Section):
    """What RLOO and GRPO share (TRL's RLOOConfig / GRPOConfig keys)."""

    num_generations: int = Field(
        default=4, ge=2, description="Answers sampled per prompt (batch_size x grad accumulation must divide by it)."
    )
    beta: float = Field(default=0.05, ge=0.0, description="KL coefficient toward the starting policy (0: none).")
    num_iterations: int = Field(default=1, ge=1, description="Updates per generated batch (μ).")
    epsilon: float = Field(default=0.2, gt=0.0, description="Clipping ε of the policy ratio.")


class RLRecipe(AlignmentRecipe):
    """`train rloo` / `train grpo`: an SFT policy, a reward run, an export's prompts."""

    rl: RLSection = Field(default_factory=RLSection)
    sampling: SamplingSection = Field(default_factory=SamplingSection)


def reward_function(scorer: Scorer) -> Callable[..., list[float | None]]:
    """`scorer` as a TRL reward function: the dataset's `question` column beside each completion."""

    def reward_model(prompts: list[Any], completions: list[Any], question: list[str], **_: Any) -> list[float | None]:
        answers = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        return list(scorer.score(list(question), answers))

    return reward_model


def rl_config(verb: str, recipe: RLRecipe, run_dir: Path) -> Any:
    """TRL's RLOOConfig or GRPOConfig: the keys every verb shares (train/run.py) plus sampling and the RL keys."""
    from trl import GRPOConfig, RLOOConfig

    config_class = RLOOConfig if verb == "rloo" else GRPOConfig
    s = recipe.sampling
    try:
        return config_class(
            **training_arguments(recipe, run_dir, has_eval=False),
            **recipe.rl.model_dump(),
            max_completion_length=s.max_new_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            disable_dropout=True,  # dropout would make the sampling and the update see different policies
        )
    except ValueError as exc:  # TRL's own checks, e.g. the batch must hold whole groups of num_generations
        raise CurateError(f"train {verb}: {str(exc).splitlines()[0]}") from None


def run_rl(
    verb: str,
    recipe: RLRecipe,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    inspect: int = 0,
    reward: Scorer | None = None,
) -> AlignmentRun | None:
    """Check the inputs, train with TRL's RLOO or GRPO trainer (resumable), degeneration check, adapter + run card.

    `inspect` > 0: print that many prompts as the policy receives them, and stop (None) before any model.
    `reward` replaces the reward run (tests rig one); by default `reward_model.run` is loaded.
    """
    from datasets import Dataset
    from trl import GRPOTrainer, RLOOTrainer

    inputs = online_inputs(recipe, verb, own_reward=reward is not None, inspect=inspect)
    if inputs is None:
        return None
    recipe, policy_card, prompt_format = inputs.recipe, inputs.policy_card, inputs.prompt_format
    prompts = Dataset.from_dict({"prompt": inputs.prompts, "question": inputs.questions})
    args = rl_config(verb, recipe, run_dir_for(recipe, inputs.data.name, verb))
    run = open_run(verb, args, resume, overwrite)

    model, peft_config = load_policy(recipe, policy_card)
    reward = reward or RewardModel(str(recipe.reward_model.run), recipe.reward_model.batch_size)
    check = heldout_check(inputs.data, inputs.tokenizer, prompt_format, recipe.degeneration, reward)
    degeneration = Degeneration(check, recipe.degeneration)
    degeneration.start(model)
    trainer_class = RLOOTrainer if verb == "rloo" else GRPOTrainer
    trainer = trainer_class(
        model=model,
        reward_funcs=reward_function(reward),
        args=args,
        train_dataset=prompts,
        processing_class=inputs.tokenizer,
        peft_config=peft_config,
    )
    trained = train_and_evaluate(trainer, run, recipe, quiet, ("reward", "kl"), [CollapseGuard(degeneration)])
    log = [e for e in trainer.state.log_history if "reward" in e]
    if log:
        trained.metrics.update({f"last_{k}": log[-1][k] for k in ("reward", "kl", "entropy") if k in log[-1]})
    own: dict[str, Any] = {
        "data": prompt_format.card_data(),
        "hyperparameters": {"rl": recipe.rl.model_dump(), "sampling": recipe.sampling.model_dump()},
        "policy": {"run": recipe.policy.run},
        "reward_model": {"run": recipe.reward_model.run},
        "rl_log": log,
        "degeneration": degeneration.card(trainer.model),
    }
    return alignment_card(run, trainer, recipe, inputs.data, trained, own, policy_card)


def rl_command(verb: str) -> Callable[..., None]:
    """The `train rloo` / `train grpo` command (one recipe: they take the same inputs)."""
    name = {"rloo": "RLOO (REINFORCE leave-one-out)", "grpo": "GRPO (group-relative policy optimization)"}[verb]
    return options.verb_command(
        verb,
        RLRecipe,
        (*ONLINE_FLAGS, *ALIGNMENT_FLAGS, Flag("rl.beta"), Flag("rl.num_generations")),
        functools.partial(run_rl, verb),
        alignment_finish(("last_reward", "last_kl", "global_step"), "adapter, tokenizer, run_card.json, README.md"),
        f"""{name} with TRL's {verb.upper()}Trainer: an SFT policy, a reward run, an export's prompts.

    Samples rl.num_generations answers per prompt, scores them with the reward run, and checks held-out
    answers for degeneration (stops on collapse); writes the adapter and run card.

    \b
    Examples:
      train {verb} --config recipes/qa-{verb}.yaml
      train {verb} --config recipes/qa-{verb}.yaml rl.beta=0.1 training.max_steps=50
      train {verb} --data out/qa-pairs --policy runs/qa-sft \\
          --reward runs/qa-reward --max-steps 20
      train {verb} --config recipes/qa-{verb}.yaml --inspect 2
    """,
    )


rloo_command = rl_command("rloo")
grpo_command = rl_command("grpo")
