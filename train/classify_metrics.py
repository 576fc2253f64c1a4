"""Classification metrics (scikit-learn), per-label decision thresholds, a per-label table and a confusion summary.

Everything works on (n rows, n labels) matrices: gold labels and predictions as 0/1 indicators,
probabilities as floats. A single-label row is a one-hot row, so one set of functions serves both kinds.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

# What each kind reports per epoch (as eval_<name>) and at the end (as test_<name>).
MULTI_LABEL_METRICS = ("jaccard", "f1_micro", "f1_macro", "roc_auc", "exact_match")
SINGLE_LABEL_METRICS = ("accuracy", "f1_micro", "f1_macro", "roc_auc")
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95


def metric_names(multi_label: bool) -> tuple[str, ...]:
    """The metrics a classifier of this kind reports (and may pick its best checkpoint by, with `loss`)."""
    return MULTI_LABEL_METRICS if multi_label else SINGLE_LABEL_METRICS


def predict(probabilities: np.ndarray, multi_label: bool, thresholds: np.ndarray | float) -> np.ndarray:
    """0/1 predictions: each label whose probability is >= its threshold, or the most probable class."""
    if multi_label:
        return (probabilities >= thresholds).astype(np.int64)
    onehot = np.zeros_like(probabilities, dtype=np.int64)
    onehot[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = 1
    return onehot


def roc_auc_micro(y_true: np.ndarray, probabilities: np.ndarray) -> float | None:
    """ROC-AUC over every (row, label) decision pooled (micro); None when the gold cells are all 0 or all 1."""
    from sklearn.metrics import roc_auc_score

    if y_true.min() == y_true.max():
        return None
    return float(roc_auc_score(y_true, probabilities, average="micro"))


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, y_pred: np.ndarray, multi_label: bool
) -> dict[str, float | None]:
    """Jaccard (mean over rows of |true ∩ predicted| / |true ∪ predicted|; two empty sets count 1), F1 micro
    (pooled over every decision) and macro (mean over labels), ROC-AUC (micro), and exact-match accuracy
    (share of rows whose predicted set equals the gold set) — named `accuracy` for single-label data.
    """
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score

    metrics: dict[str, float | None] = {}
    if multi_label:
        metrics["jaccard"] = float(jaccard_score(y_true, y_pred, average="samples", zero_division=1.0))
    metrics["f1_micro"] = float(f1_score(y_true, y_pred, average="micro", zero_division=0.0))
    metrics["f1_macro"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0.0))
    metrics["roc_auc"] = roc_auc_micro(y_true, probabilities)
    metrics["exact_match" if multi_label else "accuracy"] = float(accuracy_score(y_true, y_pred))
    return metrics


def tune_thresholds(y_true: np.ndarray, probabilities: np.ndarray, default: float) -> np.ndarray:
    """One threshold per label: the value of THRESHOLD_GRID with that label's best F1 on these rows.

    Ties go to the value closest to `default`; a label with no positive row here keeps `default`
    (its F1 is 0 whatever the threshold, so the rows say nothing about it).
    """
    grid = np.asarray(THRESHOLD_GRID)
    predicted = probabilities[:, None, :] >= grid[None, :, None]  # (rows, thresholds, labels)
    gold = y_true[:, None, :].astype(bool)
    tp = (predicted & gold).sum(axis=0)
    fp = (predicted & ~gold).sum(axis=0)
    fn = (~predicted & gold).sum(axis=0)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(tp.shape), where=(2 * tp + fp + fn) > 0)
    thresholds = np.full(y_true.shape[1], default)
    for label in range(y_true.shape[1]):
        if y_true[:, label].sum() == 0:
            continue
        best = np.flatnonzero(np.isclose(f1[:, label], f1[:, label].max()))
        thresholds[label] = grid[best[np.argmin(np.abs(grid[best] - default))]]
    return thresholds


def per_label_table(
    y_true: np.ndarray, y_pred: np.ndarray, names: tuple[str, ...], thresholds: np.ndarray | None
) -> list[dict[str, Any]]:
    """Per label: its threshold, gold rows (support), predicted rows, TP/FP/FN, precision, recall and F1."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0.0)
    rows = []
    for i, name in enumerate(names):
        tp = int((y_true[:, i] & y_pred[:, i]).sum())
        rows.append(
            {
                "label": name,
                "threshold": None if thresholds is None else float(thresholds[i]),
                "support": int(support[i]),
                "predicted": int(y_pred[:, i].sum()),
                "tp": tp,
                "fp": int(y_pred[:, i].sum()) - tp,
                "fn": int(support[i]) - tp,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
            }
        )
    return rows


def confusion_summary(
    y_true: np.ndarray, y_pred: np.ndarray, names: tuple[str, ...], multi_label: bool, top: int = 10
) -> dict[str, Any]:
    """How predictions go wrong: rows exactly right, rows missing a gold label, rows with an extra one, and
    the most frequent (gold label missed, wrong label predicted instead) pairs within a row.

    For single-label data a pair is (true class, predicted class), an off-diagonal cell of the confusion
    matrix, which is added as `matrix[true][predicted]` = rows.
    """
    missed = y_true & (1 - y_pred)
    extra = y_pred & (1 - y_true)
    pairs: Counter[tuple[str, str]] = Counter()
    for row in range(len(y_true)):
        for gold in np.flatnonzero(missed[row]):
            for wrong in np.flatnonzero(extra[row]):
                pairs[(names[gold], names[wrong])] += 1
    summary: dict[str, Any] = {
        "rows": len(y_true),
        "exact": int((y_true == y_pred).all(axis=1).sum()),
        "rows_missing_a_label": int(missed.any(axis=1).sum()),
        "rows_with_an_extra_label": int(extra.any(axis=1).sum()),
        "rows_without_a_prediction": int((y_pred.sum(axis=1) == 0).sum()),
        "top_confusions": [
            {"true": gold, "predicted": wrong, "rows": n} for (gold, wrong), n in pairs.most_common(top)
        ],
    }
    if not multi_label:
        counts = y_true.T @ y_pred  # [true class, predicted class]
        summary["matrix"] = {t: {p: int(counts[i, j]) for j, p in enumerate(names)} for i, t in enumerate(names)}
    return summary


def card_markdown(per_label: list[dict[str, Any]], confusion: dict[str, Any], tuned_on: str) -> str:
    """The model-card sections: the per-label table and the confusion summary on the test split."""
    lines = [
        "## Per-label metrics (test split)",
        "",
        f"Thresholds: {tuned_on}.",
        "",
        "| label | threshold | support | predicted | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in per_label:
        threshold = "argmax" if r["threshold"] is None else f"{r['threshold']:.2f}"
        lines.append(
            f"| {r['label']} | {threshold} | {r['support']} | {r['predicted']} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |"
        )
    c = confusion
    lines += [
        "",
        "## Confusions (test split)",
        "",
        f"{c['exact']} of {c['rows']} rows exactly right; {c['rows_missing_a_label']} miss a gold label, "
        f"{c['rows_with_an_extra_label']} have a wrong one, {c['rows_without_a_prediction']} have no label at all.",
    ]
    if "matrix" in c:
        names = list(c["matrix"])
        lines += ["", "| true ↓ · predicted → | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        lines += [f"| {t} | " + " | ".join(str(c["matrix"][t][p]) for p in names) + " |" for t in names]
    elif c["top_confusions"]:
        lines += ["", "| gold label missed | predicted instead | rows |", "|---|---|---:|"]
        lines += [f"| {t['true']} | {t['predicted']} | {t['rows']} |" for t in c["top_confusions"]]
    return "\n".join(lines) + "\n"
