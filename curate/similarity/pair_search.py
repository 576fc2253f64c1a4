"""Pairs of rows whose L2-normalized embeddings have cosine similarity >= a threshold, with FAISS.

Indexes: `exact` (FAISS flat inner-product range search: every pair), `ivf` (k-means inverted
lists joined list by list: approximate), `hnsw` (FAISS HNSW graph: approximate), and `auto`
(exact up to AUTO_EXACT_MAX_ROWS rows, ivf above). Approximate indexes miss pairs, never invent
them. Similarities are float32 and "similarity >= threshold" is decided against the threshold
rounded to float32, except that a threshold above 1 - IDENTICAL_TOLERANCE counts as that bound:
identical unit vectors score 1 only to within float32 rounding (0.99999994 is common), and
threshold 1.0 means "identical".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from curate.env import cpu_count

IndexKind = Literal["auto", "exact", "ivf", "hnsw"]
INDEX_KINDS: tuple[str, ...] = get_args(IndexKind)

# Exact flat search costs n^2 * dim flops: 1-2 s at 20k rows on 2 cores, 139 s at 200k; up to
# 20k it is cheap and gives exactly the naive result. The IVF self-join: 0.24 s at 20k, 2.7 s at
# 200k, 24 s at 1M (BENCHMARKS.md, "Semantic dedupe").
AUTO_EXACT_MAX_ROWS = 20_000

IVF_NPROBE = 8  # lists each row is compared against: its own + the 7 next nearest
IVF_TRAIN_POINTS_PER_LIST = 16  # k-means sample size per list; more buys little for dedupe
IVF_KMEANS_ITERATIONS = 8
IVF_COARSE_DIM = 64  # lists are assigned in this many PCA dimensions (see _coarse_space)
IVF_PCA_SAMPLE = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64
HNSW_K = 16  # neighbours fetched per row; rows with k hits are re-searched exactly
BLOCK_ELEMENTS = 1 << 22  # similarity-block size of the IVF join (16 MB of float32)

IDENTICAL_TOLERANCE = 1e-5  # |dot(v, v) - 1| of a normalized float32 vector is ~1e-7 at dim 384


def as_float32_threshold(threshold: float) -> np.float32:
    """The bound similarities are compared with (>=): the float32 threshold, at most 1 - IDENTICAL_TOLERANCE."""
    return np.float32(min(threshold, 1.0 - IDENTICAL_TOLERANCE))


def faiss_radius(threshold: float) -> float:
    """The FAISS inner-product range-search radius that returns exactly the scores >= threshold.

    FAISS keeps scores strictly greater than the radius; the next float32 below the threshold
    has no float32 between it and the threshold, so "> radius" equals ">= threshold" on float32
    scores, ties at the threshold included.
    """
    t = as_float32_threshold(threshold)
    return float(np.nextafter(t, np.float32(-np.inf)))


@dataclass(frozen=True)
class Pairs:
    """Pairs of rows (`left[k]`, `right[k]`) with their cosine `similarity[k]`."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.left)

    def at_least(self, threshold: float) -> Pairs:
        """The pairs whose similarity is >= threshold."""
        keep = self.similarity >= as_float32_threshold(threshold)
        return Pairs(self.left[keep], self.right[keep], self.similarity[keep])

    def keys(self, n: int) -> np.ndarray:
        """One int64 per pair (left * n + right), for set comparisons between indexes."""
        return self.left * np.int64(n) + self.right


def check_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """The embeddings as a C-contiguous float32 (rows, dim) array (rows are not re-normalized)."""
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (rows, dim) array, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def resolve_index(index: str, rows: int) -> str:
    """`auto` -> `exact` up to AUTO_EXACT_MAX_ROWS rows, else `ivf`; other names pass through."""
    if index not in INDEX_KINDS:
        raise ValueError(f"unknown index '{index}' (choose from {', '.join(INDEX_KINDS)})")
    if index == "auto":
        return "exact" if rows <= AUTO_EXACT_MAX_ROWS else "ivf"
    return index


