"""`train evaluate RUN --data PAIRS`: how well a reward model ranks answers people rated, beside the LLM judge.

On the pairs of one split of a preference export (or any file of prompt/chosen/rejected rows):

- **pairwise accuracy**: the share of pairs whose chosen answer scores above the rejected one (a tie counts
  half: a judge's whole-number scores tie often, a reward model's almost never);
- the same **by rating gap** (`chosen_rating - rejected_rating`, buckets `GAP_BUCKETS`) and **by rater
  agreement** (the `agreement` column of curate/review/ratings.py, buckets `AGREEMENT_BUCKETS`);
- **Spearman** of the scores against each distinct answer's mean human rating;
- a **calibration plot** (PNG): each answer's score against its mean human rating, the mean score per
  rating step drawn through them.

With `--judge-ratings FILE` (rated rows: prompt, response, rating, labeler, labeler_kind; e.g. `curate review
export --kind rated`), the same figures for the judge on the pairs whose two answers it rated, beside the
reward model's on exactly those pairs, and its panel beside the reward model's in the plot: whether the
reward model beats the judge. The results go into the run card (`evaluations["<data>:<split>"]`, written
atomically) and its README.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from curate.console import console, user_errors
from curate.errors import CurateError
from curate.io.atomic import replace_file

# (low, high, label): a pair's rating gap falls in [low, high).
GAP_BUCKETS: tuple[tuple[float, float, str], ...] = ((0, 2, "<2"), (2, 4, "2-4"), (4, 6, "4-6"), (6, math.inf, ">=6"))
# (low, high, label): a pair's rater agreement in [low, high); 1 (every rater agrees) is its own bucket.
AGREEMENT_BUCKETS: tuple[tuple[float, float, str], ...] = (
    (0, 0.5, "<0.5"),
    (0.5, 0.75, "0.5-0.75"),
    (0.75, 1, "0.75-1"),
    (1, math.inf, "1"),
)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Pair:
    """One preference pair and what its raters said about it."""

    prompt: Any  # text, or a list of turns (a conversational export)
    chosen: Any
    rejected: Any
    chosen_rating: float | None = None
    rejected_rating: float | None = None
    agreement: float | None = None
    judge_labelled: bool = False  # a judge's ratings counted in choosing which answer is `chosen`

    @property
    def gap(self) -> float | None:
        if self.chosen_rating is None or self.rejected_rating is None:
            return None
        return self.chosen_rating - self.rejected_rating

    def key(self, side: str) -> str:
        """The identity of one of its answers (prompt and text), for scoring each distinct answer once."""
        return json.dumps([self.prompt, getattr(self, side)], ensure_ascii=False)


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def load_pairs(source: str, split: str) -> tuple[list[Pair], str, str | None, str]:
    """The pairs of one split of `source` (auto: test when there is one, else train), the data's name,
    content hash and the split used."""
    from train.data import load_data

    data = load_data(source, "reward")
    splits = dict(data.dataset.items())
    used = ("test" if "test" in splits else "train") if split == "auto" else split
    if used not in splits:
        raise CurateError(f"--data {source}: no '{used}' split (splits: {', '.join(splits)})")
    pairs = [
        Pair(
            row.get("prompt", ""),
            row["chosen"],
            row["rejected"],
            _number(row.get("chosen_rating")),
            _number(row.get("rejected_rating")),
            _number(row.get("agreement")),
            bool(row.get("judge")),
        )
        for row in splits[used]
    ]
    if not pairs:
        raise CurateError(f"--data {source}: the '{used}' split holds no pairs")
    return pairs, data.name, data.content_hash, used


def pair_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Share of pairs whose chosen score is higher; a tie counts half."""
    return sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)) / len(chosen)


def bucket(value: float | None, buckets: tuple[tuple[float, float, str], ...]) -> str:
    """The label of the bucket `value` falls in; UNKNOWN for None."""
    if value is None:
        return UNKNOWN
    return next(label for low, high, label in buckets if low <= value < high or (low == high == value))


