"""`train predict`: labels and probabilities per row from a `train classify` run.

The rows are read like `train score` reads them (JSONL, CSV or Parquet; train/score.py), tokenized and
scored exactly as the run's test metrics were (train/labels.py), and the run card's per-label
thresholds decide the multi-label predictions. The output is the input rows plus `predicted_labels`
(multi-label) or `predicted_label` (single-label) and `probabilities` ({label: probability}).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from curate.console import console, user_errors
from curate.errors import CurateError
from train.classify_metrics import predict
from train.labels import LabelSpace, class_probabilities
from train.score import output_file, read_rows, write_with_columns


@dataclass
class Classifier:
    """A trained classifier as `train classify` left it: model, tokenizer, labels, thresholds, max_length."""

    model: Any
    tokenizer: Any
    space: LabelSpace
    thresholds: np.ndarray | None  # one per label (multi-label); None: the most probable class
    max_length: int


def load_classifier(run_dir: str | Path) -> Classifier:
    """Rebuild a `train classify` run's model (full, or base + LoRA adapter with its head) from its run card."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from train.card import read_run_card
    from train.model import model_path

    run_dir = Path(run_dir)
    card = read_run_card(run_dir)
    if card.get("verb") != "classify":
        raise CurateError(
            f"{run_dir}: a `train {card.get('verb')}` run, not a classifier; train one with `train classify`"
        )
    section = card["classifier"]
    space = LabelSpace.from_card(section)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if (run_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base_path = card.get("base_model_path") or ""
        if not Path(base_path).exists():
            base_path = model_path(card["base_model"])
        base = AutoModelForSequenceClassification.from_pretrained(
            base_path,
            num_labels=len(space.names),
            problem_type=space.problem_type,
            id2label=space.id2label,
            label2id=space.label2id,
            ignore_mismatched_sizes=True,
        )
        model = PeftModel.from_pretrained(base, run_dir)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(run_dir)
    if torch.cuda.is_available():
        model.to("cuda")
    thresholds = section.get("thresholds")
    return Classifier(
        model,
        tokenizer,
        space,
        np.array([thresholds[name] for name in space.names]) if thresholds else None,
        int(section["max_length"]),
    )


def _texts(records: list[dict[str, Any]], column: str, data: Path) -> list[str]:
    texts = []
    for number, row in enumerate(records, start=1):
        value = row.get(column)
        if not isinstance(value, str):
            raise CurateError(f"--data {data} row {number}: '{column}' must be text, got {value!r}")
        texts.append(value)
    return texts


def predict_file(
    run_dir: Path,
    data: Path,
    out: Path,
    text_column: str = "text",
    pair_column: str = "text_pair",
    batch_size: int = 32,
    quiet: bool = False,
) -> list[list[str]]:
    """Predict every row of `data` with the run's classifier; write rows + predictions + probabilities to `out`.

    Returns each row's predicted label names (one name per row for single-label models).
    """
    classifier = load_classifier(run_dir)
    space = classifier.space
    needed = [text_column, *([pair_column] if space.pair else [])]
    hint = (
        f"this {'sentence-pair ' if space.pair else ''}classifier reads {' + '.join(needed)}: name them with "
        "--text-column / --pair-column"
    )
    table, records = read_rows(data, needed, hint)
    texts = _texts(records, text_column, data)
    pairs = _texts(records, pair_column, data) if space.pair else None
    probs = class_probabilities(
        classifier.model, classifier.tokenizer, space, texts, pairs, classifier.max_length, batch_size, quiet
    )
    thresholds = classifier.thresholds if classifier.thresholds is not None else 0.5
    predicted = predict(probs, space.multi_label, thresholds)
    names = [[space.names[i] for i in np.flatnonzero(row)] for row in predicted]
    probabilities = [{name: round(float(p), 6) for name, p in zip(space.names, row, strict=True)} for row in probs]
    column = "predicted_labels" if space.multi_label else "predicted_label"
    write_with_columns(
        table, out, {column: names if space.multi_label else [n[0] for n in names], "probabilities": probabilities}
    )
    return names


@user_errors
def predict_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `train classify`.")],
    data: Annotated[
        Path, typer.Option("--data", help="Rows to classify: JSONL, CSV or Parquet with a text (and text_pair) column.")
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Output file (default: DATA with a .predicted suffix).")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    pair_column: Annotated[str, typer.Option(help="Column holding the second sentence (pair models).")] = "text_pair",
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per forward pass.")] = 32,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Classify rows with a `train classify` model: the same rows plus predicted label(s) and probabilities.

    Multi-label models predict every label whose probability reaches its tuned threshold (run card).

    \b
    Example:
      train predict runs/genres-classify --data data/genres/descriptions.jsonl \\
          --out out/genres-predicted.jsonl
    """
    from rich.markup import escape

    from train.progress import on_terminal, silence_library_progress

    out = output_file(data, out, "predicted")
    if quiet or not on_terminal():  # transformers' weight-loading bar: carriage returns in a log
        silence_library_progress()
    names = predict_file(run_dir, data, out, text_column, pair_column, batch_size, quiet)
    counts = Counter(name for row in names for name in row)
    common = " · ".join(f"{escape(name)} {n}" for name, n in counts.most_common(6))
    console.print(
        f"Classified {len(names)} rows ({common or 'no label predicted'}) → [bold]{escape(str(out))}[/]", soft_wrap=True
    )
