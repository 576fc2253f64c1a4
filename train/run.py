"""What every `train` verb shares: the run directory, recipe -> TRL config, progress, timing,
memory, metrics, the run card and resume. A verb's own module keeps only what is its own.

A run, top to bottom (train/sft.py is the shortest complete verb):

    inputs = load_inputs(recipe, "sft", quiet, inspect)  # data, its rendering, max_length (or --inspect)
    run_dir = run_dir_for(recipe, inputs.data.name, "sft")
    eval_set = eval_split(recipe, test_rows)             # capped by training.eval_rows
    args = SFTConfig(**training_arguments(recipe, run_dir, eval_set is not None), max_length=...)
    run = open_run("sft", args, resume, overwrite)       # fresh, overwritten or resumed; before the model
    trainer = SFTTrainer(model=..., args=args, ...)
    trained = train_and_evaluate(trainer, run, recipe, quiet)  # progress, timing, memory, eval once, save
    write_card(run, trainer, recipe, inputs.data, trained, {...the verb's own card fields...})
    report(run.dir, quiet, shown_metrics)                # in the command: the summary, or the run dir

How to add a verb (`train dpo`, `ppo`, `rloo`, `grpo`, `classify`):
1. Recipe: a `BaseRecipe` subclass with a section of the verb's own keys, each declared once as
   `Field(default=..., description=...)` (see `RewardRecipe`); flags and `--help` follow from it.
2. Config and trainer: `DPOConfig(**training_arguments(recipe, run_dir, has_eval), beta=...)` — every
   TrainingArguments keyword comes from `training_arguments`, the verb adds only its trainer's own —
   and its TRL trainer (TRL's config/trainer pairs are the model).
3. Run: `open_run` before loading the model, `train_and_evaluate`, then `write_card` with the verb's
   own card fields and metrics (e.g. reward accuracy on the test pairs).
4. Command: `dpo_command = options.verb_command("dpo", DPORecipe, (*options.TRAIN_FLAGS,
   Flag("dpo.beta")), run_dpo, finish_dpo, doc)` — flags only for everyday keys (every key is a
   KEY=VALUE anyway); `finish_dpo(result, quiet)` calls `report` with the metrics to show. Register
   it in train/cli.py with one line: `app.command("dpo", epilog=keys_help(DPORecipe))(dpo_command)`.
A loop TRL does not ship (PPO) opens its run with `open_run`, adds `RunMeter` to its timing and ends
with `write_card` the same way, so its run directory, card and resume behave like every other verb's.

Under `accelerate launch` / `torchrun` every process runs the verb: the main process prepares the
run directory while the others wait, and only it prints, saves and writes the card; the card
records the world size and the effective batch size (per-device batch x accumulation x processes).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from curate.console import console, err_console
from curate.errors import CurateError
from curate.io.owned import written_by_us
from curate.render import Renderer
from train.card import CARD, hardware, now, peak_memory, read_run_card, reset_peak_memory, versions, write_run_card
from train.config import BaseRecipe
from train.data import FORMATS, TrainData, export_max_length
from train.model import describe, model_path, resolve_dtype
from train.progress import SHOWN_LOSSES, is_main_process, show_progress

# -- the run directory ----------------------------------------------------------------------------


@dataclass
class Run:
    """A run directory opened for one verb: where it writes, and the checkpoint it resumes from."""

    verb: str
    dir: Path
    resumed_from: str | None = None
    resumed_step: int = 0  # the global step of that checkpoint
    skipped: list[str] = field(default_factory=list)  # newer checkpoints left incomplete by a crash


TRAINER_STATE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME: the last file of a checkpoint


def run_dir_for(recipe: BaseRecipe, data_name: str, verb: str) -> Path:
    """The recipe's `logging.output_dir`, else runs/<data name>-<verb>."""
    return Path(recipe.logging.output_dir or f"runs/{data_name}-{verb}")


def is_run_dir(path: Path) -> bool:
    """A directory `train` wrote: it has our run card (marked), or checkpoints of a run that stopped before its card."""
    return written_by_us(path / CARD) or any(path.glob("checkpoint-*"))


