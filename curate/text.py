"""Text normalization shared by the build steps."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
_ANY_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Unicode NFC, \\n line endings, no trailing spaces, at most one blank line, stripped.

    Spaces inside a line are kept: indentation in code and LaTeX matters.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACE.sub("\n", text)
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def match_key(text: str, lowercase: bool = False) -> str:
    """The form two texts are compared in for exact dedupe: NFC, all whitespace runs as one space."""
    key = _ANY_SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return key.casefold() if lowercase else key


def match_value(value: Any, lowercase: bool = False) -> Any:
    """`match_key` of a text, or of each turn's content in a list of {role, content} turns (roles kept)."""
    if isinstance(value, str):
        return match_key(value, lowercase)
    if isinstance(value, list) and all(isinstance(turn, dict) and "content" in turn for turn in value):
        return [[turn.get("role"), match_key(turn["content"], lowercase)] for turn in value]
    return value
