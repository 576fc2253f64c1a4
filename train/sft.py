"""`train sft`: supervised fine-tuning (LoRA / QLoRA) of a causal LM on an export, with TRL's SFTTrainer.

Read top to bottom: resolve the recipe -> load + check the data -> tokenizer and max_length ->
SFTConfig -> open the run directory -> model (quantized when asked) -> train (resumable) -> sample
generations -> run card. What every verb shares (run directory, the TrainingArguments keys,
progress, timing, memory, run card, resume) is in train/run.py; this module keeps SFT's own part.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from curate.console import console
from curate.errors import CurateError
from curate.render import Example, Renderer
from train import options
from train.config import SFTRecipe
from train.data import TrainData
from train.formatting import sft_dataset, stop_token
from train.generate import generate_texts
from train.model import load_model, lora_config
from train.run import (
    eval_split,
    load_inputs,
    open_run,
    report,
    run_dir_for,
    train_and_evaluate,
    training_arguments,
    write_card,
)
from train.speed import FastPath, adapters_to_bf16, config_kwargs, fast_path, packed_rows


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


def sft_config(
    recipe: SFTRecipe,
    run_dir: Path,
    max_length: int,
    has_eval: bool,
    eos_token: str | None = None,
    path: FastPath | None = None,
    mean_tokens: float | None = None,
) -> Any:
    """TRL's SFTConfig: the keys every verb shares (train/run.py), SFT's own and the fast path's (train/speed.py).

    `eos_token`: the template's end-of-turn token when the model should stop on it (`stop_token`).
    `mean_tokens`: the mean length of a training example, which sizes a packed batch (`packed_rows`).
    """
    from trl import SFTConfig

    path = path or fast_path(recipe)
    shared = training_arguments(recipe, run_dir, has_eval)
    if path.packing:  # rows of max_length, as many as hold the tokens of an unpacked batch
        rows = packed_rows(recipe, mean_tokens or max_length, max_length)
        shared["per_device_train_batch_size"] = shared["per_device_eval_batch_size"] = rows
    return SFTConfig(
        **shared,
        **config_kwargs(path),
        max_length=max_length,
        packing=path.packing,  # best-fit decreasing into rows, padding-free (TRL's default packing strategy)
        # The rows come tokenized with their loss mask (train/formatting.py): TRL applies it as given.
        completion_only_loss=True,
        eos_token=eos_token,
    )


def build_trainer(
    splits: dict[str, Any], renderer: Renderer, model: Any, args: Any, recipe: SFTRecipe, path: FastPath | None = None
) -> Any:
    """TRL's SFTTrainer on the tokenized splits (`sft_splits`), LoRA from the recipe, bf16 adapters when asked."""
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits.get("test"),
        processing_class=renderer.tokenizer,
        peft_config=lora_config(recipe.lora),
    )
    if (path or fast_path(recipe)).bf16_adapters and recipe.lora.enabled:
        adapters_to_bf16(trainer.model)  # the optimizer is built in train(), from these weights
    return trainer


def mean_length(rows: Any, max_length: int) -> float:
    """The mean tokens of a training example as the trainer sees it (cut at max_length)."""
    lengths = [min(len(ids), max_length) for ids in rows["input_ids"]]
    return sum(lengths) / max(len(lengths), 1)


def run_sft(
    recipe: SFTRecipe, resume: bool = False, overwrite: bool = False, quiet: bool = False, inspect: int = 0
) -> Path | None:
    """Train, save the adapter + tokenizer + run card into the run directory, and return it.

    `inspect` > 0: print that many examples as the trainer would receive them, and stop (None) before any model.
    """
    inputs = load_inputs(recipe, "sft", quiet, inspect)
    if inputs is None:
        return None
    data, renderer, max_length = inputs.data, inputs.renderer, inputs.max_length
    splits = sft_splits(data, renderer, max_length)  # before the run dir and model: bad lengths fail fast
    splits["test"] = eval_split(recipe, splits.get("test"))  # capped by training.eval_rows
    if splits["test"] is None:
        del splits["test"]
    run_dir = run_dir_for(recipe, data.name, "sft")
    path = fast_path(recipe)
    mean = mean_length(splits["train"], max_length)
    args = sft_config(recipe, run_dir, max_length, "test" in splits, stop_token(renderer), path, mean)
    run = open_run("sft", args, resume, overwrite)
    model = load_model(recipe.model, recipe.memory, attn_implementation=path.attention)
    trainer = build_trainer(splits, renderer, model, args, recipe, path)
    trained = train_and_evaluate(trainer, run, recipe, quiet)
    samples = sample_generations(trainer.model, renderer, data, recipe) if trainer.is_world_process_zero() else []
    own = {
        "data": {"default_system_prompt": renderer.default_system_prompt},
        "hyperparameters": {"max_length": max_length, **recipe.dataset.model_dump()},
        "fast_path": {
            **asdict(path),
            "packed_rows_per_step": args.per_device_train_batch_size if path.packing else None,
        },
        "generation": recipe.generation.model_dump(),
        "samples": samples,
    }
    write_card(run, trainer, recipe, data, trained, own)
    return run.dir