def checkpoint_step(path: Path) -> int | None:
    """The global step a checkpoint holds, or None when it is incomplete.

    transformers writes a checkpoint in place and its trainer_state.json last, so a run killed
    while saving leaves a `checkpoint-N` without it (or with it cut short).
    """
    try:
        state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
        return int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def latest_checkpoint(run_dir: Path) -> tuple[Path | None, int, list[Path]]:
    """The newest complete `checkpoint-N`, its step, and the newer incomplete ones passed over."""
    found = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    skipped: list[Path] = []
    for path in sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]), reverse=True):
        step = checkpoint_step(path)
        if step is not None:
            return path, step, skipped
        skipped.append(path)
    return None, 0, skipped


def prepare_run_dir(verb: str, run_dir: Path, resume: bool, overwrite: bool) -> Run:
    """Create the run directory, or find the checkpoint to resume from."""
    if resume:
        checkpoint, step, skipped = latest_checkpoint(run_dir) if run_dir.is_dir() else (None, 0, [])
        if checkpoint is None:
            incomplete = f" ({', '.join(p.name for p in skipped)}: incomplete, no {TRAINER_STATE})" if skipped else ""
            raise CurateError(f"--resume: no complete checkpoint-* directory in {run_dir} to resume from{incomplete}")
        return Run(verb, run_dir, str(checkpoint), step, [str(p) for p in skipped])
    if run_dir.exists() and any(run_dir.iterdir()):
        if not is_run_dir(run_dir):  # --overwrite deletes the directory: only ever one of our runs
            raise CurateError(
                f"{run_dir} exists and is not a training run (no run_card.json written by curatrain, no checkpoint-*): "
                "refusing to use it; choose another --out or remove it yourself"
            )
        if not overwrite:
            raise CurateError(
                f"{run_dir} already holds a run: pass --resume to continue it or --overwrite to start over"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Run(verb, run_dir)


def open_run(verb: str, args: Any, resume: bool, overwrite: bool) -> Run:
    """Prepare `args.output_dir` for a fresh, overwritten or resumed run (call it before loading the model).

    Under several processes the main one goes first (it may delete an old run); the others then
    find the directory ready and the same checkpoint, or fail with the same error. Checkpoints
    left incomplete by a crash are passed over, and said so. Seeds every generator with `args.seed`,
    so the recipe's seed also decides what is drawn while the model is built (a new LoRA adapter,
    a reward or classification head), not only what the trainer draws afterwards.
    """
    from transformers import set_seed

    set_seed(args.seed)
    with args.main_process_first(local=False, desc="run directory"):
        run = prepare_run_dir(verb, Path(args.output_dir), resume, overwrite)
    if run.skipped and is_main_process():
        from rich.markup import escape

        names = ", ".join(Path(p).name for p in run.skipped)
        err_console.print(
            f"[yellow]warning:[/] skipping {escape(names)} in {escape(str(run.dir))}: incomplete (no {TRAINER_STATE}; "
            f"the run stopped while saving it); resuming from {escape(Path(run.resumed_from or '').name)}",
            highlight=False,
            soft_wrap=True,
        )
    return run


# -- what a verb starts from ----------------------------------------------------------------------


@dataclass
class Inputs:
    """What every verb starts from: the data, its rendering for the model's tokenizer, and max_length."""

    data: TrainData
    renderer: Renderer
    max_length: int


def check_startable(recipe: BaseRecipe, verb: str) -> None:
    """One line for a recipe that cannot start: no data, no model, QLoRA without LoRA, length-grouped pairs."""
    if not recipe.dataset.path:
        raise CurateError("no training data: pass --data EXPORT_DIR (or set dataset.path in the recipe)")
    if not recipe.model.name:
        raise CurateError("no model: pass --model NAME (hub id, local directory, .gguf file or 'smollm2')")
    if recipe.memory.quantize != "none" and not recipe.lora.enabled:
        raise CurateError(
            f"--quantize {recipe.memory.quantize} needs LoRA (QLoRA): quantized weights cannot be trained in full"
        )
    pairs = ("chosen", "rejected") in FORMATS.get(verb, [])
    if pairs and recipe.training.group_by_length:  # transformers' length sampler reads `input_ids`; pairs have two
        raise CurateError(f"training.group_by_length is not supported by `train {verb}` (pairs have two sequences)")


def load_inputs(
    recipe: BaseRecipe, verb: str, quiet: bool, inspect: int = 0, chat_strings: bool = False
) -> Inputs | None:
    """Check the recipe can start (`check_startable`), load the data for `verb`, render it for the model's tokenizer.

    `inspect` > 0: print that many examples as the trainer would receive them and return None (no model loaded).
    `chat_strings`: give untemplated prompt/answer strings as chat turns (`train reward`, `train dpo`).
    """
    from train.data import load_data
    from train.formatting import renderer_for
    from train.model import load_tokenizer

    check_startable(recipe, verb)
    assert recipe.dataset.path is not None and recipe.model.name is not None
    data = load_data(recipe.dataset.path, verb)
    tokenizer = load_tokenizer(recipe.model.name, recipe.tokenizer.padding_side, recipe.tokenizer.pad_token)
    renderer = renderer_for(data, tokenizer, recipe.dataset, recipe.model.name, chat_strings)
    max_length = pick_max_length(recipe, data, renderer, quiet)
    if inspect:
        from train.inspect import inspect_data

        inspect_data(data, renderer, verb, max_length, inspect)
        return None
    return Inputs(data, renderer, max_length)


# -- recipe -> TrainingArguments -----------------------------------------------------------------

DEFAULT_MAX_LENGTH = 1024  # TRL's own default, for data without a recommended max_length


def pick_max_length(
    recipe: BaseRecipe, data: TrainData, renderer: Renderer, quiet: bool, splits: list[Any] | None = None
) -> int:
    """The recipe's max_length, else the export's recommended one for this model's tokenizer, else TRL's 1024.

    Says in one line where an export-derived value came from (recounted with `renderer`, the rendering the
    trainer gets, when the export used another tokenizer; `splits`: the rows, default the data's splits).
    """
    if recipe.tokenizer.max_length:
        return recipe.tokenizer.max_length
    recommended, why = export_max_length(data, str(recipe.model.name), renderer, splits)
    if not quiet and recommended is not None and is_main_process():
        console.print(f"max_length {recommended}: {why}", highlight=False, soft_wrap=True)
    return recommended or DEFAULT_MAX_LENGTH


MIN_EVAL_ROWS = 100  # what a short run still evaluates by default (see `eval_rows`)


def eval_rows(recipe: BaseRecipe, test_rows: int) -> int:
    """How many test rows a run evaluates: `training.eval_rows`; by default all of them, except that a
    `max_steps` run evaluates no more rows than it trains on (at least MIN_EVAL_ROWS): a 3-step smoke
    test should not spend minutes on a 1,000-row test split.
    """
    t = recipe.training
    if t.eval_rows is not None:
        return min(t.eval_rows, test_rows)
    if t.max_steps > 0:
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        trained_on = t.max_steps * t.batch_size * t.gradient_accumulation_steps * processes
        return min(test_rows, max(MIN_EVAL_ROWS, trained_on))
    return test_rows


def eval_split(recipe: BaseRecipe, test: Any) -> Any:
    """The rows the trainer evaluates: the first `eval_rows` of the test split (None without one, or for 0)."""
    if test is None or len(test) == 0:
        return None
    n = eval_rows(recipe, len(test))
    return None if n == 0 else test if n == len(test) else test.select(range(n))


def training_arguments(recipe: BaseRecipe, run_dir: Path, has_eval: bool) -> dict[str, Any]:
    """The TrainingArguments keywords every TRL config takes (SFTConfig, RewardConfig, DPOConfig, ...).

    Eval and save each epoch, keep the best checkpoint by eval loss; mixed precision only on a GPU
    (TRL defaults bf16=True; CPU runs stay fp32); our own progress instead of tqdm bars.
    """
    import torch

    t, memory = recipe.training, recipe.memory
    dtype = resolve_dtype(memory.compute_dtype if memory.quantize != "none" else recipe.model.dtype)
    on_gpu = torch.cuda.is_available()
    # Several processes without a GPU (torchrun/accelerate on CPU): DDP over gloo, as transformers does with use_cpu.
    cpu_processes = not on_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1
    evaluate = has_eval and t.eval_each_epoch
    keep_best = evaluate and t.save_each_epoch and t.keep_best
    return {
        "output_dir": str(run_dir),
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps,
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler,
        # transformers 5 folds warmup_ratio into warmup_steps: a float < 1 is a ratio of the total steps.
        "warmup_steps": t.warmup_steps or t.warmup_ratio,
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.eval_batch_size or t.batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "optim": t.optim,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "train_sampling_strategy": "group_by_length" if t.group_by_length else "random",
        "seed": t.seed,
        "eval_strategy": "epoch" if evaluate else "no",
        "save_strategy": "epoch" if t.save_each_epoch else "no",
        "save_total_limit": t.save_total_limit,
        "load_best_model_at_end": keep_best,
        "metric_for_best_model": "eval_loss" if keep_best else None,
        "greater_is_better": False if keep_best else None,
        "gradient_checkpointing": memory.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if memory.gradient_checkpointing else None,
        "bf16": on_gpu and dtype == torch.bfloat16,
        "fp16": on_gpu and dtype == torch.float16,
        "logging_steps": recipe.logging.logging_steps,
        "report_to": recipe.logging.report_to,
        "push_to_hub": recipe.logging.push_to_hub,
        "hub_model_id": recipe.logging.hub_model_id,
        "disable_tqdm": True,  # eval batches too: `show_progress` draws ours
        "dataloader_pin_memory": on_gpu,
        "use_cpu": cpu_processes,
    }


# -- training, measured --------------------------------------------------------------------------


@dataclass
class Trained:
    """What `train_and_evaluate` measured: final metrics, throughput and peak memory."""

    metrics: dict[str, Any]
    throughput: dict[str, Any]
    peak_memory: dict[str, Any]


class RunMeter(TrainerCallback):
    """Times the training steps and the evaluations apart, so tokens/s counts training steps only.

    It also logs the training loss whenever a checkpoint is about to be saved, so every checkpoint's
    log history holds the loss of every step before it: what `whole_run_loss` needs after a resume.
    """

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.evaluations = 0
        self.tokens_before = 0  # the run's token count when this train() call began (a resume starts above 0)
        self._step_started = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tokens_before = state.num_input_tokens_seen or 0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.train_seconds += time.perf_counter() - self._step_started
        if control.should_save:  # set just before by transformers' DefaultFlowCallback
            control.should_log = True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_save:
            control.should_log = True

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self.evaluations += 1
        self.eval_seconds += float((metrics or {}).get("eval_runtime", 0.0))


def train_and_evaluate(
    trainer: Any,
    run: Run,
    recipe: BaseRecipe,
    quiet: bool,
    shown: Sequence[str] = SHOWN_LOSSES,
    callbacks: Sequence[TrainerCallback] = (),
) -> Trained:
    """Train (resuming when asked), evaluate once, save the model into the run directory; measure it all.

    `shown`: the logged values the progress shows beside the step count (losses; online RL shows reward and KL).
    `callbacks` run after RunMeter at each step's end, so what they do (a held-out check) is not counted as training.
    """
    show_progress(trainer, run.verb, quiet, recipe.logging.progress_seconds, shown)
    meter = RunMeter()
    trainer.add_callback(meter)
    for callback in callbacks:
        trainer.add_callback(callback)
    reset_peak_memory()
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=run.resumed_from)
    metrics: dict[str, Any] = {
        "train_loss": whole_run_loss(trainer.state.log_history, run.resumed_step, result),
        "global_step": result.global_step,
    }
    if trainer.eval_dataset is not None:
        metrics.update(final_eval(trainer) or trainer.evaluate())
    if trainer.state.best_metric is not None:
        # named after the metric that picked it: best_eval_loss, best_eval_f1_micro (`train classify`), ...
        best = trainer.args.metric_for_best_model or "eval_loss"
        metrics[f"best_{best if best.startswith('eval_') else 'eval_' + best}"] = trainer.state.best_metric
        metrics["best_checkpoint"] = trainer.state.best_model_checkpoint
    wall = time.perf_counter() - started
    memory = peak_memory()
    trainer.save_model(str(run.dir))  # adapter (with any modules_to_save) or full model, + tokenizer
    if recipe.logging.push_to_hub:
        trainer.push_to_hub()
    # TRL's count of the non-pad tokens of this call's training steps (its online-RL trainers count prompt + completion
    # tokens in num_input_tokens_seen instead, a plain Trainer with include_num_input_tokens_seen="non_padding" its
    # non-pad tokens: `train classify`); the state's count starts at the checkpoint's after a resume, so that is taken off.
    seen = (trainer.state.num_input_tokens_seen or 0) - meter.tokens_before
    tokens = int(getattr(trainer, "_total_train_tokens", 0) or seen)
    # transformers' count of the rows this call trained on (its rate divides by wall time, evals included)
    samples = round(result.metrics.get("train_samples_per_second", 0.0) * result.metrics.get("train_runtime", 0.0))
    eval_rows = len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0
    return Trained(metrics, throughput(tokens, meter, eval_rows, wall, samples), memory)


