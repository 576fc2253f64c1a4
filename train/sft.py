"""`train sft`: supervised fine-tuning (LoRA / QLoRA) of a causal LM on an export, with TRL's SFTTrainer.

Read top to bottom: resolve the recipe -> load + check the data -> tokenizer and max_length ->
model (quantized when asked) -> SFTConfig -> train (resumable) -> save adapter + tokenizer ->
sample generations -> run card.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import torch
import typer

from curate.console import console, user_errors
from curate.errors import CurateError
from train import options
from train.card import CARD, hardware, now, peak_memory, reset_peak_memory, versions, write_run_card
from train.config import SFTRecipe, load_recipe, parse_overrides
from train.data import TrainData, load_data
from train.generate import generate_texts
from train.model import describe, load_model, load_tokenizer, lora_config, model_path, resolve_dtype
from train.progress import RichProgress, announce

DEFAULT_MAX_LENGTH = 1024


def pick_max_length(recipe: SFTRecipe, data: TrainData) -> int:
    """The recipe's max_length, else the export's recommended one, else TRL's default (1024)."""
    return recipe.tokenizer.max_length or data.recommended_max_length or DEFAULT_MAX_LENGTH


def check_prompt_lengths(data: TrainData, tokenizer: Any, max_length: int) -> None:
    """Refuse a max_length that leaves no room for the completion of the longest prompt."""
    if data.format != ("prompt", "completion") or not isinstance(data.dataset["train"][0]["prompt"], str):
        return
    longest, where = 0, ""
    for split, rows in data.dataset.items():
        lengths = [len(ids) for ids in tokenizer(list(rows["prompt"]))["input_ids"]]
        for row, n in enumerate(lengths):
            if n > longest:
                longest, where = (
                    n,
                    f"{split} row {row}" + (f" (id {rows[row]['id']})" if "id" in rows.column_names else ""),
                )
    if longest >= max_length:
        raise CurateError(
            f"max_length {max_length} is not longer than the longest prompt ({longest} tokens, {where} of "
            f"{data.source}): its completion would be cut off entirely; raise it, e.g. tokenizer.max_length={longest * 2}"
        )


