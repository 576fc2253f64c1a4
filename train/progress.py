"""A rich progress bar for transformers/TRL trainers, in place of their tqdm bars (same look as `curate`)."""

from __future__ import annotations

import os
from typing import Any

from rich.progress import Progress, TextColumn, TimeRemainingColumn
from transformers import TrainerCallback

from curate.console import progress_bar
from train.config import BaseRecipe, print_recipe


def is_main_process() -> bool:
    """True outside distributed runs, and on global rank 0 under accelerate/torchrun (both set RANK): it alone prints."""
    return int(os.environ.get("RANK", "0")) == 0


def silence_library_progress() -> None:
    """For `--quiet`: turn off the tqdm bars transformers and datasets draw on their own (weight loading, map)."""
    import datasets
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def announce(recipe: BaseRecipe, title: str, quiet: bool) -> None:
    """What a `train` verb shows before it starts: the recipe, or with `--quiet` nothing (library bars off too)."""
    if quiet:
        silence_library_progress()
    elif is_main_process():
        print_recipe(recipe, title)


def show_progress(trainer: Any, verb: str, quiet: bool) -> None:
    """Put our progress in place of the trainer's tqdm bar and printed log dicts (nothing with --quiet)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if not quiet:
        trainer.add_callback(RichProgress(f"train {verb}"))


class RichProgress(TrainerCallback):
    """Steps done / total with elapsed and remaining time; the latest loss and eval loss beside the bar."""

    def __init__(self, description: str = "training") -> None:
        self.description = description
        self.progress: Progress | None = None
        self.task: Any = None
        self.losses: dict[str, float] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.progress = progress_bar(TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), unit="steps")
        self.progress.start()
        self.task = self.progress.add_task(
            self.description, total=state.max_steps, completed=state.global_step, losses=""
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.progress is None or not logs:
            return
        self.losses.update({k: float(v) for k, v in logs.items() if k in ("loss", "eval_loss")})
        shown = " · ".join(f"{k} {v:.4f}" for k, v in self.losses.items())
        self.progress.update(self.task, losses=shown)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
