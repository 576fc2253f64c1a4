"""The LaTeX export plugs straight into TRL's SFTTrainer (prompt-completion format)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datasets import load_dataset

from curate.hub import load_tokenizer
from curate.pipeline import build
from curate.recipe import BuildRecipe

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.slow
def test_sft_trainer_accepts_the_latex_export(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    recipe = BuildRecipe(
        inputs=[str(DATA / "latex")],
        out=str(tmp_path / "latex"),
        map={"english": "prompt", "latex": "response"},
        template="latex",
    )
    build(recipe, quiet=True)
    ds = load_dataset("parquet", data_dir=str(tmp_path / "latex" / "data"))

    tokenizer = load_tokenizer("smollm2")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    args = SFTConfig(
        output_dir=str(tmp_path / "run"), max_steps=4, per_device_train_batch_size=4, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, max_length=128, seed=0,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=ds["train"], eval_dataset=ds["test"], processing_class=tokenizer
    )
    labels = trainer.train_dataset[0]["labels"]
    assert labels[0] == -100 and labels[-1] != -100  # only the completion is trained on
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert trainer.state.global_step == 4 and all(math.isfinite(x) for x in losses)
    assert math.isfinite(trainer.evaluate()["eval_loss"])
