"""`train classify` / `train predict` on a tiny BERT: what the trainer receives, frozen layers, the head's
learning rate, sentence pairs end to end, thresholds in `train predict`, and one clear line for bad data.

The genre workflow on the real all-MiniLM-L6-v2 (it learns; thresholds are tuned) is in
test_classify_genres.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from classify_fixtures import (
    build_recipe_export,
    build_rows_export,
    classify_recipe,
    read_jsonl,
    save_tiny_bert,
    write_jsonl,
)
from typer.testing import CliRunner

from train.classify import ClassifierTrainer, classify_arguments, load_classifier_model, train_classify
from train.classify_metrics import classification_metrics, confusion_summary, tune_thresholds
from train.cli import app
from train.data import load_data
from train.labels import label_space, to_features

GENRES = ["space", "ghost", "love", "crime"]
WORDS = {"space": "rocket planet", "ghost": "haunted ghost", "love": "wedding kiss", "crime": "detective murder"}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def paraphrases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`curate build recipes/paraphrases-build.yaml`: 96 train / 24 test sentence pairs."""
    return build_recipe_export("paraphrases-build.yaml", tmp_path_factory.mktemp("exports") / "paraphrases")


def toy_rows(n: int = 48) -> list[dict]:
    """Multi-label rows whose labels are spelled out by keywords (one or two of four genres)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        labels = sorted(set(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False)))
        words = " ".join(WORDS[g] for g in labels)
        rows.append({"id": f"t{i}", "text": f"story {i}: a tale with {words} in it", "labels": labels})
    return rows


@pytest.fixture(scope="module")
def toy_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_rows_export(toy_rows(), tmp_path_factory.mktemp("exports") / "toy")


def tiny_recipe(model: Path, data: Path, out: Path, **keys):
    """CPU-sized: a few epochs, no per-epoch checkpoints unless asked."""
    base = {
        "model__name": str(model),
        "dataset__path": str(data),
        "logging__output_dir": str(out),
        "training__epochs": 3,
        "training__batch_size": 8,
        "training__learning_rate": 1e-3,
        "training__save_each_epoch": False,
    }
    return classify_recipe(**{**base, **keys})


def test_the_trainer_reads_each_pair_as_one_sequence_padded_per_batch(paraphrases: Path, tiny_bert: Path) -> None:
    """[CLS] text [SEP] text_pair [SEP] with token types 0/1, the class index as label, padding to the batch only."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    data = load_data(str(paraphrases), "classify")
    space = label_space(data)
    assert space.names == ("different", "paraphrase") and space.pair and not space.multi_label
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = data.dataset["train"]
    features = to_features(rows, tokenizer, space, max_length=128)

    first = features[0]
    expected = tokenizer(rows[0]["text"], rows[0]["text_pair"])["input_ids"]
    assert first["input_ids"] == expected
    sep = tokenizer.sep_token_id
    assert first["input_ids"][0] == tokenizer.cls_token_id and first["input_ids"].count(sep) == 2
    second_start = first["input_ids"].index(sep) + 1
    assert set(first["token_type_ids"][:second_start]) == {0} and set(first["token_type_ids"][second_start:]) == {1}
    assert first["labels"] == space.label2id[rows[0]["label"]]

    batch = DataCollatorWithPadding(tokenizer)([features[i] for i in range(4)])
    lengths = [len(features[i]["input_ids"]) for i in range(4)]
    assert batch["input_ids"].shape == (4, max(lengths)) < (4, 128)  # dynamic: the batch's longest row, not 128
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["labels"].dtype == torch.long


