"""Validation errors name the file, row and field; --skip-invalid keeps going and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.errors import CurateError, RowError
from curate.pipeline import build
from curate.recipe import BuildRecipe
from curate.schema import Kind, detect_kind, validate_row


def test_rating_outside_1_to_10_names_row_and_field() -> None:
    raw = {"prompt": "q", "response": "a", "rating": 11, "labeler": "alice"}
    with pytest.raises(RowError, match=r"f\.jsonl line 7: field 'rating': Input should be less than or equal to 10"):
        validate_row(Kind.rated, raw, "f.jsonl", 7, "line")


@pytest.mark.parametrize(
    ("kind", "raw", "field", "message"),
    [
        (Kind.instruction, {"prompt": 3, "response": "a"}, "prompt", "valid string"),
        (Kind.instruction, {"prompt": "q"}, "(row)", "missing required field 'response'"),
        (Kind.instruction, {"prompt": "q", "response": "a", "extra": 1}, "extra", "unknown column"),
        (Kind.rated, {"prompt": "q", "response": "a", "rating": "seven", "labeler": "x"}, "rating", "valid integer"),
        (
            Kind.preference,
            {"prompt": "q", "chosen": "a", "rejected": "b", "margin": -1},
            "margin",
            "greater than or equal",
        ),
        (Kind.labelled, {"text": "t"}, "(row)", "missing required field 'labels' (a list of names; or 'label'"),
        (Kind.labelled, {"text": "t", "labels": ["a"], "label": "a"}, "(row)", "not both"),
        (Kind.labelled, {"text": "t", "text_pair": 3, "label": "a"}, "text_pair", "valid string"),
    ],
)
def test_each_error_names_its_field(kind: Kind, raw: dict, field: str, message: str) -> None:
    with pytest.raises(RowError) as info:
        validate_row(kind, raw, "data.csv", 4)
    assert info.value.field == field
    assert message in str(info.value)
    assert "data.csv row 4" in str(info.value)


def test_csv_style_values_are_coerced() -> None:
    rated = validate_row(Kind.rated, {"prompt": "q", "response": "a", "rating": "7", "labeler": "bob"}, "f", 1)
    assert rated.data["rating"] == 7
    labelled = validate_row(Kind.labelled, {"text": "t", "labels": "drama|comedy", "id": 12}, "f", 1)
    assert labelled.data["labels"] == ["drama", "comedy"] and labelled.id == "12"


def test_sentence_pairs_and_single_labels_are_labelled_records() -> None:
    pair = {"text": "It rained.", "text_pair": "There was rain.", "label": 1, "id": "p1"}
    assert detect_kind(list(pair)) is Kind.labelled
    record = validate_row(Kind.labelled, pair, "pairs.jsonl", 1)
    assert record.data == {"text": "It rained.", "text_pair": "There was rain.", "label": "1"}  # a class id is a name


def test_a_pair_export_keeps_text_pair_and_label(tmp_path: Path) -> None:
    """`curate build` writes the pair columns, normalizes both sentences and dedupes on the whole pair."""
    rows = [
        {"text": "It  rained.", "text_pair": "There was rain.", "label": "same"},
        {"text": "It rained.", "text_pair": "There was  rain.", "label": "same"},  # the same pair once normalized
        {"text": "It rained.", "text_pair": "It was sunny.", "label": "different"},  # same first sentence: kept
    ]
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = build(BuildRecipe(inputs=[str(source)], out=str(tmp_path / "out"), split={"test_size": 0}), quiet=True)
    assert result.manifest.kind == Kind.labelled
    assert result.manifest.columns == ["id", "text", "text_pair", "label"]
    assert result.manifest.counts.splits["train"] == 2


def test_messages_form_is_an_instruction() -> None:
    raw = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    assert detect_kind(list(raw)) is Kind.instruction
    assert validate_row(Kind.instruction, raw, "f", 1).data["messages"][1]["role"] == "assistant"
    with pytest.raises(RowError, match="ends with the assistant turn to learn"):
        validate_row(Kind.instruction, {"messages": [{"role": "user", "content": "hi"}]}, "f", 1)


def test_unknown_columns_cannot_be_classified() -> None:
    with pytest.raises(CurateError, match="--map"):
        detect_kind(["question", "answer"])


def _rated_file(tmp_path: Path) -> Path:
    rows = [
        {"prompt": "q1", "response": "a", "rating": 8, "labeler": "alice"},
        {"prompt": "q2", "response": "b", "rating": 0, "labeler": "alice"},
        {"prompt": "q3", "response": "c", "rating": "x", "labeler": "bob"},
        {"prompt": "q4", "response": "d", "rating": 3, "labeler": "bob"},
    ]
    path = tmp_path / "rated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_build_stops_on_first_bad_row(tmp_path: Path) -> None:
    path = _rated_file(tmp_path)
    with pytest.raises(CurateError, match=r"rated\.jsonl line 2: field 'rating'.*--skip-invalid"):
        build(BuildRecipe(inputs=[str(path)], out=str(tmp_path / "out")), quiet=True)
    assert not (tmp_path / "out").exists()


def test_skip_invalid_counts_and_lists_bad_rows(tmp_path: Path) -> None:
    path = _rated_file(tmp_path)
    result = build(BuildRecipe(inputs=[str(path)], out=str(tmp_path / "out"), skip_invalid=True), quiet=True)
    assert result.manifest.counts.invalid == 2
    listed = [json.loads(line) for line in (tmp_path / "out" / "invalid_rows.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in listed] == [(2, "rating"), (3, "rating")]
    assert sum(result.manifest.counts.splits.values()) == 2


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"id": "x", "text": "a", "labels": []}\n{"id": "x", "text": "b", "labels": []}\n')
    with pytest.raises(CurateError, match="id 'x' already used at .*line 1"):
        build(BuildRecipe(inputs=[str(path)], out=str(tmp_path / "out")), quiet=True)


def test_alpaca_columns_are_read_natively() -> None:
    """Stanford Alpaca's instruction/input/output need no --map; an empty input is no input."""
    raw = {"instruction": "Arrange the notes.", "input": "G, B, E", "output": "E, G, B"}
    assert detect_kind(list(raw)) is Kind.instruction
    record = validate_row(Kind.instruction, raw, "alpaca_data.jsonl", 3)
    assert record.data == {"prompt": "Arrange the notes.", "input": "G, B, E", "response": "E, G, B"}


def test_a_column_holding_prompt_content_is_never_suggested_for_ignore() -> None:
    with pytest.raises(RowError, match=r"looks like prompt content, so keep it: --map context=input") as info:
        validate_row(Kind.instruction, {"prompt": "q", "response": "a", "context": "notes"}, "f.jsonl", 2)
    assert "--ignore" not in str(info.value)
    with pytest.raises(RowError, match=r"--ignore COLUMN if it holds no prompt or answer text"):
        validate_row(Kind.instruction, {"prompt": "q", "response": "a", "stars": 5}, "f.jsonl", 2)
