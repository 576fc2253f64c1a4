"""The command line of a `train` verb: the everyday recipe keys as flags, the run options, and
`verb_command`, the one command every verb is (recipe in, the verb's run, its report out).

A flag is one line naming its recipe key; its type, help and default come from the key's field
in train/config.py (see curate/config.py). Every other key is set with `KEY=VALUE`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from curate.config import Flag, FlagValues, load_recipe, parse_overrides, with_flags
from curate.console import user_errors
from train.config import BaseRecipe

# The keys nearly every run sets from the command line; a verb adds its own (e.g. reward's --margin).
TRAIN_FLAGS = (
    Flag("dataset.path", "--data", "-d"),
    Flag("model.name", "--model", "-m"),
    Flag("logging.output_dir", "--out", "-o"),
    Flag("training.epochs"),
    Flag("training.max_steps"),
    Flag("training.learning_rate", "--lr"),
    Flag("training.batch_size"),
    Flag("training.gradient_accumulation_steps", "--grad-accum"),
    Flag("training.eval_rows"),
    Flag("tokenizer.max_length"),
    Flag("memory.quantize"),
    Flag("memory.gradient_checkpointing"),
    Flag("lora.r", "--lora-r"),
    Flag("training.seed"),
)

# What `train sft` offers besides: the loss mask (completion-only / assistant-only, or every token) and the
# template check. (`train reward` takes --strict.)
FORMAT_FLAGS = (
    Flag("dataset.completion_only_loss", "--completion-only-loss/--full-loss", also=("dataset.assistant_only_loss",)),
    Flag("dataset.strict_template", "--strict/--no-strict"),
)

Overrides = Annotated[
    Optional[list[str]],
    typer.Argument(
        help="Recipe keys to set, KEY=VALUE (all listed below), e.g. training.epochs=3 lora.r=8.", show_default=False
    ),
]
Config = Annotated[Optional[Path], typer.Option("--config", "-c", help="Recipe YAML (see recipes/).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in the run directory.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No recipe print-out or progress bars.")]
Inspect = Annotated[
    int,
    typer.Option(
        min=0, help="Print the first N examples as the trainer receives them (tokens, loss mask, counts); exit."
    ),
]


def verb_command(
    verb: str,
    model: type[BaseRecipe],
    everyday: Sequence[Flag],
    run: Callable[..., Any],
    finish: Callable[[Any, bool], Any],
    doc: str,
) -> Callable[..., None]:
    """The Typer command of `train <verb>`: the recipe (file, KEY=VALUE, `everyday` flags) is printed,
    `run(recipe, resume=, overwrite=, quiet=, inspect=)` trains, and `finish(result, quiet)` reports
    (`run` returns None after --inspect). `doc` is the command's help.
    """
    from train.progress import announce

    def command(
        overrides: Overrides = None,
        config: Config = None,
        flags: FlagValues = None,
        inspect: Inspect = 0,
        resume: Resume = False,
        overwrite: Overwrite = False,
        quiet: Quiet = False,
    ) -> None:
        recipe = load_recipe(model, config, parse_overrides(overrides or []), flags or {})
        announce(recipe, f"train {verb} · {config or 'command line'}", quiet)
        result = run(recipe, resume=resume, overwrite=overwrite, quiet=quiet, inspect=inspect)
        if result is not None:
            finish(result, quiet)

    command.__doc__ = doc
    return user_errors(with_flags(model, everyday)(command))
