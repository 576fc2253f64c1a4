"""Multi-turn conversations end to end: ShareGPT and `messages` files build, export and train (sft) with loss on
every assistant turn and on nothing else; bad conversations are one clear line each."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from formatting_fixtures import llama_like_tokenizer, save_tiny_lm, write_rows
from test_formatting import export, learned, sft_trainer

from curate.errors import CurateError
from curate.pipeline import build
from curate.recipe import BuildRecipe
from curate.schema import Record
from curate.steps.semantic_dedupe import record_text
from train.config import SFTRecipe, load_recipe
from train.sft import run_sft

SHAREGPT = [
    {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "What is 2+2?"},
            {"from": "gpt", "value": "Four."},
            {"from": "human", "value": "And doubled?"},
            {"from": "gpt", "value": "Eight."},
        ]
    },
    {
        "conversations": [
            {"from": "human", "value": "Name a colour."},
            {"from": "gpt", "value": "Blue."},
            {"from": "human", "value": "Another?"},
            {"from": "gpt", "value": "Green."},
            {"from": "human", "value": "One more?"},
            {"from": "gpt", "value": "Red."},
        ]
    },
]
ANSWERS = {"Four.", "Eight.", "Blue.", "Green.", "Red."}


@pytest.fixture(scope="module")
def llama_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_lm(llama_like_tokenizer(), tmp_path_factory.mktemp("llama-like"))


@pytest.mark.parametrize(
    ("template", "model"),
    [(None, "tiny_lm"), ("chatml", "tiny_lm"), ("llama2", "llama_like"), ("chat-template", "llama_like")],
)
def test_sharegpt_conversations_learn_every_assistant_turn_and_nothing_else(
    template: str | None, model: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model_dir: Path = request.getfixturevalue(model)
    spec = f"chat-template:{model_dir}" if template == "chat-template" else template
    data_dir = export(tmp_path, SHAREGPT, template=spec, format="messages")
    rows = pd.read_parquet(data_dir / "data")
    assert [m["role"] for m in rows.messages[0]][:2] in (["system", "user"], ["user", "assistant"])
    trainer = sft_trainer(model_dir, data_dir, tmp_path / "run")
    tokenizer = trainer.processing_class
    eos = tokenizer.eos_token_id
    for row in trainer.train_dataset:
        full = tokenizer.decode(row["input_ids"], skip_special_tokens=False)
        answers = [a for a in ANSWERS if a in full]
        loss = learned(row)
        text = tokenizer.decode(loss, skip_special_tokens=True)
        for answer in answers:
            assert answer in text  # every assistant turn is learned ...
        for said in ("2+2", "doubled", "colour", "Another", "One more", "Be brief"):
            assert said not in text  # ... and no system or user turn
        ends = [t for t in loss if t == eos or tokenizer.convert_ids_to_tokens(t) == "<|im_end|>"]
        assert len(ends) == len(answers)  # each answer closed by exactly one learned end token
        assert row["labels"][-1] != -100


def test_a_multi_turn_file_builds_exports_and_trains(tiny_lm: Path, tmp_path: Path) -> None:
    """curate build on a ShareGPT file, then train sft (2 CPU steps): the run's loss is finite and recorded."""
    data_dir = export(tmp_path, SHAREGPT * 4)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["template"]["format"] == "messages" and manifest["counts"]["rows_read"] == 8
    assert manifest["steps"][1]["step"] == "exact_dedupe" and manifest["steps"][1]["dropped"] == 6  # repeats
    recipe = load_recipe(
        SFTRecipe,
        None,
        {"model.name": str(tiny_lm), "dataset.path": str(data_dir), "logging.output_dir": str(tmp_path / "run")},
        {"training.max_steps": 2, "training.batch_size": 2, "training.save_each_epoch": False},
        {"training.eval_each_epoch": False, "memory.gradient_checkpointing": False, "generation.samples": 0},
    )
    run_dir = run_sft(recipe, quiet=True)
    assert run_dir is not None
    card = json.loads((run_dir / "run_card.json").read_text())
    assert card["data"]["format"] == "messages" and card["metrics"]["global_step"] == 2


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([{"from": "human", "value": "hi"}, {"from": "robot", "value": "yo"}], "conversations.1.from': unknown"),
        ([{"from": "human", "value": "hi"}, {"from": "human", "value": "yo"}], "turn 1 is 'user' after 'user'"),
        ([{"from": "human", "value": " "}, {"from": "gpt", "value": "yo"}], r"turn 0 \(user\) is empty"),
        ([{"from": "gpt", "value": "hi"}, {"from": "human", "value": "yo"}], "turn 0 is 'assistant' first"),
        ([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}, {"from": "human", "value": "?"}], "ends"),
    ],
)
def test_bad_conversations_are_one_line_naming_file_line_and_field(
    turns: list[dict[str, str]], message: str, tmp_path: Path
) -> None:
    source = write_rows([SHAREGPT[0], {"conversations": turns}], tmp_path / "chats.jsonl")
    with pytest.raises(CurateError, match=rf"chats.jsonl line 2: field '.*{message}") as info:
        build(BuildRecipe(inputs=[str(source)], out=str(tmp_path / "x")), quiet=True)
    assert "\n" not in str(info.value)


def test_skip_invalid_lists_every_bad_conversation(tmp_path: Path) -> None:
    bad = [
        {"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]},
        {"conversations": [{"from": "alien", "value": "x"}]},
    ]
    source = write_rows([SHAREGPT[0], *bad, SHAREGPT[1]], tmp_path / "chats.jsonl")
    build(BuildRecipe(inputs=[str(source)], out=str(tmp_path / "x"), skip_invalid=True), quiet=True)
    invalid = [json.loads(line) for line in (tmp_path / "x" / "invalid_rows.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in invalid] == [(2, "messages.1.role"), (3, "conversations.0.from")]


def test_semantic_dedupe_compares_the_user_and_assistant_turns() -> None:
    turns = [
        {"role": "system", "content": "Be brief."},
        *({"role": r, "content": c} for r, c in (("user", "hi"), ("assistant", "yo"))),
    ]
    record = Record("r1", {"messages": turns}, "f.jsonl", 1)
    assert record_text(record, ("prompt", "input", "response", "messages")) == "hi\n\nyo"