def test_inspect_shows_the_pairs_as_the_encoder_reads_them_and_trains_nothing(
    paraphrases: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    args = ["classify", "--data", str(paraphrases), "--model", str(tiny_bert), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, "--inspect", "1", "--max-length", "12", "-q"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    first = load_data(str(paraphrases), "classify").dataset["train"][0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    ids = tokenizer(first["text"], first["text_pair"])["input_ids"]
    assert f"#1 id {first['id']} · {len(ids)} tokens · label: {first['label']}" in result.output
    assert "⟨[CLS]⟩" in result.output and result.output.count("[SEP]⟩") >= 2 and "✂ max_length 12 ✂" in result.output
    assert "train: 96 rows" in result.output and "test: 24 rows" in result.output
    assert "different 48 paraphrase 48" in result.output
    assert not (tmp_path / "run").exists()


def test_multi_label_rows_become_multi_hot_float_targets(toy_export: Path, tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    data = load_data(str(toy_export), "classify")
    space = label_space(data)
    assert space.multi_label and space.names == tuple(sorted(GENRES))
    features = to_features(data.dataset["train"], AutoTokenizer.from_pretrained(tiny_bert), space, 64)
    for row, feature in zip(data.dataset["train"], features, strict=True):
        assert feature["labels"] == [1.0 if g in row["labels"] else 0.0 for g in space.names]


def test_frozen_layers_stay_bit_identical(toy_export: Path, tiny_bert: Path, tmp_path: Path) -> None:
    """train_last 1 of 3: embeddings and layers 0-1 unchanged to the bit; layer 2, pooler and head trained."""
    from transformers import AutoModelForSequenceClassification, BertModel

    before = BertModel.from_pretrained(tiny_bert).state_dict()
    run = train_classify(tiny_recipe(tiny_bert, toy_export, tmp_path / "run", classify__train_last=1), quiet=True)
    after = AutoModelForSequenceClassification.from_pretrained(run.run_dir).state_dict()  # the saved model

    frozen = [k for k in before if k.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1."))]
    trained = [k for k in before if k.startswith(("encoder.layer.2.", "pooler."))]
    assert len(frozen) > 30 and len(trained) > 10
    for key in frozen:
        assert torch.equal(before[key], after[f"bert.{key}"]), key
    for key in trained:
        assert not torch.equal(before[key], after[f"bert.{key}"]), key
    card = json.loads((run.run_dir / "run_card.json").read_text())
    assert card["classifier"]["frozen"]["encoder_layers"] == 3 and card["classifier"]["frozen"]["trained_layers"] == 1
    model = card["model"]
    assert model["trainable_parameters"] == model["parameters"] - card["classifier"]["frozen"]["frozen_parameters"]


def test_a_recipe_trains_the_same_model_whatever_ran_before_it(toy_export: Path, tiny_bert: Path, tmp_path: Path):
    """The fresh head is drawn from training.seed, not from whatever state the process's RNG was left in."""
    from transformers import AutoModelForSequenceClassification

    weights = []
    for before in (1, 2):
        torch.manual_seed(before)
        recipe = tiny_recipe(tiny_bert, toy_export, tmp_path / f"run{before}", training__epochs=1)
        run = train_classify(recipe, quiet=True)
        weights.append(AutoModelForSequenceClassification.from_pretrained(run.run_dir).classifier.weight)
    assert torch.equal(*weights)


def test_the_run_card_counts_a_plain_trainers_tokens_and_names_the_best_metric(
    toy_export: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    """The shared run layer on transformers' Trainer (no TRL token count): tokens and rows trained on, their
    rates over the training steps, and the best checkpoint's score named after the metric that picked it."""
    from transformers import AutoTokenizer

    recipe = tiny_recipe(
        tiny_bert,
        toy_export,
        tmp_path / "run",
        training__epochs=2,
        training__save_each_epoch=True,
        classify__best_metric="f1_micro",
        classify__tune_thresholds=False,  # every train row trains
    )
    run = train_classify(recipe, quiet=True)
    card = json.loads((run.run_dir / "run_card.json").read_text())
    train = load_data(str(toy_export), "classify").dataset["train"]
    features = to_features(train, AutoTokenizer.from_pretrained(tiny_bert), run.space, card["classifier"]["max_length"])
    speed = card["throughput"]
    assert speed["train_tokens"] == 2 * sum(len(ids) for ids in features["input_ids"])  # non-pad tokens, 2 epochs
    assert speed["train_samples"] == 2 * len(train)
    assert speed["samples_per_second"] == pytest.approx(speed["train_samples"] / speed["train_seconds"])
    assert speed["tokens_per_second"] == pytest.approx(speed["train_tokens"] / speed["train_seconds"])
    metrics = card["metrics"]
    assert "best_eval_loss" not in metrics
    assert metrics["best_eval_f1_micro"] == max(e["eval_f1_micro"] for e in card["epochs"])


def test_freeze_layers_is_train_last_counted_from_the_bottom(toy_export: Path, tiny_bert: Path, tmp_path: Path) -> None:
    space = label_space(load_data(str(toy_export), "classify"))

    def trainable(**keys) -> set[str]:
        model = load_classifier_model(tiny_recipe(tiny_bert, toy_export, tmp_path, **keys), space).model
        return {name for name, p in model.named_parameters() if p.requires_grad}

    assert trainable(classify__freeze_layers=2) == trainable(classify__train_last=1)
    assert trainable(classify__train_last=0) == {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    }


def test_the_head_gets_its_own_learning_rate(toy_export: Path, tiny_bert: Path, tmp_path: Path) -> None:
    """classify.head_learning_rate: pooler + classifier in optimizer groups of their own at that rate."""
    recipe = tiny_recipe(tiny_bert, toy_export, tmp_path, classify__head_learning_rate=5e-2)
    classifier = load_classifier_model(recipe, label_space(load_data(str(toy_export), "classify")))
    trainer = ClassifierTrainer(
        model=classifier.model,
        args=classify_arguments(recipe, tmp_path, has_eval=False),
        head=classifier.head,
        head_learning_rate=5e-2,
    )
    optimizer = trainer.create_optimizer()
    by_rate: dict[float, set[int]] = {}
    for group in optimizer.param_groups:
        by_rate.setdefault(group["lr"], set()).update(id(p) for p in group["params"])
    named = dict(classifier.model.named_parameters())
    head = {id(named[n]) for n in named if n.startswith(("classifier.", "bert.pooler."))}
    assert by_rate[5e-2] == head
    assert by_rate[1e-3] == {id(p) for p in named.values()} - head
    assert {g["weight_decay"] for g in optimizer.param_groups if g["lr"] == 5e-2} == {0.0, recipe.training.weight_decay}


def test_sentence_pairs_train_and_predict(paraphrases: Path, tiny_bert: Path, tmp_path: Path) -> None:
    """The pair recipe on the tiny BERT through the CLI; `train predict` reproduces the run card's test accuracy."""
    out = tmp_path / "run"
    args = ["classify", "--config", "recipes/paraphrases-classify.yaml", "--data", str(paraphrases)]
    args += ["--model", str(tiny_bert), "--out", str(out), "--epochs", "2", "--quiet", "training.save_each_epoch=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "run_card.json").read_text())
    assert card["classifier"]["problem_type"] == "single_label_classification" and card["classifier"]["pair"]
    assert card["classifier"]["labels"] == ["different", "paraphrase"] and card["classifier"]["thresholds"] is None
    assert card["data"]["format"] == "text+text_pair+label" and card["data"]["rows"]["test"] == 24
    assert {"test_accuracy", "test_f1_macro", "test_roc_auc", "eval_accuracy"} <= set(card["metrics"])
    assert card["metrics"]["global_step"] == 2 * 12 and card["throughput"]["train_tokens"] > 0
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "different", "1": "paraphrase"}
    matrix = card["confusion"]["matrix"]
    assert sum(matrix["different"].values()) == sum(matrix["paraphrase"].values()) == 12
    assert "| true ↓ · predicted → | different | paraphrase |" in (out / "README.md").read_text()

    test_rows = load_data(str(paraphrases), "classify").dataset["test"].to_list()
    source = write_jsonl(
        tmp_path / "pairs.jsonl", [{"text": r["text"], "text_pair": r["text_pair"]} for r in test_rows]
    )
    result = CliRunner().invoke(app, ["predict", str(out), "--data", str(source), "--quiet"])
    assert result.exit_code == 0, result.output
    predicted = read_jsonl(tmp_path / "pairs.predicted.jsonl")
    assert [r["text_pair"] for r in predicted] == [r["text_pair"] for r in test_rows]  # rows kept, in order
    for row in predicted:
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["predicted_label"] == max(row["probabilities"], key=row["probabilities"].get)
    accuracy = np.mean([p["predicted_label"] == r["label"] for p, r in zip(predicted, test_rows, strict=True)])
    assert accuracy == pytest.approx(card["metrics"]["test_accuracy"])


def test_predict_applies_the_thresholds_of_the_run_card(toy_export: Path, tiny_bert: Path, tmp_path: Path) -> None:
    run = train_classify(
        tiny_recipe(tiny_bert, toy_export, tmp_path / "run", classify__validation_size=0.25), quiet=True
    )
    card_path = run.run_dir / "run_card.json"
    card = json.loads(card_path.read_text())
    thresholds = card["classifier"]["thresholds"]
    assert set(thresholds) == set(GENRES) and "validation rows" in card["classifier"]["thresholds_from"]
    rows = [{"text": r["text"]} for r in toy_rows(12)]
    source = write_jsonl(tmp_path / "rows.jsonl", rows)

    def predicted() -> list[dict]:
        result = CliRunner().invoke(app, ["predict", str(run.run_dir), "--data", str(source), "-q"])
        assert result.exit_code == 0, result.output
        return read_jsonl(tmp_path / "rows.predicted.jsonl")

    for row in predicted():
        assert row["predicted_labels"] == [g for g in sorted(GENRES) if row["probabilities"][g] >= thresholds[g]]
    # A threshold changed in the card changes the predictions: predict reads it, not a constant 0.5.
    card["classifier"]["thresholds"] = {**thresholds, "crime": 0.0, "love": 1.0}
    card_path.write_text(json.dumps(card))
    again = predicted()
    assert all("crime" in row["predicted_labels"] and "love" not in row["predicted_labels"] for row in again)


def test_predict_writes_csv_and_parquet_too(toy_export: Path, tiny_bert: Path, tmp_path: Path) -> None:
    import pandas as pd

    run = train_classify(tiny_recipe(tiny_bert, toy_export, tmp_path / "run", training__epochs=1), quiet=True)
    frame = pd.DataFrame({"text": ["a rocket to a planet", "a haunted ghost house"], "year": [1999, 2004]})
    for suffix in (".csv", ".parquet"):
        source = tmp_path / f"rows{suffix}"
        frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source)
        result = CliRunner().invoke(app, ["predict", str(run.run_dir), "--data", str(source), "-q"])
        assert result.exit_code == 0, result.output
        out = tmp_path / f"rows.predicted{suffix}"
        back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        assert list(back["year"]) == [1999, 2004]
        probabilities = back["probabilities"][0]
        probabilities = json.loads(probabilities) if suffix == ".csv" else probabilities
        assert set(probabilities) == set(GENRES)


def _saved_dataset(tmp_path: Path, train: list[dict], test: list[dict]) -> Path:
    from datasets import Dataset, DatasetDict

    path = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)}).save_to_disk(path)
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("other-kind", "qa: a 'instruction' export (columns id, messages) cannot train `train classify`"),
        ("no-labels", "the train split has no labels ('labels' is empty in all"),
        ("unseen-label", "test split row 2 (id b): label 'western' never appears in the train split"),
        ("one-class", "the train split has one class only ('yes')"),
        ("both-columns", "both 'labels' (multi-label) and 'label' (single-label) columns"),
        ("missing-pair", "train split row 1: 'text_pair' must be text, got None"),
        ("bad-metric", "classify.best_metric 'jaccard' is not a single-label metric"),
        ("lora-and-freeze", "LoRA keeps every base weight frozen already"),
        ("predict-not-classify", "a `train sft` run, not a classifier"),
    ],
)
def test_bad_input_gives_one_clear_line(case: str, expected: str, tiny_bert: Path, tmp_path: Path) -> None:
    from curate.pipeline import build
    from curate.recipe import BuildRecipe

    data, extra = None, []
    rows = [{"id": "a", "text": "a rocket", "labels": ["space"]}, {"id": "b", "text": "a ghost", "labels": ["ghost"]}]
    pairs = [{"text": "a", "text_pair": "b", "label": "yes"}, {"text": "c", "text_pair": "d", "label": "no"}]
    if case == "other-kind":
        source = write_jsonl(tmp_path / "qa.jsonl", [{"prompt": f"q{i}", "response": "a"} for i in range(4)])
        build(BuildRecipe(inputs=[str(source)], out=str(tmp_path / "qa"), kind="instruction"), quiet=True)
        data = tmp_path / "qa"
    elif case == "no-labels":
        data = build_rows_export([{"text": f"row {i}", "labels": []} for i in range(8)], tmp_path / "empty")
    elif case == "unseen-label":
        test = [rows[0], {"id": "b", "text": "a duel at noon", "labels": ["western", "space"]}]
        data = _saved_dataset(tmp_path, rows, test)
    elif case == "one-class":
        data = _saved_dataset(tmp_path, [{**pairs[0]}, {**pairs[0], "text": "e"}], pairs[:1])
    elif case == "both-columns":
        data = _saved_dataset(tmp_path, [{**r, "label": "x"} for r in rows], rows)
    elif case == "missing-pair":
        data = _saved_dataset(tmp_path, [{**pairs[0], "text_pair": None}, pairs[1]], pairs)
    elif case == "bad-metric":
        data, extra = _saved_dataset(tmp_path, pairs, pairs), ["--best-metric", "jaccard"]
    elif case == "lora-and-freeze":
        data, extra = _saved_dataset(tmp_path, rows, rows), ["--lora", "--train-last", "1"]
    if case == "predict-not-classify":
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "run_card.json").write_text(json.dumps({"verb": "sft"}))
        source = write_jsonl(tmp_path / "rows.jsonl", rows)
        args = ["predict", str(tmp_path / "run"), "--data", str(source)]
    else:
        args = ["classify", "--data", str(data), "--model", str(tiny_bert), "--out", str(tmp_path / "run"), "-q"]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr


