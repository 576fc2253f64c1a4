"""Semantic dedupe (curate/similarity/dedupe.py, curate/similarity/pair_search.py) on synthetic unit vectors: exact == naive, edges, ANN."""

from __future__ import annotations

import numpy as np
import pytest

from curate.similarity.dedupe import MAX_VECTOR_ROUNDS, greedy_keep, naive_dedupe, semantic_dedupe, threshold_sweep
from curate.similarity.pair_search import Pairs, faiss_radius, search_pairs, self_pairs


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def planted(rows: int, dim: int, dup_fraction: float, low: float, seed: int, high: float = 1.0) -> np.ndarray:
    """Random unit rows; a fraction are noisy copies (cosine U(low, high)) of an earlier row, copies of copies too."""
    rng = np.random.default_rng(seed)
    x = unit(rng.standard_normal((rows, dim)))
    for i in np.sort(rng.choice(np.arange(1, rows), int(rows * dup_fraction), replace=False)):
        src = x[rng.integers(0, i)]
        noise = rng.standard_normal(dim)
        noise -= noise @ src * src
        c = rng.uniform(low, high)
        x[i] = unit(c * src + np.sqrt(1 - c * c) * unit(noise))
    return x


def sign_patterns(rows: int, seed: int) -> np.ndarray:
    """Rows of +-0.5 on one of four 4-d blocks of a 16-d space: every dot product is exactly -1, -0.5, 0, 0.5 or 1."""
    rng = np.random.default_rng(seed)
    x = np.zeros((rows, 16), dtype=np.float32)
    blocks = rng.integers(0, 4, rows)
    for i, b in enumerate(blocks):
        x[i, 4 * b : 4 * b + 4] = rng.choice([-0.5, 0.5], 4)
    return x


def assert_same(a, b) -> None:
    """Same rows kept, same attribution; similarities equal up to float32 rounding (FAISS vs numpy BLAS)."""
    np.testing.assert_array_equal(a.keep, b.keep)
    np.testing.assert_array_equal(a.kept_by, b.kept_by)
    np.testing.assert_allclose(a.similarity, b.similarity, rtol=0, atol=1e-6)


def test_exact_keeps_exactly_the_rows_naive_keeps_on_thousands_of_near_duplicates() -> None:
    x = planted(4000, 64, dup_fraction=0.35, low=0.85, seed=1)
    naive = naive_dedupe(x, 0.92)
    exact = semantic_dedupe(x, 0.92, "exact")
    assert 600 < naive.dropped < 1400  # many near-duplicates on both sides of the threshold
    assert exact.index == "exact"
    assert_same(exact, naive)
    assert semantic_dedupe(x, 0.92, "auto").index == "exact"


def test_exact_equals_naive_with_exact_ties_at_the_threshold() -> None:
    x = sign_patterns(1500, seed=2)
    sims = x @ x.T
    assert np.count_nonzero(np.tril(sims == np.float32(0.5), -1)) > 20_000  # ties at the threshold abound
    for threshold in (0.5, 1.0, 0.0):
        assert_same(semantic_dedupe(x, threshold, "exact"), naive_dedupe(x, threshold))
    # 0.5 ties count as duplicates (>=): only one row of each block survives at 0.5 ...
    at_tie = semantic_dedupe(x, 0.5, "exact")
    kept = x[at_tie.keep]
    assert not np.any(np.tril(kept @ kept.T >= 0.5, -1))
    # ... while a threshold one float32 step above 0.5 does not drop rows that sit at exactly 0.5.
    above = semantic_dedupe(x, float(np.nextafter(np.float32(0.5), np.float32(1))), "exact")
    assert above.dropped < at_tie.dropped
    assert_same(above, naive_dedupe(x, float(np.nextafter(np.float32(0.5), np.float32(1)))))


def test_faiss_radius_is_the_float32_just_below_the_threshold() -> None:
    radius = np.float32(faiss_radius(0.9))
    assert radius < np.float32(0.9) and np.nextafter(radius, np.float32(1)) == np.float32(0.9)


def test_threshold_one_drops_only_identical_rows() -> None:
    x = planted(300, 32, dup_fraction=0.3, low=0.99, high=0.9999, seed=3)  # near, not identical
    x = np.concatenate([x, x[:20]])  # 20 identical copies at the end
    result = semantic_dedupe(x, 1.0, "exact")
    assert result.dropped == 20
    assert np.flatnonzero(~result.keep).tolist() == list(range(300, 320))
    assert result.kept_by[300:].tolist() == list(range(20))
    assert_same(result, naive_dedupe(x, 1.0))


