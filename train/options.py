"""Command-line options of the `train` verbs: the everyday recipe keys as flags, and the run options.

A flag is one line naming its recipe key; its type, help and default come from the key's field
in train/config.py (see curate/config.py). Every other key is set with `KEY=VALUE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.config import Flag

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
