"""`train sft`: supervised fine-tuning (LoRA / QLoRA) of a causal LM on an export, with TRL's SFTTrainer.

Read top to bottom: resolve the recipe -> load + check the data -> tokenizer and max_length ->
SFTConfig -> open the run directory -> model (quantized when asked) -> train (resumable) -> sample
generations -> run card. What every verb shares (run directory, the TrainingArguments keys,
progress, timing, memory, run card, resume) is in train/run.py; this module keeps SFT's own part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from curate.console import console, user_errors
from curate.errors import CurateError
from train import options
from train.config import SFTRecipe, load_recipe, parse_overrides
from train.data import TrainData, load_data
from train.generate import generate_texts
from train.model import load_model, load_tokenizer, lora_config
from train.progress import announce
from train.run import (
    open_run,
    pick_max_length,
    print_summary,
    run_dir_for,
    train_and_evaluate,
    training_arguments,
    write_card,
)


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


def sft_config(recipe: SFTRecipe, run_dir: Path, max_length: int, has_eval: bool) -> Any:
    """TRL's SFTConfig: the keys every verb shares (train/run.py) plus SFT's own."""
    from trl import SFTConfig

    return SFTConfig(
        **training_arguments(recipe, run_dir, has_eval),
        max_length=max_length,
        packing=recipe.dataset.packing,
        completion_only_loss=recipe.dataset.completion_only_loss,
    )


def run_sft(recipe: SFTRecipe, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> Path:
    """Train, save the adapter + tokenizer + run card into the run directory, and return it."""
    from trl import SFTTrainer

    if not recipe.dataset.path:
        raise CurateError("no training data: pass --data EXPORT_DIR (or set dataset.path in the recipe)")
    if not recipe.model.name:
        raise CurateError("no model: pass --model NAME (hub id, local directory, .gguf file or 'smollm2')")
    data = load_data(recipe.dataset.path, "sft")
    tokenizer = load_tokenizer(recipe.model.name, recipe.tokenizer.padding_side, recipe.tokenizer.pad_token)
    max_length = pick_max_length(recipe, data, tokenizer, quiet)
    check_prompt_lengths(data, tokenizer, max_length)
    columns = [c for c in data.columns if c in ("prompt", "completion", "messages", "text")]
    train_set = data.dataset["train"].select_columns(columns)
    eval_set = data.eval.select_columns(columns) if data.eval is not None and len(data.eval) else None
    args = sft_config(recipe, run_dir_for(recipe, data.name, "sft"), max_length, eval_set is not None)
    run = open_run("sft", args, resume, overwrite)

    trainer = SFTTrainer(
        model=load_model(recipe.model, recipe.memory),
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=lora_config(recipe.lora),
    )
    trained = train_and_evaluate(trainer, run, recipe, quiet)
    samples = sample_generations(trainer.model, tokenizer, data, recipe) if trainer.is_world_process_zero() else []
    own = {
        "hyperparameters": {"max_length": max_length, **recipe.dataset.model_dump()},
        "generation": recipe.generation.model_dump(),
        "samples": samples,
    }
    write_card(run, trainer, recipe, data, trained, own)
    return run.dir


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
        print_samples(print_summary(run_dir, ("train_loss", "eval_loss", "best_eval_loss", "global_step")))


def print_samples(card: dict[str, Any] | None) -> None:
    """The sample generations of the run card, one line each."""
    from rich.markup import escape

    for sample in (card or {}).get("samples", []):  # the prompt's end is what differs between test rows
        tail = " ".join(sample["prompt"].split())[-60:]
        console.print(f"[dim]…{escape(tail)}[/] → {escape(sample['generated'][:120])}", highlight=False)
