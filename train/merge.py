"""`train merge RUN_DIR --out DIR`: fold a LoRA adapter into its base model, saved as a standalone model.

The base is reloaded unquantized in half precision (a QLoRA adapter merged into 4-bit weights
would lose precision), then PEFT's `merge_and_unload` adds the low-rank update into each weight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from curate.console import console, user_errors
from curate.errors import CurateError
from curate.io.atomic import atomic_directory, check_replaceable
from curate.io.owned import stamped
from train.card import CARD, now, read_run_card
from train.model import DTYPES, model_path


def merge_run(run_dir: Path, out: Path, dtype: str = "fp16") -> Path:
    """Merge the run's adapter into its base (loaded in `dtype`) and write model + tokenizer + run card to `out`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    card = read_run_card(run_dir)
    check_replaceable(out.resolve(), CARD)  # before loading the models, not after
    if not (run_dir / "adapter_config.json").is_file():
        raise CurateError(
            f"{run_dir}: no LoRA adapter to merge (adapter_config.json); a full fine-tune is already standalone"
        )
    base_path = card.get("base_model_path") or card["base_model"]
    if not Path(base_path).exists():
        base_path = model_path(card["base_model"])
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=DTYPES[dtype])
    merged = PeftModel.from_pretrained(base, run_dir).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    merged_card = {**card, "merged": {"from_run": str(run_dir), "dtype": dtype, "at": now()}, "lora": None}

    def fill(tmp: Path) -> None:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CARD).write_text(json.dumps(stamped(merged_card), indent=2, ensure_ascii=False, default=str) + "\n")

    atomic_directory(out, fill, marker=CARD)
    return out


@user_errors
def merge_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `train sft` holding a LoRA adapter.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the standalone merged model.")],
    dtype: Annotated[str, typer.Option(help="Precision of the reloaded base: fp16 | bf16 | fp32.")] = "fp16",
) -> None:
    """Reload the base model in half precision, merge the LoRA adapter (merge_and_unload), save a standalone model.

    \b
    Example:
      train merge runs/latex-sft --out models/latex-merged
    """
    if dtype not in ("fp16", "bf16", "fp32"):
        raise CurateError(f"--dtype {dtype}: use fp16, bf16 or fp32")
    merge_run(run_dir, out, dtype)
    console.print(f"Merged model written to [bold]{out}[/] (load it with AutoModelForCausalLM.from_pretrained)")
