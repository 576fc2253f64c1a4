"""Derived QA exports: near-duplicate questions never straddle train and test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasets import load_dataset

from curate.pipeline import build
from curate.recipe import load_recipe
from curate.similarity.embed import encode

REPO = Path(__file__).resolve().parents[2]


def max_test_train_similarity(export: Path, cache: Path) -> float:
    """The highest cosine similarity between a test question and a train question of an export."""
    ds = load_dataset("parquet", data_dir=str(export / "data"))
    train, test = (sorted(set(questions(ds[split]))) for split in ("train", "test"))
    assert train and test and not set(train) & set(test)  # grouped by prompt: no exact straddling
    return float(np.max(encode(test, cache_dir=cache, quiet=True) @ encode(train, cache_dir=cache, quiet=True).T))


def questions(rows: Any) -> list[str]:
    """The question of each row: its prompt, or a conversation's user turn."""
    if "prompt" in rows.column_names:
        return list(rows["prompt"])
    return [next(m["content"] for m in turns if m["role"] == "user") for turns in rows["messages"]]


@pytest.mark.parametrize("recipe_name", ["qa-pairs-build.yaml", "qa-sft-build.yaml"])
def test_no_test_question_is_a_near_duplicate_of_a_train_question(tmp_path: Path, recipe_name: str) -> None:
    recipe = load_recipe(REPO / "recipes" / recipe_name)
    recipe.inputs = [str(REPO / p) for p in recipe.inputs]
    recipe.split.seed = 1  # a seed whose plain grouped split puts reworded questions on both sides
    assert recipe.dedupe.semantic is not None and recipe.dedupe.semantic.cross_split == "move"
    cache = tmp_path / "emb"

    control = recipe.model_copy(deep=True)
    control.dedupe.semantic.cross_split = "off"  # type: ignore[union-attr]
    control.out = str(tmp_path / "control")
    build(control, quiet=True)
    assert max_test_train_similarity(tmp_path / "control", cache) > 0.95  # the leak the check exists for

    recipe.out = str(tmp_path / "out")
    result = build(recipe, quiet=True)
    assert max_test_train_similarity(tmp_path / "out", cache) < 0.8
    assert result.manifest.cross_split is not None and result.manifest.cross_split.moved > 0
    # derived builds run only the cross-split check: no rating row is dropped as a "near duplicate"
    assert "semantic_dedupe" not in [s.step for s in result.manifest.steps]