def search_pairs(
    queries: np.ndarray,
    base: np.ndarray,
    threshold: float,
    index: str = "auto",
    *,
    nprobe: int = IVF_NPROBE,
    nlist: int | None = None,
    seed: int = 1234,
) -> Pairs:
    """Pairs (query row, base row) with cosine similarity >= threshold; exhaustive for `exact`.

    Rows must be L2-normalized. `ivf`/`hnsw` may miss pairs (never invent them): their recall
    against `exact` is measured in benchmarks/dedupe_bench.py.
    """
    import faiss

    xq, xb = check_embeddings(queries), check_embeddings(base)
    kind = resolve_index(index, len(xb))
    if len(xq) == 0 or len(xb) == 0:
        return _empty_pairs()
    faiss.omp_set_num_threads(cpu_count())
    if kind == "exact":
        pairs = _flat_pairs(xq, xb, threshold)
    elif kind == "ivf":
        pairs = _ivf_pairs(xq, xb, threshold, nprobe, nlist, seed, same=queries is base)
    else:
        pairs = _hnsw_pairs(xq, xb, threshold)
    return pairs.at_least(threshold)


def _empty_pairs() -> Pairs:
    return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))


def _flat_pairs(xq: np.ndarray, xb: np.ndarray, threshold: float) -> Pairs:
    import faiss

    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    lims, sims, ids = index.range_search(xq, faiss_radius(threshold))
    # Results come per query (CSR: query q owns lims[q]:lims[q+1]), unsorted within a query.
    left = np.repeat(np.arange(len(xq), dtype=np.int64), np.diff(lims).astype(np.int64))
    return Pairs(left, ids.astype(np.int64), sims)