def is_run_dir(path: Path) -> bool:
    """A directory `train` wrote: it has a run card, or checkpoints of a run that stopped before its card."""
    return (path / CARD).is_file() or any(path.glob("checkpoint-*"))


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> str | None:
    """Create the run directory; return the checkpoint to resume from (None for a fresh run)."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume:
        last = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
        if last is None:
            raise CurateError(f"--resume: no checkpoint-* directory in {run_dir} to resume from")
        return last
    if run_dir.exists() and any(run_dir.iterdir()):
        if not is_run_dir(run_dir):  # --overwrite deletes the directory: only ever one of our runs
            raise CurateError(
                f"{run_dir} exists and is not a training run (no run_card.json or checkpoint-*): "
                "refusing to use it; choose another --out or remove it yourself"
            )
        if not overwrite:
            raise CurateError(
                f"{run_dir} already holds a run: pass --resume to continue it or --overwrite to start over"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return None


def sft_config(recipe: SFTRecipe, run_dir: Path, max_length: int, has_eval: bool, quiet: bool) -> Any:
    """Translate the recipe into TRL's SFTConfig (eval + save each epoch, keep the best by eval loss)."""
    from trl import SFTConfig

    t = recipe.training
    dtype = resolve_dtype(recipe.memory.compute_dtype if recipe.memory.quantize != "none" else recipe.model.dtype)
    on_gpu = torch.cuda.is_available()
    evaluate = has_eval and t.eval_each_epoch
    keep_best = evaluate and t.save_each_epoch and t.keep_best
    return SFTConfig(
        output_dir=str(run_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        # transformers 5 folds warmup_ratio into warmup_steps: a float < 1 is a ratio of the total steps.
        warmup_steps=t.warmup_steps or t.warmup_ratio,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        optim=t.optim,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        seed=t.seed,
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="epoch" if t.save_each_epoch else "no",
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if keep_best else None,
        greater_is_better=False if keep_best else None,
        max_length=max_length,
        packing=recipe.dataset.packing,
        completion_only_loss=recipe.dataset.completion_only_loss,
        gradient_checkpointing=recipe.memory.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if recipe.memory.gradient_checkpointing else None,
        bf16=on_gpu and dtype == torch.bfloat16,
        fp16=on_gpu and dtype == torch.float16,
        logging_steps=recipe.logging.logging_steps,
        report_to=recipe.logging.report_to,
        push_to_hub=recipe.logging.push_to_hub,
        hub_model_id=recipe.logging.hub_model_id,
        disable_tqdm=True,  # eval batches too: run_sft shows its own rich bar
        dataloader_pin_memory=on_gpu,
    )


def loss_curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training and eval losses by step, from the trainer's log history."""
    keep = ("loss", "eval_loss")
    return [
        {"step": e["step"], "epoch": round(e.get("epoch", 0.0), 3), **{k: e[k] for k in keep if k in e}}
        for e in log_history
        if any(k in e for k in keep)
    ]


def run_sft(recipe: SFTRecipe, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> Path:
    """Train, save the adapter + tokenizer + run card into the run directory, and return it."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTTrainer

    if not recipe.dataset.path:
        raise CurateError("no training data: pass --data EXPORT_DIR (or set dataset.path in the recipe)")
    if not recipe.model.name:
        raise CurateError("no model: pass --model NAME (hub id, local directory, .gguf file or 'smollm2')")
    data = load_data(recipe.dataset.path, "sft")
    tokenizer = load_tokenizer(recipe.model.name, recipe.tokenizer.padding_side, recipe.tokenizer.pad_token)
    max_length = pick_max_length(recipe, data)
    check_prompt_lengths(data, tokenizer, max_length)
    run_dir = Path(recipe.logging.output_dir or f"runs/{data.name}-sft")
    checkpoint = prepare_run_dir(run_dir, resume, overwrite)

    model = load_model(recipe.model, recipe.memory)
    columns = [c for c in data.columns if c in ("prompt", "completion", "messages", "text")]
    train_set = data.dataset["train"].select_columns(columns)
    eval_set = data.eval.select_columns(columns) if data.eval is not None and len(data.eval) else None
    trainer = SFTTrainer(
        model=model,
        args=sft_config(recipe, run_dir, max_length, eval_set is not None, quiet),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=lora_config(recipe.lora),
    )
    # One rich bar (or nothing with --quiet) instead of the trainer's tqdm bar / printed log dicts.
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    if not quiet:
        trainer.add_callback(RichProgress("train sft"))
    reset_peak_memory()
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    memory = peak_memory()
    tokens = int(getattr(trainer, "_total_train_tokens", 0))  # TRL's own count of non-pad tokens trained on
    trainer.save_model(str(run_dir))  # adapter (or full model) + tokenizer
    if recipe.logging.push_to_hub:
        trainer.push_to_hub()

    metrics: dict[str, Any] = {"train_loss": result.training_loss, "global_step": result.global_step}
    if eval_set is not None:
        metrics.update(trainer.evaluate())
    if trainer.state.best_metric is not None:
        metrics["best_eval_loss"] = trainer.state.best_metric
        metrics["best_checkpoint"] = trainer.state.best_model_checkpoint
    if not trainer.is_world_process_zero():  # under accelerate/torchrun one process writes the card
        return run_dir
    samples = sample_generations(trainer.model, tokenizer, data, recipe)
    card: dict[str, Any] = {
        "name": run_dir.name,
        "verb": "sft",
        "base_model": recipe.model.name,
        "base_model_path": model_path(recipe.model.name),
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
        "hyperparameters": {**recipe.training.model_dump(), "max_length": max_length, **recipe.dataset.model_dump()},
        "generation": recipe.generation.model_dump(),
        "metrics": metrics,
        "loss_curve": loss_curve(trainer.state.log_history),
        "throughput": {"train_tokens": tokens, "seconds": round(seconds, 2), "tokens_per_second": tokens / seconds},
        "peak_memory": memory,
        "hardware": hardware(),
        "versions": versions(),
        "resumed_from": checkpoint,
        "samples": samples,
        "recipe": recipe.model_dump(mode="json"),
        "finished_at": now(),
    }
    write_run_card(run_dir, card)
    return run_dir


def sample_generations(model: Any, tokenizer: Any, data: TrainData, recipe: SFTRecipe) -> list[dict[str, str]]:
    """Generate for the first few test prompts (prompt/completion data) to show in the run card."""
    n = recipe.generation.samples
    rows = data.eval if data.eval is not None and len(data.eval) else data.dataset["train"]
    if n == 0 or data.format != ("prompt", "completion") or not isinstance(rows[0]["prompt"], str):
        return []
    rows = rows.select(range(min(n, len(rows))))
    outputs = generate_texts(
        model, tokenizer, list(rows["prompt"]), recipe.generation.num_beams, recipe.generation.max_new_tokens
    )
    return [
        {"prompt": row["prompt"], "generated": out.strip(), "reference": row["completion"].strip()}
        for row, out in zip(rows, outputs, strict=True)
    ]


@user_errors
def sft_command(
    overrides: Annotated[
        Optional[list[str]],
        typer.Argument(help="Recipe overrides KEY=VALUE, e.g. training.epochs=3 lora.r=8.", show_default=False),
    ] = None,
    data: Annotated[
        Optional[str], typer.Option("--data", "-d", help="Export directory, saved HF dataset or hub dataset id.")
    ] = None,
    model: options.Model = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="Recipe YAML (see recipes/*-sft.yaml).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default runs/<data>-sft).")] = None,
    epochs: options.Epochs = None,
    max_steps: options.MaxSteps = None,
    lr: options.Lr = None,
    scheduler: Annotated[Optional[str], typer.Option(help="LR schedule: linear | cosine | constant | ...")] = None,
    warmup_ratio: Annotated[Optional[float], typer.Option(help="Fraction of steps spent warming up.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Per-device train batch size.")] = None,
    grad_accum: options.GradAccum = None,
    max_length: Annotated[
        Optional[int], typer.Option(help="Max tokens per example (default: the export's recommended max_length).")
    ] = None,
    packing: Annotated[
        Optional[bool], typer.Option("--packing/--no-packing", help="Pack examples into max_length blocks.")
    ] = None,
    completion_only_loss: Annotated[
        Optional[bool],
        typer.Option(
            "--completion-only-loss/--full-loss",
            help="Loss on completions only (default on for prompt/completion data).",
        ),
    ] = None,
    quantize: options.Quantize = None,
    lora_r: options.LoraR = None,
    lora_alpha: options.LoraAlpha = None,
    lora_dropout: options.LoraDropout = None,
    gradient_checkpointing: options.GradientCheckpointing = None,
    seed: options.Seed = None,
    report_to: options.ReportTo = None,
    push_to_hub: Annotated[
        Optional[bool], typer.Option("--push-to-hub", help="Push the adapter to the Hub at the end.")
    ] = None,
    resume: options.Resume = False,
    overwrite: options.Overwrite = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No recipe print-out or progress bars.")] = False,
) -> None:
    """Supervised fine-tuning (LoRA / QLoRA) of a causal LM on an export, with TRL's SFTTrainer.

    Evaluates and saves each epoch, keeps the best checkpoint by eval loss, then writes the adapter,
    tokenizer and run_card.json (with the export's content hash and sample generations).

    Examples:
      train sft --config recipes/latex-sft.yaml
      train sft --config recipes/latex-sft.yaml training.epochs=5 lora.r=8
      train sft --data out/latex --model smollm2 --epochs 3 --lr 2e-4
    """
    flags: dict[str, Any] = {
        "dataset.path": data,
        "model.name": model,
        "logging.output_dir": str(out) if out else None,
        "training.epochs": epochs,
        "training.max_steps": max_steps,
        "training.learning_rate": lr,
        "training.lr_scheduler": scheduler,
        "training.warmup_ratio": warmup_ratio,
        "training.batch_size": batch_size,
        "training.gradient_accumulation_steps": grad_accum,
        "training.seed": seed,
        "tokenizer.max_length": max_length,
        "dataset.packing": packing,
        "dataset.completion_only_loss": completion_only_loss,
        "memory.quantize": quantize,
        "memory.gradient_checkpointing": gradient_checkpointing,
        "lora.r": lora_r,
        "lora.alpha": lora_alpha,
        "lora.dropout": lora_dropout,
        "logging.report_to": report_to,
        "logging.push_to_hub": push_to_hub,
    }
    recipe = load_recipe(SFTRecipe, config, parse_overrides(overrides or []), flags)
    announce(recipe, f"train sft · {config or 'command line'}", quiet)
    run_dir = run_sft(recipe, resume=resume, overwrite=overwrite, quiet=quiet)
    if not quiet:
        print_summary(run_dir)


def print_summary(run_dir: Path) -> None:
    """What a user reads at the end: metrics, throughput and where the run went."""
    from rich.markup import escape

    from train.card import read_run_card

    card = read_run_card(run_dir)
    metrics = card["metrics"]
    shown = ("train_loss", "eval_loss", "best_eval_loss", "global_step")
    parts = [f"{k} {metrics[k]:.4g}" for k in shown if k in metrics]
    console.print(f"[bold]train sft[/] done: {' · '.join(parts)}")
    console.print(
        f"{card['throughput']['tokens_per_second']:.0f} tokens/s · peak memory {card['peak_memory']} · "
        f"run written to [bold]{run_dir}[/] (adapter, tokenizer, run_card.json, README.md)"
    )
    for sample in card["samples"]:  # the prompt's end is what differs between test rows
        tail = " ".join(sample["prompt"].split())[-60:]
        console.print(f"[dim]…{escape(tail)}[/] → {escape(sample['generated'][:120])}", highlight=False)
