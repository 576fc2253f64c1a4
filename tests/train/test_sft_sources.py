"""A two-source export (its rows carry a `source` column) trains with `train sft` like any export."""

from __future__ import annotations

import json
from pathlib import Path

from curate.pipeline import build
from curate.recipe import recipe_from_dict
from train.card import read_run_card
from train.config import SFTRecipe, load_recipe
from train.sft import run_sft

REPO = Path(__file__).resolve().parents[2]


def test_sft_trains_on_a_two_source_export(tiny_lm: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"q": f"write {i} over {i + 1}", "a": rf"\frac{{{i}}}{{{i + 1}}}"}) + "\n" for i in range(20)
        )
    )
    export = tmp_path / "mix"
    recipe = recipe_from_dict(
        {
            "inputs": [
                {"path": str(REPO / "data/latex/pairs.jsonl"), "name": "latex", "max_rows": 30,
                 "map": {"english": "prompt", "latex": "response"}},
                {"path": str(questions), "name": "fractions", "weight": 0.5, "map": {"q": "prompt", "a": "response"}},
            ],
            "out": str(export),
            "template": "latex",
        }
    )  # fmt: skip
    manifest = build(recipe, quiet=True).manifest
    assert manifest.columns == ["id", "prompt", "completion", "source"]
    assert {s.name: s.kept for s in manifest.sources} == {"latex": 30, "fractions": 10}
    sft = load_recipe(
        SFTRecipe,
        None,
        {
            "model.name": str(tiny_lm),
            "dataset.path": str(export),
            "logging.output_dir": str(tmp_path / "run"),
            "training.batch_size": 4,
            "training.max_steps": 2,
            "memory.gradient_checkpointing": False,
            "generation.samples": 0,
        },
        {},
    )
    card = read_run_card(run_sft(sft, quiet=True))
    assert card["metrics"]["global_step"] == 2 and card["data"]["content_hash"] == manifest.content_hash
