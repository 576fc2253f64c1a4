"""Semantic dedupe in builds and `curate dedupe`, with the real all-MiniLM-L6-v2 embedder on data/genres."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.pipeline import build
from curate.recipe import apply_overrides, load_recipe
from curate.schema import Record
from curate.steps.base import BuildContext
from curate.steps.cross_split import CrossSplitCheck
from curate.steps.semantic_dedupe import SimilaritySpec

REPO = Path(__file__).resolve().parents[2]
GENRES = REPO / "data" / "genres"

pytestmark = pytest.mark.slow  # loads and runs a real sentence-transformers model


@pytest.fixture(scope="module", autouse=True)
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One fresh embedding cache for this module: the first test embeds, the rest hit the cache."""
    path = tmp_path_factory.mktemp("curatrain-cache")
    old = os.environ.get("CURATRAIN_CACHE")
    os.environ["CURATRAIN_CACHE"] = str(path)
    yield path
    if old is None:
        del os.environ["CURATRAIN_CACHE"]
    else:
        os.environ["CURATRAIN_CACHE"] = old


def planted() -> dict[str, str]:
    with (GENRES / "planted_duplicates.csv").open(encoding="utf-8") as fh:
        return {row["id"]: row["original_id"] for row in csv.DictReader(fh)}


def test_genres_build_drops_the_planted_paraphrases(tmp_path: Path) -> None:
    recipe = apply_overrides(load_recipe(REPO / "recipes" / "genres-build.yaml"), {"out": str(tmp_path / "genres")})
    recipe = recipe.model_copy(update={"inputs": [str(GENRES / "descriptions.jsonl")]})
    result = build(recipe, quiet=True)
    dups = pd.read_parquet(tmp_path / "genres" / "duplicates.parquet")
    semantic = dups[dups.step == "semantic_dedupe"]
    truth = planted()
    dropped = set(semantic.id)
    precision = len(dropped & truth.keys()) / len(dropped)
    recall = len(dropped & truth.keys()) / len(truth)
    print(f"genres semantic dedupe: precision {precision:.3f}, recall {recall:.3f} ({len(dropped)} dropped)")
    assert precision >= 0.96 and recall >= 0.96
    # each dropped row names the row it duplicates, with their similarity
    for row in semantic.itertuples():
        if row.id in truth:
            assert row.kept_id == truth[row.id]
        assert 0.85 <= row.similarity <= 1.0
    manifest = json.loads((tmp_path / "genres" / "manifest.json").read_text())
    assert manifest == result.manifest.model_dump(mode="json")
    info = manifest["semantic_dedupe"]
    assert (info["threshold"], info["embedder"], info["index"]) == (0.85, "all-MiniLM-L6-v2", "exact")
    assert (info["rows_in"], info["dropped"], info["kept"], info["dim"]) == (225, len(dropped), 225 - len(dropped), 384)
    assert manifest["cross_split"]["action"] == "move"
    assert sum(manifest["counts"]["splits"].values()) == 225 - len(dropped)
    assert "Semantic dedupe" in (tmp_path / "genres" / "README.md").read_text()


def test_build_flags_override_and_disable_semantic_dedupe(tmp_path: Path) -> None:
    runner = CliRunner()
    recipe = str(REPO / "recipes" / "genres-build.yaml")
    data = str(GENRES / "descriptions.jsonl")
    strict = runner.invoke(app, ["build", data, "--threshold", "0.99", "--out", str(tmp_path / "a"), "-q"])
    assert strict.exit_code == 0, strict.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["semantic_dedupe"]["threshold"] == 0.99  # --threshold alone enables it
    assert 0 < manifest["semantic_dedupe"]["dropped"] < 25  # only the closest paraphrases score >= 0.99
    off = runner.invoke(app, ["build", recipe, "--no-semantic-dedupe", "--out", str(tmp_path / "b"), "-q"])
    assert off.exit_code == 0, off.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["semantic_dedupe"] is None and sum(manifest["counts"]["splits"].values()) == 225
    on = runner.invoke(
        app, ["build", data, "--semantic-dedupe", "dedupe.semantic.cross_split=report", "-o", str(tmp_path / "d")]
    )
    assert on.exit_code == 0, on.output
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["semantic_dedupe"]["threshold"] == 0.95 and manifest["cross_split"]["action"] == "report"
    assert "semantic_dedupe" in on.output  # the summary table lists the step
    bad = runner.invoke(app, ["build", data, "dedupe.semantic.fields=[labels]", "--out", str(tmp_path / "c"), "-q"])
    assert bad.exit_code == 1 and "field 'labels' is list, not text" in bad.output


