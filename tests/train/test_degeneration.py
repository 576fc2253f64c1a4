"""The degeneration check: distinct-n, identical answers and the collapse rule, against hand counts."""

from __future__ import annotations

import pytest

from train.degeneration import DegenerationSection, collapse_reason, degeneration_report, distinct_n, identical_share


def test_distinct_n_counts_unique_ngrams_over_all_answers():
    answers = ["the cat sat", "The cat ran"]
    # unigrams: the x2, cat x2, sat, ran -> 4 unique of 6; bigrams: (the cat) x2, (cat sat), (cat ran) -> 3 of 4
    assert distinct_n(answers, 1) == pytest.approx(4 / 6)
    assert distinct_n(answers, 2) == pytest.approx(3 / 4)


def test_the_collapse_scores_zero_distinct2_and_all_identical():
    """The original workflow's failure: every answer is "The". One-word answers hold no bigram at all."""
    report = degeneration_report(["The", "The", "the"], rewards=[6.0, 7.0, 8.0])
    assert report["distinct_2"] == 0.0
    assert report["distinct_1"] == pytest.approx(round(1 / 3, 4))
    assert report["identical_share"] == 1.0
    assert report["mean_words"] == 1.0
    assert report["mean_reward"] == 7.0


def test_identical_share_counts_answers_equal_to_another():
    assert identical_share(["a b", "A  b", "c"]) == pytest.approx(2 / 3)  # case and spacing do not make answers differ
    assert identical_share(["a", "b"]) == 0.0
    assert identical_share([]) == 0.0


def test_collapse_rule():
    limits = DegenerationSection(min_distinct2_ratio=0.5, max_kl=1.0)
    start = degeneration_report(["one two three", "four five six"])  # distinct-2 = 1.0
    healthy = degeneration_report(["one two three", "four five one two"])  # 5 bigrams, 4 unique: 0.8
    collapsed = degeneration_report(["the the the", "the the"])  # 3 bigrams, 1 unique: 0.333
    assert collapse_reason(start, healthy, 0.5, limits) is None
    reason = collapse_reason(start, collapsed, None, limits)
    assert reason is not None and "distinct-2 fell to 0.333, below 0.5 x its start 1.000" in reason
    kl = collapse_reason(start, healthy, 1.5, limits)
    assert kl is not None and "KL to the reference 1.500 nats/token passed the limit 1" in kl
