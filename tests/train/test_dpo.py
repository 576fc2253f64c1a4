"""`train dpo`: DPO raises the chosen-vs-rejected margin, the reference is never a second model copy,
prompts reach the trainer in the policy's format, and bad inputs are one clear line.

Runs on the 2-layer word-level Llama (reward_fixtures.py) and, for the chat format, a tiny Llama with
SmolLM2's tokenizer (conftest.py `tiny_lm`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from reward_fixtures import build_export
from typer.testing import CliRunner

from curate.errors import CurateError
from train.cli import app
from train.config import load_recipe
from train.dpo import DPORecipe, dpo_inputs, run_dpo


def dpo_recipe(base: Path | None, data: Path, out: Path, **sections: dict) -> DPORecipe:
    """A CPU-sized DPO recipe: fresh LoRA, a high learning rate, eval each epoch, no mid-run held-out checks."""
    raw: dict = {
        "model": {"name": str(base) if base else None},
        "dataset": {"path": str(data)},
        "training": {"learning_rate": 5e-3, "batch_size": 8, "epochs": 3, "save_total_limit": 1},
        "memory": {"gradient_checkpointing": False},
        "logging": {"output_dir": str(out), "logging_steps": 1},
        "degeneration": {"max_new_tokens": 8, "check_every": 0},
    }
    return load_recipe(DPORecipe, None, raw, sections)  # each section merged into raw's


@pytest.fixture(scope="module")
def dpo_run(word_lm: Path, word_pairs: Path, word_reward_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three epochs of DPO with a fresh LoRA adapter; held-out answers scored by the reward run."""
    out = tmp_path_factory.mktemp("runs") / "word-dpo"
    return run_dpo(dpo_recipe(word_lm, word_pairs, out, reward_model={"run": str(word_reward_run)}), quiet=True)


def test_dpo_raises_the_margin_with_no_second_model(dpo_run):
    """Per-epoch eval margins grow from 0 (policy = reference at the start); TRL keeps ref_model None under PEFT."""
    assert dpo_run.trainer.ref_model is None
    assert type(dpo_run.trainer.model).__name__ == "PeftModelForCausalLM"  # the reference: this model, adapter off
    card = dpo_run.card
    first_log = next(e for e in card["loss_curve"] if "loss" in e)
    history = dpo_run.trainer.state.log_history
    assert next(e for e in history if "rewards/margins" in e)["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    curve = card["reward_curve"]
    assert [round(e["epoch"]) for e in curve] == [1, 2, 3]
    margins = [e["reward_margin"] for e in curve]
    assert 0 < margins[0] < margins[-1]
    assert curve[-1]["reward_accuracy"] >= 0.9
    assert first_log["loss"] == pytest.approx(0.6931, abs=1e-3)  # −log σ(0): the sigmoid loss starts at ln 2
    assert card["verb"] == "dpo" and card["policy"]["reference"] == "the policy with its adapter disabled"
    assert card["metrics"]["eval_rewards/accuracies"] >= 0.9


def test_dpo_card_has_the_held_out_check_before_and_after(dpo_run, word_pairs: Path):
    card = json.loads((dpo_run.run_dir / "run_card.json").read_text())
    degeneration = card["degeneration"]
    assert degeneration["held_out"] and degeneration["prompts"] > 0
    for side in ("before", "after"):
        assert {"mean_reward", "distinct_1", "distinct_2", "mean_words", "identical_share"} <= set(degeneration[side])
    manifest = json.loads((word_pairs / "manifest.json").read_text())
    assert card["data"]["content_hash"] == manifest["content_hash"]
    assert (dpo_run.run_dir / "adapter_model.safetensors").is_file()


def test_dpo_from_an_sft_run_uses_that_run_as_reference(word_pairs: Path, word_sft_run: Path, tmp_path: Path):
    """Policy = the SFT run's adapter; the reference is a frozen copy of it, so the first step's margins are 0."""
    recipe = dpo_recipe(
        None, word_pairs, tmp_path / "run", policy={"run": str(word_sft_run)}, training={"max_steps": 2}
    )
    run = run_dpo(recipe, quiet=True)
    assert run.trainer.ref_model is None and "ref" in run.trainer.model.peft_config
    first = next(e for e in run.trainer.state.log_history if "rewards/margins" in e)
    # The reference is the SFT policy itself: had TRL disabled the adapter instead, these would be far from 0.
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-6)
    sft_card = json.loads((word_sft_run / "run_card.json").read_text())
    assert run.card["base_model"] == sft_card["base_model"] and run.card["lora"] == sft_card["lora"]
    assert run.card["policy"] == {"run": str(word_sft_run), "reference": "frozen copy of the policy run's adapter"}


def test_a_separate_reference_model_when_asked(word_lm: Path, word_pairs: Path, tmp_path: Path):
    recipe = dpo_recipe(
        word_lm, word_pairs, tmp_path / "run", dpo={"ref_model": str(word_lm)}, training={"max_steps": 1}
    )
    run = run_dpo(recipe, quiet=True)
    assert run.trainer.ref_model is not None and run.card["policy"]["reference"] == str(word_lm)


