"""Normalization, exact dedupe and the seeded, grouped split."""

from __future__ import annotations

from curate.schema import Kind, Record
from curate.steps.base import BuildContext
from curate.steps.exact_dedupe import ExactDedupe
from curate.steps.normalize import Normalize
from curate.steps.split import Split
from curate.text import match_key, normalize_text


def records(*pairs: tuple[str, str]) -> list[Record]:
    return [Record(f"r{i}", {"prompt": p, "response": r}, "mem", i) for i, (p, r) in enumerate(pairs, start=1)]


def test_normalize_text() -> None:
    decomposed = "Cafe\u0301"  # e + combining acute accent
    assert normalize_text(f"  {decomposed}  \r\nline two   \n\n\n\nend ") == "Café\nline two\n\nend"
    assert normalize_text("    indented code") == "indented code"
    assert normalize_text("a\n    indented") == "a\n    indented"
    assert match_key("Hello   World\n") == "Hello World"
    assert match_key("Hello World", lowercase=True) == "hello world"


def test_normalize_drops_empty_and_short_rows_with_reasons() -> None:
    ctx = BuildContext(quiet=True)
    kept = list(
        Normalize(Kind.instruction, min_chars=3)(records(("What?", "Yes"), ("   ", "x y z"), ("Why?", "no")), ctx)
    )
    assert [r.id for r in kept] == ["r1"]
    assert [(d.id, d.reason) for d in ctx.dropped] == [
        ("r2", "'prompt' is empty"),
        ("r3", "'response' is shorter than 3 chars"),
    ]
    assert ctx.stats[0].rows_in == 3 and ctx.stats[0].rows_out == 1


def test_exact_dedupe_case_insensitive_match_keeps_stored_case() -> None:
    ctx = BuildContext(quiet=True)
    rows = records(("Hello  World", "Hi"), ("hello world", "hi"), ("Other", "Hi"))
    kept = list(ExactDedupe(("prompt", "response"), lowercase=True)(rows, ctx))
    assert [(r.id, r.data["prompt"]) for r in kept] == [("r1", "Hello  World"), ("r3", "Other")]
    assert ctx.dropped[0].kept_id == "r1" and ctx.dropped[0].reason == "exact duplicate"
    assert (
        len(list(ExactDedupe(("prompt", "response"))(records(("A", "b"), ("a", "b")), BuildContext(quiet=True)))) == 2
    )


def split_of(rows: list[Record], **kwargs: object) -> dict[str, str]:
    list(Split(**kwargs)(rows, BuildContext(quiet=True)))  # type: ignore[arg-type]
    return {r.id: r.extra["split"] for r in rows}


def test_split_is_deterministic_and_seeded() -> None:
    rows = records(*[(f"q{i}", "a") for i in range(100)])
    first = split_of(rows, test_size=0.2, seed=7)
    assert list(first.values()).count("test") == 20
    assert split_of(records(*[(f"q{i}", "a") for i in range(100)]), test_size=0.2, seed=7) == first
    assert split_of(records(*[(f"q{i}", "a") for i in range(100)]), test_size=0.2, seed=8) != first


def test_grouped_split_never_straddles() -> None:
    rows = [Record(f"r{i}", {"prompt": f"q{i % 10}", "response": str(i)}, "mem", i) for i in range(60)]
    assignment = split_of(rows, test_size=0.3, seed=1, group_by="prompt")
    by_group: dict[str, set[str]] = {}
    for row in rows:
        by_group.setdefault(row.data["prompt"], set()).add(assignment[row.id])
    assert all(len(splits) == 1 for splits in by_group.values())
    assert sum(splits == {"test"} for splits in by_group.values()) == 3


def test_zero_test_size_keeps_everything_in_train() -> None:
    assert set(split_of(records(("a", "b"), ("c", "d")), test_size=0.0, seed=1).values()) == {"train"}