def figures(pairs: list[Pair], score: Callable[[Pair, str], float]) -> dict[str, Any]:
    """Accuracy overall, by gap and by agreement bucket, and Spearman vs mean human rating, for one scorer."""
    from train.reward import rating_spearman

    def accuracy(group: list[Pair]) -> dict[str, Any]:
        return {
            "pairs": len(group),
            "accuracy": pair_accuracy([score(p, "chosen") for p in group], [score(p, "rejected") for p in group]),
        }

    out: dict[str, Any] = accuracy(pairs)
    for name, value, buckets in (
        ("by_gap", lambda p: p.gap, GAP_BUCKETS),
        ("by_agreement", lambda p: p.agreement, AGREEMENT_BUCKETS),
    ):
        groups: dict[str, list[Pair]] = {}
        for pair in pairs:
            groups.setdefault(bucket(value(pair), buckets), []).append(pair)
        order = [label for *_, label in buckets] + [UNKNOWN]
        out[name] = {label: accuracy(groups[label]) for label in order if label in groups}
    rated = list(answer_ratings(pairs).values())
    out["answers"] = len(rated)
    out["spearman"] = rating_spearman([score(*answer) for answer in rated], [mean_rating(*answer) for answer in rated])
    return out


def answer_ratings(pairs: list[Pair]) -> dict[str, tuple[Pair, str]]:
    """Every distinct answer that carries a mean human rating -> (a pair it is in, its side)."""
    seen: dict[str, tuple[Pair, str]] = {}
    for pair in pairs:
        for side in ("chosen", "rejected"):
            if getattr(pair, f"{side}_rating") is not None:
                seen.setdefault(pair.key(side), (pair, side))
    return seen


def mean_rating(pair: Pair, side: str) -> float:
    """The mean human rating of one answer of a pair (the export's chosen_rating / rejected_rating)."""
    return float(getattr(pair, f"{side}_rating"))


def read_judge(path: str, name: str | None) -> tuple[str, dict[str, float]]:
    """One judge's mean score per (prompt, response) from rated rows; `name`: which judge, when there are several."""
    from curate.io.manifest import has_manifest
    from curate.io.readers import read_rows

    files = str(Path(path) / "data") if has_manifest(path) else path
    rows = [raw.data for raw in read_rows([files])]
    judges = sorted({str(r.get("labeler")) for r in rows if r.get("labeler_kind") == "judge"})
    if name is None:
        if not judges:
            raise CurateError(f"--judge-ratings {path}: no judge ratings in it (rows with labeler_kind: judge)")
        if len(judges) > 1:
            raise CurateError(f"--judge-ratings {path}: several judges ({', '.join(judges)}); choose one with --judge")
        name = judges[0]
    scores: dict[str, list[float]] = {}
    for row in rows:
        if row.get("labeler") == name and row.get("labeler_kind", "judge") == "judge":
            key = json.dumps([row.get("prompt"), row.get("response")], ensure_ascii=False)
            scores.setdefault(key, []).append(float(row["rating"]))
    if not scores:
        raise CurateError(f"--judge-ratings {path}: no ratings by the judge {name!r}")
    return name, {key: sum(values) / len(values) for key, values in scores.items()}