def _ivf_pairs(
    xq: np.ndarray, xb: np.ndarray, threshold: float, nprobe: int, nlist: int | None, seed: int, same: bool
) -> Pairs:
    """Approximate join through k-means inverted lists, computed list by list with BLAS.

    Like faiss.contrib.big_batch_search, but for a range: every base row sits in the list of
    its nearest centroid; every query is compared with the rows of its `nprobe` nearest lists.
    One matrix product per list keeps the list in cache; IndexIVFFlat.range_search scans list
    rows one query at a time: 42.7 s against 12.5 s for an earlier, slower version of this join
    in one run (200k x 384-d, 2 busy cores).
    """
    import faiss

    n, d = xb.shape
    if nlist is None:
        # Balances assigning rows to lists (rows * nlist) against the join (rows * nprobe * n / nlist).
        nlist = int(np.sqrt(n * nprobe))
    nlist = max(1, min(nlist, n // IVF_TRAIN_POINTS_PER_LIST))
    nprobe = min(nprobe, nlist)
    coarse_b, coarse_q = _coarse_space(xb, xq, same, seed)
    kmeans = faiss.Kmeans(
        coarse_b.shape[1],
        nlist,
        niter=IVF_KMEANS_ITERATIONS,
        seed=seed,
        max_points_per_centroid=IVF_TRAIN_POINTS_PER_LIST,
        min_points_per_centroid=1,
        verbose=False,
    )
    kmeans.train(coarse_b)
    quantizer = faiss.IndexFlatL2(coarse_b.shape[1])
    quantizer.add(np.asarray(kmeans.centroids, dtype=np.float32))
    _, probes = quantizer.search(coarse_q, nprobe)
    home = probes[:, 0] if same else quantizer.search(coarse_b, 1)[1][:, 0]
    del coarse_b, coarse_q

    base_order = np.argsort(home, kind="stable")
    base_bounds = np.searchsorted(home[base_order], np.arange(nlist + 1))
    xb_sorted = xb[base_order]
    flat = probes.ravel()
    query_order = np.argsort(flat, kind="stable")
    query_rows = (query_order // nprobe).astype(np.int64)
    query_bounds = np.searchsorted(flat[query_order], np.arange(nlist + 1))
    t = as_float32_threshold(threshold)
    lefts, rights, sims = [], [], []
    for lst in range(nlist):
        b0, b1 = base_bounds[lst], base_bounds[lst + 1]
        rows = query_rows[query_bounds[lst] : query_bounds[lst + 1]]
        if b0 == b1 or len(rows) == 0:
            continue
        block = xb_sorted[b0:b1]
        step = max(1, BLOCK_ELEMENTS // (b1 - b0))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            scores = xq[chunk] @ block.T
            hit = np.flatnonzero(scores.max(axis=1) >= t)  # few rows hit: scan only those for pairs
            scores = scores[hit]
            qi, bi = np.nonzero(scores >= t)
            lefts.append(chunk[hit[qi]])
            rights.append(base_order[b0 + bi])
            sims.append(scores[qi, bi])
    if not lefts:
        return _empty_pairs()
    return Pairs(np.concatenate(lefts), np.concatenate(rights).astype(np.int64), np.concatenate(sims))


def _coarse_space(xb: np.ndarray, xq: np.ndarray, same: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows projected on their first IVF_COARSE_DIM principal axes, where lists are assigned.

    Assigning rows to lists costs rows x lists dot products; in 64 PCA dimensions that is 6x
    cheaper at 384-d and finds about as many duplicate pairs (pair recall 0.9977 against 0.9981
    in the full space, 200k planted rows). Similarities in the join always use the full vectors.
    """
    d = xb.shape[1]
    if d <= IVF_COARSE_DIM:
        return xb, xq
    sample = xb[np.random.default_rng(seed).choice(len(xb), min(len(xb), IVF_PCA_SAMPLE), replace=False)]
    mean = sample.mean(axis=0, dtype=np.float64)
    centered = sample - mean.astype(np.float32)
    # numpy, not faiss.PCAMatrix: its training took 2.9 s of a 7 s run at 200k; this takes ~0.1 s.
    _, axes = np.linalg.eigh((centered.T @ centered).astype(np.float64))
    top = np.ascontiguousarray(axes[:, ::-1][:, :IVF_COARSE_DIM], dtype=np.float32)
    offset = (mean @ top).astype(np.float32)  # (x - mean) @ top without an n x d temporary

    def project(x: np.ndarray) -> np.ndarray:
        return x @ top - offset

    coarse_b = project(xb)
    return coarse_b, coarse_b if same else project(xq)


def _hnsw_pairs(xq: np.ndarray, xb: np.ndarray, threshold: float) -> Pairs:
    """k-NN on an HNSW graph, keeping neighbours >= threshold.

    IndexHNSW.range_search aborts the process in faiss 1.15, hence k-NN: a query whose k
    neighbours are all >= threshold may have more, so it is re-searched exactly (flat range).
    """
    import faiss

    d = xb.shape[1]
    index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(xb)
    k = min(HNSW_K, len(xb))
    index.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
    sims, ids = index.search(xq, k)
    hit = (sims >= as_float32_threshold(threshold)) & (ids >= 0)
    full = hit[:, -1].copy()  # all k neighbours hit: there may be more
    hit[full] = False
    qi, col = np.nonzero(hit)
    pairs = Pairs(qi.astype(np.int64), ids[qi, col].astype(np.int64), sims[qi, col])
    if full.any():
        rows = np.flatnonzero(full)
        extra = _flat_pairs(xq[rows], xb, threshold)
        pairs = _concat([pairs, Pairs(rows[extra.left], extra.right, extra.similarity)])
    return pairs


def _concat(parts: Sequence[Pairs]) -> Pairs:
    return Pairs(
        np.concatenate([p.left for p in parts]),
        np.concatenate([p.right for p in parts]),
        np.concatenate([p.similarity for p in parts]),
    )


def self_pairs(embeddings: np.ndarray, threshold: float, index: str = "auto", **params: int) -> Pairs:
    """Every pair of distinct rows with similarity >= threshold, once, as (later row, earlier row)."""
    x = check_embeddings(embeddings)
    found = search_pairs(x, x, threshold, index, **params)
    later = np.maximum(found.left, found.right)
    earlier = np.minimum(found.left, found.right)
    distinct = later != earlier  # a self-query finds the row itself
    later, earlier, sims = later[distinct], earlier[distinct], found.similarity[distinct]
    # Each pair is found from both ends (and by ivf in several lists): keep one, sorted by key.
    _, first = np.unique(later * np.int64(max(len(x), 1)) + earlier, return_index=True)
    return Pairs(later[first], earlier[first], sims[first])
