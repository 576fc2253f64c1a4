"""`train evaluate`: a reward model's pairwise accuracy by gap and agreement, Spearman, plot, beside a judge; run card."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from loop_fixtures import reward_run
from reward_fixtures import build_export, save_tiny_base, toy_pairs, write_jsonl
from scipy.stats import spearmanr
from typer.testing import CliRunner

from train.cli import app
from train.evaluate import pair_accuracy
from train.score import load_reward_model, reward_scores

AGREEMENT = [1.0, 0.8, 0.6, None]


@pytest.fixture(scope="module")
def pairs_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy pairs (separable by one word) with ratings and a rater agreement per pair, as a real export."""
    rows = toy_pairs(64, seed=0)
    for i, row in enumerate(rows):
        if AGREEMENT[i % 4] is not None:
            row["agreement"] = AGREEMENT[i % 4]
    return build_export(rows, tmp_path_factory.mktemp("exports") / "toy-pairs")


@pytest.fixture(scope="module")
def reward(pairs_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = save_tiny_base(tmp_path_factory.mktemp("tiny-base"))
    return reward_run(base, pairs_export, tmp_path_factory.mktemp("runs") / "toy-reward", epochs=4)


def split_pairs(pairs_export: Path) -> pd.DataFrame:
    return pd.read_parquet(next((pairs_export / "data").glob("test-*.parquet")))


def evaluate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["evaluate", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def key(prompt: str, answer: str) -> str:
    return json.dumps([prompt, answer])


def test_figures_match_the_rewards_and_land_in_the_run_card(reward: Path, pairs_export: Path, tmp_path: Path) -> None:
    before = json.loads((reward / "run_card.json").read_text())
    code, output = evaluate(str(reward), "--data", str(pairs_export), "-q")
    assert code == 0, output
    card = json.loads((reward / "run_card.json").read_text())
    result = card["evaluations"]["toy-pairs:test"]
    # independently: score each answer of the test split, count the pairs the model orders right
    pairs = split_pairs(pairs_export)
    model, tokenizer, fmt = load_reward_model(reward)
    chosen = reward_scores(model, tokenizer, list(zip(pairs.prompt, pairs.chosen, strict=True)), fmt)
    rejected = reward_scores(model, tokenizer, list(zip(pairs.prompt, pairs.rejected, strict=True)), fmt)
    right = [c > r for c, r in zip(chosen, rejected, strict=True)]
    assert result["reward"]["pairs"] == len(pairs) == 16
    assert result["reward"]["accuracy"] == pytest.approx(sum(right) / len(right)) and sum(right) >= 14
    by_agreement = result["reward"]["by_agreement"]
    for label, value in (("1", 1.0), ("0.75-1", 0.8), ("0.5-0.75", 0.6), ("unknown", None)):
        members = [r for r, a in zip(right, pairs.agreement, strict=True) if (a == value if value else pd.isna(a))]
        assert by_agreement[label] == {"pairs": len(members), "accuracy": pytest.approx(sum(members) / len(members))}
    gaps = pairs.chosen_rating - pairs.rejected_rating
    assert sum(b["pairs"] for b in result["reward"]["by_gap"].values()) == 16
    assert result["reward"]["by_gap"].get(">=6", {"pairs": 0})["pairs"] == int((gaps >= 6).sum())
    answers = pd.concat(
        [
            pd.DataFrame(
                {
                    "k": [key(p, a) for p, a in zip(pairs.prompt, pairs[s], strict=True)],
                    "r": pairs[f"{s}_rating"],
                    "s": v,
                }
            )
            for s, v in (("chosen", chosen), ("rejected", rejected))
        ]
    ).drop_duplicates("k")
    assert result["reward"]["spearman"] == pytest.approx(spearmanr(answers.s, answers.r).statistic)
    assert result["judge"] is None and Path(result["plot"]).is_file()
    # training's own figures are untouched; the model card shows the evaluation
    assert card["metrics"] == before["metrics"] and card["loss_curve"] == before["loss_curve"]
    assert "## Evaluation on toy-pairs:test" in (reward / "README.md").read_text()
    assert "pairwise accuracy" in output and "Recorded in" in output


def test_the_judge_beside_the_reward_model_on_the_same_pairs(reward: Path, pairs_export: Path, tmp_path: Path):
    pairs = split_pairs(pairs_export)
    ratings = []
    for j, row in enumerate(pairs.itertuples()):
        scores = [(8, 3), (3, 8), (5, 5), (8, None)][j % 4]  # right, wrong, tie, only one answer rated
        for answer, score in zip((row.chosen, row.rejected), scores, strict=True):
            if score is not None:
                ratings.append(
                    {
                        "prompt": row.prompt,
                        "response": answer,
                        "rating": score,
                        "labeler": "smol",
                        "labeler_kind": "judge",
                    }
                )
    ratings.append({"prompt": "p", "response": "r", "rating": 9, "labeler": "ann"})  # a person: not the judge
    judge_file = write_jsonl(ratings, tmp_path / "rated.jsonl")
    plot = tmp_path / "calibration.png"
    code, output = evaluate(
        str(reward), "--data", str(pairs_export), "--judge-ratings", str(judge_file), "--plot", str(plot), "-q"
    )
    assert code == 0, output
    result = json.loads((reward / "run_card.json").read_text())["evaluations"]["toy-pairs:test"]
    judge = result["judge"]
    # what the judge said, pair by pair, through the same (prompt, answer) identity the command uses
    said: dict[str, list[int]] = {}
    for r in ratings[:-1]:
        said.setdefault(key(r["prompt"], r["response"]), []).append(r["rating"])
    both = [
        (sum(said[c]) / len(said[c]), sum(said[r]) / len(said[r]))
        for c, r in ((key(p.prompt, p.chosen), key(p.prompt, p.rejected)) for p in pairs.itertuples())
        if c in said and r in said
    ]
    assert judge["name"] == "smol" and judge["pairs"] == len(both) >= 10
    assert judge["accuracy"] == pytest.approx(pair_accuracy([c for c, _ in both], [r for _, r in both]))
    assert 0.3 < judge["accuracy"] < 0.7 and judge["reward_model_on_these_pairs"] >= 0.8
    assert "judge smol" in output and f"On the {judge['pairs']} pairs the judge rated both answers of" in output
    import matplotlib.image

    two_panels = matplotlib.image.imread(plot)
    one_panel = matplotlib.image.imread(result_plot_without_judge(reward, pairs_export))
    assert two_panels.shape[1] > 1.8 * one_panel.shape[1]


def result_plot_without_judge(reward: Path, pairs_export: Path) -> str:
    assert evaluate(str(reward), "--data", str(pairs_export), "-q")[0] == 0
    return json.loads((reward / "run_card.json").read_text())["evaluations"]["toy-pairs:test"]["plot"]


def test_pair_accuracy_counts_ties_half() -> None:
    assert pair_accuracy([2.0, 1.0, 0.0, 3.0], [1.0, 1.0, 1.0, -1.0]) == pytest.approx(2.5 / 4)


def test_bad_input_is_one_line_and_leaves_the_card(reward: Path, pairs_export: Path, tmp_path: Path) -> None:
    sft_like = tmp_path / "policy"
    sft_like.mkdir()
    (sft_like / "run_card.json").write_text(json.dumps({"verb": "sft", "written_by": "curatrain"}))
    answers = write_jsonl([{"prompt": "p", "response": "r"}], tmp_path / "answers.jsonl")
    people = write_jsonl([{"prompt": "p", "response": "r", "rating": 3, "labeler": "ann"}], tmp_path / "people.jsonl")
    card = (reward / "run_card.json").read_bytes()
    cases = [
        ([str(sft_like), "--data", str(pairs_export)], "a `train sft` run, not a reward model"),
        ([str(reward), "--data", str(answers)], "missing columns for `train reward`"),
        ([str(reward), "--data", str(pairs_export), "--judge-ratings", str(people)], "no judge ratings in it"),
        ([str(reward), "--data", str(pairs_export), "--split", "validation"], "--split validation: use auto, test or"),
    ]
    for args, message in cases:
        code, output = evaluate(*args, "-q")
        assert code == 1 and message in output and len(output.strip().splitlines()) == 1, output
    assert (reward / "run_card.json").read_bytes() == card


def test_score_a_review_project_for_the_admin_page(reward: Path, pairs_export: Path, tmp_path: Path) -> None:
    from curate.review.store import ReviewStore

    db = f"sqlite:///{tmp_path / 'review.db'}"
    store = ReviewStore(db, migrate=True)
    store.create_project("toy")
    pairs = split_pairs(pairs_export)
    store.import_items("toy", [{"prompt": p.prompt, "answers": [p.chosen, p.rejected]} for p in pairs.itertuples()])
    args = ["score", str(reward), "--project", "toy", "--db", db, "-q"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    stored = store.scores.frame("toy")
    answers = store.scores.answers("toy")
    model, tokenizer, fmt = load_reward_model(reward)
    expected = reward_scores(model, tokenizer, list(zip(answers.prompt, answers.response, strict=True)), fmt)
    assert set(stored.source) == {"toy-reward"} and len(stored) == len(answers)
    assert stored.set_index("answer_id").loc[answers.answer_id, "score"].tolist() == pytest.approx(expected, abs=1e-5)
    assert CliRunner().invoke(app, args).exit_code == 0 and len(store.scores.frame("toy")) == len(answers)  # replaced
    both = CliRunner().invoke(app, [*args, "--data", str(tmp_path / "x.jsonl")])
    assert both.exit_code == 1 and "give --data FILE (scores written to a file) or --project P" in both.output
