"""What `train` shows while it runs, in place of transformers' tqdm bars and printed log dicts.

On a terminal: a rich bar (steps done / total, elapsed, remaining, the latest losses) and a
second bar while evaluating. Anywhere else (a log file, CI): plain lines at a steady interval
(`logging.progress_seconds`), never a live bar, ANSI codes, tqdm or dicts. With `--quiet`: nothing.
Only the main process prints, so a run under accelerate/torchrun shows its progress once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from rich.progress import Progress, TextColumn, TimeRemainingColumn
from transformers import TrainerCallback

from curate.console import console, progress_bar
from train.config import BaseRecipe, print_recipe

SHOWN_LOSSES = ("loss", "eval_loss")


def is_main_process() -> bool:
    """True outside distributed runs, and on global rank 0 under accelerate/torchrun (both set RANK): it alone prints."""
    return int(os.environ.get("RANK", "0")) == 0


def on_terminal() -> bool:
    """Whether stdout is a terminal (live bars) rather than a file or a pipe (plain lines)."""
    return console.is_terminal


def silence_library_progress() -> None:
    """Turn off the tqdm bars transformers and datasets draw on their own (weight loading, map, saving)."""
    import datasets
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def announce(recipe: BaseRecipe, title: str, quiet: bool) -> None:
    """What a `train` verb shows before it starts: the recipe, or with `--quiet` nothing.

    The libraries' own tqdm bars are turned off with `--quiet` and whenever stdout is not a
    terminal (in a log they are lines of carriage returns).
    """
    if quiet or not on_terminal():
        silence_library_progress()
    if not quiet and is_main_process():
        print_recipe(recipe, title)


def show_progress(trainer: Any, verb: str, quiet: bool, interval: float, shown: Sequence[str] = SHOWN_LOSSES) -> None:
    """Put our progress in place of the trainer's tqdm bar and printed log dicts (nothing with --quiet).

    `shown`: the logged values shown beside the step count (losses; online RL shows reward and KL).
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if not quiet:
        trainer.add_callback(progress_callback(f"train {verb}", interval, shown))


def progress_callback(description: str, interval: float, shown: Sequence[str] = SHOWN_LOSSES) -> TrainerCallback:
    """A live bar on a terminal, plain lines every `interval` seconds anywhere else (our own loops use it too)."""
    return RichProgress(description, shown) if on_terminal() else PlainProgress(description, interval, shown)


def clock(seconds: float) -> str:
    """0:01:05 for 65 seconds."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class RichProgress(TrainerCallback):
    """Steps done / total, rate, elapsed and remaining time, the latest `shown` values beside the bar; a bar per eval."""

    def __init__(self, description: str = "training", shown: Sequence[str] = SHOWN_LOSSES) -> None:
        self.description = description
        self.shown = tuple(shown)
        self.progress: Progress | None = None
        self.task: Any = None
        self.eval_task: Any = None
        self.eval_only = False  # an evaluation after training: its own short-lived bar
        self.losses: dict[str, float] = {}

    def _start(self) -> Progress:  # the bar every verb shows (curate.console), with time left and losses
        self.progress = progress_bar(TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), unit="steps")
        self.progress.start()
        return self.progress

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            progress = self._start()
            self.task = progress.add_task(
                self.description, total=state.max_steps, completed=state.global_step, unit="steps", losses=""
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.progress is None or self.task is None or not logs:
            return
        self.losses.update({k: float(v) for k, v in logs.items() if k in self.shown})
        self.progress.update(self.task, losses=" · ".join(f"{k} {v:.4f}" for k, v in self.losses.items()))

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.progress is None:
            self._start()
            self.eval_only = True
        assert self.progress is not None
        if self.eval_task is None:
            batches = len(kwargs["eval_dataloader"]) if kwargs.get("eval_dataloader") is not None else None
            self.eval_task = self.progress.add_task("evaluating", total=batches, unit="batches", losses="")
        self.progress.advance(self.eval_task)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None and self.eval_task is not None:
            self.progress.remove_task(self.eval_task)
            self.eval_task = None
            if self.eval_only:
                self._stop()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress, self.task, self.eval_task, self.eval_only = None, None, None, False


class PlainProgress(TrainerCallback):
    """Plain lines for a log or CI: the step count, time and losses every `interval` seconds (and first and last).

    `train sft · step 40/200 (20%) · 0:01:10 elapsed · ~0:04:40 left · loss 1.2345`
    `train sft · evaluating: batch 3/12`, then `train sft · eval at step 40 (0:00:09): eval_loss 1.3021`
    """

    def __init__(self, description: str, interval: float, shown: Sequence[str] = SHOWN_LOSSES) -> None:
        self.description = description
        self.interval = interval
        self.shown = tuple(shown)
        self.losses: dict[str, float] = {}
        self.started = self.last = 0.0
        self.first_step = 0
        self.eval_batches = 0

    def _print(self, text: str) -> None:
        console.print(f"{self.description} · {text}", markup=False, highlight=False, soft_wrap=True)

    def _due(self, now: float) -> bool:
        return now - self.last >= self.interval

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.started = self.last = time.monotonic()
            self.first_step = state.global_step
            resumed = f", resuming at step {state.global_step}" if state.global_step else ""
            self._print(f"{state.max_steps} steps{resumed}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = time.monotonic()
        if not state.is_world_process_zero or not (self._due(now) or state.global_step in (1, state.max_steps)):
            return
        self.last = now
        done, elapsed = state.global_step - self.first_step, now - self.started
        parts = [f"step {state.global_step}/{state.max_steps} ({100 * state.global_step // state.max_steps}%)"]
        parts.append(f"{clock(elapsed)} elapsed")
        if done and state.global_step < state.max_steps:
            parts.append(f"~{clock(elapsed / done * (state.max_steps - state.global_step))} left")
        parts += [f"{k} {v:.4f}" for k, v in self.losses.items()]
        self._print(" · ".join(parts))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.losses.update({k: float(v) for k, v in (logs or {}).items() if k in self.shown})

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.eval_batches += 1
        total = len(kwargs["eval_dataloader"]) if kwargs.get("eval_dataloader") is not None else "?"
        now = time.monotonic()
        if self.eval_batches == 1 or self.eval_batches == total or self._due(now):
            self.last = now
            self._print(f"evaluating: batch {self.eval_batches}/{total}")

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        metrics = metrics or {}
        shown = " · ".join(
            f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("eval_") and k not in RUNTIME_KEYS and _num(v)
        )
        self._print(f"eval at step {state.global_step} ({clock(metrics.get('eval_runtime', 0.0))}): {shown}")
        self.eval_batches = 0


RUNTIME_KEYS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_num_tokens")


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
