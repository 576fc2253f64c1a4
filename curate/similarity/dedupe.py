"""Semantic dedupe: which rows to keep, given the pairs of similar rows (curate/similarity/pair_search.py).

Keep rule: rows are visited in input order, and a row is dropped when its cosine similarity
to an already *kept* row is >= `threshold`; it is then attributed to the most similar such
kept row (ties: the earliest). A row similar only to dropped rows is kept.

With `index="exact"` (FAISS flat search) `semantic_dedupe` keeps exactly the rows that
`naive_dedupe`, the full n x n matrix of the original workflow, keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curate.similarity.pair_search import Pairs, as_float32_threshold, check_embeddings, resolve_index, self_pairs

KEPT, DROPPED, UNKNOWN = 1, 0, -1
MAX_VECTOR_ROUNDS = 64  # rounds of the vectorized keep pass before the sequential tail


@dataclass(frozen=True)
class DedupeResult:
    """Which rows survive: `keep[i]`; for a dropped row, the kept row it matched and their similarity."""

    keep: np.ndarray  # bool (n,)
    kept_by: np.ndarray  # int64 (n,), -1 for kept rows
    similarity: np.ndarray  # float32 (n,), nan for kept rows
    threshold: float
    index: str  # the index that found the pairs (auto resolved)

    @property
    def dropped(self) -> int:
        return int((~self.keep).sum())


def greedy_keep(rows: int, pairs: Pairs, threshold: float, index: str = "given") -> DedupeResult:
    """Apply the keep rule to (later, earlier) pairs: drop a row similar (>= threshold) to a kept earlier row.

    Vectorized: rows without earlier neighbours are kept outright; then each round resolves
    every row whose earlier neighbours are settled (dropped if one is kept, kept if all are
    dropped). The earliest unsettled row always settles, so rounds only chain along runs of
    near-duplicates; past MAX_VECTOR_ROUNDS the rest go one by one, in order.
    """
    edges = pairs.at_least(threshold)
    later, earlier, sims = edges.left, edges.right, edges.similarity
    state = np.full(rows, KEPT, dtype=np.int8)
    state[later] = UNKNOWN
    live_later, live_earlier = later, earlier
    for _ in range(MAX_VECTOR_ROUNDS):
        live = state[live_later] == UNKNOWN
        live_later, live_earlier = live_later[live], live_earlier[live]
        if len(live_later) == 0:
            break
        neighbour = state[live_earlier]
        near_kept = np.zeros(rows, dtype=bool)
        near_kept[live_later[neighbour == KEPT]] = True
        waiting = np.zeros(rows, dtype=bool)
        waiting[live_later[neighbour == UNKNOWN]] = True
        unknown = state == UNKNOWN
        state[unknown & near_kept] = DROPPED
        state[unknown & ~near_kept & ~waiting] = KEPT
    else:
        _sequential_tail(state, live_later, live_earlier)

    dropped_edges = (state[later] == DROPPED) & (state[earlier] == KEPT)
    d_later, d_earlier, d_sims = later[dropped_edges], earlier[dropped_edges], sims[dropped_edges]
    # Attribute each dropped row to its most similar kept row, ties to the earliest.
    order = np.lexsort((d_earlier, -d_sims, d_later))
    _, first = np.unique(d_later[order], return_index=True)
    best = order[first]
    kept_by = np.full(rows, -1, dtype=np.int64)
    similarity = np.full(rows, np.nan, dtype=np.float32)
    kept_by[d_later[best]] = d_earlier[best]
    similarity[d_later[best]] = d_sims[best]
    return DedupeResult(state == KEPT, kept_by, similarity, float(threshold), index)


def _sequential_tail(state: np.ndarray, later: np.ndarray, earlier: np.ndarray) -> None:
    """Settle the remaining rows in input order (each one's earlier neighbours are settled by then)."""
    order = np.argsort(later, kind="stable")
    later, earlier = later[order], earlier[order]
    pending = np.flatnonzero(state == UNKNOWN)
    starts = np.searchsorted(later, pending, side="left")
    ends = np.searchsorted(later, pending, side="right")
    for row, start, end in zip(pending.tolist(), starts.tolist(), ends.tolist(), strict=True):
        state[row] = DROPPED if (state[earlier[start:end]] == KEPT).any() else KEPT


def semantic_dedupe(
    embeddings: np.ndarray, threshold: float = 0.95, index: str = "auto", **params: int
) -> DedupeResult:
    """Dedupe rows of L2-normalized embeddings with the keep rule above (module docstring)."""
    x = check_embeddings(embeddings)
    kind = resolve_index(index, len(x))
    return greedy_keep(len(x), self_pairs(x, threshold, kind, **params), threshold, kind)


def naive_dedupe(embeddings: np.ndarray, threshold: float = 0.95) -> DedupeResult:
    """The baseline of the original workflow: the full n x n cosine matrix, then a loop over rows.

    Needs n^2 * 4 bytes (6.4 GB at 40k rows); only for comparison and small sets.
    """
    x = check_embeddings(embeddings)
    rows = len(x)
    t = as_float32_threshold(threshold)
    matrix = x @ x.T
    keep = np.ones(rows, dtype=bool)
    kept_by = np.full(rows, -1, dtype=np.int64)
    similarity = np.full(rows, np.nan, dtype=np.float32)
    for i in range(rows):
        earlier = matrix[i, :i]
        hits = (earlier >= t) & keep[:i]
        if hits.any():
            j = int(np.argmax(np.where(hits, earlier, -np.inf)))  # most similar; argmax takes the earliest tie
            keep[i], kept_by[i], similarity[i] = False, j, earlier[j]
    return DedupeResult(keep, kept_by, similarity, float(threshold), "naive")


def threshold_sweep(
    embeddings: np.ndarray, thresholds: Sequence[float], index: str = "auto", **params: int
) -> tuple[list[DedupeResult], Pairs]:
    """Dedupe at each threshold from one search at the lowest; returns the results and those pairs."""
    x = check_embeddings(embeddings)
    kind = resolve_index(index, len(x))
    pairs = self_pairs(x, min(thresholds), kind, **params)
    return [greedy_keep(len(x), pairs, t, kind) for t in thresholds], pairs
