"""The export's recommended max_length is in its build tokenizer's tokens: `train` recounts for another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reward_fixtures import save_llama
from typer.testing import CliRunner

from curate.hub import same_model
from curate.io.manifest import read_manifest
from curate.lengths import length_stats, recommended_max_length, token_counts
from curate.render import Renderer
from train.card import read_run_card
from train.cli import app
from train.data import export_max_length, load_data


def test_names_of_one_model_count_as_the_same_tokenizer(smollm2: Path, tmp_path: Path) -> None:
    assert same_model("smollm2", "smollm2") and same_model("smollm2", "SmolLM2-135M-Instruct")
    assert same_model(str(smollm2), str(smollm2) + "/") and same_model("gpt2", "gpt2")
    relative = Path("..") / smollm2.parent.name / smollm2.name
    assert same_model(str(smollm2), str(smollm2.parent / relative))  # one directory, two spellings
    assert not same_model("smollm2", "meta-llama/Llama-2-7b-hf") and not same_model("smollm2", str(smollm2))


def test_the_build_tokenizer_keeps_the_export_recommendation_without_counting(latex_export: Path) -> None:
    data = load_data(str(latex_export), "sft")
    lengths = read_manifest(latex_export).lengths
    assert lengths is not None and lengths.tokenizer == "smollm2"
    for name in ("smollm2", "SmolLM2-135M-Instruct"):
        value, why = export_max_length(data, name, renderer=None)  # None: any recount would fail
        assert value == lengths.recommended_max_length and why == "the export's recommendation (counted with smollm2)"


def char_level_lm(path: Path, text: str) -> Path:
    """A tiny random Llama whose tokenizer has one token per character: far more tokens per row than SmolLM2's."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    chars = ["<unk>", "<eos>", *sorted(set(text) | {chr(i) for i in range(32, 127)} | {"\n"})]
    backend = Tokenizer(models.BPE({c: i for i, c in enumerate(chars)}, [], unk_token="<unk>"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")
    return save_llama(path, tokenizer, num_hidden_layers=1, max_position_embeddings=1024)


def test_train_sft_recounts_max_length_with_the_model_tokenizer_and_says_so(
    latex_export: Path, repo: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    model = char_level_lm(tmp_path / "char-lm", (repo / "data" / "latex" / "pairs.jsonl").read_text())
    data = load_data(str(latex_export), "sft")
    rows = [row for split in data.dataset.values() for row in split]
    tokenizer = AutoTokenizer.from_pretrained(model)
    p99 = length_stats(token_counts(rows, Renderer(tokenizer))).p99
    expected = recommended_max_length(p99)
    exported = read_manifest(latex_export).lengths
    assert exported is not None and expected > exported.recommended_max_length  # SmolLM2's count would truncate

    args = ["sft", "--data", str(latex_export), "--model", str(model), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--max-steps", "1", "--no-gradient-checkpointing"])
    assert result.exit_code == 0, result.output
    line = f"max_length {expected}: recounted with {model}'s tokenizer (p99 {p99:g} tokens): the export's "
    assert line + f"{exported.recommended_max_length} was counted with smollm2" in " ".join(result.stdout.split())
    card = read_run_card(tmp_path / "run")
    assert card["hyperparameters"]["max_length"] == expected
    assert json.loads((tmp_path / "run" / "run_card.json").read_text())["hyperparameters"]["max_length"] == expected


@pytest.mark.parametrize("given", [None, 48])
def test_a_recipe_max_length_wins_and_plain_datasets_have_no_recommendation(
    given: int | None, latex_export: Path, tmp_path: Path
) -> None:
    from train.config import SFTRecipe, load_recipe
    from train.run import DEFAULT_MAX_LENGTH, pick_max_length

    (tmp_path / "plain.jsonl").write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    recipe = load_recipe(SFTRecipe, None, {}, {"model.name": "gpt2", "tokenizer.max_length": given})
    plain = load_data(str(tmp_path / "plain.jsonl"), "sft")
    assert pick_max_length(recipe, plain, renderer=None, quiet=True) == (given or DEFAULT_MAX_LENGTH)
    assert export_max_length(plain, "gpt2", None) == (None, "the data has no token-length analysis")
