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
    or interval (which also takes calibrated, non-integer ratings). NaN when fewer than two units
    have two or more ratings.
    """
    matrix = reliability_matrix(ratings, unit)
    pairable = matrix.loc[:, matrix.notna().sum() >= 2]
    if pairable.shape[1] < 2 or pairable.stack().nunique() < 2:
        return math.nan
    return float(
        krippendorff.alpha(
            reliability_data=pairable.to_numpy(dtype=float),
            value_domain=SCALE if level == "ordinal" else None,  # ordinal ranks the whole 1-10 scale
            level_of_measurement=level,
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


def judge_vs_humans(ratings: pd.DataFrame, judge: str, unit: str = "answer_id") -> dict[str, float | int]:
    """How one judge (a labeler name in `ratings`) agrees with the human consensus on the units both rated.

    `ratings` carries a `labeler_kind` column (human | judge). The human consensus of a unit is the
    mean of its human ratings. Returns n_shared (units rated by the judge and >= 1 human), alpha
    (Krippendorff's interval alpha of judge vs consensus: 1 = same scores, 0 = chance), spearman
    (rank correlation) and mean_offset (mean of judge - consensus: > 0 means the judge is more generous);
    NaN where fewer than two shared units, or no spread, leave a figure undefined.
    """
    humans = ratings[ratings["labeler_kind"] != "judge"].groupby(unit)["rating"].mean()
    own = ratings[ratings["labeler"] == judge].groupby(unit)["rating"].last()
    shared = own.index.intersection(humans.index)
    mine, consensus = own.loc[shared].astype(float), humans.loc[shared].astype(float)
    out: dict[str, float | int] = {"n_shared": len(shared), "alpha": math.nan, "spearman": math.nan}
    out["mean_offset"] = float((mine - consensus).mean()) if len(shared) else math.nan
    both = np.vstack([mine.to_numpy(), consensus.to_numpy()])
    if len(shared) >= 2 and len(np.unique(both)) >= 2:
        out["alpha"] = float(krippendorff.alpha(reliability_data=both, level_of_measurement="interval"))
    if len(shared) >= 3 and mine.nunique() > 1 and consensus.nunique() > 1:
        out["spearman"] = float(spearmanr(mine, consensus).statistic)
    return out


CALIBRATION_SLOPE = (0.5, 2.0)  # a rater's fitted spread is kept in this range: a near-random rater is not blown up


def consensus_calibrate(ratings: pd.DataFrame, unit: str = "answer_id", iterations: int = 100) -> pd.DataFrame:
    """Add `calibrated`: each labeler's ratings with their lean and spread against the other raters removed.

    Per labeler, rating ~ offset + slope x (the others' mean calibrated rating of the same unit), fitted by least
    squares on the units someone else rated too (slope kept in CALIBRATION_SLOPE; with fewer than 3 such units,
    offset only; with none, unchanged); calibrated = (rating - offset) / slope, refitted until stable, then put
    back on the pooled mean and spread of the raw ratings and clipped to 1-10. Unlike `zscore_calibrate`, a
    labeler's own mean does not count, so one who happened to get more bad answers is not taken for a harsh one.
    """
    rating = ratings["rating"].astype(float)
    pooled_mean, pooled_std = rating.mean(), rating.std(ddof=0)
    calibrated = rating.copy()
    groups = ratings.groupby("labeler").indices
    for _ in range(iterations):
        by_unit = calibrated.groupby(ratings[unit])
        total, count = by_unit.transform("sum"), by_unit.transform("count")
        others = (total - calibrated) / (count - 1)  # NaN where nobody else rated the unit
        fitted = rating.copy()
        for rows in groups.values():
            x, y = others.iloc[rows], rating.iloc[rows]
            shared = x.notna()
            slope, offset = 1.0, 0.0
            if shared.sum() >= 3 and x[shared].nunique() > 1:
                slope = float(np.clip(np.polyfit(x[shared], y[shared], 1)[0], *CALIBRATION_SLOPE))
            if shared.any():
                offset = float(y[shared].mean() - slope * x[shared].mean())
            fitted.iloc[rows] = (y - offset) / slope
        spread = fitted.std(ddof=0)
        fitted = pooled_mean + (fitted - fitted.mean()) * (pooled_std / spread if spread > 0 else 1.0)
        done = float((fitted - calibrated).abs().max()) < 1e-9
        calibrated = fitted
        if done:
            break
    return ratings.assign(calibrated=calibrated.clip(1, 10))


def judges_vs_humans(ratings: pd.DataFrame, unit: str = "answer_id") -> pd.DataFrame:
    """`judge_vs_humans` for every judge in `ratings` (a `labeler_kind` column): columns judge, n_shared, alpha,
    spearman, mean_offset; empty without a judge."""
    judges = sorted(set(ratings.loc[ratings["labeler_kind"] == "judge", "labeler"])) if len(ratings) else []
    rows = [{"judge": judge, **judge_vs_humans(ratings, judge, unit)} for judge in judges]
    return pd.DataFrame(rows, columns=["judge", "n_shared", "alpha", "spearman", "mean_offset"])
