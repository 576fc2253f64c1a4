"""What a classifier predicts and what it reads: the label space of a labelled dataset, the tokenized
inputs (a text, or a text and its `text_pair`) and the class probabilities of a trained head.

Shared by `train classify` (training and its final evaluation) and `train predict`, so a prediction is
computed exactly as the run card's test metrics were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.errors import CurateError
from train.data import TrainData

MULTI_LABEL = "multi_label_classification"
SINGLE_LABEL = "single_label_classification"


@dataclass(frozen=True)
class LabelSpace:
    """The label names (sorted, as read from the train split), multi- or single-label, and whether rows are pairs."""

    names: tuple[str, ...]
    multi_label: bool
    pair: bool

    @property
    def column(self) -> str:
        """The dataset column holding the gold label(s): `labels` (a list) or `label` (one name)."""
        return "labels" if self.multi_label else "label"

    @property
    def problem_type(self) -> str:
        """transformers' `problem_type`: BCE on sigmoids (multi-label) or cross-entropy on a softmax."""
        return MULTI_LABEL if self.multi_label else SINGLE_LABEL

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def target(self, value: Any) -> list[float] | int:
        """What the loss sees for one row: a multi-hot float vector, or the class index."""
        if self.multi_label:
            return [1.0 if name in value else 0.0 for name in self.names]
        return self.label2id[str(value)]

    def indicator(self, values: Sequence[Any]) -> np.ndarray:
        """Gold labels of many rows as an (n, n_labels) 0/1 matrix (one 1 per row when single-label)."""
        matrix = np.zeros((len(values), len(self.names)), dtype=np.int64)
        index = self.label2id
        for row, value in enumerate(values):
            for name in value if self.multi_label else [value]:
                matrix[row, index[str(name)]] = 1
        return matrix

    def as_card(self) -> dict[str, Any]:
        """The run card's record of the head: enough for `train predict` to rebuild it."""
        return {"problem_type": self.problem_type, "labels": list(self.names), "pair": self.pair}

    @classmethod
    def from_card(cls, section: dict[str, Any]) -> LabelSpace:
        return cls(tuple(section["labels"]), section["problem_type"] == MULTI_LABEL, bool(section["pair"]))


def _where(data: TrainData, split: str, row: int, ids: list[Any] | None) -> str:
    """'<source>: test split row 4 (id g0042)', rows counted from 1."""
    return f"{data.source}: {split} split row {row + 1}" + (f" (id {ids[row]})" if ids else "")


def _row_labels(value: Any, multi_label: bool, where: str) -> list[str]:
    if multi_label:
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            raise CurateError(f"{where}: 'labels' must be a list of label names, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CurateError(f"{where}: 'label' must be one label name, got {value!r}")
    return [str(value)]


def label_space(data: TrainData) -> LabelSpace:
    """Read the label set from the train split and check every split against it.

    Errors name the row: a missing text or pair, an empty label set, a single class, or a label in the
    test split that the train split never shows (a head cannot learn a label it never sees).
    """
    columns = set(data.columns)
    if {"labels", "label"} <= columns:
        raise CurateError(
            f"{data.source}: both 'labels' (multi-label) and 'label' (single-label) columns: keep one of them"
        )
    multi_label, pair = "labels" in columns, "text_pair" in columns
    column = "labels" if multi_label else "label"
    seen: dict[str, set[str]] = {}
    for split, rows in data.dataset.items():
        ids = list(rows["id"]) if "id" in rows.column_names else None
        texts = [rows["text"]] + ([rows["text_pair"]] if pair else [])
        for field, values in zip(("text", "text_pair"), texts, strict=False):
            for row, value in enumerate(values):
                if not isinstance(value, str):
                    raise CurateError(f"{_where(data, split, row, ids)}: '{field}' must be text, got {value!r}")
        names = seen.setdefault(split, set())
        for row, value in enumerate(rows[column]):
            names.update(_row_labels(value, multi_label, _where(data, split, row, ids)))
    train_names = seen["train"]
    if not train_names:
        raise CurateError(
            f"{data.source}: the train split has no labels ('{column}' is empty in all {len(data.dataset['train'])} "
            "rows): there is nothing to learn"
        )
    if not multi_label and len(train_names) < 2:
        raise CurateError(
            f"{data.source}: the train split has one class only ('{next(iter(train_names))}'): "
            "a single-label classifier needs at least two"
        )
    for split, rows in data.dataset.items():
        unknown = seen[split] - train_names
        if split == "train" or not unknown:
            continue
        name = sorted(unknown)[0]
        ids = list(rows["id"]) if "id" in rows.column_names else None
        row = next(i for i, v in enumerate(rows[column]) if name in _row_labels(v, multi_label, ""))
        raise CurateError(
            f"{_where(data, split, row, ids)}: label '{name}' never appears in the train split "
            f"({', '.join(sorted(train_names))}), so no model can learn it: rebuild the export so train holds it, "
            "or drop the row"
        )
    return LabelSpace(tuple(sorted(train_names)), multi_label, pair)


def encode_inputs(tokenizer: Any, texts: list[str], pairs: list[str] | None, max_length: int) -> Any:
    """Token ids of each text (with its pair: `[CLS] text [SEP] pair [SEP]` for BERT), truncated, unpadded."""
    return tokenizer(texts, pairs, truncation=True, max_length=max_length)


def to_features(dataset: Any, tokenizer: Any, space: LabelSpace, max_length: int) -> Any:
    """The trainer's rows: input ids (+ attention mask, token types) and `labels` as the loss wants them.

    Unpadded: DataCollatorWithPadding pads each batch to its own longest row (dynamic padding).
    """

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        features = dict(encode_inputs(tokenizer, batch["text"], batch["text_pair"] if space.pair else None, max_length))
        features["labels"] = [space.target(value) for value in batch[space.column]]
        return features

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names)


def class_probabilities(
    model: Any,
    tokenizer: Any,
    space: LabelSpace,
    texts: list[str],
    pairs: list[str] | None,
    max_length: int,
    batch_size: int = 32,
    quiet: bool = True,
) -> np.ndarray:
    """(n, n_labels) probabilities: a sigmoid per label (multi-label) or a softmax over the classes."""
    import torch
    from rich.progress import track
    from transformers import DataCollatorWithPadding

    from curate.console import console

    encoded = encode_inputs(tokenizer, texts, pairs, max_length)
    features = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
    collate = DataCollatorWithPadding(tokenizer)
    # Longest first, so a batch pads little and an out-of-memory shows at the first batch.
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    probabilities = np.zeros((len(texts), len(space.names)), dtype=np.float32)
    device = next(model.parameters()).device
    # A half-precision base with fp32 trained layers (as trained under mixed precision) needs autocast to run.
    half = {p.dtype for p in model.parameters()} & {torch.float16, torch.bfloat16}
    autocast = torch.autocast(device.type, dtype=half.pop()) if half else contextlib.nullcontext()
    model.eval()
    with torch.no_grad():
        for batch in track(batches, description="predicting", disable=quiet, console=console):
            inputs = {key: value.to(device) for key, value in collate([features[i] for i in batch]).items()}
            with autocast:
                logits = model(**inputs).logits.float()
            probs = torch.sigmoid(logits) if space.multi_label else torch.softmax(logits, dim=-1)
            probabilities[batch] = probs.cpu().numpy()
    return probabilities
