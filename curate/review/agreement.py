"""How much labelers agree, and how each one leans: Krippendorff's alpha, pairwise Spearman, bias, calibration.

All functions take a long table of ratings with columns `labeler`, `answer_id` (the
unit rated) and `rating` (1-10), as `Reports.ratings_frame` (`store.reports`) returns it.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import krippendorff
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

SCALE = np.arange(1, 11)  # the 1-10 rating scale


def reliability_matrix(ratings: pd.DataFrame, unit: str = "answer_id") -> pd.DataFrame:
    """Labelers x units table of ratings (NaN where a labeler did not rate the unit)."""
    return ratings.pivot_table(index="labeler", columns=unit, values="rating", aggfunc="last")


def krippendorff_alpha(
    ratings: pd.DataFrame, unit: str = "answer_id", level: Literal["ordinal", "interval"] = "ordinal"
) -> float:
    """Krippendorff's alpha over all units rated at least twice: 1 = perfect agreement, 0 = chance level.

    `level` ordinal (default: 1-10 ratings are ordered, but their steps need not be equal)
    or interval. NaN when fewer than two units have two or more ratings.
    """
    matrix = reliability_matrix(ratings, unit)
    pairable = matrix.loc[:, matrix.notna().sum() >= 2]
    if pairable.shape[1] < 2 or pairable.stack().nunique() < 2:
        return math.nan
    return float(
        krippendorff.alpha(
            reliability_data=pairable.to_numpy(dtype=float), value_domain=SCALE, level_of_measurement=level
        )
    )


def pairwise_spearman(ratings: pd.DataFrame, unit: str = "answer_id", min_common: int = 3) -> pd.DataFrame:
    """Spearman's rho of every labeler pair over the units both rated (NaN under `min_common` shared units).

    Columns: labeler_a, labeler_b, n_common, spearman.
    """
    matrix = reliability_matrix(ratings, unit)
    rows = []
    for a, b in itertools.combinations(matrix.index, 2):
        both = matrix.loc[[a, b]].dropna(axis=1)
        n = both.shape[1]
        rho = math.nan
        if n >= min_common and both.loc[a].nunique() > 1 and both.loc[b].nunique() > 1:
            rho = float(spearmanr(both.loc[a], both.loc[b]).statistic)
        rows.append({"labeler_a": a, "labeler_b": b, "n_common": n, "spearman": rho})
    return pd.DataFrame(rows, columns=["labeler_a", "labeler_b", "n_common", "spearman"])


def labeler_bias(ratings: pd.DataFrame, unit: str = "answer_id") -> pd.DataFrame:
    """Per labeler: how far their ratings sit from the other labelers' mean on the same units.

    bias = mean over shared units of (own rating - mean of the others' ratings of that unit);
    units nobody else rated are left out. Columns: labeler, n, mean_rating, bias (NaN: no shared unit).
    """
    grouped = ratings.groupby(unit)["rating"]
    total, count = grouped.transform("sum"), grouped.transform("count")
    shared = ratings.assign(offset=ratings["rating"] - (total - ratings["rating"]) / (count - 1))[count > 1]
    out = ratings.groupby("labeler")["rating"].agg(n="count", mean_rating="mean")
    out["bias"] = shared.groupby("labeler")["offset"].mean()
    return out.reset_index()


def zscore_calibrate(ratings: pd.DataFrame) -> pd.DataFrame:
    """Add `calibrated`: each labeler's ratings z-scored, then put back on the pooled 1-10 scale.

    calibrated = pooled_mean + pooled_std * (rating - labeler_mean) / labeler_std, clipped to 1-10;
    a labeler whose ratings never vary (std 0 or a single rating) is only shifted by their mean offset.
    """
    pooled_mean, pooled_std = ratings["rating"].mean(), ratings["rating"].std(ddof=0)
    by = ratings.groupby("labeler")["rating"]
    mean, std = by.transform("mean"), by.transform(lambda r: r.std(ddof=0))
    z_scaled = pooled_mean + pooled_std * (ratings["rating"] - mean) / std.where(std > 0)
    shifted = ratings["rating"] - mean + pooled_mean
    return ratings.assign(calibrated=z_scaled.fillna(shifted).clip(1, 10))
