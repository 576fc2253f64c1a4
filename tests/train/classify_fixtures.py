"""Small real models and data for the `train classify` tests.

A tiny BERT (3 layers, 32 wide, random weights) with the real BERT WordPiece tokenizer of the
all-MiniLM-L6-v2 package, saved like a hub checkpoint; labelled exports built with `curate build`
(recipes/*-build.yaml, or hand-made rows); and a recipe helper.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def save_tiny_bert(path: Path, layers: int = 3) -> Path:
    """A randomly initialised BERT encoder (no head) with MiniLM's tokenizer, saved to `path`."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from train.model import model_path

    tokenizer = AutoTokenizer.from_pretrained(model_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_recipe_export(recipe: str, out: Path) -> Path:
    """`curate build recipes/<recipe>` into `out` (the recipe's input paths are relative to the repo root)."""
    from curate.pipeline import build
    from curate.recipe import apply_overrides, load_recipe

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        build(apply_overrides(load_recipe(f"recipes/{recipe}"), {"out": str(out)}), quiet=True)
    finally:
        os.chdir(cwd)
    return out


def build_rows_export(rows: list[dict[str, Any]], out: Path, test_size: float = 0.25) -> Path:
    """A labelled export of hand-made rows (`curate build`, kind labelled, seeded split)."""
    from curate.pipeline import build
    from curate.recipe import BuildRecipe

    source = out.with_suffix(".jsonl")
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    recipe = BuildRecipe.model_validate(
        {"inputs": [str(source)], "out": str(out), "kind": "labelled", "split": {"test_size": test_size}}
    )
    build(recipe, quiet=True)
    return out


def classify_recipe(config: str | None = None, **keys: Any) -> Any:
    """A ClassifyRecipe: the recipe file (if any) under recipes/, then dotted keys (`training__epochs=2`)."""
    from train.classify import ClassifyRecipe
    from train.config import load_recipe

    path = REPO / "recipes" / config if config else None
    quiet = {"logging.logging_steps": 1, "training.save_total_limit": 1}
    return load_recipe(ClassifyRecipe, path, quiet, {k.replace("__", "."): v for k, v in keys.items()})


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
