"""Record kinds (docs/design.md data contracts), validated with pydantic.

A raw row from any reader becomes a `Record` only through `validate_row`, which
names the file, row and field of the first problem it finds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from curate.errors import CurateError, RowError
from curate.transcripts import is_transcript, prompt_turns, transcript_turns


class Kind(StrEnum):
    """The record kinds a build can hold."""

    instruction = "instruction"
    rated = "rated"
    preference = "preference"
    labelled = "labelled"
    reward = "reward"


# Numeric fields of the record kinds: booleans are refused there.
NUMBER_FIELDS = ("rating", "margin", "chosen_rating", "rejected_rating", "mean_rating", "n_ratings")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("id", mode="before", check_fields=False)
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Ids are often integers in CSV/JSON sources; store them as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator(*NUMBER_FIELDS, mode="before", check_fields=False)
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        # pydantic reads true as 1 in lax mode: a rating of `true` is a broken export, not a 1.
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        return value


class Message(BaseModel):
    """One turn of a conversation (TRL's conversational format)."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


# ShareGPT's `from` values and the role each becomes (the common public instruction-set shape).
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
}


class ShareGPTTurn(BaseModel):
    """One turn of a ShareGPT conversation: `from` (see SHAREGPT_ROLES) and `value`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    speaker: str = Field(alias="from")
    value: str

    @field_validator("speaker")
    @classmethod
    def _known_speaker(cls, value: str) -> str:
        if value.lower() not in SHAREGPT_ROLES:
            raise ValueError(f"unknown ShareGPT speaker {value!r}: use one of {', '.join(SHAREGPT_ROLES)}")
        return value


def conversation_problem(roles: list[str], contents: list[str]) -> str | None:
    """What is wrong with a conversation's turns, or None: an optional system turn first, then user and
    assistant alternating from a user turn, ending with an assistant turn; no empty turn."""
    for i, (role, content) in enumerate(zip(roles, contents, strict=True)):
        if not content.strip():
            return f"turn {i} ({role}) is empty"
    body = roles[1:] if roles and roles[0] == "system" else roles
    if not body:
        return "no user or assistant turn"
    for i, role in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            at = i + len(roles) - len(body)
            after = f"after {body[i - 1]!r}" if i else "first"
            return f"turn {at} is {role!r} {after}: turns go system?, user, assistant, user, assistant, ..."
    if body[-1] != "assistant":
        return f"the last turn is {body[-1]!r}: a conversation ends with the assistant turn to learn"
    return None


class InstructionRecord(_Strict):
    """A prompt and its response, or a conversation in `messages`.

    Stanford Alpaca's columns are read as they are: `instruction` is the prompt, `output` the response and
    `input` the optional context the alpaca template writes in its `### Input:` block.
    """

    prompt: str | None = Field(default=None, validation_alias=AliasChoices("prompt", "instruction"))
    input: str | None = None  # Alpaca's optional context for the instruction ("" = none)
    response: str | None = Field(default=None, validation_alias=AliasChoices("response", "output"))
    messages: list[Message] | None = None
    conversations: list[ShareGPTTurn] | None = None  # ShareGPT; becomes `messages`
    system: str | None = None
    id: str | None = None
    source: str | None = None
    meta: dict[str, Any] | None = None

    @field_validator("messages")
    @classmethod
    def _turns_in_order(cls, value: list[Message] | None) -> list[Message] | None:
        if value is not None and (problem := conversation_problem([m.role for m in value], [m.content for m in value])):
            raise ValueError(problem)
        return value

    @field_validator("conversations")
    @classmethod
    def _sharegpt_in_order(cls, value: list[ShareGPTTurn] | None) -> list[ShareGPTTurn] | None:
        if value is not None:
            roles = [SHAREGPT_ROLES[t.speaker.lower()] for t in value]
            if problem := conversation_problem(roles, [t.value for t in value]):
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _prompt_response_or_messages(self) -> InstructionRecord:
        if self.conversations is not None:
            if self.messages is not None:
                raise ValueError("give either 'messages' or 'conversations', not both")
            turns = [Message(role=SHAREGPT_ROLES[t.speaker.lower()], content=t.value) for t in self.conversations]  # type: ignore[arg-type]
            self.messages, self.conversations = turns, None
        if self.messages is None:
            missing = [name for name in ("prompt", "response") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"missing required field '{missing[0]}' (or give 'messages' or 'conversations')")
        elif self.prompt is not None or self.response is not None:
            raise ValueError("give either 'messages' or 'prompt'+'response', not both")
        return self


class RatedRecord(_Strict):
    """A labeler's 1-10 rating of one answer to one prompt."""

    prompt: str
    response: str
    rating: int = Field(ge=1, le=10)
    labeler: str
    labeler_kind: Literal["human", "judge"] | None = None  # None: a person; judge: an LLM judge (ratings.py)
    comment: str | None = None
    flag: str | None = None  # why someone flagged this answer; flagged answers stay out of derived sets
    id: str | None = None
    source: str | None = None


