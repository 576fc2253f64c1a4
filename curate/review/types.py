"""Value types and validators of the review store: tasks, imported items, names, ratings, database URLs."""

from __future__ import annotations

import hashlib
import json
import math
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from curate.errors import CurateError

ENV_DB = "CURATRAIN_REVIEW_DB"
MODES = ("rate", "compare")  # how labelers review: score one answer, or compare an item's answers side by side
DEFAULT_DB = "sqlite:///review.db"
ENV_EXPORTS = "CURATRAIN_REVIEW_EXPORTS"  # where the review app writes exports (`curate review serve --export-dir`)
DEFAULT_EXPORT_DIR = "out/review"
DEFAULT_CLAIM_HOURS = 24.0
# Not in a name: control characters, format characters (bidi controls, zero-width spaces and joiners, BOM,
# soft hyphen: invisible, or turning text around), line and paragraph separators, surrogates.
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


@dataclass(frozen=True)
class RatingTask:
    """One answer to rate: its prompt and text, and where it sits among the item's answers."""

    item_id: int
    prompt: str
    answer_id: int
    answer: str
    answer_index: int  # 1-based position among the item's answers, in import order
    n_answers: int
    shown_position: int = 1  # 1-based place in this labeler's own order of the item's answers


@dataclass(frozen=True)
class CompareTask:
    """Two answers to one prompt, in the (random) order shown; `swapped`: left comes later in the item."""

    item_id: int
    prompt: str
    left_answer_id: int
    left_text: str
    right_answer_id: int
    right_text: str
    swapped: bool


def conversation_turns(prompt: str) -> list[dict[str, str]] | None:
    """The earlier turns of a conversation prompt (imported as a list of {role, content}, stored as JSON), else None."""
    if not prompt.startswith("["):
        return None
    try:
        turns = json.loads(prompt)
    except json.JSONDecodeError:
        return None
    if isinstance(turns, list) and turns and all(isinstance(t, dict) and {"role", "content"} <= set(t) for t in turns):
        return turns
    return None


class ReviewItem(BaseModel):
    """One row of `curate review import`: a prompt with 1..n candidate answers and optionally their sources.

    A prompt may be a conversation (a list of {role, content} turns, the answers continuing it): it is stored
    as JSON text and shown turn by turn above the answer.
    """

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1)

    @field_validator("prompt", mode="before")
    @classmethod
    def _conversation_as_json(cls, value: Any) -> Any:
        if isinstance(value, list):
            turns = [
                {"role": str(t.get("role")), "content": str(t.get("content"))} for t in value if isinstance(t, dict)
            ]
            if (
                len(turns) != len(value)
                or not turns
                or any(t["role"] not in ("system", "user", "assistant") for t in turns)
            ):
                raise ValueError("a conversation prompt is a list of {role: system|user|assistant, content} turns")
            return json.dumps(turns, ensure_ascii=False)
        return value

    answers: list[str] = Field(min_length=1)
    models: list[str | None] | None = None
    source: str | None = None

    @field_validator("answers", "models", mode="before")
    @classmethod
    def _list_from_text(cls, value: Any) -> Any:
        # CSV cells hold lists as JSON text: ["first answer", "second answer"]
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc}") from None
        return value

    @model_validator(mode="after")
    def _models_match_answers(self) -> ReviewItem:
        if any(not a.strip() for a in self.answers):
            raise ValueError("an answer is empty")
        if self.models is not None and len(self.models) != len(self.answers):
            raise ValueError(f"'models' has {len(self.models)} entries for {len(self.answers)} answers")
        return self


def resolve_url(url: str | None = None) -> str:
    """The database URL: `url`, else $CURATRAIN_REVIEW_DB, else sqlite:///review.db; a bare path means SQLite."""
    url = url or os.environ.get(ENV_DB) or DEFAULT_DB
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3 is the driver we ship
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        # Relative to the cwd of whoever resolves it, so `serve` hands Streamlit an absolute path.
        return f"sqlite:///{Path(url[len('sqlite:///') :]).resolve()}"
    return url


def check_rating(value: Any) -> int:
    """A rating as an int 1-10, or a CurateError saying what was wrong."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CurateError(f"a rating must be a whole number from 1 to 10, got {value!r}")
    if not 1 <= value <= 10:
        raise CurateError(f"a rating must be from 1 (terrible) to 10 (great), got {value}")
    return value


def hidden_character(char: str) -> bool:
    """Invisible or direction-changing (a Unicode format character: bidi controls such as U+202E, zero-width
    spaces and joiners, BOM, soft hyphen): text holding one may read differently from what it is."""
    return unicodedata.category(char) == "Cf"


def check_name(name: Any, what: str) -> str:
    """A project or labeler name: 1-100 visible characters, no control, invisible or direction-changing ones."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 100
        or name != name.strip()
        or any(unicodedata.category(char) in _NOT_IN_NAMES for char in name)
    ):
        raise CurateError(
            f"{what} name must be 1-100 printable characters without leading/trailing spaces "
            f"or control, invisible or direction-changing characters, got {name!r}"
        )
    return name


def shown_order(labeler_id: int, answer_ids: Iterable[int]) -> list[int]:
    """The order in which Rate mode shows this labeler an item's answers: by a hash of (labeler, answer).

    Uniformly random across labelers (so no answer is always seen first), the same for one labeler on
    every visit and server, and an answer imported later slots in without reshuffling the others.
    """
    return sorted(answer_ids, key=lambda a: hashlib.blake2b(f"{labeler_id}:{a}".encode(), digest_size=8).digest())


def check_claim_hours(hours: Any) -> float:
    """Hours a claim holds its slot: a finite number > 0, or a CurateError."""
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours) or hours <= 0:
        raise CurateError(f"claim hours must be a number > 0 (how long a claimed item waits), got {hours!r}")
    return float(hours)


def check_seconds(value: Any) -> float:
    """Seconds spent on a task: a finite number >= 0, or a CurateError."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise CurateError(f"seconds spent must be a number, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise CurateError(f"seconds spent must be a finite number >= 0, got {value!r}")
    return seconds
