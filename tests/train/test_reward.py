"""`train reward`: TRL's loss is the formula, training separates a toy set, LoRA reward models reload with their head.

Most tests run on a 2-layer Llama and a word-level tokenizer built in code (tests/train/reward_fixtures.py);
one checks the chat-template path on the real SmolLM2-135M-Instruct (the `smollm2` fixture of conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from reward_fixtures import build_export, save_tiny_base, tiny_tokenizer, toy_pairs, write_jsonl
from typer.testing import CliRunner

from curate.errors import CurateError
from curate.render import Renderer
from train.cli import app
from train.reward import RewardRecipe, build_trainer, pairwise_accuracy, rating_spearman, train_reward
from train.score import load_reward_model, reward_scores


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal LM checkpoint on disk, loaded the way users load a hub model."""
    return save_tiny_base(tmp_path_factory.mktemp("tiny-base"))


def recipe_for(base: Path, data: Path | None = None, out: Path | None = None, **sections: dict) -> RewardRecipe:
    """A CPU-sized reward recipe on the tiny base."""
    raw: dict = {
        "model": {"name": str(base)},
        "dataset": {"path": str(data) if data else None},
        "training": {"learning_rate": 5e-3, "batch_size": 8, "epochs": 4, "save_total_limit": 1},
        "memory": {"gradient_checkpointing": False},
        "logging": {"output_dir": str(out) if out else None, "logging_steps": 1},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return RewardRecipe.model_validate(raw)


def seq_cls_model(base: Path) -> tuple:
    from transformers import AutoModelForSequenceClassification

    from train.model import load_model, load_tokenizer

    recipe = recipe_for(base)
    model = load_model(recipe.model, recipe.memory, AutoModelForSequenceClassification, num_labels=1)
    return model, load_tokenizer(str(base))


@pytest.mark.parametrize(("use_margin", "center"), [(True, None), (False, None), (True, 0.01)])
def test_trl_loss_is_the_pairwise_formula(tiny_base: Path, tmp_path: Path, use_margin: bool, center: float | None):
    """RewardTrainer.compute_loss == -log σ(r_c − r_r − m).mean() + c·mean((r_c + r_r)²), rewards computed by us."""
    from datasets import Dataset

    model, tokenizer = seq_cls_model(tiny_base)
    rows = toy_pairs(6, seed=1)
    rows[0]["margin"], rows[1]["margin"] = 0.0, 3.0  # a zero and a large margin in the same batch
    recipe = recipe_for(tiny_base, reward={"use_margin": use_margin, "center_rewards_coefficient": center})
    trainer = build_trainer(model, tokenizer, recipe, Dataset.from_list(rows), None, tmp_path, 128)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    assert ("margin" in batch) is use_margin
    assert len({int(n) for n in batch["attention_mask"].sum(1)}) > 1  # rows of different lengths: padding in play

    loss = trainer.compute_loss(trainer.model, batch)

    answers = [(r["prompt"], r["chosen"]) for r in rows] + [(r["prompt"], r["rejected"]) for r in rows]
    rewards = torch.tensor(reward_scores(trainer.model, tokenizer, answers, Renderer(tokenizer), batch_size=4))
    chosen, rejected = rewards[: len(rows)], rewards[len(rows) :]
    margin = torch.tensor([r["margin"] for r in rows]) if use_margin else torch.zeros(len(rows))
    expected = -torch.nn.functional.logsigmoid(chosen - rejected - margin).mean()
    if center is not None:
        expected = expected + center * ((chosen + rejected) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert loss.item() > 0.05  # a random head: the loss is far from 0, so the comparison means something


def test_scoring_tokenizes_like_the_trainer_for_chat_data(tiny_base: Path, tmp_path: Path):
    """`train score` feeds the model the ids RewardTrainer trained on; untemplated strings become chat turns."""
    from datasets import Dataset

    model, _ = seq_cls_model(tiny_base)
    tokenizer = tiny_tokenizer(chat_template=True)
    tokenizer.pad_token = tokenizer.eos_token
    renderer = Renderer(tokenizer, chat_strings=True)
    rows = toy_pairs(3, seed=2, margin=False)
    trainer = build_trainer(
        model, tokenizer, recipe_for(tiny_base), Dataset.from_list(rows), None, tmp_path, 128, renderer=renderer
    )
    eos = tokenizer.eos_token_id
    for row, prepared in zip(rows, trainer.train_dataset, strict=True):
        assert renderer.answers([(row["prompt"], row["chosen"])])[0].input_ids == prepared["chosen_ids"]
        assert renderer.answers([(row["prompt"], row["rejected"])])[0].input_ids == prepared["rejected_ids"]
        assert prepared["chosen_ids"][0] == tokenizer.convert_tokens_to_ids("<|user|>")
        # one end token closes each turn; the sequence ends on it (the head reads the last token)
        assert prepared["chosen_ids"][-1] == eos and prepared["chosen_ids"].count(eos) == 2


@pytest.mark.slow
def test_smollm2_chat_pairs_match_the_formula(smollm2: Path, tmp_path: Path):
    """The real SmolLM2 with its chat template, on rated Q&A pairs: same ids as TRL, same loss as the formula."""
    from datasets import Dataset

    model, tokenizer = seq_cls_model(smollm2)
    fmt = Renderer(tokenizer, chat_strings=True)
    rows = [
        {"prompt": "How do I exit Vim?", "chosen": "Press Esc, then type :q! and Enter.", "rejected": "Unplug it."},
        {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "Probably 5, give or take.", "margin": 2.0},
    ]
    rows[0]["margin"] = 6.5
    trainer = build_trainer(
        model, tokenizer, recipe_for(smollm2), Dataset.from_list(rows), None, tmp_path, 512, renderer=fmt
    )
    for row, prepared in zip(rows, trainer.train_dataset, strict=True):
        assert fmt.answers([(row["prompt"], row["chosen"])])[0].input_ids == prepared["chosen_ids"]
    batch = trainer.data_collator(list(trainer.train_dataset))
    loss = trainer.compute_loss(trainer.model, batch)
    answers = [(r["prompt"], r["chosen"]) for r in rows] + [(r["prompt"], r["rejected"]) for r in rows]
    rewards = torch.tensor(reward_scores(trainer.model, tokenizer, answers, fmt, batch_size=4))
    expected = -torch.nn.functional.logsigmoid(rewards[:2] - rewards[2:] - torch.tensor([6.5, 2.0])).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-4)


@pytest.fixture(scope="module")
def toy_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real preference export (curate build) of 64 separable pairs with ratings, 25% test."""
    return build_export(toy_pairs(64, seed=0), tmp_path_factory.mktemp("exports") / "toy-pairs")


@pytest.fixture(scope="module")
def lora_run(tiny_base: Path, toy_export: Path, tmp_path_factory: pytest.TempPathFactory):
    """A LoRA reward model trained for a few epochs on the toy export."""
    out = tmp_path_factory.mktemp("runs") / "toy-reward"
    return train_reward(recipe_for(tiny_base, toy_export, out), quiet=True)


def test_reward_training_separates_the_toy_set(lora_run, toy_export: Path):
    """A few LoRA epochs push test pairwise accuracy far above chance and rewards track the ratings."""
    card = json.loads((lora_run.run_dir / "run_card.json").read_text())
    losses = [point["loss"] for point in card["loss_curve"] if "loss" in point]
    assert losses[-1] < losses[0]
    assert card["metrics"]["test_pairs"] == 16
    assert card["metrics"]["test_pairwise_accuracy"] >= 0.9
    assert card["metrics"]["test_spearman_vs_mean_rating"] > 0.5
    manifest = json.loads((toy_export / "manifest.json").read_text())
    assert card["data"]["content_hash"] == manifest["content_hash"]
    assert card["verb"] == "reward" and card["data"]["margin"] is True
    assert card["throughput"]["train_tokens"] > 0


def test_lora_reward_model_reloads_with_its_trained_head(lora_run, tiny_base: Path):
    """The `score` head is saved with the adapter (modules_to_save): reloaded rewards equal the trained ones."""
    from safetensors import safe_open

    with safe_open(str(lora_run.run_dir / "adapter_model.safetensors"), "pt") as weights:
        assert any(".score." in key for key in weights.keys())  # noqa: SIM118 (safe_open has no __iter__)
    answers = [(r["prompt"], r["chosen"]) for r in toy_pairs(5, seed=9)]
    trained = reward_scores(lora_run.model, lora_run.tokenizer, answers, lora_run.renderer)
    model, tokenizer, fmt = load_reward_model(lora_run.run_dir)
    assert reward_scores(model, tokenizer, answers, fmt) == pytest.approx(trained, abs=1e-5)
    # Without the saved head the base's freshly initialised head would answer: different rewards.
    fresh, fresh_tokenizer = seq_cls_model(tiny_base)
    assert reward_scores(fresh, fresh_tokenizer, answers, fmt) != pytest.approx(trained, abs=1e-3)


def test_a_recipe_trains_the_same_reward_model_whatever_ran_before_it(tiny_base: Path, toy_export: Path, tmp_path):
    """The new adapter and head are drawn from training.seed (train/run.py open_run), not from the state the
    process's generators were left in: two runs of one recipe after different draws save the same weights."""
    from safetensors.torch import load_file

    saved = []
    for before in (1, 2):
        torch.manual_seed(before)
        recipe = recipe_for(tiny_base, toy_export, tmp_path / f"run{before}", training={"max_steps": 2})
        run = train_reward(recipe, quiet=True)
        saved.append(load_file(str(run.run_dir / "adapter_model.safetensors")))
    assert saved[0].keys() == saved[1].keys()
    assert all(torch.equal(saved[0][key], saved[1][key]) for key in saved[0])


def test_batches_of_several_answers_are_padded_correctly(lora_run):
    """The base tokenizer has no pad token; the run's has one, and batched rewards equal one-by-one rewards."""
    assert tiny_tokenizer().pad_token is None
    model, tokenizer, fmt = load_reward_model(lora_run.run_dir)
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    answers = [(r["prompt"], r["rejected"]) for r in toy_pairs(7, seed=3)]
    assert len({len(example.input_ids) for example in fmt.answers(answers)}) > 1
    one_by_one = reward_scores(model, tokenizer, answers, fmt, batch_size=1)
    assert reward_scores(model, tokenizer, answers, fmt, batch_size=7) == pytest.approx(one_by_one, abs=1e-5)


def test_full_fine_tune_saves_a_standalone_reward_model(tiny_base: Path, toy_export: Path, tmp_path: Path):
    """`--full` trains every weight; the run directory holds a whole seq-cls model that reloads the same."""
    recipe = recipe_for(tiny_base, toy_export, tmp_path / "full", lora={"enabled": False}, training={"max_steps": 3})
    run = train_reward(recipe, quiet=True)
    assert not (run.run_dir / "adapter_config.json").exists()
    answers = [(r["prompt"], r["chosen"]) for r in toy_pairs(4, seed=5)]
    trained = reward_scores(run.model, run.tokenizer, answers, run.renderer)
    model, tokenizer, fmt = load_reward_model(run.run_dir)
    assert reward_scores(model, tokenizer, answers, fmt) == pytest.approx(trained, abs=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (mixed-precision path)")
def test_mixed_precision_reward_run_reloads_on_gpu(tiny_base: Path, toy_export: Path, tmp_path: Path):
    """On a GPU the base loads in half precision: the head trains in fp32 and the reloaded model agrees."""
    run = train_reward(recipe_for(tiny_base, toy_export, tmp_path / "gpu"), quiet=True)
    head = [p for n, p in run.model.named_parameters() if ".score." in n and p.requires_grad]
    assert head and all(p.dtype == torch.float32 for p in head)
    assert run.metrics["test_pairwise_accuracy"] >= 0.9
    answers = [(r["prompt"], r["chosen"]) for r in toy_pairs(5, seed=9)]
    trained = reward_scores(run.model, run.tokenizer, answers, run.renderer)
    model, tokenizer, fmt = load_reward_model(run.run_dir)
    assert next(model.parameters()).is_cuda
    assert reward_scores(model, tokenizer, answers, fmt) == pytest.approx(trained, rel=0.05, abs=0.05)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bitsandbytes 4-bit)")
def test_qlora_reward_run_reloads_on_gpu(tiny_base: Path, toy_export: Path, tmp_path: Path):
    """`--quantize 4bit`: nf4 base + LoRA + fp32 head train, and score the same after reload on the 4-bit base."""
    memory = {"quantize": "4bit", "gradient_checkpointing": True}
    run = train_reward(recipe_for(tiny_base, toy_export, tmp_path / "qlora", memory=memory), quiet=True)
    assert run.metrics["test_pairwise_accuracy"] >= 0.9
    answers = [(r["prompt"], r["chosen"]) for r in toy_pairs(5, seed=9)]
    trained = reward_scores(run.model, run.tokenizer, answers, run.renderer)
    model, tokenizer, fmt = load_reward_model(run.run_dir)
    assert getattr(model, "is_loaded_in_4bit", False) or model.base_model.model.is_loaded_in_4bit
    assert reward_scores(model, tokenizer, answers, fmt) == pytest.approx(trained, rel=0.05, abs=0.05)


def test_sft_export_is_refused_with_one_clear_error(tiny_base: Path, tmp_path: Path):
    rows = [{"prompt": f"how do i make {t} ?", "response": "good"} for t in ("tea", "bread", "eggs", "rust")]
    export = build_export(rows, tmp_path / "sft-export", kind="instruction")
    with pytest.raises(CurateError, match=r"'instruction' export .* cannot train `train reward`.*preference"):
        train_reward(recipe_for(tiny_base, export, tmp_path / "run"), quiet=True)
    result = CliRunner().invoke(app, ["reward", "--data", str(export), "--model", str(tiny_base), "--quiet"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output


def test_missing_rejected_column_is_one_clear_error(tiny_base: Path, tmp_path: Path):
    data = write_jsonl([{"prompt": "how do i make tea ?", "chosen": "good"}], tmp_path / "pairs.jsonl")
    with pytest.raises(CurateError, match=r"missing columns for `train reward`: it needs chosen\+rejected"):
        train_reward(recipe_for(tiny_base, data, tmp_path / "run"), quiet=True)


def test_pairwise_metrics():
    assert pairwise_accuracy([2.0, 1.0, 0.0, 3.0], [1.0, 1.0, 1.0, -1.0]) == 0.5  # ties do not count
    assert rating_spearman([0.1, 0.5, 0.9, 0.2], [2.0, 6.0, 9.0, 3.0]) == pytest.approx(1.0)
    assert rating_spearman([0.1, 0.5], [2.0, 6.0]) is None  # too few answers to rank


def test_dpo_with_peft_holds_no_second_model_copy(tiny_base: Path, tmp_path: Path):
    """For DPO later: with a PEFT adapter, TRL's DPOTrainer uses the adapter-disabled base as reference.

    trl 1.16 DPOTrainer.__init__ sets `self.ref_model = None` when the model is a PEFT model and no
    ref_model is given; reference log-probs then come from the same weights with adapters disabled.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    args = DPOConfig(output_dir=str(tmp_path), bf16=False, report_to="none", max_steps=1, gradient_checkpointing=False)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(toy_pairs(4, margin=False)),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    assert trainer.ref_model is None
    assert type(trainer.model).__name__ == "PeftModelForCausalLM"  # the reference is this model, adapters off


def test_loading_a_reward_model_reports_nothing_about_its_new_head(lora_run, tiny_base: Path):
    """transformers reports the `score` head a causal LM checkpoint lacks as a MISSING table with ANSI codes.

    It is the head `train reward` trains, and the one `train score` loads from the adapter right after: noise.
    """
    import logging

    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.WARNING)
    library = logging.getLogger("transformers")  # transformers' loggers stop here (propagate=False)
    library.addHandler(handler)
    try:
        seq_cls_model(tiny_base)  # as `train reward` loads its base
        load_reward_model(lora_run.run_dir)  # as `train score` loads a run
    finally:
        library.removeHandler(handler)
    assert [record.getMessage() for record in records] == []
