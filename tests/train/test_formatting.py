"""What reaches the trainer: token ids and loss masks of TRL's SFTTrainer / RewardTrainer, built from real exports.

Every template x format x tokenizer combination we ship is built with `curate build`, loaded the way
`train sft` loads it, and handed to a real SFTTrainer (a tiny random Llama per tokenizer); the assertions
read the trainer's own prepared rows (`input_ids`, `labels`) and a collated batch, never the export text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from formatting_fixtures import ANSWERS, ROWS, llama_like_tokenizer, save_tiny_lm, write_rows

from curate.errors import CurateError
from curate.pipeline import build
from curate.recipe import BuildRecipe
from train.config import SFTRecipe, load_recipe
from train.data import load_data
from train.formatting import renderer_for
from train.model import load_tokenizer
from train.sft import build_trainer, sft_config, sft_splits

# (template, format): every combination `curate build` accepts for instruction rows.
COMBINATIONS = [
    ("alpaca", "prompt-completion"),
    ("alpaca", "text"),
    ("latex", "prompt-completion"),
    ("latex", "text"),
    ("chatml", "prompt-completion"),
    ("chatml", "text"),
    ("chatml", "messages"),
    ("llama2", "prompt-completion"),
    ("llama2", "text"),
    ("llama2", "messages"),
    ("chat-template", "prompt-completion"),
    ("chat-template", "text"),
    ("chat-template", "messages"),
    (None, "messages"),
]
TOKENIZERS = ["smollm2", "llama-like"]


@pytest.fixture(scope="module")
def models(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny model directory per tokenizer (the tokenizer saved beside it)."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("formatting-models")
    return {
        "smollm2": save_tiny_lm(AutoTokenizer.from_pretrained(smollm2), root / "smollm2"),
        "llama-like": save_tiny_lm(llama_like_tokenizer(), root / "llama-like"),
    }


def template_spec(template: str | None, tokenizer: str, models: dict[str, Path]) -> str | None:
    """`chat-template` means the model's own tokenizer's template."""
    if template != "chat-template":
        return template
    return "chat-template:" + ("smollm2" if tokenizer == "smollm2" else str(models[tokenizer]))


def export(tmp_path: Path, rows: list[dict[str, Any]], **recipe: Any) -> Path:
    """`curate build` of rows into tmp_path/export, everything in the train split."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = write_rows(rows, tmp_path / "rows.jsonl")
    out = tmp_path / "export"
    build(BuildRecipe(inputs=[str(source)], out=str(out), split={"test_size": 0.0}, **recipe), quiet=True)
    return out


def sft_trainer(model_dir: Path, data_dir: Path, out: Path, max_length_override: int = 512, **dataset: Any) -> Any:
    """The SFTTrainer `train sft` builds for this model and export (no training)."""
    from transformers import AutoModelForCausalLM

    recipe = load_recipe(
        SFTRecipe,
        None,
        {"model.name": str(model_dir), "dataset.path": str(data_dir), "logging.output_dir": str(out)},
        {f"dataset.{k}": v for k, v in dataset.items()},
    )
    data = load_data(str(data_dir), "sft")
    tokenizer = load_tokenizer(str(model_dir), "right", None)
    renderer = renderer_for(data, tokenizer, recipe.dataset, str(model_dir))
    splits = sft_splits(data, renderer, None)
    args = sft_config(recipe, out, max_length_override, "test" in splits)
    return build_trainer(splits, renderer, AutoModelForCausalLM.from_pretrained(model_dir), args, recipe)


def learned(row: dict[str, Any]) -> list[int]:
    """The token ids that carry loss in a prepared trainer row."""
    return [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]


