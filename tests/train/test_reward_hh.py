"""HH-RLHF-style preference transcripts (data/hh/, gzipped as HH ships): `curate build` splits the prompt off as
chat turns, `train reward` trains on them through the tokenizer's chat template, `train score` renders an HH
transcript prompt as the same turns. Checked on the token ids TRL's RewardTrainer receives.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from curate.pipeline import build
from curate.recipe import BuildRecipe
from train.data import load_data
from train.reward import RewardRecipe, build_trainer, train_reward
from train.score import score_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hh_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/hh/helpful.jsonl, gzipped as HH-RLHF ships, built by `curate build`."""
    base = tmp_path_factory.mktemp("hh")
    shipped = base / "train.jsonl.gz"
    shipped.write_bytes(gzip.compress((REPO / "data" / "hh" / "helpful.jsonl").read_bytes()))
    out = base / "hh"
    build(BuildRecipe.model_validate({"inputs": [str(shipped)], "out": str(out), "split": {"test_size": 0.25}}), True)
    return out


def recipe_for(model: Path, data: Path, out: Path) -> RewardRecipe:
    return RewardRecipe.model_validate(
        {
            "model": {"name": str(model)},
            "dataset": {"path": str(data)},
            "training": {"learning_rate": 5e-3, "batch_size": 4, "max_steps": 3, "save_total_limit": 1},
            "memory": {"gradient_checkpointing": False},
            "logging": {"output_dir": str(out), "logging_steps": 1},
        }
    )


def test_hh_export_is_trl_conversational_preference_data(hh_export: Path) -> None:
    manifest = json.loads((hh_export / "manifest.json").read_text())
    assert manifest["kind"] == "preference" and manifest["template"]["format"] == "messages"
    assert [s["step"] for s in manifest["steps"]][:2] == ["normalize", "extract_prompt"]
    splits = load_data(str(hh_export), "reward").dataset
    rows = splits["train"].to_list() + splits["test"].to_list()
    assert len(rows) == 24
    multi = next(r for r in rows if r["id"] == "train-3")  # line 3, the grandmother's birthday: two exchanges
    assert [t["role"] for t in multi["prompt"]] == ["user", "assistant", "user"]
    assert multi["prompt"][2]["content"] == "She loves gardening and taught me how to bake bread."
    assert multi["chosen"][0]["role"] == "assistant" and multi["chosen"][0]["content"].startswith("Here's one:")
    assert not any("Human:" in t["content"] for r in rows for t in r["prompt"] + r["chosen"] + r["rejected"])


def transcript(turns: list[dict]) -> str:
    """Turns written back in HH-RLHF's convention."""
    return "".join(f"\n\n{'Human' if t['role'] == 'user' else 'Assistant'}: {t['content']}" for t in turns)


def test_reward_trains_on_hh_turns_through_the_chat_template(tiny_lm: Path, hh_export: Path, tmp_path: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from curate.render import Renderer
    from train.formatting import renderer_for
    from train.model import load_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    recipe = recipe_for(tiny_lm, hh_export, tmp_path / "run")
    data = load_data(str(hh_export), "reward")
    renderer = renderer_for(data, tokenizer, recipe.dataset, str(tiny_lm), recipe.reward.chat_template)
    model = load_model(recipe.model, recipe.memory, AutoModelForSequenceClassification, num_labels=1)
    trainer = build_trainer(
        model, tokenizer, recipe, data.dataset["train"], None, tmp_path / "t", 1024, renderer=renderer
    )
    as_strings = Renderer(tokenizer, chat_strings=True)  # how an HH transcript prompt string is rendered
    rows = data.dataset["train"].to_list()
    for row, prepared in zip(rows, trainer.train_dataset, strict=True):
        text = tokenizer.decode(prepared["chosen_ids"])
        assert "Human:" not in text and "Assistant:" not in text
        for turn in row["prompt"] + row["chosen"]:  # every turn, as the chat template writes it
            assert f"<|im_start|>{turn['role']}\n{turn['content']}<|im_end|>" in text
        assert text.count("<|im_start|>user\n") == sum(t["role"] == "user" for t in row["prompt"])
        answer = row["chosen"][0]["content"]
        hh_prompt = transcript(row["prompt"]) + "\n\nAssistant:"
        assert as_strings.answers([(hh_prompt, answer)])[0].input_ids == prepared["chosen_ids"]

    run = train_reward(recipe, quiet=True)  # the whole verb on the export: 3 steps of the tiny model
    assert run is not None and 0.0 <= run.metrics["test_pairwise_accuracy"] <= 1.0

    answers = tmp_path / "answers.jsonl"
    test_row = load_data(str(hh_export), "reward").dataset["test"][0]
    answer = test_row["chosen"][0]["content"]
    answers.write_text(
        json.dumps({"prompt": transcript(test_row["prompt"]) + "\n\nAssistant:", "response": answer})
        + "\n"
        + json.dumps({"prompt": test_row["prompt"], "response": answer})
        + "\n"
    )
    as_transcript, as_turns = score_file(run.run_dir, answers, tmp_path / "scored.jsonl", quiet=True)
    assert as_transcript == pytest.approx(as_turns, abs=1e-5)
