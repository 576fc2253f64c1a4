"""Training recipes: every shipped SFT recipe validates, overrides are typed, workflow 4 is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.errors import CurateError
from train.config import SFTRecipe, load_recipe, parse_overrides
from train.data import load_data

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("name", ["latex-sft.yaml", "qa-sft.yaml", "llama2-qlora-sft.yaml"])
def test_sft_recipes_validate_and_open_with_their_command(name: str) -> None:
    recipe = load_recipe(SFTRecipe, RECIPES / name)
    assert recipe.model.name
    head = (RECIPES / name).read_text().splitlines()[:6]
    assert any(f"train sft --config recipes/{name}" in line for line in head)
    assert any("=" in line and line.lstrip().startswith("#") for line in head[2:])  # an override example


def test_llama2_qlora_recipe_has_the_workflow_4_hyperparameters() -> None:
    r = load_recipe(SFTRecipe, RECIPES / "llama2-qlora-sft.yaml")
    assert (r.memory.quantize, r.memory.quant_type, r.memory.double_quant) == ("4bit", "nf4", False)
    assert r.memory.compute_dtype == "auto" and r.model.dtype == "auto"  # fp16, bf16 when capability >= 8
    assert (r.lora.r, r.lora.alpha, r.lora.dropout, r.lora.bias) == (64, 16, 0.1, "none")
    t = r.training
    assert (t.optim, t.lr_scheduler, t.warmup_ratio, t.max_grad_norm) == ("paged_adamw_32bit", "cosine", 0.03, 0.3)
    assert (t.weight_decay, t.group_by_length, t.epochs) == (0.001, True, 1)
    assert r.memory.gradient_checkpointing and not r.dataset.packing
    assert (r.tokenizer.pad_token, r.tokenizer.padding_side) == ("eos", "right")


def test_overrides_are_parsed_as_yaml_and_applied_over_the_file() -> None:
    overrides = parse_overrides(["training.epochs=5", "lora.target_modules=[q_proj, v_proj]", "logging.report_to=none"])
    recipe = load_recipe(SFTRecipe, RECIPES / "latex-sft.yaml", overrides, {"training.seed": 7, "lora.r": None})
    assert recipe.training.epochs == 5.0
    assert recipe.lora.target_modules == ["q_proj", "v_proj"]
    assert recipe.training.seed == 7 and recipe.lora.r == 16  # None flags leave the file's value


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["epochs"], "overrides are KEY=VALUE"),
        (["training.learning_rate=-1"], "'training.learning_rate'"),
        (["memory.quantize=2bit"], "'memory.quantize'"),
        (["model=smollm2"], "'model'"),
    ],
)
def test_bad_overrides_name_the_key(pairs: list[str], message: str) -> None:
    with pytest.raises(CurateError, match=message):
        load_recipe(SFTRecipe, None, parse_overrides(pairs))


def test_any_saved_hf_dataset_in_a_trl_format_loads(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 4
    DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:2])}).save_to_disk(
        tmp_path / "chat"
    )
    data = load_data(str(tmp_path / "chat"), "sft")
    assert data.format == ("messages",) and len(data.eval) == 2 and not data.is_export and data.content_hash is None


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads_with_its_tools_model(path: Path) -> None:
    from curate.recipe import BuildRecipe
    from train.classify import ClassifyRecipe
    from train.dpo import DPORecipe
    from train.ppo import PPORecipe
    from train.reward import RewardRecipe
    from train.rl import RLRecipe

    models = {"build": BuildRecipe, "sft": SFTRecipe, "reward": RewardRecipe, "dpo": DPORecipe, "ppo": PPORecipe}
    model = {**models, "rloo": RLRecipe, "grpo": RLRecipe, "classify": ClassifyRecipe}[path.stem.rsplit("-", 1)[-1]]
    assert load_recipe(model, path)


def test_key_value_null_resets_a_key_the_file_set() -> None:
    from train.reward import RewardRecipe

    recipe = load_recipe(RewardRecipe, RECIPES / "qa-reward.yaml", parse_overrides(["tokenizer.max_length=null"]))
    assert recipe.tokenizer.max_length is None  # the file says 512; null means: the export's recommended length


@pytest.mark.parametrize("verb", ["sft", "reward", "dpo", "ppo", "rloo", "grpo", "classify"])
def test_help_lists_every_flag_and_key_with_its_default_at_80_columns(verb: str) -> None:
    import re

    from typer.testing import CliRunner

    from curate.config import default_of, iter_sections, show_value
    from train import options
    from train.classify import ClassifyRecipe
    from train.cli import app
    from train.dpo import DPORecipe
    from train.ppo import PPORecipe
    from train.reward import RewardRecipe
    from train.rl import RLRecipe

    result = CliRunner().invoke(app, [verb, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    names = ["--data", "--model", "--out", "--epochs", "--max-steps", "--lr", "--grad-accum"]
    names += ["--gradient-checkpointing", "--no-gradient-checkpointing", "--config", "--resume", "--quiet"]
    names += ["--margin", "--no-margin", "--center-rewards", "--lora", "--full"] if verb == "reward" else []
    if verb in ("dpo", "ppo", "rloo", "grpo"):  # the alignment verbs' shared flags, then each one's own
        names += ["--policy", "--reward", "--stop-on-collapse", "--no-stop-on-collapse", "--inspect"]
        names += {"dpo": ["--ref-model", "--beta", "--loss-type", "--label-smoothing"], "ppo": ["--kl-coef"]}.get(
            verb, ["--beta", "--num-generations"]
        )
    names += ["--lora", "--full", "--train-last", "--freeze-layers", "--best-metric"] if verb == "classify" else []
    names += ["--quantize"] if verb != "classify" else []  # encoders train unquantized
    for name in names:  # whole, never cut to fit a column
        assert re.search(rf"(^|[ ,/]){re.escape(name)}([ ,/]|$)", result.output, re.M), name
    text = " ".join(result.output.split())
    assert "--epochs <float> Training epochs. [default: 3.0]" in text  # help and default from the field
    assert ("--quantize [none|4bit|8bit]" in text) == (verb != "classify")
    models = {"reward": RewardRecipe, "dpo": DPORecipe, "ppo": PPORecipe, "sft": SFTRecipe, "classify": ClassifyRecipe}
    model = models.get(verb, RLRecipe)
    for _, _, _, keys in iter_sections(model):
        for key, _ in keys:  # the verb's own defaults: a recipe's section factory wins over the section class
            assert f"{key}={show_value(default_of(model, key))}" in result.output, key
    if verb == "classify":  # a full fine-tune of an encoder at its own rate, not the LLM verbs' LoRA at 2e-4
        assert "lora.enabled=false" in result.output and "training.learning_rate=5e-05" in result.output
        assert "--lora / --full Train a LoRA adapter; false: a full fine-tune. [default: false]" in text
        assert "--lr <float> Peak learning rate. [default: 5e-05]" in text
    assert len(options.TRAIN_FLAGS) < 16  # flags for the everyday keys only; the rest are KEY=VALUE