def throughput(tokens: int, meter: RunMeter, eval_rows: int, wall: float, samples: int = 0) -> dict[str, Any]:
    """The run card's throughput: tokens/s (and rows/s, when the trainer counts them) over the training steps only,
    evaluations apart, and the wall time (train() and the final eval: steps, evals, checkpoints, data loading)."""
    train_seconds = round(meter.train_seconds, 3)
    return {
        "train_tokens": tokens,
        "train_samples": samples,
        "train_seconds": train_seconds,
        "tokens_per_second": tokens / train_seconds if train_seconds else 0.0,
        "samples_per_second": samples / train_seconds if train_seconds else 0.0,
        "evaluations": meter.evaluations,
        "eval_rows": eval_rows,
        "eval_seconds": round(meter.eval_seconds, 3),
        "wall_seconds": round(wall, 3),
    }


def whole_run_loss(log_history: list[dict[str, Any]], resumed_step: int, result: Any) -> float:
    """The mean training loss over every step of the run, as an uninterrupted run reports it.

    transformers' `training_loss` covers the steps of this `train()` call only; after a resume the
    steps before it come from the checkpoint's log history, each logged mean weighted by the
    steps it covers (RunMeter logs at every save, so that history reaches the checkpoint's step).
    """
    if resumed_step == 0:
        return float(result.training_loss)
    before, logged = 0.0, 0
    for entry in log_history:
        if "loss" in entry and entry["step"] <= resumed_step:
            before += entry["loss"] * (entry["step"] - logged)
            logged = entry["step"]
    now = result.global_step - resumed_step
    return (before + result.training_loss * now) / max(logged + now, 1)


