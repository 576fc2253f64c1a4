"""Rater-aware derived data: n_raters / agreement / judge columns, min_agreement, calibration, the judge's trust gate."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from curate.pipeline import build
from curate.recipe import RatingsConfig, recipe_from_dict
from curate.review.agreement import consensus_calibrate, krippendorff_alpha, labeler_bias, zscore_calibrate
from curate.review.ratings import derive

ROOT = Path(__file__).resolve().parents[3]
QA = ROOT / "data/qa/ratings.jsonl"


def rate(prompt: str, response: str, **by: int) -> list[dict]:
    """One rating row per labeler=rating; labelers named j* are judges."""
    return [
        {"prompt": prompt, "response": response, "rating": r, "labeler": name}
        | ({"labeler_kind": "judge"} if name.startswith("j") else {})
        for name, r in by.items()
    ]


def test_rater_columns_of_pairs_and_answers() -> None:
    rows = rate("q", "a", h0=9, h1=8, h2=4) + rate("q", "b", h0=3, h1=4, h2=7) + rate("q", "c", h3=1)
    pairs = {(p["chosen"], p["rejected"]): p for p in derive(rows, "preference").rows}
    # a (mean 7) over b (4.67): h0 and h1 agree, h2 does not; c was rated by h3 alone, who rated nothing else
    assert {k: pairs["a", "b"][k] for k in ("n_raters", "agreement", "judge", "judge_only")} == {
        "n_raters": 3,
        "agreement": pytest.approx(2 / 3),
        "judge": False,
        "judge_only": False,
    }
    assert pairs["a", "c"]["n_raters"] == 4 and pairs["a", "c"]["agreement"] is None
    answers = {r["response"]: r for r in derive(rows, "reward").rows}
    assert answers["a"]["agreement"] == pytest.approx(1 - (1 + 5 + 4) / 3 / 9)  # mean |r_i - r_j| over 3 pairs
    assert answers["c"]["agreement"] is None and answers["c"]["n_raters"] == 1
    tie = rate("t", "x", h0=8, h1=9) + rate("t", "y", h0=8, h1=2)  # h0 tied x and y: half a vote
    assert derive(tie, "preference").rows[0]["agreement"] == pytest.approx(0.75)


def test_min_agreement_drops_contested_and_unmeasured_rows() -> None:
    rows = rate("q", "a", h0=9, h1=8, h2=4) + rate("q", "b", h0=3, h1=4, h2=7) + rate("q", "c", h3=1)
    kept = derive(rows, "preference", RatingsConfig(min_agreement=0.6))
    assert [(p["chosen"], p["rejected"]) for p in kept.rows] == [("a", "b")]
    assert kept.skipped["pair: agreement unknown (no two ratings to compare)"] == 2
    strict = derive(rows, "preference", RatingsConfig(min_agreement=0.7))
    assert strict.rows == [] and strict.skipped["pair: raters agree less than 0.7"] == 1
    reward = derive(rows, "reward", RatingsConfig(min_agreement=0.5))
    assert sorted(r["response"] for r in reward.rows) == ["a", "b"]  # c: one rating, agreement unknown


def judged_set(judge: str, how: str, n: int = 24) -> list[dict]:
    """n answers rated by two humans (spread 2-9) and by a judge that agrees, inverts or rates a few; 3 judge-only."""
    rows = []
    for i in range(n):
        h0 = 2 + (i * 7) % 8
        h1 = min(10, h0 + i % 2)
        score = {"agree": h0, "invert": 11 - h0, "few": h0}[how]
        judged = how != "few" or i < 5
        rows += rate(f"q{i // 3}", f"answer {i}", h0=h0, h1=h1, **({judge: score} if judged else {}))
    for i in range(3):
        rows += rate(f"q{i}", f"judged alone {i}", **{judge: 9})
    return rows


@pytest.mark.parametrize(
    ("how", "counted", "reason"),
    [
        ("agree", True, "alpha 0.9"),
        ("invert", False, "against the human consensus is below 0.667"),
        ("few", False, "rated only 5 answer(s) a human rated too (needs 20)"),
    ],
)
def test_a_judge_counts_only_when_it_agrees_with_humans(how: str, counted: bool, reason: str) -> None:
    rows = judged_set("jx", how)
    out = derive(rows, "reward")
    (check,) = out.raters.judges
    assert (check.name, check.counted) == ("jx", counted) and reason in check.reason
    alone = [r for r in out.rows if r["response"].startswith("judged alone")]
    judged = [r for r in out.rows if r["judge"]]
    if counted:
        assert (
            check.shared == 24 and check.spearman > 0.9 and check.mean_offset == pytest.approx(-0.25)
        )  # humans: h0, h0 + 0|1
        assert len(alone) == 3 and all(r["judge_only"] and r["n_raters"] == 1 for r in alone)
        assert len(judged) == 27 and out.raters.judge_only_rows == 3
        assert all(r["n_raters"] == 3 for r in judged if not r["judge_only"])
    else:
        assert alone == [] and judged == []  # its ratings are left out everywhere
        assert out.skipped["rated only by a judge that does not count"] == 3
    no_fill = derive(rows, "reward", RatingsConfig(judge_fill=False))
    assert not any(r["judge_only"] for r in no_fill.rows)


def test_judge_gate_thresholds_are_rules() -> None:
    rows = judged_set("jx", "few")
    assert derive(rows, "reward", RatingsConfig(judge_min_items=5)).raters.judges[0].counted
    assert (
        not derive(judged_set("jx", "agree"), "reward", RatingsConfig(judge_min_alpha=0.999)).raters.judges[0].counted
    )


def qa_ratings() -> pd.DataFrame:
    frame = pd.read_json(QA, lines=True)
    return frame.assign(answer_id=frame.groupby(["prompt", "response"]).ngroup())


def test_calibration_undoes_the_planted_labeler_biases_of_data_qa() -> None:
    """data/qa/README.md: bob rates ~0.75 below the others, dana ~0.5 above; calibration removes both leans."""
    ratings = qa_ratings()
    raw = labeler_bias(ratings).set_index("labeler")["bias"]
    assert raw["bob"] < -0.6 and raw["dana"] > 0.5  # the planted biases, as the raw ratings show them
    calibrated = consensus_calibrate(ratings)
    after = labeler_bias(calibrated.assign(rating=calibrated.calibrated)).set_index("labeler")["bias"]
    assert after.abs().max() < 0.05
    lean = (calibrated.rating - calibrated.calibrated).groupby(calibrated.labeler).mean()
    assert lean["bob"] == pytest.approx(-0.75, abs=0.1) and lean["dana"] == pytest.approx(0.5, abs=0.1)
    # Plain z-scores against each labeler's own mean only halve dana's lean: she happened to get more bad answers.
    naive = zscore_calibrate(ratings)
    assert labeler_bias(naive.assign(rating=naive.calibrated)).set_index("labeler")["bias"]["dana"] > 0.3
    # and the calibrated ratings agree more (interval alpha; values are no longer whole numbers)
    assert krippendorff_alpha(calibrated.assign(rating=calibrated.calibrated), level="interval") > (
        krippendorff_alpha(ratings, level="interval") + 0.02
    )


def test_calibrated_derive_on_data_qa_uses_unbiased_means() -> None:
    rows = [json.loads(line) for line in QA.read_text().splitlines()]
    raw = {r["response"]: r["mean_rating"] for r in derive(rows, "reward").rows}
    calibrated = derive(rows, "reward", RatingsConfig(calibrate=True))
    cal = {r["response"]: r["mean_rating"] for r in calibrated.rows}
    ratings = qa_ratings()
    only = ratings.groupby("response").labeler.agg(lambda s: tuple(sorted(s)))
    # an answer rated by bob alone rises, one rated by dana alone falls; calibration moves no answer out of its tier
    bob_alone = [a for a, who in only.items() if who == ("bob",)]
    dana_alone = [a for a, who in only.items() if who == ("dana",)]
    assert bob_alone and dana_alone
    assert all(cal[a] > raw[a] + 0.4 for a in bob_alone) and all(cal[a] < raw[a] - 0.3 for a in dana_alone)
    assert calibrated.raters.calibrated and calibrated.raters.alpha_calibrated > calibrated.raters.alpha_humans


def test_build_derive_writes_rater_columns_manifest_and_card(tmp_path: Path) -> None:
    rows = judged_set("judge-model", "agree") + [
        {**r, "prompt": "from data/qa " + r["prompt"]} for r in map(json.loads, QA.read_text().splitlines()[:40])
    ]
    src = tmp_path / "rated.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {"inputs": [str(src)], "out": str(tmp_path / "pairs"), "derive": "preference"}
    recipe |= {"ratings": {"calibrate": True, "min_agreement": 0.75}, "split": {"group_by": "prompt"}}
    result = build(recipe_from_dict(recipe), quiet=True)
    pairs = pd.concat(pd.read_parquet(p) for p in (tmp_path / "pairs/data").glob("*.parquet"))
    assert list(pairs.columns)[-4:] == ["n_raters", "agreement", "judge", "judge_only"]
    assert (pairs.agreement >= 0.75).all() and pairs.judge.any() and not pairs.judge_only.all()
    raters = result.manifest.derive.raters
    assert raters.calibrated and raters.humans == 6 and [j.name for j in raters.judges] == ["judge-model"]
    assert raters.judges[0].counted and raters.alpha_humans is not None
    card = (tmp_path / "pairs/README.md").read_text()
    assert "## Raters" in card and "| judge-model | 24 |" in card and "**calibrated**" in card
    assert "agreement is below 0.75 or unknown were dropped" in card
