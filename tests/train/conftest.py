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