def test_thresholds_maximise_each_labels_f1_and_ties_stay_near_the_default() -> None:
    gold = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    probs = np.array([[0.30, 0.9, 0.5], [0.35, 0.8, 0.5], [0.10, 0.7, 0.5], [0.20, 0.6, 0.5]])
    thresholds = tune_thresholds(gold, probs, default=0.5)
    # label 0: 0.25 and 0.30 both separate its positives (F1 1.0); 0.30 is nearer the default
    # label 1: no positive row, so the default stays; label 2: every t <= 0.5 ties (F1 0.4), 0.5 is the default
    assert thresholds.tolist() == [0.30, 0.5, 0.5]


def test_metrics_and_confusions_on_a_hand_made_example() -> None:
    gold = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    pred = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    probs = np.array([[0.9, 0.4, 0.1], [0.2, 0.8, 0.3], [0.7, 0.1, 0.2]])
    metrics = classification_metrics(gold, probs, pred, multi_label=True)
    assert metrics["jaccard"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert metrics["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # tp 2, fp 1, fn 2
    assert metrics["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert 0 < metrics["roc_auc"] < 1
    summary = confusion_summary(gold, pred, ("a", "b", "c"), multi_label=True)
    assert summary["exact"] == 1 and summary["rows_missing_a_label"] == 2 and summary["rows_with_an_extra_label"] == 1
    assert summary["top_confusions"] == [{"true": "c", "predicted": "a", "rows": 1}] and "matrix" not in summary
    single = confusion_summary(
        np.eye(3, dtype=int)[[0, 0, 1, 2]], np.eye(3, dtype=int)[[0, 2, 1, 2]], ("a", "b", "c"), False
    )
    assert single["matrix"] == {
        "a": {"a": 1, "b": 0, "c": 1},
        "b": {"a": 0, "b": 1, "c": 0},
        "c": {"a": 0, "b": 0, "c": 1},
    }


def test_a_lora_run_reloads_with_its_trained_head(toy_export: Path, tiny_bert: Path, tmp_path: Path) -> None:
    """--lora: the adapter holds the classifier (modules_to_save), so `train predict` scores like the trained model."""
    from train.labels import class_probabilities
    from train.predict import load_classifier

    recipe = tiny_recipe(tiny_bert, toy_export, tmp_path / "run", lora__enabled=True, lora__r=4, training__epochs=2)
    run = train_classify(recipe, quiet=True)
    assert (run.run_dir / "adapter_config.json").is_file()
    texts = [r["text"] for r in toy_rows(6)]
    trained = class_probabilities(run.model, run.tokenizer, run.space, texts, None, 64)
    reloaded = load_classifier(run.run_dir)
    again = class_probabilities(reloaded.model, reloaded.tokenizer, reloaded.space, texts, None, 64)
    np.testing.assert_allclose(again, trained, atol=1e-5)
    head = dict(reloaded.model.named_parameters())
    fresh = load_classifier_model(recipe, run.space).model  # the head a reload without modules_to_save would get
    assert not torch.equal(
        head["base_model.model.classifier.modules_to_save.default.weight"],
        dict(fresh.named_parameters())["base_model.model.classifier.modules_to_save.default.weight"],
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (mixed-precision path)")
def test_mixed_precision_keeps_trained_weights_fp32_and_predicts(toy_export: Path, tiny_bert: Path, tmp_path: Path):
    """On a GPU: bf16/fp16 autocast, the frozen layers in half precision, the trained ones in fp32; predict runs."""
    run = train_classify(tiny_recipe(tiny_bert, toy_export, tmp_path / "run", classify__train_last=1), quiet=True)
    dtypes = {name: p.dtype for name, p in run.model.named_parameters()}
    assert dtypes["classifier.weight"] == dtypes["bert.encoder.layer.2.output.dense.weight"] == torch.float32
    assert dtypes["bert.encoder.layer.0.output.dense.weight"] in (torch.bfloat16, torch.float16)
    source = write_jsonl(tmp_path / "rows.jsonl", [{"text": r["text"]} for r in toy_rows(4)])
    result = CliRunner().invoke(app, ["predict", str(run.run_dir), "--data", str(source), "-q"])
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(tmp_path / "rows.predicted.jsonl")) == 4