def end_ids(tokenizer: Any, template: str | None) -> set[int]:
    """The ids that may close an example: the EOS, or the template's end-of-turn token if it is a real token."""
    ends = {tokenizer.eos_token_id}
    if template == "chatml" and "<|im_end|>" in tokenizer.all_special_tokens:
        ends.add(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    return ends


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
@pytest.mark.parametrize(("template", "fmt"), COMBINATIONS)
def test_one_end_token_and_the_right_loss_mask(
    template: str | None, fmt: str, tokenizer_name: str, models: dict[str, Path], tmp_path: Path
) -> None:
    """Exactly one end token per example, last in the sequence and learned; loss only on the answer (text: all)."""
    model_dir = models[tokenizer_name]
    spec = template_spec(template, tokenizer_name, models)
    data_dir = export(tmp_path, ROWS, template=spec, format=fmt)
    trainer = sft_trainer(model_dir, data_dir, tmp_path / "run")
    tokenizer = trainer.processing_class
    ends, bos = end_ids(tokenizer, template), tokenizer.bos_token_id
    literal_end = {"llama2": "</s>", "chatml": "<|im_end|>"}.get(template or "", "")
    literal_end = literal_end if literal_end not in tokenizer.all_special_tokens else ""
    rows = list(trainer.train_dataset)
    assert len(rows) == len(ROWS)
    for row in rows:
        ids, labels = row["input_ids"], row["labels"]
        full = tokenizer.decode(ids, skip_special_tokens=False)
        answer = next(a for a in ANSWERS if a in full)
        assert ids[-1] in ends and labels[-1] == ids[-1], f"ends with a learned end token: {full!r}"
        assert not any(a in ends and b in ends for a, b in zip(ids, ids[1:], strict=False)), f"doubled end: {full!r}"
        assert not any(a == b == bos for a, b in zip(ids, ids[1:], strict=False)), f"doubled BOS: {full!r}"
        loss = learned(row)
        if fmt == "text":  # language modelling: every token is learned
            assert len(loss) == len(ids) - (ids[0] == bos and labels[0] == -100)
            continue
        assert sum(t in ends for t in loss) == 1 and loss[-1] in ends  # one end token in the loss, the last one
        text = tokenizer.decode(loss, skip_special_tokens=True)
        assert text.replace(literal_end, "").strip() == answer, f"loss on {text!r} of {full!r}"
        first = labels.index(next(label for label in labels if label != -100))
        assert all(label == -100 for label in labels[:first]) and first > 0  # the prompt is context only
    batch = trainer.data_collator(rows)
    assert int((batch["labels"] != -100).sum()) == sum(len(learned(r)) for r in rows)  # padding never learned


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
def test_alpaca_input_reaches_the_prompt(tokenizer_name: str, models: dict[str, Path], tmp_path: Path) -> None:
    """Alpaca's `input` is in the tokens: its own `### Input:` block with the alpaca template, else after the
    instruction; never lost, and never learned."""
    rows = [ROWS[0], {"instruction": "Say hi.", "input": "", "output": "Hi."}]
    for template, expected in (
        ("alpaca", "paired with an input that provides further context"),
        ("chatml", "Add the numbers.\n\n2, 2"),
    ):
        data_dir = export(tmp_path / template, rows, template=template)
        trainer = sft_trainer(models[tokenizer_name], data_dir, tmp_path / template / "run")
        tokenizer = trainer.processing_class
        texts = {tokenizer.decode(r["input_ids"], skip_special_tokens=False): r for r in trainer.train_dataset}
        with_input = next(t for t in texts if "Add the numbers." in t)
        assert expected in with_input and "2, 2" not in tokenizer.decode(learned(texts[with_input]))
        if template == "alpaca":
            assert "### Input:\n2, 2\n\n### Response:" in with_input
            no_input = next(t for t in texts if "Say hi." in t)
            assert "### Input:" not in no_input and "Below is an instruction that describes a task. Write" in no_input


def test_prompt_completion_without_a_template_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="needs a --template .* glued together.*--format messages"):
        export(tmp_path, ROWS, format="prompt-completion")
    # the default without a template: conversations for the model's own chat template
    data = load_data(str(export(tmp_path / "default", ROWS)), "sft")
    assert data.format == ("messages",)


