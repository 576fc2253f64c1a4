"""Token lengths of formatted examples, as the trainer will see them, and the max_length they call for.

A row is counted as the trainer receives it: the token ids of `curate.render.Renderer`, the one
rendering `train sft` / `train reward` feed TRL's trainers with (template, chat template, one BOS, one
end token). Preference rows count their longer side (prompt + chosen or prompt + rejected, as chat turns
when `train reward` renders them so); rated/reward rows count prompt + response; labelled rows their text
(and text_pair).

Rule: recommended max_length = the smallest multiple of 64 that is ≥ p99 of the token counts
(percentiles with numpy's default linear interpolation), so at most ~1% of rows are truncated.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curate.errors import CurateError
from curate.render import Renderer

DEFAULT_TOKENIZER = "smollm2"
MULTIPLE = 64
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LengthStats:
    """Summary of token counts (percentiles by linear interpolation)."""

    rows: int
    tokens: int
    min: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: int


def recommended_max_length(p99: float, multiple: int = MULTIPLE) -> int:
    """The smallest multiple of `multiple` (64) that is ≥ p99, and at least one multiple: 64 → 64, 65 → 128."""
    return max(multiple, math.ceil(p99 / multiple) * multiple)


def length_stats(counts: Sequence[int]) -> LengthStats:
    """min/mean/p50/p90/p95/p99/max of token counts; an empty list is a clear error."""
    if not counts:
        raise CurateError("no rows to measure: the token-length analysis needs at least one example")
    array = np.asarray(counts, dtype=np.int64)
    p50, p90, p95, p99 = (round(float(v), 2) for v in np.percentile(array, PERCENTILES))
    return LengthStats(
        rows=len(array),
        tokens=int(array.sum()),
        min=int(array.min()),
        mean=round(float(array.mean()), 2),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=int(array.max()),
    )


def truncation(counts: Sequence[int], max_length: int) -> tuple[int, int]:
    """(rows longer than max_length, tokens cut off them) if sequences were truncated to max_length."""
    array = np.asarray(counts, dtype=np.int64)
    over = array[array > max_length]
    return len(over), int((over - max_length).sum())


def token_counts(
    rows: Sequence[dict[str, Any]],
    renderer: Renderer,
    track: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
    where: Callable[[int], str] | None = None,
) -> list[int]:
    """Token count of each formatted row, exactly as its trainer receives it (`curate.render.Renderer`).

    `track(items, description, total)` wraps the loop in a progress bar counting rows; `where(i)` names row i
    in errors.
    """
    counts = renderer.lengths(rows, where)
    return list(track(counts, "lengths", len(rows)) if track else counts)


@dataclass(frozen=True)
class LengthReport:
    """The whole analysis, as it goes into `manifest["lengths"]`."""

    tokenizer: str
    stats: LengthStats
    recommended_max_length: int
    max_length: int  # the cut reported on: the one asked for, else the recommended one
    truncated_rows: int
    truncated_tokens: int

    def as_manifest(self) -> dict[str, Any]:
        """JSON-able dict; `recommended_max_length` is the key `train sft` reads."""
        return {
            **asdict(self),
            "rule": f"recommended_max_length = smallest multiple of {MULTIPLE} >= p99 of formatted-example tokens",
        }

    def card_markdown(self, plot: str | None = "lengths.png") -> str:
        """A dataset-card section: the stats table, the recommendation and the plot."""
        s = self.stats
        lines = [
            "## Token lengths",
            "",
            f"Formatted examples tokenized with `{self.tokenizer}` (as the trainer receives them, special tokens and EOS included).",
            "",
            "| rows | min | mean | p50 | p90 | p95 | p99 | max |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {s.rows} | {s.min} | {s.mean} | {s.p50} | {s.p90} | {s.p95} | {s.p99} | {s.max} |",
            "",
            f"Recommended `max_length`: **{self.recommended_max_length}** (smallest multiple of {MULTIPLE} ≥ p99). "
            f"At max_length {self.max_length}, {self.truncated_rows} rows lose {self.truncated_tokens} tokens.",
        ]
        if plot:
            lines += ["", f"![token-length histogram]({plot})"]
        return "\n".join(lines)


def analyze(counts: Sequence[int], tokenizer: str, max_length: int | None = None) -> LengthReport:
    """Stats, recommended max_length and what `max_length` (default: the recommended one) would truncate."""
    stats = length_stats(counts)
    recommended = recommended_max_length(stats.p99)
    cut = max_length or recommended
    rows, tokens = truncation(counts, cut)
    return LengthReport(tokenizer, stats, recommended, cut, rows, tokens)


def histogram_png(counts: Sequence[int], report: LengthReport, title: str = "Token lengths") -> bytes:
    """A PNG histogram of token counts with p50/p90/p95/p99 and the max_length cut marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.hist(counts, bins=min(60, max(10, len(set(counts)))), color="#4c72b0", alpha=0.85)
    s = report.stats
    for (name, value), color in zip(
        {"p50": s.p50, "p90": s.p90, "p95": s.p95, "p99": s.p99}.items(),
        ("#55a868", "#c4a000", "#dd8452", "#c44e52"),
        strict=True,
    ):
        ax.axvline(value, color=color, linestyle="--", linewidth=1.2, label=f"{name} = {value:g}")
    ax.axvline(report.max_length, color="black", linewidth=2, label=f"max_length = {report.max_length}")
    ax.set_xlabel(f"tokens per formatted example ({report.tokenizer})")
    ax.set_ylabel("rows")
    ax.set_title(f"{title}: {s.rows} rows, {report.truncated_rows} truncated at {report.max_length}")
    ax.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
