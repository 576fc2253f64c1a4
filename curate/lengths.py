"""Token lengths of formatted examples, as the trainer will see them, and the max_length they call for.

A row is counted the way TRL's `SFTTrainer` tokenizes it: `text`, or `prompt` + `completion`
(strings, with the tokenizer's EOS appended), or `messages` / conversational prompt + completion
rendered with the tokenizer's chat template. Preference rows count their longer side (prompt +
chosen or prompt + rejected); rated/reward rows count prompt + response; labelled rows their text.

Rule: recommended max_length = the smallest multiple of 64 that is ≥ p99 of the token counts
(percentiles with numpy's default linear interpolation), so at most ~1% of rows are truncated.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curate.errors import CurateError
from curate.hub import load_tokenizer

DEFAULT_TOKENIZER = "smollm2"
MULTIPLE = 64
PERCENTILES = (50, 90, 95, 99)
Tokenizable = str | list[dict[str, Any]]  # a string, or chat turns rendered with the chat template


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


@functools.lru_cache(maxsize=4)
def cached_tokenizer(name: str) -> Any:
    """`load_tokenizer` once per process (a GGUF tokenizer takes seconds to convert)."""
    return load_tokenizer(name)


def _sequences(row: dict[str, Any], eos: str) -> list[Tokenizable]:
    """What the trainer tokenizes for one formatted row (two candidates for preference rows)."""

    def joined(prompt: Any, completion: Any) -> Tokenizable:
        if isinstance(prompt, list) and isinstance(completion, list):
            return [*prompt, *completion]
        if isinstance(prompt, str) and isinstance(completion, str):
            text = prompt + completion
            return text if text.endswith(eos) else text + eos
        raise CurateError("prompt and completion must both be strings or both be lists of turns")

    if "messages" in row:
        return [list(row["messages"])]
    if "chosen" in row and "rejected" in row:
        prompt = row.get("prompt", [] if isinstance(row["chosen"], list) else "")
        return [joined(prompt, row["chosen"]), joined(prompt, row["rejected"])]
    if "completion" in row and "prompt" in row:
        return [joined(row["prompt"], row["completion"])]
    if "response" in row and "prompt" in row:
        return [joined(row["prompt"], row["response"])]
    if "text" in row:
        text = row["text"]
        return [text if "labels" in row or text.endswith(eos) else text + eos]
    raise CurateError(
        f"no formatted text in columns {sorted(row)}: expected text, prompt+completion, messages, "
        "prompt+chosen+rejected or prompt+response"
    )


def token_counts(
    rows: Sequence[dict[str, Any]],
    tokenizer: Any,
    track: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
    where: Callable[[int], str] | None = None,
) -> list[int]:
    """Token count of each formatted row (see the module docstring for what is counted).

    `track(items, description, total)` wraps the loop in a progress bar counting sequences; `where(i)` names
    row i in errors.
    """
    eos = tokenizer.eos_token or ""
    per_row: list[list[Tokenizable]] = []
    for i, row in enumerate(rows):
        try:
            per_row.append(_sequences(row, eos))
        except CurateError as exc:
            raise CurateError(f"{where(i) if where else f'row {i + 1}'}: {exc}") from None
    flat = [seq for seqs in per_row for seq in seqs]
    lengths = [0] * len(flat)
    texts = [i for i, seq in enumerate(flat) if isinstance(seq, str)]
    chats = [i for i, seq in enumerate(flat) if not isinstance(seq, str)]
    if chats and not getattr(tokenizer, "chat_template", None):
        raise CurateError("the rows are conversations but the tokenizer has no chat template")
    batches = [texts[i : i + 512] for i in range(0, len(texts), 512)] + [
        chats[i : i + 64] for i in range(0, len(chats), 64)
    ]

    def tokenized() -> Iterator[tuple[int, int]]:
        """(sequence index, token count), tokenizing a batch at a time."""
        for batch in batches:
            if isinstance(flat[batch[0]], str):
                ids = tokenizer([flat[i] for i in batch])["input_ids"]
            else:
                ids = [
                    tokenizer.apply_chat_template(flat[i], tokenize=True, return_dict=True)["input_ids"] for i in batch
                ]
            yield from zip(batch, map(len, ids), strict=True)

    for i, n_tokens in track(tokenized(), "lengths", len(flat)) if track else tokenized():
        lengths[i] = n_tokens
    counts, start = [], 0
    for seqs in per_row:
        counts.append(max(lengths[start : start + len(seqs)]))
        start += len(seqs)
    return counts


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
            f"Formatted examples tokenized with `{self.tokenizer}` (as the SFT trainer sees them, EOS included).",
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
