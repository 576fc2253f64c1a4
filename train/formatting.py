"""Export rows -> the tokenized datasets TRL's trainers receive, through `curate.render.Renderer`.

`train sft` and `train reward` hand SFTTrainer / RewardTrainer these columns already tokenized, so what
trains is exactly what `curate lengths` counted and `--inspect` shows: SFT rows become `input_ids` +
`completion_mask` (TRL builds the labels from the mask, truncates to max_length, drops rows left with
no loss, pads, packs); preference rows become `chosen_ids` + `rejected_ids` (RewardTrainer drops pairs
over max_length).
"""

from __future__ import annotations

from typing import Any

from curate.console import err_console
from curate.render import Renderer, template_warnings
from train.config import DatasetSection
from train.data import TrainData


def renderer_for(
    data: TrainData, tokenizer: Any, dataset: DatasetSection, model_name: str, chat_strings: bool = False
) -> Renderer:
    """The rendering of `data` for this model's tokenizer: the export's template, system-prompt policy and loss.

    Warns (or with `dataset.strict_template` refuses) when the template writes special tokens the model lacks.
    """
    section = data.manifest.template if data.manifest else None
    template = section.name if section else None
    for warning in template_warnings(template, tokenizer, model_name, dataset.strict_template):
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    default_system = dataset.default_system_prompt
    if default_system is None:
        default_system = section.default_system_prompt if section else False
    conversational = data.format == ("messages",) or _is_conversational(data)
    learn_all = dataset.assistant_only_loss is False if conversational else dataset.completion_only_loss is False
    return Renderer(
        tokenizer,
        template,
        default_system_prompt=default_system,
        chat_strings=chat_strings,
        loss="all" if learn_all else "completion",
    )


def _is_conversational(data: TrainData) -> bool:
    first = data.dataset["train"][0]
    return any(isinstance(first.get(c), list) for c in ("prompt", "completion", "chosen"))


def sft_dataset(dataset: Any, renderer: Renderer) -> Any:
    """`input_ids` + `completion_mask` of each SFT row (other columns dropped)."""

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        examples = renderer.examples(rows)
        return {"input_ids": [e.input_ids for e in examples], "completion_mask": [e.loss_mask for e in examples]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="Rendering")


def reward_dataset(dataset: Any, renderer: Renderer) -> Any:
    """`chosen_ids` + `rejected_ids` of each preference row, keeping `margin` when present."""
    keep = [c for c in ("margin",) if c in dataset.column_names]

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        pairs = renderer.pairs(rows)
        return {"chosen_ids": [c.input_ids for c, _ in pairs], "rejected_ids": [r.input_ids for _, r in pairs]}

    drop = [c for c in dataset.column_names if c not in keep]
    return dataset.map(encode, batched=True, remove_columns=drop, desc="Rendering")


def stop_token(renderer: Renderer) -> str | None:
    """The template's end-of-turn token when the model should stop on it rather than on its EOS (TRL `eos_token`)."""
    template = renderer.template
    tokenizer = renderer.tokenizer
    end = template.end_token if template is not None else None
    if end and end != tokenizer.eos_token and end in tokenizer.all_special_tokens:
        return end
    return None
