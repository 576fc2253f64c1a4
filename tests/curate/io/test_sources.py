"""Several sources in one build: per-source map, weight / max_rows samples with the build seed, a `source`
column on every row, and rows per source counted through every step (manifest, card)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from curate.errors import CurateError
from curate.pipeline import build
from curate.recipe import load_recipe, recipe_from_dict

REPO = Path(__file__).resolve().parents[3]
LATEX = REPO / "data" / "latex" / "pairs.jsonl"


def _questions_csv(path: Path) -> Path:
    """30 LaTeX questions under other column names, one of them a copy of a latex pair (an exact duplicate)."""
    pairs = [json.loads(line) for line in LATEX.read_text().splitlines()]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        writer.writerow([pairs[0]["english"], pairs[0]["latex"]])
        for i in range(29):
            writer.writerow([f"write {i} over {i + 1} as a fraction", rf"\frac{{{i}}}{{{i + 1}}}"])
    return path


def _recipe(tmp_path: Path, seed: int = 3, latex: dict | None = None, questions: dict | None = None) -> Path:
    recipe = {
        "out": str(tmp_path / "out"),
        "inputs": [
            {"path": str(LATEX), "name": "latex", "map": {"english": "prompt", "latex": "response"}, **(latex or {})},
            {"path": str(_questions_csv(tmp_path / "q.csv")), "name": "questions",
             "map": {"question": "prompt", "answer": "response"}, **({"max_rows": 20} if questions is None else questions)},
        ],
        "split": {"seed": seed},
    }  # fmt: skip
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _rows(out: Path) -> list[dict]:
    return [
        r for s in ("train", "test") for r in pq.read_table(out / "data" / f"{s}-00000-of-00001.parquet").to_pylist()
    ]


def test_two_sources_are_sampled_tagged_and_counted_through_every_step(tmp_path: Path) -> None:
    result = build(load_recipe(_recipe(tmp_path, latex={"weight": 0.5})), quiet=True)
    rows = _rows(tmp_path / "out")
    sources = {s.name: s for s in result.manifest.sources}
    assert {name: (s.rows_read, s.kept, s.sample) for name, s in sources.items()} == {
        "latex": (80, 40, "weight 0.5"),
        "questions": (30, 20, "max_rows 20"),
    }
    assert result.manifest.columns == ["id", "messages", "source"]
    for name, source in sources.items():
        assert sum(r["source"] == name for r in rows) == sum(source.splits.values())
        assert source.steps["template"] == sum(source.splits.values())
    for step in result.manifest.steps:  # the per-source counts add up to each step's rows
        assert sum(s.steps[step.step] for s in sources.values()) == step.rows_out
    assert all(r["id"].startswith(f"{r['source']}/") for r in rows)  # generated ids carry the source's name
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| `latex` | 80 | 0 | 40 (weight 0.5) |" in card


def test_samples_follow_the_build_seed(tmp_path: Path) -> None:
    def sampled_ids(seed: int, out: str) -> set[str]:
        recipe = load_recipe(_recipe(tmp_path, seed=seed, latex={"max_rows": 10}))
        recipe.out = str(tmp_path / out)
        build(recipe, quiet=True)
        return {r["id"] for r in _rows(tmp_path / out) if r["source"] == "latex"}

    first, again, other = sampled_ids(3, "a"), sampled_ids(3, "b"), sampled_ids(4, "c")
    assert len(first) == 10 and first == again and first != other
    data = [(tmp_path / d / "data" / "train-00000-of-00001.parquet").read_bytes() for d in ("a", "b")]
    assert data[0] == data[1]


def test_a_duplicate_across_sources_is_dropped_from_the_later_one(tmp_path: Path) -> None:
    result = build(load_recipe(_recipe(tmp_path, questions={})), quiet=True)
    sources = {s.name: s for s in result.manifest.sources}
    assert sources["latex"].steps["exact_dedupe"] == 80
    assert (sources["questions"].steps["normalize"], sources["questions"].steps["exact_dedupe"]) == (30, 29)
    dropped = pq.read_table(tmp_path / "out" / "duplicates.parquet").to_pylist()
    assert [(d["id"], d["kept_id"]) for d in dropped] == [("questions/q-2", "latex/pairs-1")]


def test_sources_of_different_kinds_or_bad_keys_stop_in_one_line(tmp_path: Path) -> None:
    hh = str(REPO / "data" / "hh" / "helpful.jsonl")
    recipe = recipe_from_dict(
        {"inputs": [{"path": str(LATEX), "map": {"english": "prompt", "latex": "response"}}, hh],
         "out": str(tmp_path / "o")}
    )  # fmt: skip
    with pytest.raises(CurateError, match=rf"^{hh}: its rows are 'preference' data, but .*pairs.jsonl gave "):
        build(recipe, quiet=True)
    with pytest.raises(CurateError, match=r"'inputs': source 2: '\(source\)': give a source either a weight or"):
        recipe_from_dict({"inputs": [hh, {"path": hh, "name": "b", "weight": 0.5, "max_rows": 3}]})
    with pytest.raises(CurateError, match=r"'inputs': source 1: 'wieght': unknown key"):
        recipe_from_dict({"inputs": [{"path": hh, "wieght": 0.5}]})
    with pytest.raises(CurateError, match="two sources are called 'x'"):
        recipe_from_dict({"inputs": [{"path": hh, "name": "x"}, {"path": str(LATEX), "name": "x"}]})
