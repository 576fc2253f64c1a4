"""One install per role: which optional dependencies ("extras" of pyproject.toml) each role needs.

`pip install curatrain[review]` serves the review app (no torch), `[curate]` builds datasets with
semantic dedupe and token lengths, `[train]` fine-tunes; `[all]` is everything. A verb whose
extra is missing stops with one line saying what to install, before it imports anything of it.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

from curate.errors import CurateError

# Extra -> the modules (import names) it installs that its verbs import. Keep in step with pyproject.toml.
# A module in several extras is named by the first (e.g. a `curate` verb missing torch: the curate extra).
EXTRAS: dict[str, tuple[str, ...]] = {
    "review": ("streamlit", "sqlalchemy", "alembic", "bcrypt", "krippendorff", "scipy"),
    "curate": ("sentence_transformers", "torch", "faiss", "onnxruntime", "transformers", "gguf", "matplotlib"),
    "train": ("torch", "transformers", "trl", "peft", "accelerate", "gguf", "scipy", "sklearn"),
    "judge": ("openai",),
    "gpu": ("bitsandbytes",),
    "postgres": ("psycopg",),
}


def missing(extra: str) -> list[str]:
    """The modules of `extra` that are not installed (found without importing them)."""
    return [module for module in EXTRAS[extra] if find_spec(module) is None]


def extra_providing(module: str) -> str | None:
    """The extra that installs `module` (a dotted name counts by its package), or None for no extra of ours."""
    package = module.split(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if package in modules), None)


def require(extra: str, what: str) -> None:
    """CurateError naming the install command when `what` (a verb) cannot run without `extra`."""
    absent = missing(extra)
    if absent:
        raise CurateError(
            f"{what} needs the {extra} extra ({', '.join(absent)} not installed): pip install 'curatrain[{extra}]'"
        )


def train_main() -> None:
    """The `train` console script: one line when the train extra is missing, else train's command line.

    Every train module imports torch at the top, so the check runs before any of them is imported.
    """
    from curate.console import fail

    try:
        require("train", "train")
    except CurateError as exc:
        fail(str(exc))  # the one red line
        sys.exit(1)
    from train.cli import main

    main()
