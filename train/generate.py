"""`train generate RUN_DIR --prompt ...`: answer with a trained run, rendering the prompt like the training data.

The run card names the template the export was built with (e.g. `latex`), so a bare sentence
becomes the exact prompt the model learned on (`curate.render.Renderer.generation_prompt`, the
rendering training used). Works on an adapter run directory and on the
standalone model `train merge` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import torch
import typer
from rich.markup import escape

from curate.console import console, user_errors
from curate.errors import CurateError
from curate.render import Renderer
from train.card import read_run_card
from train.model import model_path, resolve_dtype


def render_prompt(card: dict[str, Any], text: str, tokenizer: Any) -> str:
    """Render a user's text the way the training prompts were rendered (template, chat template or as is)."""
    data = card.get("data", {})
    renderer = Renderer(tokenizer, data.get("template"), default_system_prompt=bool(data.get("default_system_prompt")))
    return renderer.generation_prompt(text, conversational=data.get("format") == "messages")


@torch.inference_mode()
def generate_texts(
    model: Any, tokenizer: Any, prompts: list[str], num_beams: int = 1, max_new_tokens: int = 64
) -> list[str]:
    """Greedy or beam-search completions of already-rendered prompts (new text only, special tokens dropped)."""
    model.eval()
    outputs = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        generated = model.generate(
            **inputs,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            early_stopping=num_beams > 1,
            pad_token_id=tokenizer.pad_token_id,
        )
        outputs.append(tokenizer.decode(generated[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return outputs


def load_run(run_dir: str | Path, dtype: str = "auto") -> tuple[Any, Any, dict[str, Any]]:
    """Model (base + adapter, or a merged model), tokenizer and run card of a run directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = Path(run_dir)
    card = read_run_card(run)
    torch_dtype = resolve_dtype(dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(run)
    model: Any
    if (run / "adapter_config.json").is_file():
        from peft import PeftModel

        base_path = card.get("base_model_path") or card["base_model"]
        if not Path(base_path).exists():
            base_path = model_path(card["base_model"])  # e.g. the model cache was cleared: materialize again
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch_dtype)
        model = PeftModel.from_pretrained(base, run)
    elif (run / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(run, dtype=torch_dtype)
    else:
        raise CurateError(f"{run_dir}: holds neither an adapter nor model weights (was training interrupted?)")
    return model.to(device), tokenizer, card


@user_errors
def generate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `train sft` (or a `train merge` output).")],
    prompt: Annotated[
        list[str],
        typer.Option("--prompt", "-p", help="Text to answer (repeatable); rendered with the data's template."),
    ],
    num_beams: Annotated[
        Optional[int], typer.Option(help="Beam search width (default: the run's generation.num_beams).")
    ] = None,
    max_new_tokens: Annotated[
        Optional[int], typer.Option(help="Most tokens to generate (default: the run's generation.max_new_tokens).")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Send the prompt as is, without the data's template.")] = False,
    dtype: Annotated[str, typer.Option(help="auto | bf16 | fp16 | fp32 (auto: fp32 on CPU).")] = "auto",
) -> None:
    """Generate with a trained run, rendering each prompt with the template its data was built with.

    \b
    Example:
      train generate runs/latex-sft --num-beams 2 --max-new-tokens 24 \\
          --prompt "g of x equals integral from 0 to 1 of x squared"
    """
    if dtype not in ("auto", "bf16", "fp16", "fp32"):
        raise CurateError(f"--dtype {dtype}: use auto, bf16, fp16 or fp32")
    model, tokenizer, card = load_run(run_dir, dtype)
    generation = card.get("generation", {})
    rendered = [text if raw else render_prompt(card, text, tokenizer) for text in prompt]
    outputs = generate_texts(
        model,
        tokenizer,
        rendered,
        num_beams=num_beams or generation.get("num_beams", 1),
        max_new_tokens=max_new_tokens or generation.get("max_new_tokens", 64),
    )
    for text, output in zip(prompt, outputs, strict=True):
        console.print(f"[dim]{escape(text)}[/]", highlight=False)
        console.print(output.strip(), highlight=False, markup=False)
