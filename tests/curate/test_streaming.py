"""A build streams its rows (issue 16 item 4): it holds a few batches of records, never the whole input."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from curate.pipeline import build
from curate.recipe import BuildRecipe
from curate.schema import Record
from curate.steps import store

ROWS = 30_000


class LiveRecords:
    """How many `Record` objects exist at once (created, or unpickled from a spooled store), at most."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = self.peak = 0
        init = Record.__init__

        def born(record: Record, *args: Any, **kwargs: Any) -> None:
            self.now += 1
            self.peak = max(self.peak, self.now)
            init(record, *args, **kwargs)

        def unpickled(record: Record, state: dict[str, Any]) -> None:
            born(record, **state)

        def gone(record: Record) -> None:
            self.now -= 1

        monkeypatch.setattr(Record, "__init__", born)
        monkeypatch.setattr(Record, "__setstate__", unpickled, raising=False)
        monkeypatch.setattr(Record, "__del__", gone, raising=False)


def write_rows(path: Path, rows: int) -> None:
    """Instruction rows, one in 20 an exact copy of an earlier row."""
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            n = rng.randrange(i) if i and i % 20 == 0 else i
            handle.write(json.dumps({"prompt": f"What is item {n}?", "response": f"Item {n} is number {n}."}) + "\n")


def test_build_holds_a_few_batches_of_records_not_the_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "rows.jsonl"
    write_rows(data, ROWS)
    recipe = BuildRecipe(inputs=[str(data)], out=str(tmp_path / "in-memory"))
    expected = build(recipe, quiet=True).manifest  # a store this small stays in memory

    monkeypatch.setattr(store, "SPOOL_BYTES", 64 << 10)  # every store rolls over to its temporary file
    live = LiveRecords(monkeypatch)
    spilled = build(recipe.model_copy(update={"out": str(tmp_path / "spilled")}), quiet=True).manifest

    # Without streaming, every row is a Record at once; here the steps hold a few pickled batches.
    assert live.peak <= 4 * store.BATCH < ROWS
    assert spilled.counts.splits == {"train": 22_851, "test": 5_713} == expected.counts.splits
    assert [(s.step, s.rows_in, s.rows_out) for s in spilled.steps] == [
        ("normalize", ROWS, ROWS),
        ("exact_dedupe", ROWS, 28_564),
        ("split", 28_564, 28_564),
        ("template", 28_564, 28_564),
    ]
    assert spilled.content_hash == expected.content_hash  # on disk or in memory: the same export
    assert (tmp_path / "spilled" / "duplicates.parquet").read_bytes() == (
        tmp_path / "in-memory" / "duplicates.parquet"
    ).read_bytes()
