"""The `train` command line. Each verb lives in its own module under `train/`; errors are one red line."""

from __future__ import annotations

import warnings

import typer

from curate.config import keys_help
from train.classify import ClassifyRecipe, classify_command
from train.config import SFTRecipe
from train.dpo import DPORecipe, dpo_command
from train.evaluate import evaluate_command
from train.generate import generate_command
from train.merge import merge_command
from train.ppo import PPORecipe, ppo_command
from train.predict import predict_command
from train.reward import RewardRecipe, reward_command
from train.rl import RLRecipe, grpo_command, rloo_command
from train.score import score_command
from train.sft import sft_command

app = typer.Typer(
    name="train",
    help="Fine-tune LLMs (LoRA / QLoRA, TRL trainers + PEFT) and text classifiers on curate exports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: at 80 columns rich's option table cuts names and choices
)


@app.callback()
def _train() -> None:
    """Fine-tune LLMs (LoRA / QLoRA, TRL trainers + PEFT) and text classifiers on curate exports."""
    # TRL's configs still carry transformers' deprecated `gradient_checkpointing` name: nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")


# Verbs: one line each; a verb with a recipe lists every key of it at the end of its --help.
app.command("sft", epilog=keys_help(SFTRecipe))(sft_command)
app.command("merge")(merge_command)
app.command("generate")(generate_command)
app.command("reward", epilog=keys_help(RewardRecipe, "reward.use_margin=false"))(reward_command)
app.command("score")(score_command)
app.command("dpo", epilog=keys_help(DPORecipe, "dpo.beta=0.2"))(dpo_command)
app.command("ppo", epilog=keys_help(PPORecipe, "ppo.kl_coef=0.05"))(ppo_command)
app.command("rloo", epilog=keys_help(RLRecipe, "rl.num_generations=8"))(rloo_command)
app.command("grpo", epilog=keys_help(RLRecipe, "rl.num_generations=8"))(grpo_command)
app.command("classify", epilog=keys_help(ClassifyRecipe, "classify.train_last=2"))(classify_command)
app.command("predict")(predict_command)
app.command("evaluate")(evaluate_command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # `python -m train.cli`, e.g. under `torchrun -m` or `accelerate launch -m`
    main()
