"""Shared `train` fixtures: SmolLM2-135M-Instruct materialized once from its GGUF, tiny random LMs, the latex export.

The materialized SmolLM2 lives in <repo>/.cache/curatrain (git-ignored) unless CURATRAIN_CACHE is
set, so local runs pay the GGUF dequantization once and CI pays it once per run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("CURATRAIN_CACHE", str(REPO / ".cache" / "curatrain"))


# Module scope: autouse fixtures come first within a scope, so module-scoped runs (tiny_run) get it too.
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Train on one CPU thread: on a busy 2-core machine two OpenMP threads spin-wait on each other.

    Measured here (load ~3.5): 3 LoRA steps on SmolLM2 took 4 s with one thread, 55 s with two.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct as a plain transformers checkpoint (dequantized from the packaged GGUF)."""
    from train.model import model_path

    return Path(model_path("smollm2"))


@pytest.fixture(scope="session")
def tiny_lm(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's real tokenizer, saved like a hub checkpoint."""
    from formatting_fixtures import save_tiny_lm
    from transformers import AutoTokenizer

    return save_tiny_lm(AutoTokenizer.from_pretrained(smollm2), tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def latex_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The English->LaTeX export built by `curate build recipes/latex-build.yaml`, into a temp dir."""
    from curate.pipeline import build
    from curate.recipe import apply_overrides, load_recipe

    out = tmp_path_factory.mktemp("exports") / "latex"
    cwd = os.getcwd()
    os.chdir(REPO)  # the recipe's input paths are relative to the repository root
    try:
        recipe = apply_overrides(load_recipe("recipes/latex-build.yaml"), {"out": str(out)})
        build(recipe, quiet=True)
    finally:
        os.chdir(cwd)
    return out


# -- tiny word-level models and runs for the alignment verbs (dpo, ppo, rloo, grpo) -------------------


@pytest.fixture(scope="session")
def word_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama over a 42-word vocabulary with a minimal chat template (reward_fixtures.py): every alignment
    test's base model; the template lets it train on conversations, as `curate build` writes SFT sets."""
    from reward_fixtures import save_llama, tiny_tokenizer

    return save_llama(tmp_path_factory.mktemp("word-lm"), tiny_tokenizer(chat_template=True), pad_token_id=None)


@pytest.fixture(scope="session")
def word_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A preference export (curate build) of 64 separable pairs over 8 questions, 25% test."""
    from reward_fixtures import build_export, toy_pairs

    return build_export(toy_pairs(64, seed=0), tmp_path_factory.mktemp("exports") / "word-pairs")


@pytest.fixture(scope="session")
def word_reward_run(word_lm: Path, word_pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `train reward` run on the word pairs: it scores answers with good/great/fine above bad/awful/wrong."""
    from train.reward import RewardRecipe, train_reward

    recipe = RewardRecipe.model_validate(
        {
            "model": {"name": str(word_lm)},
            "dataset": {"path": str(word_pairs)},
            "training": {"learning_rate": 5e-3, "batch_size": 8, "epochs": 2, "save_total_limit": 1},
            "memory": {"gradient_checkpointing": False},
            "logging": {"output_dir": str(tmp_path_factory.mktemp("runs") / "word-reward")},
        }
    )
    return train_reward(recipe, quiet=True).run_dir


@pytest.fixture(scope="session")
def word_sft_run(word_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `train sft` run (2 LoRA steps) on the word questions: the policy the alignment verbs start from."""
    from reward_fixtures import build_export, toy_pairs

    from train.config import SFTRecipe
    from train.sft import run_sft

    rows = [{"prompt": r["prompt"], "response": r["chosen"]} for r in toy_pairs(32, seed=1, margin=False)]
    export = build_export(rows, tmp_path_factory.mktemp("exports") / "word-sft", kind="instruction")
    recipe = SFTRecipe.model_validate(
        {
            "model": {"name": str(word_lm)},
            "dataset": {"path": str(export)},
            "training": {"learning_rate": 5e-3, "batch_size": 8, "max_steps": 2, "save_total_limit": 1},
            "memory": {"gradient_checkpointing": False},
            "logging": {"output_dir": str(tmp_path_factory.mktemp("runs") / "word-sft")},
            "generation": {"samples": 0},
        }
    )
    return run_sft(recipe, quiet=True)


@pytest.fixture(scope="session")
def wide_word_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The word-level Llama with std-0.3 weights: its logits span a real range, so RL on a rigged reward really
    collapses its sampled answers (at the default std 0.02 a 2-layer model's next-token distributions are near
    uniform: RL can only flip greedy argmaxes)."""
    from reward_fixtures import save_llama, tiny_tokenizer

    return save_llama(
        tmp_path_factory.mktemp("wide-word-lm"), tiny_tokenizer(), pad_token_id=None, initializer_range=0.3
    )