def sample_generations(model: Any, renderer: Renderer, data: TrainData, recipe: SFTRecipe) -> list[dict[str, str]]:
    """Answers to the first few test prompts, beside the reference answer, for the run card (every data format)."""
    n = recipe.generation.samples
    rows = data.eval if data.eval is not None and len(data.eval) else data.dataset["train"]
    pairs = [
        pair for row in rows.select(range(min(n, len(rows)))) if (pair := prompt_and_reference(row, data, renderer))
    ]
    if not pairs:
        return []
    prompts = [prompt for prompt, _ in pairs]
    generation = recipe.generation
    outputs = generate_texts(model, renderer.tokenizer, prompts, generation.num_beams, generation.max_new_tokens)
    return [
        {"prompt": prompt, "generated": out.strip(), "reference": reference.strip()}
        for (prompt, reference), out in zip(pairs, outputs, strict=True)
    ]


def prompt_and_reference(row: dict[str, Any], data: TrainData, renderer: Renderer) -> tuple[str, str] | None:
    """A training row as (the prompt the model sees, the answer it was taught); None when it has no answer.

    Conversations are rendered as in training up to the last assistant turn; `text` rows are cut
    where the export's template starts the answer, else in the middle.
    """
    if "messages" in row or isinstance(row.get("prompt"), list):
        turns = list(row["messages"]) if "messages" in row else [*row["prompt"], *row["completion"]]
        if not turns or turns[-1]["role"] != "assistant":
            return None
        return renderer.generation_prompt(turns[:-1]), turns[-1]["content"]
    if "prompt" in row and "completion" in row:
        return row["prompt"], row["completion"]
    if "text" in row:
        return split_text(row["text"], data.template)
    return None


def split_text(text: str, template: str | None) -> tuple[str, str]:
    """Cut a `text` row into prompt and answer: after the last place the template's prompt part ends, else mid-way."""
    from curate.templates import load_template

    marker = ""
    if template:
        try:  # what the template writes between the user's text and the answer, e.g. "\nLaTeX:"
            marker = load_template(template).prompt([{"role": "user", "content": "\x00"}]).rsplit("\x00", 1)[-1]
        except (CurateError, OSError, ValueError):
            marker = ""
    at = text.rfind(marker) if marker else -1
    if at >= 0:
        return text[: at + len(marker)], text[at + len(marker) :]
    words = text.split(" ")
    return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])


def finish_sft(run_dir: Path, quiet: bool) -> None:
    """The end of `train sft`: the summary and the sample generations (with --quiet, the run directory)."""
    print_samples(report(run_dir, quiet, ("train_loss", "eval_loss", "global_step")))


def print_samples(card: dict[str, Any] | None) -> None:
    """The sample generations of the run card, one line each."""
    from rich.markup import escape

    for sample in (card or {}).get("samples", []):  # the prompt's end is what differs between test rows
        tail = " ".join(sample["prompt"].split())[-60:]
        console.print(f"[dim]…{escape(tail)}[/] → {escape(sample['generated'][:120])}", highlight=False)


sft_command = options.verb_command(
    "sft",
    SFTRecipe,
    (*options.TRAIN_FLAGS, *options.FORMAT_FLAGS),
    run_sft,
    finish_sft,
    """Supervised fine-tuning (LoRA / QLoRA) of a causal LM on an export, with TRL's SFTTrainer.

    Evaluates and saves each epoch, keeps the best checkpoint by eval loss, then writes the
    adapter, tokenizer and run_card.json (with the export's content hash and sample generations).

    \b
    Examples:
      train sft --config recipes/latex-sft.yaml
      train sft --config recipes/latex-sft.yaml training.epochs=5 lora.r=8
      train sft --data out/latex --model smollm2 --epochs 3 --lr 2e-4
      train sft --config recipes/latex-sft.yaml --inspect 3
    """,
)
