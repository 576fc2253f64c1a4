"""Render records into TRL's dataset formats (prompt-completion, conversational, text, preference)."""

from __future__ import annotations

from typing import Any, ClassVar

from curate.errors import CurateError
from curate.io.manifest import TemplateInfo
from curate.schema import Kind, Record
from curate.steps.base import BuildContext, Step
from curate.templates import ChatTemplate, Template

FORMATS = ("prompt-completion", "messages", "text")


def _conversation(data: dict[str, Any], answer_key: str = "response") -> list[dict[str, str]]:
    if "messages" in data:
        return [dict(m) for m in data["messages"]]
    turns = [{"role": "system", "content": data["system"]}] if data.get("system") else []
    return turns + [{"role": "user", "content": data["prompt"]}, {"role": "assistant", "content": data[answer_key]}]


class Format(Step):
    """Turn each record's fields into the output columns of the chosen format.

    Output columns (always `id` first):
    instruction  prompt-completion: prompt, completion · messages: messages · text: text
    preference   prompt, chosen, rejected, margin (strings, or turn lists with --format messages),
                 + chosen_rating, rejected_rating when derived from ratings
    labelled     text, labels        rated   prompt, response, rating, labeler, comment
    reward       prompt, response, mean_rating, n_ratings
    """

    name: ClassVar[str] = "template"

    def __init__(self, kind: Kind, template: Template | None, fmt: str):
        if fmt not in FORMATS:
            raise CurateError(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
        if kind in (Kind.labelled, Kind.rated, Kind.reward) and template is not None:
            raise CurateError(f"a template applies to instruction and preference data, not to '{kind.value}' records")
        if fmt == "messages" and template is not None and not isinstance(template, ChatTemplate):
            raise CurateError(
                "--format messages keeps the raw conversation turns (the trainer applies the tokenizer's "
                "chat template); drop --template, or use --format prompt-completion|text"
            )
        if fmt == "text" and template is None and kind is Kind.instruction:
            raise CurateError("--format text needs a --template to join prompt and response")
        if fmt == "text" and kind is Kind.preference:
            raise CurateError(
                "preference data is written as prompt/chosen/rejected: use --format prompt-completion or messages"
            )
        self.kind = kind
        self.template = template
        self.fmt = fmt

    def render(self, conversation: list[dict[str, str]]) -> tuple[str, str]:
        """(prompt, completion) strings of a conversation, with or without a template."""
        if self.template is not None:
            return self.template.render(conversation)
        roles = [m["role"] for m in conversation]
        if roles != ["user", "assistant"]:
            raise CurateError(
                f"turns {roles} cannot be written as plain prompt/completion strings: "
                "use --format messages, or a --template that renders them"
            )
        return conversation[0]["content"], conversation[1]["content"]

    def format(self, data: dict[str, Any]) -> dict[str, Any]:
        """The output columns for one record's fields."""
        if self.kind is Kind.labelled:
            return {"text": data["text"], "labels": data["labels"]}
        if self.kind is Kind.rated:
            return {k: data.get(k) for k in ("prompt", "response", "rating", "labeler", "comment")}
        if self.kind is Kind.reward:
            return {k: data[k] for k in ("prompt", "response", "mean_rating", "n_ratings")}
        if self.kind is Kind.preference:
            chosen, rejected = _conversation(data, "chosen"), _conversation(data, "rejected")
            if self.fmt == "messages":
                row: dict[str, Any] = {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}
            else:
                prompt, chosen_text = self.render(chosen)
                row = {"prompt": prompt, "chosen": chosen_text, "rejected": self.render(rejected)[1]}
            ratings: dict[str, float] = {k: float(data[k]) for k in ("chosen_rating", "rejected_rating") if k in data}
            return {**row, "margin": float(data.get("margin", 0.0)), **ratings}
        conversation = _conversation(data)
        if self.fmt == "messages":
            return {"messages": conversation}
        prompt, completion = self.render(conversation)
        return {"text": prompt + completion} if self.fmt == "text" else {"prompt": prompt, "completion": completion}

    def run(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        for record in ctx.track(records, self.name):
            record.data = self.format(record.data)
        name = self.template.name if self.template else None
        ctx.manifest.template = TemplateInfo.model_validate({"name": name, "format": self.fmt})
        return records