Turns = list[dict[str, str]]
_MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


class _RaterFields(_Strict):
    """Who rated a row derived from ratings (curate/review/ratings.py), so such an export reads back in."""

    n_raters: int | None = Field(default=None, ge=1)
    agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    judge: bool | None = None
    judge_only: bool | None = None


def as_turns(value: Any) -> Turns:
    """A list of {role, content} turns, validated; ValueError naming the first bad turn."""
    try:
        return [message.model_dump() for message in _MESSAGES.validate_python(value)]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"turn {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


class PreferenceRecord(_RaterFields):
    """A chosen and a rejected answer to the same prompt (TRL's preference formats).

    Text: prompt, chosen and rejected strings. Conversational: `prompt` a list of turns, chosen and
    rejected the assistant turn(s) after it (lists, or text for one turn). Implicit prompt (no `prompt`):
    chosen and rejected are whole conversations sharing their start, as turn lists or as HH-RLHF
    Human:/Assistant: transcripts; the `extract_prompt` step splits the shared start off as the prompt.
    """

    prompt: str | Turns | None = None
    chosen: str | Turns
    rejected: str | Turns
    margin: float = Field(default=0.0, ge=0.0)
    chosen_rating: float | None = None  # mean 1-10 ratings, when the pair came from ratings
    rejected_rating: float | None = None
    id: str | None = None
    source: str | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_turns(cls, value: Any) -> Any:
        if isinstance(value, str) and is_transcript(value):  # e.g. "\n\nHuman: ...\n\nAssistant:" (HH derivatives)
            return prompt_turns(value)
        return as_turns(value) if isinstance(value, list) else value

    @field_validator("chosen", "rejected", mode="before")
    @classmethod
    def _answer_matches_prompt(cls, value: Any, info: ValidationInfo) -> Any:
        prompt = info.data.get("prompt")
        if prompt is None:  # a whole conversation: the prompt is the start it shares with the other side
            if not isinstance(value, (str, list)):
                return value
            if isinstance(value, str):
                try:
                    value = transcript_turns(value)
                except ValueError:
                    raise ValueError(
                        "no 'prompt' column, and this is not a Human:/Assistant: transcript whose shared start "
                        "could be the prompt (map the prompt column with --map OLD=prompt)"
                    ) from None
            turns = as_turns(value)
            if len(turns) < 2 or turns[-1]["role"] != "assistant":
                raise ValueError("a conversation with no prompt must end with an assistant turn after a user turn")
            return turns
        if isinstance(prompt, str):
            if isinstance(value, list):
                raise ValueError("a list of turns, but 'prompt' is text: give all three as text or as turns")
            return value
        turns = as_turns([{"role": "assistant", "content": value}] if isinstance(value, str) else value)
        if not turns or turns[0]["role"] != "assistant":
            raise ValueError("after a prompt of turns, the answer must start with an assistant turn")
        return turns


class LabelledRecord(_Strict):
    """A text for classification: `labels` (zero or more names, multi-label) or one `label` (single-label).

    Sentence pairs add `text_pair` (the second sentence the classifier reads with `text`).
    """

    text: str
    text_pair: str | None = None
    labels: list[str] | None = None
    label: str | None = None
    id: str | None = None
    source: str | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _label_as_text(cls, value: Any) -> Any:
        # Class ids (0/1, as in GLUE's pair sets) are label names too.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _labels_or_label(self) -> LabelledRecord:
        if self.labels is None and self.label is None:
            raise ValueError("missing required field 'labels' (a list of names; or 'label' for one name per row)")
        if self.labels is not None and self.label is not None:
            raise ValueError("give either 'labels' (a list of names) or 'label' (one name), not both")
        return self

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


class RewardRecord(_RaterFields):
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
    Kind.instruction: ("system", "prompt", "input", "response"),
    Kind.rated: ("prompt", "response", "comment"),
    Kind.preference: ("prompt", "chosen", "rejected"),
    Kind.labelled: ("text", "text_pair"),
    Kind.reward: ("prompt", "response"),
}

# Fields whose (normalized) values make two rows exact duplicates by default.
DEDUPE_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.instruction: ("system", "prompt", "input", "response", "messages"),
    Kind.rated: ("prompt", "response", "labeler"),
    Kind.preference: ("prompt", "chosen", "rejected"),
    Kind.labelled: ("text", "text_pair"),
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


# The fields a row must have to be of a kind (detection names the one a near-miss lacks).
REQUIRED: dict[Kind, tuple[str, ...]] = {
    Kind.instruction: ("prompt", "response"),
    Kind.rated: ("prompt", "response", "rating", "labeler"),
    Kind.preference: ("chosen", "rejected"),  # the prompt may be implicit (see PreferenceRecord)
    Kind.labelled: ("text", "labels"),
    Kind.reward: ("prompt", "response", "mean_rating", "n_ratings"),
}


