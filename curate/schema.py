"""Record kinds (docs/design.md data contracts), validated with pydantic.

A raw row from any reader becomes a `Record` only through `validate_row`, which
names the file, row and field of the first problem it finds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curate.errors import CurateError, RowError


class Kind(StrEnum):
    """The record kinds a build can hold."""

    instruction = "instruction"
    rated = "rated"
    preference = "preference"
    labelled = "labelled"
    reward = "reward"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("id", mode="before", check_fields=False)
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Ids are often integers in CSV/JSON sources; store them as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Message(BaseModel):
    """One turn of a conversation (TRL's conversational format)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


class InstructionRecord(_Strict):
    """A prompt and its response, or a conversation in `messages`."""

    prompt: str | None = None
    response: str | None = None
    messages: list[Message] | None = None
    system: str | None = None
    id: str | None = None
    source: str | None = None
    meta: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _prompt_response_or_messages(self) -> InstructionRecord:
        if self.messages is None:
            missing = [name for name in ("prompt", "response") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"missing required field '{missing[0]}' (or give 'messages')")
        elif self.prompt is not None or self.response is not None:
            raise ValueError("give either 'messages' or 'prompt'+'response', not both")
        elif not any(m.role == "assistant" for m in self.messages):
            raise ValueError("'messages' has no assistant turn to learn from")
        return self


class RatedRecord(_Strict):
    """A labeler's 1-10 rating of one answer to one prompt."""

    prompt: str
    response: str
    rating: int = Field(ge=1, le=10)
    labeler: str
    comment: str | None = None
    flag: str | None = None  # why someone flagged this answer; flagged answers stay out of derived sets
    id: str | None = None
    source: str | None = None


class PreferenceRecord(_Strict):
    """A chosen and a rejected answer to the same prompt (TRL preference format)."""

    prompt: str
    chosen: str
    rejected: str
    margin: float = Field(default=0.0, ge=0.0)
    chosen_rating: float | None = None  # mean 1-10 ratings, when the pair came from ratings
    rejected_rating: float | None = None
    id: str | None = None
    source: str | None = None


class LabelledRecord(_Strict):
    """A text with zero or more label names, for multi-label classification."""

    text: str
    labels: list[str]
    id: str | None = None
    source: str | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_text(cls, value: Any) -> Any:
        # CSV cells hold labels as a JSON list or as names separated by | or ;
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        for sep in ("|", ";"):
            if sep in text:
                return [part.strip() for part in text.split(sep) if part.strip()]
        return [text] if text else []


class RewardRecord(_Strict):
    """An answer's mean 1-10 rating over `n_ratings` labelers (reward-model regression data)."""

    prompt: str
    response: str
    mean_rating: float = Field(ge=1.0, le=10.0)
    n_ratings: int = Field(ge=1)
    id: str | None = None
    source: str | None = None


MODELS: dict[Kind, type[_Strict]] = {
    Kind.instruction: InstructionRecord,
    Kind.rated: RatedRecord,
    Kind.preference: PreferenceRecord,
    Kind.labelled: LabelledRecord,
    Kind.reward: RewardRecord,
}

# Fields holding free text that normalization cleans.
TEXT_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.instruction: ("system", "prompt", "response"),
    Kind.rated: ("prompt", "response", "comment"),
    Kind.preference: ("prompt", "chosen", "rejected"),
    Kind.labelled: ("text",),
    Kind.reward: ("prompt", "response"),
}

# Fields whose (normalized) values make two rows exact duplicates by default.
DEDUPE_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.instruction: ("system", "prompt", "response", "messages"),
    Kind.rated: ("prompt", "response", "labeler"),
    Kind.preference: ("prompt", "chosen", "rejected"),
    Kind.labelled: ("text",),
    Kind.reward: ("prompt", "response"),
}


@dataclass
class Record:
    """A validated row flowing through the build, with where it came from."""

    id: str
    data: dict[str, Any]
    source: str
    row: int
    extra: dict[str, Any] = field(default_factory=dict)


def detect_kind(columns: list[str]) -> Kind:
    """Guess the record kind from the (mapped) column names."""
    cols = set(columns)
    if "messages" in cols:
        return Kind.instruction
    if {"chosen", "rejected"} <= cols:
        return Kind.preference
    if "rating" in cols:
        return Kind.rated
    if "mean_rating" in cols:
        return Kind.reward
    if "labels" in cols:
        return Kind.labelled
    if {"prompt", "response"} <= cols:
        return Kind.instruction
    raise CurateError(
        f"cannot tell the record kind from the columns {sorted(cols)}: "
        "rename columns with --map OLD=NEW (e.g. --map question=prompt) or pass --kind"
    )


def validate_row(kind: Kind, raw: dict[str, Any], source: str, row: int, unit: str = "row") -> Record:
    """Validate one raw row as `kind`; raise RowError naming file, row and field."""
    try:
        model = MODELS[kind].model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(row)"
        if first["type"] == "extra_forbidden":
            message = (
                f"unknown column for kind '{kind.value}' (rename it with --map OLD=NEW or drop it with --ignore COLUMN)"
            )
        elif first["type"] == "missing":
            message = "missing required field"
        else:
            message = first["msg"]
            if "input" in first and not isinstance(first["input"], (dict, list)):
                message += f" (got {first['input']!r})"
        raise RowError(source, row, loc, message, unit) from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise RowError(source, row, "labels", f"not a list of names: {exc}", unit) from None
    data = model.model_dump(exclude_none=True)
    record_id = data.pop("id", None) or f"{_stem(source)}-{row}"
    return Record(id=record_id, data=data, source=source, row=row)


def _stem(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] or "row"
