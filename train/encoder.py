"""The parts of an encoder classifier: embeddings, the stack of transformer layers, and the head.

Found by structure, not by name, so it works for any `AutoModelForSequenceClassification` encoder
(BERT, RoBERTa, DistilBERT, DeBERTa, ELECTRA, ...): the layer stack is the ModuleList of
`num_hidden_layers` blocks in the base model; the base model's children registered before it are the
embeddings; its children after it (BERT's pooler) and everything outside the base model (the
classifier) are the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curate.errors import CurateError


@dataclass
class EncoderParts:
    """An encoder classifier split into what runs before the layers, the layers, and what runs after them."""

    embeddings: list[Any]  # modules
    layers: Any  # torch.nn.ModuleList
    head: list[Any]  # modules: the pooler (if any) and the classification head


def encoder_parts(model: Any) -> EncoderParts:
    """Split `model` (a plain transformers model, not a PEFT wrapper) into embeddings, layers and head."""
    import torch

    base = model.base_model
    count = model.config.num_hidden_layers
    found = next(
        (
            (name, module)
            for name, module in base.named_modules()
            if isinstance(module, torch.nn.ModuleList) and len(module) == count
        ),
        None,
    )
    if found is None:
        raise CurateError(f"cannot find the {count} encoder layers of a '{model.config.model_type}' model")
    name, layers = found
    holder = name.split(".")[0]  # the base model's child that holds the layer stack
    children = list(base.named_children())
    position = next(i for i, (child_name, _) in enumerate(children) if child_name == holder)
    outside = [child for child_name, child in model.named_children() if child_name != model.base_model_prefix]
    return EncoderParts(
        embeddings=[child for _, child in children[:position]],
        layers=layers,
        head=[child for _, child in children[position + 1 :]] + outside,
    )


def freeze_encoder(model: Any, train_last: int) -> dict[str, int]:
    """Freeze the embeddings and all but the last `train_last` encoder layers (the original genre workflow).

    The last layers and the head (BERT's pooler, the classifier) keep training.
    """
    parts = encoder_parts(model)
    total = len(parts.layers)
    if train_last > total:
        raise CurateError(f"train_last {train_last}: the encoder has only {total} layers")
    count = 0
    for module in [*parts.embeddings, *list(parts.layers)[: total - train_last]]:
        for param in module.parameters():
            param.requires_grad_(False)
            count += param.numel()
    return {"encoder_layers": total, "trained_layers": train_last, "frozen_parameters": count}


def head_parameters(model: Any) -> list[Any]:
    """The head's parameters (pooler and classifier): the ones a fresh classifier most needs to move."""
    return [param for module in encoder_parts(model).head for param in module.parameters()]