def record(i: int, text: str, split: str, group: str | None = None) -> Record:
    data = {"text": text, "labels": ["drama"]} | ({"family": group} if group else {})
    return Record(f"r{i}", data, "mem", i, {"split": split})


TEXTS = [
    ("A retired detective in foggy London hunts the killer who escaped him thirty years ago.", "train", "a"),
    ("A kung fu teacher defends her village's rice harvest against a warlord's mercenaries.", "train", "b"),
    ("In foggy London, a retired detective hunts down the killer who escaped him thirty years ago.", "test", "c"),
    ("Two astronauts stranded on Mars grow potatoes in their own waste.", "test", "c"),
    ("A baker enters a televised competition to save her late father's shop.", "test", "d"),
]


@pytest.mark.parametrize("action", ["move", "drop", "report"])
def test_cross_split_check_moves_drops_or_reports_contaminated_test_rows(action: str) -> None:
    records = [record(i, t, s) for i, (t, s, _) in enumerate(TEXTS)]
    ctx = BuildContext(quiet=True)
    kept = list(CrossSplitCheck(SimilaritySpec(("text",), 0.9, "all-MiniLM-L6-v2", "auto"), action)(records, ctx))
    info = ctx.manifest.cross_split
    assert info is not None and (info.flagged, info.test_rows, info.train_rows) == (1, 3, 2)
    assert info.examples[0].test_id == "r2" and info.examples[0].train_id == "r0"
    assert info.examples[0].similarity >= 0.9
    splits = {r.id: r.extra["split"] for r in kept}
    if action == "move":
        assert splits["r2"] == "train" and info.moved == 1
    elif action == "drop":
        assert "r2" not in splits and [(d.id, d.kept_id) for d in ctx.dropped] == [("r2", "r0")]
    else:
        assert splits["r2"] == "test" and len(kept) == 5


def test_cross_split_move_takes_the_whole_group_along() -> None:
    records = [record(i, t, s, g) for i, (t, s, g) in enumerate(TEXTS)]
    ctx = BuildContext(quiet=True)
    check = CrossSplitCheck(SimilaritySpec(("text",), 0.9, "all-MiniLM-L6-v2", "exact"), "move", group_by="family")
    kept = list(check(records, ctx))
    assert [r.extra["split"] for r in kept] == ["train", "train", "train", "train", "test"]
    assert ctx.manifest.cross_split is not None and ctx.manifest.cross_split.moved == 2


def test_dedupe_command_writes_kept_rows_and_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "dd"
    result = CliRunner().invoke(
        app, ["dedupe", str(GENRES / "descriptions.jsonl"), "--field", "text", "--threshold", "0.9", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    kept = pd.read_parquet(out / "kept.parquet")
    dups = pd.read_parquet(out / "duplicates.parquet")
    truth = planted()
    assert set(dups.id) == set(truth) and len(kept) == 200
    assert dict(zip(dups.id, dups.kept_id, strict=True)) == truth
    assert (dups.similarity >= 0.9).all()
    summary = json.loads((out / "dedupe.json").read_text())
    assert (summary["dropped"], summary["threshold"], summary["index"]) == (25, 0.9, "exact")


def test_dedupe_sweep_prints_counts_and_sample_pairs_and_plots(tmp_path: Path) -> None:
    plot = tmp_path / "sweep.png"
    result = CliRunner().invoke(
        app,
        ["dedupe", str(GENRES / "descriptions.jsonl"), "--sweep", "0.50:0.99:0.01", "--threshold", "0.9"]
        + ["--plot", str(plot)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "Semantic dedupe sweep" in result.output and "Pairs nearest the threshold 0.9" in result.output
    assert "same (drop)" in result.output and "different" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "0.9:0.8:0.01"], "--sweep 0.9:0.8:0.01"),
        (["--sweep", "a:b"], "--sweep takes START:STOP:STEP"),
        (["--field", "title", "--out", "x"], "descriptions.jsonl line 1: field 'title' is missing"),
        (["--index", "flat", "--out", "x"], "--index flat: choose from"),
        ([], "nothing to do"),
    ],
)
def test_dedupe_command_errors_are_one_clear_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["dedupe", str(GENRES / "descriptions.jsonl"), *args], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
