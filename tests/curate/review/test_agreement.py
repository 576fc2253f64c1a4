"""Agreement statistics against textbook and hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate.review.agreement import krippendorff_alpha, labeler_bias, pairwise_spearman, zscore_calibrate

ROOT = Path(__file__).resolve().parents[3]


def long(matrix: list[list[float]]) -> pd.DataFrame:
    """Labelers x units matrix (NaN = not rated) -> the long table the functions take."""
    rows = [
        {"labeler": f"l{i}", "answer_id": j, "rating": value}
        for i, values in enumerate(matrix)
        for j, value in enumerate(values)
        if not math.isnan(value)
    ]
    return pd.DataFrame(rows)


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units example.
TEXTBOOK = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
]


def test_alpha_matches_the_textbook_example() -> None:
    ratings = long(TEXTBOOK)
    assert krippendorff_alpha(ratings) == pytest.approx(0.815, abs=5e-4)  # ordinal
    assert krippendorff_alpha(ratings, level="interval") == pytest.approx(0.849, abs=5e-4)


def test_alpha_matches_a_hand_computation() -> None:
    # Values 1,1 | 2,2 | 3,4: D_o = 2/6, D_e = 2*41/(6*5), interval alpha = 1 - D_o/D_e = 36/41.
    ratings = long([[1, 2, 3], [1, 2, 4]])
    assert krippendorff_alpha(ratings, level="interval") == pytest.approx(36 / 41)
    assert krippendorff_alpha(long([[5, 7], [5, 7]])) == pytest.approx(1.0)


def test_alpha_is_nan_without_pairable_units() -> None:
    assert math.isnan(krippendorff_alpha(long([[1, np.nan], [np.nan, 2]])))
    assert math.isnan(krippendorff_alpha(long([[4, 4], [4, 4]])))  # one value only: agreement undefined


def test_pairwise_spearman() -> None:
    ratings = long([[1, 2, 3, 4], [2, 4, 6, 8], [4, 3, 2, 1], [1, 2, np.nan, np.nan]])
    rho = pairwise_spearman(ratings).set_index(["labeler_a", "labeler_b"])
    assert rho.loc[("l0", "l1"), "spearman"] == pytest.approx(1.0)
    assert rho.loc[("l0", "l2"), "spearman"] == pytest.approx(-1.0)
    assert rho.loc[("l0", "l3"), "n_common"] == 2 and math.isnan(rho.loc[("l0", "l3"), "spearman"])


def test_bias_is_mean_offset_from_the_others() -> None:
    # unit 0: A 8, B 6; unit 1: A 5, B 5, C 8; unit 2: only C (left out of bias).
    ratings = long([[8, 5, np.nan], [6, 5, np.nan], [np.nan, 8, 3]])
    bias = labeler_bias(ratings).set_index("labeler")
    assert bias.bias.to_dict() == pytest.approx({"l0": (2 - 1.5) / 2, "l1": (-2 - 1.5) / 2, "l2": 3.0})
    assert bias.n.to_dict() == {"l0": 2, "l1": 2, "l2": 2}


def test_zscore_calibration() -> None:
    ratings = long([[2, 4, np.nan, np.nan], [np.nan, np.nan, 6, 8], [5, 5, np.nan, np.nan]])
    out = zscore_calibrate(ratings)
    pooled_mean, pooled_std = np.mean([2, 4, 6, 8, 5, 5]), np.std([2, 4, 6, 8, 5, 5])
    l0 = out[out.labeler == "l0"].calibrated.tolist()
    assert l0 == pytest.approx([pooled_mean - pooled_std, pooled_mean + pooled_std])
    assert out[out.labeler == "l2"].calibrated.tolist() == pytest.approx([pooled_mean, pooled_mean])  # shift only
    assert out.calibrated.between(1, 10).all()


def test_sample_labelers_biases_show_up() -> None:
    ratings = pd.read_json(ROOT / "data/qa/ratings.jsonl", lines=True)
    bias = labeler_bias(ratings, unit="response").set_index("labeler").bias
    assert bias["bob"] < -0.4 and bias["dana"] > 0.2  # data/qa/README.md: bob harsher, dana more generous
    assert 0.8 < krippendorff_alpha(ratings, unit="response") <= 1.0