# Columns read under another name (Stanford Alpaca's instruction / output), from the records' aliases.
ALIASES: dict[str, str] = {
    alias: name
    for model in (InstructionRecord,)
    for name, info in model.model_fields.items()
    if isinstance(info.validation_alias, AliasChoices)
    for alias in info.validation_alias.choices
    if isinstance(alias, str) and alias != name
}


def detect_kind(columns: list[str], source: str = "input", row: int = 1, unit: str = "row") -> Kind:
    """Guess the record kind from the (mapped) column names of the first row (`source`, `row` for errors).

    A row that lacks exactly one field of a kind is reported as that kind missing that field.
    """
    cols = {ALIASES.get(name, name) for name in columns}
    if cols & {"messages", "conversations"}:
        return Kind.instruction
    if {"chosen", "rejected"} <= cols:
        return Kind.preference
    if "rating" in cols:
        return Kind.rated
    if "mean_rating" in cols:
        return Kind.reward
    if "labels" in cols or "label" in cols:
        return Kind.labelled
    if {"prompt", "response"} <= cols or {"instruction", "output"} <= cols:
        return Kind.instruction
    known = {name for model in MODELS.values() for name in model.model_fields}
    unknown = sorted(cols - known)
    # The kind whose fields the row has most of, if it lacks only one of its required ones.
    for kind, required in sorted(REQUIRED.items(), key=lambda item: -len(cols & set(MODELS[item[0]].model_fields))):
        missing = [name for name in required if name not in cols]
        if len(missing) == 1:
            rename = f"--map {unknown[0]}={missing[0]}" if len(unknown) == 1 else f"--map OLD={missing[0]}"
            raise RowError(
                source,
                row,
                missing[0],
                f"missing required field: the columns {sorted(cols)} look like a row of kind '{kind.value}' "
                f"without '{missing[0]}'; "
                f"rename a column ({rename}) or pass --kind",
                unit,
            )
    raise CurateError(
        f"{source}: cannot tell the record kind from the columns {sorted(cols)}: "
        "rename columns with --map OLD=NEW (e.g. --map question=prompt) or pass --kind"
    )


_TYPE_TAGS = frozenset({"str", "int", "float", "bool"})


def validate_row(kind: Kind, raw: dict[str, Any], source: str, row: int, unit: str = "row") -> Record:
    """Validate one raw row as `kind`; raise RowError naming file, row and field."""
    try:
        model = MODELS[kind].model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        # Union members tag the location (`rejected.str`): a user knows the field, not our types.
        loc = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and (p in _TYPE_TAGS or "[" in p)))
        loc = loc or "(row)"
        if first["type"] == "extra_forbidden":
            message = unknown_column_hint(kind, loc)
        elif first["type"] == "missing":
            message = "missing required field"
        else:
            message = first["msg"].removeprefix("Value error, ")
            if "input" in first and not isinstance(first["input"], (dict, list)) and first["type"] != "value_error":
                message += f" (got {first['input']!r})"
        raise RowError(source, row, loc, message, unit) from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise RowError(source, row, "labels", f"not a list of names: {exc}", unit) from None
    data = model.model_dump(exclude_none=True)
    record_id = data.pop("id", None) or default_row_id(source, row)
    return Record(id=record_id, data=data, source=source, row=row)


# Column names that usually hold part of the prompt: dropping one would train on prompts with the context gone.
PROMPT_CONTENT = {"input": "input", "context": "input", "question": "prompt", "query": "prompt", "text": "prompt"}


def unknown_column_hint(kind: Kind, column: str) -> str:
    """What to do about a column the kind does not have; never suggest dropping one that carries prompt content."""
    fields = ", ".join(name for name in MODELS[kind].model_fields if name not in ("id", "source", "meta"))
    if kind is Kind.instruction and column.lower() in PROMPT_CONTENT:
        return (
            f"unknown column for kind 'instruction' (fields: {fields}); it looks like prompt content, so keep it: "
            f"--map {column}={PROMPT_CONTENT[column.lower()]}"
        )
    return (
        f"unknown column for kind '{kind.value}' (fields: {fields}): rename it with --map OLD=NEW, or drop it "
        "with --ignore COLUMN if it holds no prompt or answer text"
    )


def default_row_id(source: str, row: int) -> str:
    """The id of a row without an `id` column: file stem and row, `pairs-3` (the same in every command)."""
    return f"{_stem(source)}-{row}"


# Fields shown when a person reads a row (duplicates.parquet, review): text, in this order.
READABLE_FIELDS = ("system", "prompt", "input", "response", "completion", "text", "chosen", "rejected")


def readable_text(data: dict[str, Any]) -> str:
    """A row's text as a person reads it: conversation turns as `role: content` lines, other text fields
    joined by blank lines (so a dropped row and the row it duplicates can be read side by side)."""
    parts = []
    for name in ("messages", *READABLE_FIELDS):
        value = data.get(name)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list) and all(isinstance(m, dict) for m in value):
            parts.append("\n".join(f"{m.get('role')}: {m.get('content')}" for m in value))
    return "\n\n".join(parts)


def _stem(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] or "row"
