"""Deterministic, seeded train/test split, optionally grouped so related rows stay together."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from curate.errors import CurateError
from curate.io.manifest import SplitInfo
from curate.schema import Record
from curate.steps.base import BuildContext, Step


class Split(Step):
    """Assign each record to `train` or `test` (in `record.extra["split"]`).

    Groups (one per distinct `group_by` value, or one per row) are shuffled with a
    seeded generator and the first round(test_size * n_groups) go to test, so every
    row of a group lands in the same split and the same inputs give the same split.
    """

    name: ClassVar[str] = "split"

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

    def run(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        groups = list(dict.fromkeys(self.group_of(r) for r in records))
        n_test = round(self.test_size * len(groups))
        if self.test_size > 0 and len(groups) > 1:
            n_test = min(max(n_test, 1), len(groups) - 1)
        order = np.random.default_rng(self.seed).permutation(len(groups))
        test_groups = {groups[i] for i in order[:n_test]}
        for record in records:
            record.extra["split"] = "test" if self.group_of(record) in test_groups else "train"
        ctx.manifest.split = SplitInfo(
            test_size=self.test_size, seed=self.seed, group_by=self.group_by, groups=len(groups), test_groups=n_test
        )
        return records