def test_very_low_threshold_keeps_only_the_first_row() -> None:
    x = planted(200, 32, dup_fraction=0.0, low=0.9, seed=4)
    result = semantic_dedupe(x, -1.0, "exact")
    assert result.keep.tolist() == [True] + [False] * 199
    assert set(result.kept_by[1:].tolist()) == {0}


def test_empty_input_and_one_row() -> None:
    for index in ("exact", "ivf", "hnsw", "auto"):
        empty = semantic_dedupe(np.zeros((0, 8), np.float32), 0.9, index)
        assert empty.keep.shape == (0,) and empty.dropped == 0
        one = semantic_dedupe(unit(np.ones((1, 8))), 0.9, index)
        assert one.keep.tolist() == [True] and one.kept_by.tolist() == [-1]
    assert naive_dedupe(np.zeros((0, 8), np.float32), 0.9).keep.shape == (0,)


def test_group_of_mutual_duplicates_keeps_the_first_and_chains_compare_with_kept_rows_only() -> None:
    rng = np.random.default_rng(5)
    base = unit(rng.standard_normal((3, 64)))
    # rows 0-3: a group of mutual near-duplicates of base[0]; row 4 unrelated
    group = unit(base[0] + 0.02 * rng.standard_normal((4, 64)))  # pairwise cosine ~0.97
    x = np.concatenate([group, base[1:2]])
    result = semantic_dedupe(x, 0.9, "exact")
    assert result.keep.tolist() == [True, False, False, False, True]
    assert result.kept_by.tolist() == [-1, 0, 0, 0, -1]
    # chain: a ~ b and b ~ c but not a ~ c -> a kept, b dropped (kept_by a), c kept: b was dropped
    e1, e2 = np.eye(64, dtype=np.float32)[:2]
    angle = 0.3  # cos 0.955 between neighbours, cos 0.825 between a and c
    chain = np.stack([np.cos(k * angle) * e1 + np.sin(k * angle) * e2 for k in range(3)]).astype(np.float32)
    result = semantic_dedupe(chain, 0.9, "exact")
    assert result.keep.tolist() == [True, False, True]
    assert result.kept_by[1] == 0 and result.similarity[1] == pytest.approx(np.cos(angle), abs=1e-6)


def test_dropped_row_is_attributed_to_its_most_similar_kept_row() -> None:
    e = np.eye(8, dtype=np.float32)
    a, b = e[0], e[1]
    c = unit(0.6 * a + 0.8 * b)  # closer to b (0.8) than to a (0.6)
    result = semantic_dedupe(np.stack([a, b, c]), 0.55, "exact")
    assert result.keep.tolist() == [True, True, False]
    assert result.kept_by[2] == 1 and result.similarity[2] == pytest.approx(0.8, abs=1e-6)


def test_long_dependency_chain_past_the_vectorized_rounds_matches_naive() -> None:
    rng = np.random.default_rng(6)
    steps = [unit(rng.standard_normal(256))]
    for _ in range(2 * MAX_VECTOR_ROUNDS + 50):  # each row ~0.95 to the previous, ~0.90 to the one before
        noise = rng.standard_normal(256)
        noise -= noise @ steps[-1] * steps[-1]
        steps.append(unit(0.95 * steps[-1] + np.sqrt(1 - 0.95**2) * unit(noise)))
    x = np.stack(steps)
    result = semantic_dedupe(x, 0.93, "exact")
    assert 0.4 < result.keep.mean() < 0.6  # alternates: kept, dropped, kept ...
    assert_same(result, naive_dedupe(x, 0.93))


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_ann_finds_only_true_pairs_and_nearly_all_of_them(index: str) -> None:
    x = planted(3000, 64, dup_fraction=0.2, low=0.9, seed=7)
    exact = self_pairs(x, 0.95, "exact")
    found = self_pairs(x, 0.95, index)
    exact_keys, found_keys = set(exact.keys(len(x)).tolist()), set(found.keys(len(x)).tolist())
    assert found_keys <= exact_keys  # approximate search misses pairs, never invents them
    assert len(found_keys) / len(exact_keys) > 0.95
    assert np.all(found.left > found.right)
    ann = semantic_dedupe(x, 0.95, index)
    assert ann.index == index
    agreement = np.count_nonzero(ann.keep == naive_dedupe(x, 0.95).keep) / len(x)
    assert agreement > 0.99


