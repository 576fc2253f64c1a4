"""Build step after the split: test rows that near-duplicate a train row contaminate evaluation.

A test row whose embedding's cosine similarity to any train row is >= threshold is reported and,
by `action`: `move`d to train (default; with a split `group_by`, its whole group moves so groups
never straddle), `drop`ped, or only `report`ed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar, Literal

import numpy as np

from curate.errors import CurateError
from curate.io.manifest import CrossSplitInfo, CrossSplitPair
from curate.schema import Record
from curate.similarity.pair_search import search_pairs
from curate.steps.base import BuildContext, Step
from curate.steps.semantic_dedupe import SimilaritySpec

CrossSplitAction = Literal["move", "drop", "report"]
EXAMPLES = 20  # flagged pairs listed in the manifest


class CrossSplitCheck(Step):
    """Find test rows >= threshold similar to a train row; move, drop or report them.

    Reads the stored rows four times: their splits (a bool per row), the train rows' embeddings, the
    test rows' embeddings, then once more to apply the verdicts.
    """

    name: ClassVar[str] = "cross_split"
    passes = 2

    def __init__(self, spec: SimilaritySpec, action: CrossSplitAction = "move", group_by: str | None = None):
        self.spec = spec
        self.action = action
        self.group_by = group_by

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        is_test, test_groups = self.splits(records, ctx)
        best_train, best_sim = self.nearest_train(records, is_test, ctx.quiet)
        flagged = np.flatnonzero(best_train >= 0)  # positions among the test rows
        match = {int(i): int(best_train[i]) for i in flagged}
        groups = {test_groups[i] for i in flagged} if self.group_by is not None and self.action == "move" else None
        wanted = set(match.values())  # train rows to name in duplicates.parquet and the manifest's examples
        train_rows: dict[int, Record] = {}
        flagged_rows: dict[int, Record] = {}
        affected = 0
        test_pos = train_pos = 0
        for record in ctx.track(records, self.name):
            if record.extra.get("split") == "test":
                position, test_pos = test_pos, test_pos + 1
                if position in match:
                    flagged_rows[position] = record
                hit = position in match or (groups is not None and test_groups[position] in groups)
                if hit and self.action == "move":
                    record.extra["split"] = "train"
                    affected += 1
                elif position in match and self.action == "drop":
                    affected += 1
                    continue  # filed after the pass: the train row it is near may come later in the input
            else:
                if train_pos in wanted:
                    train_rows[train_pos] = record
                train_pos += 1
            yield record
        if self.action == "drop":
            for i in flagged.tolist():
                ctx.drop(
                    flagged_rows[i],
                    self.name,
                    f"test row near a train row (cosine >= {self.spec.threshold:g})",
                    kept=train_rows[match[i]],
                    similarity=round(float(best_sim[i]), 6),
                )
        ctx.manifest.cross_split = CrossSplitInfo(
            threshold=self.spec.threshold,
            embedder=self.spec.embedder,
            action=self.action,
            train_rows=int((~is_test).sum()),
            test_rows=int(is_test.sum()),
            flagged=len(flagged),
            moved=affected if self.action == "move" else 0,
            dropped=affected if self.action == "drop" else 0,
            examples=[
                CrossSplitPair(
                    test_id=flagged_rows[int(i)].id,
                    train_id=train_rows[match[int(i)]].id,
                    similarity=round(float(best_sim[i]), 6),
                )
                for i in flagged[:EXAMPLES]
            ],
        )

    def splits(self, records: Iterable[Record], ctx: BuildContext) -> tuple[np.ndarray, list[str]]:
        """Whether each row is a test row, and each test row's `group_by` value (none without group_by)."""
        is_test = bytearray()
        test_groups: list[str] = []
        for record in ctx.track(records, f"{self.name} splits"):
            split = record.extra.get("split")
            if split not in ("train", "test"):
                raise CurateError("the cross-split check runs after the split step (a row has no split)")
            is_test.append(split == "test")
            if split == "test" and self.group_by is not None:
                test_groups.append(str(record.data.get(self.group_by)))
        return np.frombuffer(bytes(is_test), dtype=bool), test_groups

    def nearest_train(
        self, records: Iterable[Record], is_test: np.ndarray, quiet: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each test row, its most similar train row at >= threshold (-1 when none) and that similarity."""
        n_test = int(is_test.sum())
        n_train = len(is_test) - n_test
        best = np.full(n_test, -1, dtype=np.int64)
        sims = np.full(n_test, np.nan, dtype=np.float32)
        if n_test == 0 or n_train == 0:
            return best, sims
        train = self.spec.embed((r for r, t in zip(records, is_test, strict=True) if not t), quiet, n_train)
        test = self.spec.embed((r for r, t in zip(records, is_test, strict=True) if t), quiet, n_test)
        pairs = search_pairs(test, train, self.spec.threshold, self.spec.index)
        # Most similar train row first, ties to the earliest; then the first pair of each test row.
        order = np.lexsort((pairs.right, -pairs.similarity, pairs.left))
        rows, first = np.unique(pairs.left[order], return_index=True)
        best[rows] = pairs.right[order][first]
        sims[rows] = pairs.similarity[order][first]
        return best, sims
