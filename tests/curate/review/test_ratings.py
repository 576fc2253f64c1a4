"""Ratings -> SFT set, preference pairs, reward data: the documented rules, and `curate build --derive`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from curate.errors import CurateError
from curate.pipeline import build
from curate.recipe import RatingsConfig, load_recipe, recipe_from_dict
from curate.review.ratings import derive

ROOT = Path(__file__).resolve().parents[3]


def rated(prompt: str, response: str, *ratings: int, flag: str | None = None) -> list[dict]:
    rows = [{"prompt": prompt, "response": response, "rating": r, "labeler": f"l{i}"} for i, r in enumerate(ratings)]
    if flag:
        rows[0]["flag"] = flag
    return rows


def test_sft_picks_best_answer_above_min_rating() -> None:
    rows = rated("q1", "good", 8, 9) + rated("q1", "bad", 2, 3) + rated("q2", "meh", 6, 6) + rated("q2", "worse", 3)
    out = derive(rows, "sft")
    assert [(r["prompt"], r["response"]) for r in out.rows] == [("q1", "good")]
    assert out.skipped == {"best answer's mean rating is below 7": 1}
    assert [r["response"] for r in derive(rows, "sft", RatingsConfig(min_rating=6)).rows] == ["good", "meh"]


def test_sft_tie_goes_to_more_ratings_then_first_seen() -> None:
    rows = rated("q", "a", 8) + rated("q", "b", 8, 8) + rated("q", "c", 9, 7)
    assert derive(rows, "sft").rows[0]["response"] == "b"  # b and c both mean 8 with 2 ratings; b first
    rows = rated("q", "x", 9) + rated("q", "y", 9)
    assert derive(rows, "sft").rows[0]["response"] == "x"


def test_pairs_gap_margin_and_ratings() -> None:
    rows = rated("q", "great", 9, 10) + rated("q", "ok", 6, 7) + rated("q", "bad", 2)
    pairs = derive(rows, "preference", RatingsConfig(min_gap=2, margin_scale=0.5)).rows
    got = {(p["chosen"], p["rejected"]): (p["margin"], p["chosen_rating"], p["rejected_rating"]) for p in pairs}
    assert got == {
        ("great", "ok"): (1.5, 9.5, 6.5),
        ("great", "bad"): (3.75, 9.5, 2.0),
        ("ok", "bad"): (2.25, 6.5, 2.0),
    }


def test_pairs_skip_small_gaps_and_ties_even_with_zero_gap() -> None:
    rows = rated("q", "a", 7) + rated("q", "b", 6) + rated("q", "c", 7)
    out = derive(rows, "preference")
    assert out.rows == []
    assert out.skipped["rating gap below 2 (no pair)"] == 2
    assert out.skipped["tied answers (no pair)"] == 1
    zero_gap = derive(rows, "preference", RatingsConfig(min_gap=0)).rows
    assert sorted((p["chosen"], p["rejected"]) for p in zero_gap) == [("a", "b"), ("c", "b")]


def test_single_rated_answers_count_unless_min_ratings() -> None:
    rows = rated("q", "good", 9) + rated("q", "bad", 1, 2)
    assert len(derive(rows, "preference").rows) == 1
    out = derive(rows, "preference", RatingsConfig(min_ratings=2))
    assert out.rows == []
    assert out.skipped["answer has fewer than 2 ratings"] == 1
    assert out.skipped["prompt has fewer than two usable answers"] == 1


def test_flagged_answers_are_left_out_everywhere() -> None:
    rows = rated("q", "good", 9, 9, flag="copied from a website") + rated("q", "ok", 7) + rated("q", "bad", 1)
    assert [r["response"] for r in derive(rows, "sft").rows] == ["ok"]
    assert [(p["chosen"], p["rejected"]) for p in derive(rows, "preference").rows] == [("ok", "bad")]
    reward = derive(rows, "reward")
    assert [(r["response"], r["mean_rating"], r["n_ratings"]) for r in reward.rows] == [("ok", 7.0, 1), ("bad", 1.0, 1)]
    assert reward.skipped == {"flagged answer": 1}


@pytest.mark.parametrize(
    ("rules", "message"),
    [({"min_rating": 11}, "min_rating"), ({"min_gap": -1}, "min_gap"), ({"min_ratings": 0}, "min_ratings")],
)
def test_bad_rules_are_rejected(rules: dict, message: str) -> None:
    with pytest.raises(CurateError, match=f"'ratings.{message}'"):
        recipe_from_dict({"ratings": rules})


def test_bad_rating_and_kind_are_rejected() -> None:
    with pytest.raises(CurateError, match="whole number from 1 to 10, got 11"):
        derive(rated("q", "a", 11), "sft")
    with pytest.raises(CurateError, match="unknown derived dataset 'dpo'"):
        derive(rated("q", "a", 5), "dpo")


def test_qa_pairs_recipe_builds_trl_preference_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    recipe = load_recipe("recipes/qa-pairs-build.yaml").model_copy(update={"out": str(tmp_path / "pairs")})
    result = build(recipe, quiet=True)
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["kind"] == "preference"
    assert manifest["columns"] == [
        *("id", "prompt", "chosen", "rejected", "margin", "chosen_rating", "rejected_rating"),
        *("n_raters", "agreement", "judge", "judge_only"),
    ]
    train = pd.read_parquet(tmp_path / "pairs/data/train-00000-of-00001.parquet")
    test = pd.read_parquet(tmp_path / "pairs/data/test-00000-of-00001.parquet")
    assert not set(train.prompt) & set(test.prompt)  # grouped split: no question straddles
    both = pd.concat([train, test])
    assert (both.margin >= 2).all() and (both.chosen_rating - both.rejected_rating == both.margin).all()
    assert result.manifest.derive is not None and result.manifest.derive.rows == len(both)
    assert "## From ratings" in (tmp_path / "pairs" / "README.md").read_text()


def test_derive_sft_and_reward_from_a_rated_file(tmp_path: Path) -> None:
    rows = rated("q1", "good", 9, 8) + rated("q1", "bad", 2) + rated("q2", "fine", 7) + rated("q2", "poor", 3, 4)
    src = tmp_path / "r.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    base = {"inputs": [str(src)], "split": {"test_size": 0.5, "group_by": "prompt"}}
    build(recipe_from_dict({**base, "out": str(tmp_path / "sft"), "derive": "sft"}), quiet=True)
    sft = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "sft/data").glob("*.parquet")))
    # no template: written as conversations, for the model's own chat template
    pairs = sorted((m[0]["content"], m[1]["content"]) for m in sft.messages)
    assert pairs == [("q1", "good"), ("q2", "fine")]
    build(recipe_from_dict({**base, "out": str(tmp_path / "rw"), "derive": "reward"}), quiet=True)
    rw = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "rw/data").glob("*.parquet")))
    assert dict(zip(rw.response, rw.mean_rating, strict=True)) == {"good": 8.5, "bad": 2.0, "fine": 7.0, "poor": 3.5}
    assert json.loads((tmp_path / "rw/manifest.json").read_text())["kind"] == "reward"


def test_derive_needs_rated_input(tmp_path: Path) -> None:
    src = tmp_path / "i.jsonl"
    src.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    with pytest.raises(CurateError, match="needs rated records"):
        build(recipe_from_dict({"inputs": [str(src)], "out": str(tmp_path / "o"), "derive": "sft"}), quiet=True)


def test_build_cli_derive_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    monkeypatch.chdir(ROOT)
    args = ["build", "data/qa/ratings.jsonl", "--derive", "preference", "ratings.min_gap=3", "ratings.margin_scale=0.5"]
    args += ["ratings.min_ratings=2", "--group-by", "prompt", "--out", str(tmp_path / "p3"), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "p3/manifest.json").read_text())
    rules = manifest["derive"]["rules"]
    assert {k: rules[k] for k in ("min_rating", "min_gap", "margin_scale", "min_ratings")} == {
        "min_rating": 7.0,
        "min_gap": 3.0,
        "margin_scale": 0.5,
        "min_ratings": 2,
    }
    pairs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "p3/data").glob("*.parquet"))
    assert len(pairs) > 0 and ((pairs.chosen_rating - pairs.rejected_rating) >= 3).all()
    assert (pairs.margin == (pairs.chosen_rating - pairs.rejected_rating) * 0.5).all()
    ratings = pd.read_json(ROOT / "data/qa/ratings.jsonl", lines=True).groupby(["prompt", "response"]).size()
    for side in ("chosen", "rejected"):
        assert (ratings[list(zip(pairs.prompt, pairs[side], strict=True))] >= 2).all()
    assert (ratings == 1).any()  # the sample set has single-rated answers for the flag to leave out
    bad = CliRunner().invoke(app, ["build", "data/qa/ratings.jsonl", "--derive", "dpo", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "'derive'" in bad.output
