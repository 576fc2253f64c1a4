"""Build step after the split: test rows that near-duplicate a train row contaminate evaluation.

A test row whose embedding's cosine similarity to any train row is >= threshold is reported and,
by `action`: `move`d to train (default; with a split `group_by`, its whole group moves so groups
never straddle), `drop`ped, or only `report`ed.
"""

from __future__ import annotations

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
    """Find test rows >= threshold similar to a train row; move, drop or report them."""

    name: ClassVar[str] = "cross_split"

    def __init__(self, spec: SimilaritySpec, action: CrossSplitAction = "move", group_by: str | None = None):
        self.spec = spec
        self.action = action
        self.group_by = group_by

    def run(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        train = [r for r in records if r.extra.get("split") == "train"]
        test = [r for r in records if r.extra.get("split") == "test"]
        if len(train) + len(test) != len(records):
            raise CurateError("the cross-split check runs after the split step (a row has no split)")
        best_train, best_sim = self.nearest_train(train, test, ctx.quiet)
        flagged = np.flatnonzero(best_train >= 0)
        affected = [test[i] for i in flagged]
        if self.action == "move" and self.group_by is not None:
            groups = {str(r.data.get(self.group_by)) for r in affected}
            affected = [r for r in test if str(r.data.get(self.group_by)) in groups]
        kept = records
        if self.action == "move":
            for record in affected:
                record.extra["split"] = "train"
        elif self.action == "drop":
            gone = {id(r) for r in affected}
            for i in flagged:
                ctx.drop(
                    test[i],
                    self.name,
                    f"test row near a train row (cosine >= {self.spec.threshold:g})",
                    kept=train[best_train[i]],
                    similarity=round(float(best_sim[i]), 6),
                )
            kept = [r for r in records if id(r) not in gone]
        ctx.manifest.cross_split = CrossSplitInfo(
            threshold=self.spec.threshold,
            embedder=self.spec.embedder,
            action=self.action,
            train_rows=len(train),
            test_rows=len(test),
            flagged=len(flagged),
            moved=len(affected) if self.action == "move" else 0,
            dropped=len(affected) if self.action == "drop" else 0,
            examples=[
                CrossSplitPair(
                    test_id=test[i].id, train_id=train[best_train[i]].id, similarity=round(float(best_sim[i]), 6)
                )
                for i in flagged[:EXAMPLES]
            ],
        )
        return kept

    def nearest_train(self, train: list[Record], test: list[Record], quiet: bool) -> tuple[np.ndarray, np.ndarray]:
        """For each test row, its most similar train row at >= threshold (-1 when none) and that similarity."""
        best = np.full(len(test), -1, dtype=np.int64)
        sims = np.full(len(test), np.nan, dtype=np.float32)
        if not train or not test:
            return best, sims
        embeddings = self.spec.embed(train + test, quiet)
        pairs = search_pairs(embeddings[len(train) :], embeddings[: len(train)], self.spec.threshold, self.spec.index)
        # Most similar train row first, ties to the earliest; then the first pair of each test row.
        order = np.lexsort((pairs.right, -pairs.similarity, pairs.left))
        rows, first = np.unique(pairs.left[order], return_index=True)
        best[rows] = pairs.right[order][first]
        sims[rows] = pairs.similarity[order][first]
        return best, sims
