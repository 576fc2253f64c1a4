"""Test-wide settings: never reach a model hub, never use the user's caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


@pytest.fixture
def repo() -> Path:
    """The repository root (for data/ and recipes/)."""
    return REPO
