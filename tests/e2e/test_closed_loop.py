"""The closed loop on data/qa, through the command lines (docs/workflow.md): sft -> generate -> import -> two
labelers rate through the store API + the offline SmolLM2 judge -> export with calibration and agreement ->
reward -> evaluate against the judge -> DPO of the SFT policy on the same pairs. Tiny random models for the policy and
the reward model, a few steps each (judgement quality is not the point; every hand-off between the steps is)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app as curate_app
from curate.review.store import ReviewStore
from tests.train.reward_fixtures import save_llama
from train.cli import app as train_app

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = 5  # the first questions of data/qa: 15 reference answers, plus the policy's


def tiny_policy(path: Path) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer (and chat template), saved like a hub model."""
    from transformers import AutoTokenizer

    from train.model import model_path

    tokenizer = AutoTokenizer.from_pretrained(model_path("smollm2"))
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return save_llama(path, tokenizer, max_position_embeddings=512, tie_word_embeddings=True, **ids)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One CPU thread, as tests/train does: two OpenMP threads on two busy cores spin-wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(app, *args: str) -> str:
    result = CliRunner().invoke(app, [*args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, f"{' '.join(args)}\n{result.output}"
    return result.output


@pytest.mark.slow
def test_the_closed_loop_on_data_qa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ratings = [json.loads(line) for line in (ROOT / "data/qa/ratings.jsonl").read_text().splitlines()]
    asked = list(dict.fromkeys(r["prompt"] for r in ratings))[:QUESTIONS]
    Path("ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ratings if r["prompt"] in asked))
    items = [json.loads(line) for line in (ROOT / "data/qa/items.jsonl").read_text().splitlines()][:QUESTIONS]
    Path("items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    base = tiny_policy(tmp_path / "tiny")

    # 1. a policy: SFT on the best-rated answer per question
    run(curate_app, "build", "ratings.jsonl", "--derive", "sft", "--group-by", "prompt", "--out", "out/qa-sft", "-q")
    run(train_app, "sft", "--data", "out/qa-sft", "--model", str(base), "--max-steps", "2", "--out", "runs/qa-sft")
    # 2. its answers, to rate
    run(train_app, "generate", "runs/qa-sft", "--prompts", "out/qa-sft", "--n", "1", "--max-new-tokens", "12",
        "--out", "out/qa-answers.jsonl", "-q")  # fmt: skip
    # 3. the review project: the reference answers, and the model's joining their questions
    db = f"sqlite:///{tmp_path / 'review.db'}"
    run(curate_app, "review", "init", "--project", "qa", "--overlap", "2", "--db", db)
    run(curate_app, "review", "import", "items.jsonl", "--project", "qa", "--db", db, "-q")
    run(curate_app, "review", "import", "out/qa-answers.jsonl", "--project", "qa", "--new-answers-only", "--db", db)
    store = ReviewStore(db, password_rounds=4)
    truth = pd.DataFrame(ratings).groupby("response").rating.mean().round().astype(int)
    for name, lean in (("alice", 0), ("bob", -1)):  # bob is harsher by a point; a model answer gets 2
        labeler = store.accounts.authenticate(name, store.accounts.add_labeler(name)).id
        while (task := store.next_rating_task(labeler, "qa")) is not None:
            value = int(truth.get(task.answer, 2)) + lean
            store.submit_rating(labeler, task.answer_id, max(1, min(10, value)), None, 3.0)
    # 4. the offline judge rates every answer; a second run has nothing left to do
    answers = len(store.scores.answers("qa"))
    out = run(curate_app, "review", "judge", "--project", "qa", "--model", "smollm2", "--db", db, "-q")
    assert f"of {answers} answer(s) rated" in out
    assert "nothing left to judge" in run(curate_app, "review", "judge", "--project", "qa", "--db", db, "-q")
    stats = run(curate_app, "review", "stats", "--project", "qa", "--db", db)
    assert "alpha (ordinal) among people" in stats and "smollm2" in stats
    # 5. rater-aware pairs, calibrated, contested ones out; the judge's ratings as rated rows
    run(curate_app, "review", "export", "--project", "qa", "--kind", "preference", "--calibrate",
        "--min-agreement", "0.5", "--out", "out/qa-pairs", "--db", db, "-q")  # fmt: skip
    run(curate_app, "review", "export", "--project", "qa", "--kind", "rated", "--out", "out/qa-rated", "--db", db, "-q")
    manifest = json.loads(Path("out/qa-pairs/manifest.json").read_text())
    raters = manifest["derive"]["raters"]
    assert raters["calibrated"] and raters["humans"] == 2 and [j["name"] for j in raters["judges"]] == ["smollm2"]
    pairs = pd.concat(pd.read_parquet(p) for p in Path("out/qa-pairs/data").glob("*.parquet"))
    assert len(pairs) > 0 and (pairs.agreement >= 0.5).all() and (pairs.n_raters >= 2).all()
    assert pairs.judge.all() == raters["judges"][0]["counted"]  # the judge counts in every pair or in none
    assert "## Raters" in Path("out/qa-pairs/README.md").read_text()
    # 6. a reward model on the pairs, evaluated beside the judge
    run(train_app, "reward", "--data", "out/qa-pairs", "--model", str(base), "--max-steps", "4",
        "--out", "runs/qa-reward")  # fmt: skip
    out = run(train_app, "evaluate", "runs/qa-reward", "--data", "out/qa-pairs", "--split", "train",
              "--judge-ratings", "out/qa-rated", "-q")  # fmt: skip
    card = json.loads(Path("runs/qa-reward/run_card.json").read_text())
    result = card["evaluations"]["qa-pairs:train"]
    assert result["reward"]["pairs"] == len(pd.read_parquet(next(Path("out/qa-pairs/data").glob("train-*"))))
    assert result["judge"]["name"] == "smollm2" and result["judge"]["pairs"] > 0
    assert Path(result["plot"]).is_file() and "judge smollm2" in out
    # 7. the admins' view: the reward run's score of every answer, stored in the project
    run(train_app, "score", "runs/qa-reward", "--project", "qa", "--db", db, "-q")
    assert set(store.scores.frame("qa").source) == {"qa-reward"} and len(store.scores.frame("qa")) == answers
    # 8. DPO: the SFT policy trained further on the same calibrated pairs, its held-out answers scored by the reward run
    run(train_app, "dpo", "--data", "out/qa-pairs", "--policy", "runs/qa-sft", "--reward", "runs/qa-reward",
        "--max-steps", "3", "--batch-size", "4", "--out", "runs/qa-dpo", "logging.logging_steps=1",
        "degeneration.max_new_tokens=8", "-q")  # fmt: skip
    card = json.loads(Path("runs/qa-dpo/run_card.json").read_text())
    assert card["verb"] == "dpo" and card["data"]["content_hash"] == manifest["content_hash"]
    assert card["policy"] == {"run": "runs/qa-sft", "reference": "frozen copy of the policy run's adapter"}
    losses = [e["loss"] for e in card["loss_curve"] if "loss" in e]
    # step 1: the policy is still its reference (the SFT run), every implicit reward is 0 and the loss ln 2;
    # then each step moves it toward the chosen answers of the pairs
    assert losses[0] == pytest.approx(math.log(2), abs=1e-4) and losses == sorted(losses, reverse=True)
    assert losses[-1] < losses[0] - 1e-3
    assert {"eval_rewards/accuracies", "eval_rewards/margins"} <= set(card["metrics"])
    assert [e["step"] for e in card["reward_curve"]] == [3]  # the test pairs' reward accuracy and margin
    for side in ("before", "after"):
        assert card["degeneration"][side]["mean_reward"] is not None