def test_search_pairs_between_two_sets_and_threshold_sweep() -> None:
    x = planted(500, 32, dup_fraction=0.3, low=0.8, seed=8)
    queries, base = x[400:], x[:400]
    pairs = search_pairs(queries, base, 0.9, "exact")
    full = queries @ base.T
    assert len(pairs) == np.count_nonzero(full >= np.float32(0.9))
    np.testing.assert_allclose(pairs.similarity, full[pairs.left, pairs.right], rtol=0, atol=1e-6)
    thresholds = [0.8, 0.85, 0.9, 0.95, 0.99]
    results, swept = threshold_sweep(x, thresholds, "exact")
    for t, r in zip(thresholds, results, strict=True):
        assert_same(r, naive_dedupe(x, t))
    assert [r.dropped for r in results] == sorted((r.dropped for r in results), reverse=True)
    assert isinstance(swept, Pairs) and swept.similarity.min() >= np.float32(0.8)


def test_greedy_keep_takes_pairs_at_or_above_the_threshold_only() -> None:
    pairs = Pairs(np.array([1, 2]), np.array([0, 1]), np.array([0.9, 0.95], dtype=np.float32))
    assert greedy_keep(3, pairs, 0.95).keep.tolist() == [True, True, False]
    assert greedy_keep(3, pairs, 0.9).keep.tolist() == [True, False, True]


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown index 'flat'"):
        semantic_dedupe(np.zeros((2, 4), np.float32), 0.9, "flat")
    with pytest.raises(ValueError, match="2-D"):
        semantic_dedupe(np.zeros(4, np.float32), 0.9)


def test_hnsw_rows_with_more_than_k_neighbours_are_searched_exactly() -> None:
    rng = np.random.default_rng(9)
    x = planted(200, 32, dup_fraction=0.0, low=0.9, seed=9)
    crowd = unit(x[0] + 0.01 * rng.standard_normal((40, 32)))  # 40 mutual near-duplicates: more than k=16
    x = np.concatenate([x, crowd])
    exact, hnsw = self_pairs(x, 0.95, "exact"), self_pairs(x, 0.95, "hnsw")
    assert len(exact) >= 40 * 41 // 2
    np.testing.assert_array_equal(np.sort(hnsw.keys(len(x))), np.sort(exact.keys(len(x))))


def test_ivf_join_in_small_blocks_finds_the_same_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    import curate.similarity.pair_search as pair_search

    x = planted(2000, 64, dup_fraction=0.3, low=0.9, seed=10)
    whole = self_pairs(x, 0.93, "ivf")
    monkeypatch.setattr(pair_search, "BLOCK_ELEMENTS", 97)  # a few queries per matrix product
    blocked = self_pairs(x, 0.93, "ivf")
    np.testing.assert_array_equal(blocked.keys(len(x)), whole.keys(len(x)))
    cross = search_pairs(x[1500:], x[:1500], 0.93, "ivf")  # queries and base apart: separate assignment
    exact = search_pairs(x[1500:], x[:1500], 0.93, "exact")
    assert set(cross.keys(2000).tolist()) <= set(exact.keys(2000).tolist())
    assert len(cross) > 0.9 * len(exact)


def test_vectorized_keep_equals_the_row_by_row_rule_on_random_pair_graphs() -> None:
    rng = np.random.default_rng(11)
    rows = 3000
    later = rng.integers(1, rows, 6000)
    earlier = (rng.random(6000) * later).astype(np.int64)
    keys = np.unique(later * rows + earlier)
    later, earlier = keys // rows, keys % rows
    sims = rng.uniform(0.9, 1.0, len(keys)).astype(np.float32)
    result = greedy_keep(rows, Pairs(later, earlier, sims), 0.95)
    keep = np.ones(rows, dtype=bool)
    for i in range(rows):  # the rule, literally: drop i if a kept earlier row is >= threshold to it
        mask = (later == i) & (sims >= np.float32(0.95))
        if keep[earlier[mask]].any():
            keep[i] = False
    np.testing.assert_array_equal(result.keep, keep)
    dropped = np.flatnonzero(~keep)
    assert all(keep[result.kept_by[i]] for i in dropped)