def final_eval(trainer: Any) -> dict[str, Any] | None:
    """The eval metrics of the model training ended with, read from the log history instead of evaluating again.

    That is the best checkpoint's evaluation when it was reloaded, else the last step's; None when
    that step was not evaluated during training (then the caller evaluates once).
    """
    state, args = trainer.state, trainer.args
    best = args.load_best_model_at_end and state.best_model_checkpoint is not None
    step = state.best_global_step if best else state.global_step
    for entry in reversed(state.log_history):
        if entry.get("step") == step and "eval_loss" in entry:
            return {key: value for key, value in entry.items() if key.startswith("eval_")}
    return None


def loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training and eval losses by step, from the trainer's log history."""
    keep = ("loss", "eval_loss")
    return [
        {"step": e["step"], "epoch": round(e.get("epoch", 0.0), 3), **{k: e[k] for k in keep if k in e}}
        for e in log_history
        if any(k in e for k in keep)
    ]


# -- the run card --------------------------------------------------------------------------------


def write_card(
    run: Run, trainer: Any, recipe: BaseRecipe, data: TrainData, trained: Trained, own: dict[str, Any]
) -> dict[str, Any]:
    """Build the run card (what every verb records, updated with the verb's `own` fields); the main process writes it.

    `own` is merged one level deep: `{"data": {"format": ...}}` replaces that one key of the data section.
    """
    args = trainer.args
    card: dict[str, Any] = {
        "name": run.dir.name,
        "verb": run.verb,
        "base_model": recipe.model.name,
        "base_model_path": model_path(recipe.model.name or ""),
        "data": {
            "source": data.source,
            "name": data.name,
            "content_hash": data.content_hash,
            "template": data.template,
            "format": "+".join(data.format),
            "rows": {split: len(rows) for split, rows in data.dataset.items()},
        },
        "quantization": recipe.memory.model_dump(),
        "lora": recipe.lora.model_dump() if recipe.lora.enabled else None,
        "model": describe(trainer.model),
        "hyperparameters": recipe.training.model_dump(),
        "distributed": {
            "world_size": args.world_size,
            "per_device_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "effective_batch_size": args.per_device_train_batch_size
            * args.gradient_accumulation_steps
            * args.world_size,
        },
        "metrics": trained.metrics,
        "loss_curve": loss_curve(trainer.state.log_history),
        "throughput": trained.throughput,
        "peak_memory": trained.peak_memory,
        "hardware": hardware(),
        "versions": versions(),
        "resumed_from": run.resumed_from,
        "skipped_checkpoints": run.skipped,
    }
    for key, value in own.items():
        card[key] = {**card[key], **value} if isinstance(card.get(key), dict) and isinstance(value, dict) else value
    card.update(recipe=recipe.model_dump(mode="json"), finished_at=now())
    if trainer.is_world_process_zero():  # under accelerate/torchrun one process writes the card
        write_run_card(run.dir, card)
    return card


