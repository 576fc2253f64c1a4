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
from curate.render import Example, Renderer
from train import options
from train.config import SFTRecipe, load_recipe, parse_overrides
from train.data import TrainData, load_data
from train.formatting import renderer_for, sft_dataset, stop_token
from train.generate import generate_texts
from train.inspect import inspect_data
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


def check_prompt_lengths(data: TrainData, examples: dict[str, list[Example]], max_length: int) -> None:
    """Refuse a max_length that leaves no room for the completion of the longest prompt."""
    longest, where = 0, ""
    for split, rows in examples.items():
        for row, example in enumerate(rows):
            if example.prompt_length > longest and any(example.loss_mask):
                ids = data.dataset[split]["id"] if "id" in data.dataset[split].column_names else None
                longest, where = example.prompt_length, f"{split} row {row}" + (f" (id {ids[row]})" if ids else "")
    if longest >= max_length:
        raise CurateError(
            f"max_length {max_length} is not longer than the longest prompt ({longest} tokens, {where} of "
            f"{data.source}): its completion would be cut off entirely; raise it, e.g. tokenizer.max_length={longest * 2}"
        )


def sft_splits(data: TrainData, renderer: Renderer, max_length: int | None) -> dict[str, Any]:
    """Each split of `data` tokenized for SFTTrainer (input_ids + completion_mask), prompt lengths checked
    against `max_length` (None: not checked)."""
    columns = [c for c in data.columns if c in ("prompt", "completion", "messages", "text")]
    splits = {split: sft_dataset(rows.select_columns(columns), renderer) for split, rows in data.dataset.items()}
    # elsewhere TRL drops the rows left without loss (--inspect counts them)
    if max_length is not None and data.format == ("prompt", "completion"):
        check_prompt_lengths(
            data,
            {s: [Example(r["input_ids"], r["completion_mask"]) for r in rows] for s, rows in splits.items()},
            max_length,
        )
    return {split: rows for split, rows in splits.items() if len(rows)}


def sft_config(recipe: SFTRecipe, run_dir: Path, max_length: int, has_eval: bool, eos_token: str | None = None) -> Any:
    """TRL's SFTConfig: the keys every verb shares (train/run.py) plus SFT's own.

    `eos_token`: the template's end-of-turn token when the model should stop on it (`stop_token`).
    """
    from trl import SFTConfig

    return SFTConfig(
        **training_arguments(recipe, run_dir, has_eval),
        max_length=max_length,
        packing=recipe.dataset.packing,
        # The rows come tokenized with their loss mask (train/formatting.py): TRL applies it as given.
        completion_only_loss=True,
        eos_token=eos_token,
    )


def build_trainer(splits: dict[str, Any], renderer: Renderer, model: Any, args: Any, recipe: SFTRecipe) -> Any:
    """TRL's SFTTrainer on the tokenized splits (`sft_splits`), LoRA from the recipe."""
    from trl import SFTTrainer

    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits.get("test"),
        processing_class=renderer.tokenizer,
        peft_config=lora_config(recipe.lora),
    )


def run_sft(
    recipe: SFTRecipe, resume: bool = False, overwrite: bool = False, quiet: bool = False, inspect: int = 0
) -> Path | None:
    """Train, save the adapter + tokenizer + run card into the run directory, and return it.

    `inspect` > 0: print that many examples as the trainer would receive them, and stop (None) before any model.
    """
    if not recipe.dataset.path:
        raise CurateError("no training data: pass --data EXPORT_DIR (or set dataset.path in the recipe)")
    if not recipe.model.name:
        raise CurateError("no model: pass --model NAME (hub id, local directory, .gguf file or 'smollm2')")
    data = load_data(recipe.dataset.path, "sft")
    tokenizer = load_tokenizer(recipe.model.name, recipe.tokenizer.padding_side, recipe.tokenizer.pad_token)
    renderer = renderer_for(data, tokenizer, recipe.dataset, recipe.model.name)
    max_length = pick_max_length(recipe, data, renderer, quiet)
    if inspect:
        inspect_data(data, renderer, "sft", max_length, inspect)
        return None
    splits = sft_splits(data, renderer, max_length)  # before the run dir and model: bad lengths fail fast
    run_dir = run_dir_for(recipe, data.name, "sft")
    args = sft_config(recipe, run_dir, max_length, "test" in splits, stop_token(renderer))
    run = open_run("sft", args, resume, overwrite)
    trainer = build_trainer(splits, renderer, load_model(recipe.model, recipe.memory), args, recipe)
    trained = train_and_evaluate(trainer, run, recipe, quiet)
    samples = sample_generations(trainer.model, tokenizer, data, recipe) if trainer.is_world_process_zero() else []
    own = {
        "data": {"default_system_prompt": renderer.default_system_prompt},
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
            help="Loss only on what the model writes: completions, and the assistant turns of conversations "
            "(default on); --full-loss trains on every token.",
        ),
    ] = None,
    strict: Annotated[
        Optional[bool], typer.Option("--strict", help="Refuse a template whose special tokens the model lacks.")
    ] = None,
    inspect: Annotated[
        int,
        typer.Option(
            min=0, help="Print the first N examples as the trainer receives them (tokens, loss mask, counts); exit."
        ),
    ] = 0,
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

    \b
    Examples:
      train sft --config recipes/latex-sft.yaml
      train sft --config recipes/latex-sft.yaml training.epochs=5 lora.r=8
      train sft --data out/latex --model smollm2 --epochs 3 --lr 2e-4
      train sft --config recipes/latex-sft.yaml --inspect 3
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
        "dataset.assistant_only_loss": completion_only_loss,
        "dataset.strict_template": strict,
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
    run_dir = run_sft(recipe, resume=resume, overwrite=overwrite, quiet=quiet, inspect=inspect)
    if run_dir is not None and not quiet:
        print_samples(print_summary(run_dir, ("train_loss", "eval_loss", "best_eval_loss", "global_step")))


def print_samples(card: dict[str, Any] | None) -> None:
    """The sample generations of the run card, one line each."""
    from rich.markup import escape

    for sample in (card or {}).get("samples", []):  # the prompt's end is what differs between test rows
        tail = " ".join(sample["prompt"].split())[-60:]
        console.print(f"[dim]…{escape(tail)}[/] → {escape(sample['generated'][:120])}", highlight=False)
