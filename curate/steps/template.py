"""Render records into TRL's dataset formats (prompt-completion, conversational, text, preference)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from curate.errors import CurateError
from curate.io.manifest import TemplateInfo
from curate.review.ratings import RATER_COLUMNS
from curate.schema import Kind, Record
from curate.steps.base import BuildContext, Step
from curate.templates import Messages, NamedTemplate, Template, as_turns, user_turn

FORMATS = ("prompt-completion", "messages", "text")


def resolve_format(kind: Kind, template: Template | None, fmt: str | None) -> str:
    """The output format: the one asked for, else prompt-completion with a template and messages without one.

    Instruction rows without a template are written as conversations, so the trainer renders them with
    the model's own chat template; prompt-completion strings without a template would be glued together.
    """
    if fmt is not None:
        return fmt
    if kind is Kind.instruction and template is None:
        return "messages"
    return "text" if kind is Kind.labelled else "prompt-completion"


def conversation(data: dict[str, Any], answer_key: str = "response", input_slot: bool = False) -> Messages:
    """A record's fields as TRL conversational turns: system?, user (with Alpaca's input), assistant."""
    if "messages" in data:
        return [dict(m) for m in data["messages"]]
    turns: Messages = [{"role": "system", "content": data["system"]}] if data.get("system") else []
    if isinstance(data["prompt"], list):
        turns += as_turns(data["prompt"], "user")
    else:
        turns.append(user_turn(data["prompt"], data.get("input"), input_slot))
    return turns + as_turns(data[answer_key], "assistant")


class Format(Step):
    """Turn each record's fields into the output columns of the chosen format.

    Output columns (always `id` first):
    instruction  prompt-completion: prompt, completion · messages: messages · text: text
    preference   prompt, chosen, rejected, margin (strings, or turn lists with --format messages),
                 + chosen_rating, rejected_rating when derived from ratings
    labelled     text, labels (multi-label) or text, label; sentence pairs add text_pair
    rated        prompt, response, rating, labeler, labeler_kind, comment
    reward       prompt, response, mean_rating, n_ratings

    A multi-turn conversation written as prompt-completion keeps its last assistant turn as the completion
    (the earlier turns are prompt); `--format messages` keeps every assistant turn for the loss.
    Rows derived from ratings keep their rater columns last (n_raters, agreement, judge, judge_only).
    """

    name: ClassVar[str] = "template"

    def __init__(self, kind: Kind, template: Template | None, fmt: str | None, default_system_prompt: bool = False):
        fmt = resolve_format(kind, template, fmt)
        if fmt not in FORMATS:
            raise CurateError(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
        if kind in (Kind.labelled, Kind.rated, Kind.reward) and template is not None:
            raise CurateError(f"a template applies to instruction and preference data, not to '{kind.value}' records")
        if fmt == "messages" and template is not None and not template.multi_turn:
            raise CurateError(
                f"--format messages keeps conversation turns for the trainer to render, and template "
                f"'{template.name}' renders one exchange only: use --format prompt-completion|text with it, "
                "or a conversation template (chatml, llama2, chat-template:<tokenizer>)"
            )
        if fmt in ("prompt-completion", "text") and template is None and kind is Kind.instruction:
            raise CurateError(
                f"--format {fmt} of instruction rows needs a --template to mark where the answer starts "
                "(alpaca, chatml, llama2, latex, chat-template:<tokenizer> or a Jinja2 file); without one, "
                "prompt and answer would be glued together. Or use --format messages: the trainer then "
                "renders the turns with the model's own chat template"
            )
        if fmt == "text" and kind is Kind.preference:
            raise CurateError(
                "preference data is written as prompt/chosen/rejected: use --format prompt-completion or messages"
            )
        self.kind = kind
        self.template = template
        self.fmt = fmt
        self.default_system_prompt = default_system_prompt
        self.last_turn_only = 0  # multi-turn rows whose earlier assistant turns became prompt
        self.turns = False  # write preference rows as turn lists even without --format messages (see run)
        # Untemplated preference strings: one look at every row first, to see whether any prompt is turns.
        self.passes = 2 if kind is Kind.preference and template is None and fmt != "messages" else 1

    def render(self, conversation: Messages) -> tuple[str, str]:
        """(prompt, completion) strings of a conversation, with the template (or as is for one bare exchange)."""
        if self.template is not None:
            if sum(m["role"] == "assistant" for m in conversation) > 1:
                self.last_turn_only += 1
            return self.template.split(conversation)
        roles = [m["role"] for m in conversation]
        if roles != ["user", "assistant"]:
            raise CurateError(
                f"turns {roles} cannot be written as plain prompt/completion strings: "
                "use --format messages, or a --template that renders them"
            )
        return conversation[0]["content"], conversation[1]["content"]

    def format(self, data: dict[str, Any]) -> dict[str, Any]:
        """The output columns for one record's fields (rater columns of derived rows last)."""
        raters = {k: data[k] for k in RATER_COLUMNS if k in data}
        return {**self._columns(data), **raters}

    def _columns(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.kind is Kind.labelled:
            return {k: data[k] for k in ("text", "text_pair", "labels", "label") if k in data}
        if self.kind is Kind.rated:
            rated = {k: data.get(k) for k in ("prompt", "response", "rating", "labeler")}
            return {**rated, "labeler_kind": data.get("labeler_kind") or "human", "comment": data.get("comment")}
        if self.kind is Kind.reward:
            return {k: data[k] for k in ("prompt", "response", "mean_rating", "n_ratings")}
        slot = self.template is not None and self.template.input_slot and self.fmt != "messages"
        if self.kind is Kind.preference:
            chosen = conversation(data, "chosen", slot)
            rejected = conversation(data, "rejected", slot)
            if self.fmt == "messages" or self.turns:
                prompt_turns = chosen[: len(chosen) - len(as_turns(data["chosen"], "assistant"))]
                row: dict[str, Any] = {
                    "prompt": prompt_turns,
                    "chosen": as_turns(data["chosen"], "assistant"),
                    "rejected": as_turns(data["rejected"], "assistant"),
                }
            else:
                prompt, chosen_text = self.render(chosen)
                row = {"prompt": prompt, "chosen": chosen_text, "rejected": self.render(rejected)[1]}
            ratings: dict[str, float] = {k: float(data[k]) for k in ("chosen_rating", "rejected_rating") if k in data}
            return {**row, "margin": float(data.get("margin", 0.0)), **ratings}
        turns = conversation(data, "response", slot)
        if self.fmt == "messages":
            return {"messages": turns}
        prompt, completion = self.render(turns)
        return {"text": prompt + completion} if self.fmt == "text" else {"prompt": prompt, "completion": completion}

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        if self.passes > 1:
            # One conversational preference row makes the whole set conversational: a column holds one type.
            self.turns = any(isinstance(r.data.get("prompt"), list) for r in records)
        self.describe(ctx)  # before the rows: the lengths step renders them as this says
        for record in ctx.track(records, self.name):
            record.data = self.format(record.data)
            yield record
        self.describe(ctx)  # with the count of rows cut to their last turn
        if self.last_turn_only:
            ctx.note(
                f"{self.last_turn_only} multi-turn rows: prompt-completion trains only their last assistant turn "
                "(--format messages trains every assistant turn)"
            )
        if isinstance(self.template, NamedTemplate) and self.fmt == "messages":
            # The export's turns are rendered with this template: ship it for any TRL trainer (chat_template_path).
            ctx.artifacts["chat_template.jinja"] = self.template.spec.source.encode("utf-8")

    def describe(self, ctx: BuildContext) -> None:
        """The manifest's template section: name, format, system-prompt policy, rows cut to their last turn."""
        ctx.manifest.template = TemplateInfo.model_validate(
            {
                "name": self.template.name if self.template else None,
                "format": "messages" if self.turns else self.fmt,
                "default_system_prompt": self.default_system_prompt,
                "last_turn_only_rows": self.last_turn_only,
            }
        )