def record_evaluation(run_dir: Path, name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Add (or replace) one evaluation of a finished run, `evaluations[name]` of its card; rewrite the card atomically.

    Everything else in the card stays as training wrote it; the model card README.md shows the evaluations too.
    """
    card = read_run_card(run_dir)
    card["evaluations"] = {**(card.get("evaluations") or {}), name: result}
    write_run_card(run_dir, card)
    return card


def report(
    run_dir: Path, quiet: bool, shown: Sequence[str], written: str = "adapter, tokenizer, run_card.json, README.md"
) -> dict[str, Any] | None:
    """What a user reads at the end (main process only): the chosen metrics, throughput and where the run went.

    With `--quiet` only the run directory, so a script can read it. Returns the run card (None elsewhere).
    """
    from rich.markup import escape

    if not is_main_process():
        return None
    if quiet:
        console.print(str(run_dir), markup=False, highlight=False, soft_wrap=True)
        return None
    card = read_run_card(run_dir)
    metrics, speed = card["metrics"], card["throughput"]
    parts = [f"{k} {metrics[k]:.4g}" for k in shown if isinstance(metrics.get(k), (int, float))]
    if metrics.get("best_checkpoint"):
        parts.append(f"kept the best checkpoint, {Path(metrics['best_checkpoint']).name}")
    console.print(f"[bold]train {card['verb']}[/] done: {' · '.join(parts)}", soft_wrap=True)
    rows = f" · {speed['samples_per_second']:.1f} samples/s" if speed.get("train_samples") else ""  # none from ppo
    console.print(
        f"{speed['tokens_per_second']:.0f} tokens/s{rows} over {speed['train_seconds']:.1f} s of training steps · "
        f"{speed['evaluations']} evaluation(s) of {speed['eval_rows']} rows, {speed['eval_seconds']:.1f} s · "
        f"peak memory {memory_text(card['peak_memory'])}",
        soft_wrap=True,
    )
    console.print(f"run written to [bold]{escape(str(run_dir))}[/] ({written})", soft_wrap=True)
    return card


def memory_text(peak: dict[str, Any]) -> str:
    """`1.234 GB allocated (cuda)` or `0.812 GB resident (cpu)`."""
    if peak.get("device") == "cuda":
        return f"{peak['peak_allocated_gb']} GB allocated (cuda)"
    return f"{peak.get('peak_rss_gb')} GB resident (cpu)"