def test_template_tokens_the_model_lacks_warn_or_refuse(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """llama2 on SmolLM2 (no <s>/</s>), chatml on the Llama-like tokenizer (no <|im_start|>): a warning, or
    with strict an error; the model's own template is fine."""
    data_dir = export(tmp_path, ROWS, template="llama2")
    sft_trainer(models["smollm2"], data_dir, tmp_path / "run")
    assert "template 'llama2' writes <s>, </s>" in capsys.readouterr().err
    with pytest.raises(CurateError, match="refused: --strict"):
        sft_trainer(models["smollm2"], data_dir, tmp_path / "run2", strict_template=True)
    chatml = export(tmp_path / "chatml", ROWS, template="chatml")
    with pytest.raises(CurateError, match=r"'chatml' writes <\|im_start\|>, <\|im_end\|>"):
        sft_trainer(models["llama-like"], chatml, tmp_path / "run3", strict_template=True)
    sft_trainer(models["smollm2"], chatml, tmp_path / "run4", strict_template=True)  # SmolLM2 is ChatML


def test_default_system_prompt_only_when_asked(models: dict[str, Path], tmp_path: Path) -> None:
    """SmolLM2's chat template would add "You are a helpful AI assistant named SmolLM…" to every row without a
    system prompt; it does so only with default_system_prompt, at build (chat-template:) and at training."""
    rows = [ROWS[2]]
    for spec, fmt in (("chat-template:smollm2", "prompt-completion"), (None, "messages")):
        for default in (False, True):
            where = tmp_path / f"{fmt}-{default}"
            data_dir = export(where, rows, template=spec, format=fmt, default_system_prompt=default)
            trainer = sft_trainer(models["smollm2"], data_dir, where / "run")
            text = trainer.processing_class.decode(trainer.train_dataset[0]["input_ids"])
            assert ("named SmolLM" in text) is default
            assert text.startswith("<|im_start|>system\n")  # off: an empty system turn, the template's nearest to none


def test_conversations_learn_assistant_turns_only_by_default(models: dict[str, Path], tmp_path: Path) -> None:
    data_dir = export(tmp_path, ROWS)  # no template: messages
    trainer = sft_trainer(models["smollm2"], data_dir, tmp_path / "run")
    tokenizer = trainer.processing_class
    for row in trainer.train_dataset:
        text = tokenizer.decode(learned(row))
        assert text.endswith("<|im_end|>") and "user" not in text and "system" not in text
        assert text.removesuffix("<|im_end|>") in ANSWERS
    full = sft_trainer(models["smollm2"], data_dir, tmp_path / "full", assistant_only_loss=False)
    assert all(len(learned(r)) == len(r["input_ids"]) for r in full.train_dataset)


def test_our_assistant_mask_equals_trls_own_assistant_only_loss(models: dict[str, Path], tmp_path: Path) -> None:
    """With a chat template that has {% generation %} markers, TRL's assistant_only_loss on the raw messages
    learns exactly the tokens we hand it pre-tokenized (we also drop the newline after the last end token)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from curate.templates import chat_template

    model_dir = tmp_path / "marked"
    tokenizer = AutoTokenizer.from_pretrained(models["smollm2"])
    tokenizer.chat_template = chat_template("chatml")  # ChatML with generation markers
    save_tiny_lm(tokenizer, model_dir)
    conversations = [
        [{"role": "user", "content": "two plus two"}, {"role": "assistant", "content": "4"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and 3?"},
            {"role": "assistant", "content": "3"},
        ],
    ]
    ours = sft_trainer(
        model_dir, write_rows([{"messages": m} for m in conversations], tmp_path / "c.jsonl"), tmp_path / "o"
    )
    args = SFTConfig(
        output_dir=str(tmp_path / "trl"),
        assistant_only_loss=True,
        report_to=[],
        max_length=512,
        use_cpu=True,
        bf16=False,
    )
    trl = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=args,
        train_dataset=Dataset.from_list([{"messages": m} for m in conversations]),
        processing_class=tokenizer,
    )
    newline = tokenizer.convert_tokens_to_ids("Ċ")
    for mine, theirs in zip(ours.train_dataset, trl.train_dataset, strict=True):
        assert theirs["input_ids"] == mine["input_ids"] + [newline]
        assert theirs["labels"] == mine["labels"] + [-100]


# -- lengths measure what trains ---------------------------------------------------------------------------


def test_build_lengths_count_exactly_the_sft_trainer_tokens(latex_export: Path, smollm2: Path, tmp_path: Path) -> None:
    """The build's token counts (smollm2) sum to the tokens SFTTrainer holds for the same export and tokenizer."""
    from curate.io.manifest import read_manifest

    lengths = read_manifest(latex_export).lengths
    assert lengths is not None and lengths.stats is not None
    trainer = sft_trainer(smollm2, latex_export, tmp_path / "run")
    test = trainer.eval_dataset
    tokens = sum(len(r["input_ids"]) for r in trainer.train_dataset) + sum(len(r["input_ids"]) for r in test)
    assert lengths.tokenizer == "smollm2" and lengths.stats.tokens == tokens
    assert lengths.stats.max == max(len(r["input_ids"]) for d in (trainer.train_dataset, test) for r in d)


def test_preference_lengths_count_the_chat_turns_train_reward_scores(smollm2: Path, tmp_path: Path) -> None:
    """Untemplated pairs are counted as the chat turns RewardTrainer receives, not as raw prompt + answer."""
    from transformers import AutoModelForSequenceClassification

    from curate.io.manifest import read_manifest
    from train.reward import RewardRecipe, build_trainer

    pairs = [
        {"prompt": "How do I exit Vim?", "chosen": "Press Esc, then type :q! and Enter.", "rejected": "Unplug it."},
        {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "Probably 5, give or take, on a good day."},
    ]
    data_dir = export(tmp_path, pairs, kind="preference", lengths={"tokenizer": "smollm2"})
    data = load_data(str(data_dir), "reward")
    recipe = RewardRecipe.model_validate({"model": {"name": str(smollm2)}, "logging": {"output_dir": str(tmp_path)}})
    tokenizer = load_tokenizer(str(smollm2), "right", None)
    renderer = renderer_for(data, tokenizer, recipe.dataset, "smollm2", chat_strings=True)
    model = AutoModelForSequenceClassification.from_pretrained(smollm2, num_labels=1)
    trainer = build_trainer(
        model, tokenizer, recipe, data.dataset["train"], None, tmp_path / "run", 512, renderer=renderer
    )
    longer = [max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in trainer.train_dataset]
    lengths = read_manifest(data_dir).lengths
    stats = lengths.stats if lengths else None
    assert stats is not None and stats.tokens == sum(longer) and stats.max == max(longer)
    assert (
        tokenizer.decode(trainer.train_dataset[0]["chosen_ids"]).count("<|im_start|>") == 3
    )  # system, user, assistant


def test_curate_lengths_writes_the_recommendation_train_reads(latex_export: Path, tmp_path: Path) -> None:
    """`curate lengths EXPORT --max-length` saves into the export; `train sft` then uses that recommendation."""
    import shutil

    from typer.testing import CliRunner

    from curate.cli import app
    from curate.io.manifest import read_manifest
    from train.run import pick_max_length

    copy = tmp_path / "latex"
    shutil.copytree(latex_export, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["lengths"] = {"tokenizer": "other", "stats": None, "recommended_max_length": 4096}  # another model's
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["lengths", str(copy), "--tokenizer", "smollm2", "-q"])
    assert result.exit_code == 0, result.output
    saved = read_manifest(copy).lengths
    assert saved is not None and saved.tokenizer == "smollm2" and saved.recommended_max_length == 64
    recipe = load_recipe(SFTRecipe, None, {"model.name": "smollm2", "dataset.path": str(copy)})
    assert pick_max_length(recipe, load_data(str(copy), "sft"), None, quiet=True) == 64  # no recount needed
    assert "## Token lengths" in (copy / "README.md").read_text() and (copy / "lengths.png").is_file()


# -- see it: --inspect -------------------------------------------------------------------------------------


def test_train_sft_inspect_shows_what_the_trainer_keeps(tiny_lm: Path, latex_export: Path, tmp_path: Path) -> None:
    """`train sft --inspect`: the loss part and special tokens marked, and counts that match the real trainer's
    truncation and drops; no model loaded, no run directory written."""
    from typer.testing import CliRunner

    from train.cli import app

    out = tmp_path / "run"
    args = ["sft", "--data", str(latex_export), "--model", str(tiny_lm), "--out", str(out), "--max-length", "24"]
    result = CliRunner().invoke(app, [*args, "--inspect", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert result.output.count("#") >= 2 and "Convert English to LaTeX" in result.output
    assert "⟦" in result.output and "⟨<|im_end|>⟩⟧" in result.output and "✂ max_length 24 ✂" in result.output
    train_line = next(line for line in result.output.splitlines() if line.startswith("train: "))
    dropped = int(train_line.split(", ")[-1].split(" dropped")[0])
    trainer = sft_trainer(tiny_lm, latex_export, tmp_path / "real", max_length_override=24)
    rows = len(load_data(str(latex_export), "sft").dataset["train"])
    assert dropped > 0 and len(trainer.train_dataset) == rows - dropped
    assert all(len(r["input_ids"]) <= 24 for r in trainer.train_dataset)


def test_curate_build_inspect_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    source = write_rows(ROWS, tmp_path / "rows.jsonl")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", str(source), "--out", str(out), "--inspect", "3", "--test-size", "0"])
    assert result.exit_code == 0, result.output
    assert not out.exists()
    assert "⟦The sum is 4.⟨<|im_end|>⟩⟧" in result.output and "train: 3 rows" in result.output


def test_train_reward_inspect_shows_both_sides_and_the_pairs_over_max_length(smollm2: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from train.cli import app

    pairs = [
        {"prompt": "How do I exit Vim?", "chosen": "Press Esc, then type :q! and Enter.", "rejected": "Unplug it."},
        {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "Probably 5."},
    ]
    data_dir = export(tmp_path, pairs, kind="preference")
    args = ["reward", "--data", str(data_dir), "--model", str(smollm2), "--max-length", "30", "--inspect", "2", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "chosen · " in result.output and "rejected · " in result.output and "⟨<|im_start|>⟩user" in result.output
    assert "dropped: longer than max_length" in result.output  # the Vim pair, as chat turns, is over 30 tokens
    assert "train: 2 rows" in result.output and "1 dropped (a side longer than max_length)" in result.output