def test_pairs_reach_the_trainer_rendered_as_the_policy_reads_prompts(tiny_lm: Path, word_pairs: Path):
    """The ids DPOTrainer trains on: the prompt exactly as the policy is prompted at generation, then each answer.

    No policy run + a tokenizer with a chat template: bare pairs become chat turns; a policy trained on plain
    strings: plain strings. Checked on the trainer's own prepared rows (SmolLM2's tokenizer).
    """
    from trl import DPOConfig

    from train.dpo import rendered_dpo_trainer, rendered_pairs
    from train.model import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_lm))
    recipe = dpo_recipe(tiny_lm, word_pairs, Path("unused"))
    chat = dpo_inputs(recipe, None)
    assert chat is not None and chat.prompt_format.conversational
    rows = rendered_pairs(chat.data.dataset["train"].select(range(3)), chat.renderer)
    trainer = rendered_dpo_trainer()(
        model=str(tiny_lm),
        args=DPOConfig(output_dir="/tmp/unused-dpo", report_to="none", bf16=False, max_steps=1),
        train_dataset=rows,
        processing_class=tokenizer,
    )
    prepared, raw = trainer.train_dataset[0], chat.data.dataset["train"][0]
    assert {k: prepared[k] for k in rows.column_names} == rows[0]  # TRL re-tokenizes nothing
    prompt = chat.prompt_format.prompts([raw["prompt"]], tokenizer)[0]  # what generation feeds the policy
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    assert prepared["prompt_ids"] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(prepared["chosen_ids"]) == raw["chosen"] + "<|im_end|>"
    assert tokenizer.decode(prepared["rejected_ids"]) == raw["rejected"] + "<|im_end|>"

    plain = dpo_inputs(recipe, {"data": {"template": None, "format": "prompt-completion"}})
    assert plain is not None and not plain.prompt_format.conversational
    row = rendered_pairs(plain.data.dataset["train"].select(range(1)), plain.renderer)[0]
    assert tokenizer.decode(row["prompt_ids"] + row["chosen_ids"]) == raw["prompt"] + raw["chosen"] + "<|im_end|>"


def test_a_non_preference_export_is_one_clear_line_and_writes_nothing(word_lm: Path, tmp_path: Path):
    rows = [{"prompt": f"how do i make {t} ?", "response": "good"} for t in ("tea", "bread", "eggs", "rust")]
    export = build_export(rows, tmp_path / "sft-export", kind="instruction")
    out = tmp_path / "run"
    with pytest.raises(CurateError, match=r"'instruction' export .* cannot train `train dpo`.*preference"):
        run_dpo(dpo_recipe(word_lm, export, out), quiet=True)
    result = CliRunner().invoke(app, ["dpo", "--data", str(export), "--model", str(word_lm), "--out", str(out), "-q"])
    assert result.exit_code == 1 and result.output.startswith("error: ") and "Traceback" not in result.output
    assert not out.exists()


def test_inspect_prints_the_pairs_and_writes_nothing(word_lm: Path, word_pairs: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["dpo", "--data", str(word_pairs), "--model", str(word_lm), "--out", str(out),
                                      "--inspect", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "train dpo · word-pairs · first 1 train examples" in result.stdout
    assert "#1 " in result.stdout and "chosen · " in result.stdout and "rejected · " in result.stdout
    assert "#2 " not in result.stdout and "test: " in result.stdout  # the counts of every split
    assert not out.exists()


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"training": {"group_by_length": True}}, "training.group_by_length is not supported by `train dpo`"),
        ({"memory": {"quantize": "4bit"}, "lora": {"enabled": False}}, "--quantize 4bit needs LoRA"),
        ({"model": {"name": None}}, "no policy: pass --policy SFT_RUN_DIR or --model NAME"),
        ({"dataset": {"path": None}}, "no training data: pass --data EXPORT_DIR"),
    ],
)
def test_a_recipe_that_cannot_start_is_one_line_before_anything_loads(keys, says, word_lm, word_pairs, tmp_path):
    with pytest.raises(CurateError, match=re.escape(says)):
        run_dpo(dpo_recipe(word_lm, word_pairs, tmp_path / "run", **keys), quiet=True)
    assert not (tmp_path / "run").exists()


def test_an_unknown_loss_type_is_refused_when_the_recipe_is_read(word_pairs: Path, tmp_path: Path):
    with pytest.raises(CurateError, match=r"'dpo.loss_type'"):
        load_recipe(DPORecipe, None, {"dpo.loss_type": "sigmoidd", "dataset.path": str(word_pairs)})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bitsandbytes 4-bit)")
def test_qlora_dpo_from_an_sft_run_on_gpu(word_pairs: Path, word_sft_run: Path, tmp_path: Path):
    recipe = dpo_recipe(
        None, word_pairs, tmp_path / "run", policy={"run": str(word_sft_run)}, memory={"quantize": "4bit"}
    )
    run = run_dpo(recipe, quiet=True)
    assert run.trainer.ref_model is None and run.trainer.model.is_loaded_in_4bit
    assert run.card["reward_curve"][-1]["reward_margin"] > 0