def calibration_plot(panels: list[tuple[str, list[float], list[float]]], out: Path) -> None:
    """One panel per scorer: score against mean human rating, the mean score per rounded rating drawn through."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    for i, (title, ratings, scores) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), i)
        axes.scatter(ratings, scores, s=14, alpha=0.55)
        steps: dict[int, list[float]] = {}
        for rating, score in zip(ratings, scores, strict=True):
            steps.setdefault(round(rating), []).append(score)
        xs = sorted(steps)
        axes.plot(xs, [sum(steps[x]) / len(steps[x]) for x in xs], color="tab:red", marker="o", label="mean per step")
        axes.set(title=title, xlabel="mean human rating (1-10)", ylabel="score")
        axes.legend(loc="upper left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    replace_file(out, buffer.getvalue())


def evaluate_run(
    run_dir: Path,
    data: str,
    split: str = "auto",
    judge_ratings: str | None = None,
    judge: str | None = None,
    plot: Path | None = None,
    batch_size: int = 16,
    quiet: bool = False,
) -> dict[str, Any]:
    """Score every distinct answer of the pairs with the run's reward model; figures, plot, and the run card."""
    from train.card import now
    from train.run import record_evaluation
    from train.score import load_reward_model, reward_scores

    pairs, name, content_hash, used = load_pairs(data, split)
    judged = read_judge(judge_ratings, judge) if judge_ratings else None  # bad input first, before the model loads
    model, tokenizer, text_format = load_reward_model(run_dir)
    answers = {pair.key(side): (pair.prompt, getattr(pair, side)) for pair in pairs for side in ("chosen", "rejected")}
    values = reward_scores(model, tokenizer, list(answers.values()), text_format, batch_size, quiet)
    rewards = dict(zip(answers, values, strict=True))

    def reward(pair: Pair, side: str) -> float:
        return rewards[pair.key(side)]

    title = f"{name}:{used}"
    plot = plot or run_dir / f"eval-{re.sub(r'[^A-Za-z0-9._-]+', '_', title)}.png"
    result: dict[str, Any] = {
        "data": data,
        "content_hash": content_hash,
        "split": used,
        "evaluated_at": now(),
        "reward": figures(pairs, reward),
        "judge": None,
        "pairs_labelled_with_judge": sum(p.judge_labelled for p in pairs),
        "plot": str(plot),
    }
    rated = answer_ratings(pairs)
    panels = [
        (
            f"reward model {run_dir.name}",
            [mean_rating(*a) for a in rated.values()],
            [reward(*a) for a in rated.values()],
        )
    ]
    if judged is not None:
        judge_name, scores = judged
        both = [p for p in pairs if p.key("chosen") in scores and p.key("rejected") in scores]
        if not both:
            raise CurateError(f"--judge-ratings {judge_ratings}: the judge {judge_name!r} rated no pair's two answers")
        result["judge"] = {
            "name": judge_name,
            **figures(both, lambda pair, side: scores[pair.key(side)]),
            "reward_model_on_these_pairs": figures(both, reward)["accuracy"],
        }
        seen = [answer for key, answer in rated.items() if key in scores]
        panels.append((f"judge {judge_name}", [mean_rating(*a) for a in seen], [scores[a[0].key(a[1])] for a in seen]))
    if rated:
        calibration_plot(panels, plot)
    else:
        result["plot"] = None  # no human ratings in the data: nothing to calibrate against
    record_evaluation(run_dir, title, result)
    return result


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return f"{value['accuracy']:.3f} ({value['pairs']})"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@user_errors
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory from `train reward`.")],
    data: Annotated[
        str, typer.Option("--data", "-d", help="Preference pairs: an export (curate build / review export) or a file.")
    ],
    split: Annotated[str, typer.Option(help="Which split: test, train, or auto (test when there is one).")] = "auto",
    judge_ratings: Annotated[
        Optional[str],
        typer.Option(help="Rated rows holding an LLM judge's scores (e.g. `curate review export --kind rated`)."),
    ] = None,
    judge: Annotated[Optional[str], typer.Option(help="The judge's name, when the ratings hold several.")] = None,
    plot: Annotated[
        Optional[Path], typer.Option(help="Calibration plot PNG (default: RUN_DIR/eval-<data>_<split>.png).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Answers per forward pass.")] = 16,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Pairwise accuracy (overall, by rating gap, by rater agreement), Spearman vs mean rating and a calibration
    plot of a reward model, beside an LLM judge's on the same pairs; recorded in the run card.

    \b
    Example:
      train evaluate runs/qa-reward --data out/qa-pairs --judge-ratings out/qa-rated
    """
    from train.card import evaluation_rows

    if split not in ("auto", "test", "train"):
        raise CurateError(f"--split {split}: use auto, test or train")
    result = evaluate_run(run_dir, data, split, judge_ratings, judge, plot, batch_size, quiet)
    judge_section = result["judge"]
    table = Table("", "reward model", *([f"judge {judge_section['name']}"] if judge_section else []))
    for label, *cells in evaluation_rows(result):
        table.add_row(label, *(_cell(c) for c in cells))
    console.print(table)
    if judge_section:
        console.print(
            f"On the {judge_section['pairs']} pairs the judge rated both answers of, the reward model's accuracy is "
            f"{judge_section['reward_model_on_these_pairs']:.3f}, the judge's {judge_section['accuracy']:.3f}"
            + (
                f" (a judge helped label {result['pairs_labelled_with_judge']} of the pairs)"
                if result["pairs_labelled_with_judge"]
                else ""
            ),
            highlight=False,
        )
    where = f"; calibration plot {escape(result['plot'])}" if result["plot"] else ""
    console.print(f"Recorded in {escape(str(run_dir / 'run_card.json'))}{where}", highlight=False)
