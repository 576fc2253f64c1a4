"""Deterministic, seeded train/test split, optionally grouped so related rows stay together."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar

import numpy as np

from curate.errors import CurateError
from curate.io.manifest import SplitInfo
from curate.schema import Record
from curate.steps.base import BuildContext, Step
from curate.steps.keys import first_rows


class Split(Step):
    """Assign each record to `train` or `test` (in `record.extra["split"]`).

    Groups (one per distinct `group_by` value, or one per row) are shuffled with a
    seeded generator and the first round(test_size * n_groups) go to test, so every
    row of a group lands in the same split and the same inputs give the same split.
    Groups are numbered in order of first appearance from a digest of each row's group
    (curate/steps/keys.py, one pass over the stored rows); a second pass assigns the splits.
    """

    name: ClassVar[str] = "split"
    passes = 2

    def __init__(self, test_size: float, seed: int, group_by: str | None = None):
        self.test_size = test_size
        self.seed = seed
        self.group_by = group_by

    def group_of(self, record: Record) -> str:
        if self.group_by is None:
            return record.id
        if self.group_by not in record.data:
            raise CurateError(
                f"{record.source} row {record.row}: --group-by column '{self.group_by}' is missing "
                f"(columns: {sorted(record.data)})"
            )
        return str(record.data[self.group_by])

    def group_numbers(self, records: Iterable[Record], ctx: BuildContext) -> np.ndarray:
        """Each row's group, numbered 0, 1, ... in order of the group's first row."""
        first = first_rows(self.group_of(r) for r in ctx.track(records, f"{self.name} groups"))
        return np.unique(first, return_inverse=True)[1].reshape(-1)

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        group = self.group_numbers(records, ctx)
        n_groups = int(group.max()) + 1 if len(group) else 0
        n_test = round(self.test_size * n_groups)
        if self.test_size > 0 and n_groups > 1:
            n_test = min(max(n_test, 1), n_groups - 1)
        order = np.random.default_rng(self.seed).permutation(n_groups)
        test_group = np.zeros(n_groups, dtype=bool)
        test_group[order[:n_test]] = True
        ctx.manifest.split = SplitInfo(
            test_size=self.test_size, seed=self.seed, group_by=self.group_by, groups=n_groups, test_groups=n_test
        )
        for i, record in enumerate(ctx.track(records, self.name)):
            record.extra["split"] = "test" if test_group[group[i]] else "train"
            yield record
