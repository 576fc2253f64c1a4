"""From 1-10 ratings of answers to datasets: an SFT set, preference pairs, reward data.

Every rated row is (prompt, response, rating, labeler), optionally `flag` (a reason).
Ratings are first pooled per answer (same prompt and response text) into a mean and a
count; the three datasets are then read off those per-answer scores:

- **SFT** (`sft_rows`): per prompt, the answer with the highest mean rating, kept only
  if that mean is >= `min_rating` (default 7). Ties for the best mean go to the answer
  with more ratings, then to the answer seen first in the input.
- **Preference pairs** (`preference_pairs`): per prompt, every pair of answers whose
  means differ by >= `min_gap` (default 2); the higher-rated one is `chosen`,
  `margin` = (mean_chosen - mean_rejected) x `margin_scale` (default 1.0; Llama-2 style
  margin for the reward loss). Tied answers never form a pair, even with min_gap 0.
- **Reward data** (`reward_rows`): one row per answer with its mean rating and count.

Rules shared by all three:
- *Single-rated answers* count like any other (their `n_ratings` is 1); raise
  `min_ratings` to leave out answers rated by fewer labelers.
- *Flagged answers* (any rating row of the answer carries a `flag`) are left out of
  every dataset: a flag means "a person must look at this first" (broken prompt,
  unsafe content), so it should not teach the model either way.
- A prompt with fewer than two usable answers yields no pairs; a prompt whose best
  answer is below `min_rating` yields no SFT row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from curate.errors import CurateError

DeriveKind = Literal["sft", "preference", "reward"]
DERIVE_KINDS: tuple[str, ...] = ("sft", "preference", "reward")


@dataclass(frozen=True)
class RatingRules:
    """Thresholds that turn ratings into datasets (see the module docstring)."""

    min_rating: float = 7.0
    min_gap: float = 2.0
    margin_scale: float = 1.0
    min_ratings: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_rating <= 10:
            raise CurateError(f"min_rating must be between 1 and 10, got {self.min_rating}")
        if not 0 <= self.min_gap <= 9:
            raise CurateError(f"min_gap must be between 0 and 9 rating points, got {self.min_gap}")
        if self.margin_scale < 0:
            raise CurateError(f"margin_scale must be >= 0, got {self.margin_scale}")
        if self.min_ratings < 1:
            raise CurateError(f"min_ratings must be >= 1, got {self.min_ratings}")


@dataclass
class AnswerScore:
    """All ratings of one answer to one prompt, pooled."""

    prompt: str
    response: str
    ratings: list[int] = field(default_factory=list)
    labelers: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    order: int = 0  # first appearance in the input, for deterministic tie-breaks
    first_row: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    @property
    def mean(self) -> float:
        return sum(self.ratings) / len(self.ratings)


@dataclass
class Derived:
    """Rows of a derived dataset plus why answers or prompts were left out (reason -> count)."""

    rows: list[dict[str, Any]]
    skipped: dict[str, int] = field(default_factory=dict)
    answers: int = 0
    prompts: int = 0

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def stable_id(*parts: str) -> str:
    """A short content hash: the same texts always give the same row id."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


def score_answers(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[AnswerScore]]:
    """Pool rated rows per (prompt, response): prompt -> its answers, in input order."""
    by_answer: dict[tuple[str, str], AnswerScore] = {}
    for row in rows:
        key = (row["prompt"], row["response"])
        score = by_answer.get(key)
        if score is None:
            score = by_answer[key] = AnswerScore(key[0], key[1], order=len(by_answer), first_row=row)
        rating = row["rating"]
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 10:
            raise CurateError(f"rating of '{key[1][:40]}' must be a whole number from 1 to 10, got {rating!r}")
        score.ratings.append(rating)
        score.labelers.append(str(row.get("labeler", "")))
        if row.get("flag"):
            score.flags.append(str(row["flag"]))
    prompts: dict[str, list[AnswerScore]] = {}
    for score in by_answer.values():
        prompts.setdefault(score.prompt, []).append(score)
    return prompts


def _usable(prompts: dict[str, list[AnswerScore]], rules: RatingRules, out: Derived) -> dict[str, list[AnswerScore]]:
    """Drop flagged and under-rated answers, counting why."""
    usable: dict[str, list[AnswerScore]] = {}
    for prompt, answers in prompts.items():
        kept = []
        for answer in answers:
            out.answers += 1
            if answer.flags:
                out.skip("flagged answer")
            elif answer.n_ratings < rules.min_ratings:
                out.skip(f"answer has fewer than {rules.min_ratings} ratings")
            else:
                kept.append(answer)
        usable[prompt] = kept
    out.prompts = len(prompts)
    return usable


def sft_rows(prompts: dict[str, list[AnswerScore]], rules: RatingRules = RatingRules()) -> Derived:
    """Best answer per prompt (ties: more ratings, then first seen) if its mean >= min_rating."""
    out = Derived(rows=[])
    for prompt, answers in _usable(prompts, rules, out).items():
        if not answers:
            out.skip("prompt has no usable answer")
            continue
        best = min(answers, key=lambda a: (-a.mean, -a.n_ratings, a.order))
        if best.mean < rules.min_rating:
            out.skip(f"best answer's mean rating is below {rules.min_rating:g}")
            continue
        out.rows.append(
            {
                "id": stable_id("sft", prompt, best.response),
                "prompt": prompt,
                "response": best.response,
            }
        )
    return out


def preference_pairs(prompts: dict[str, list[AnswerScore]], rules: RatingRules = RatingRules()) -> Derived:
    """Every pair of answers to a prompt whose means differ by >= min_gap; margin = gap x margin_scale."""
    out = Derived(rows=[])
    for prompt, answers in _usable(prompts, rules, out).items():
        if len(answers) < 2:
            out.skip("prompt has fewer than two usable answers")
            continue
        ranked = sorted(answers, key=lambda a: (-a.mean, -a.n_ratings, a.order))
        made = 0
        for i, chosen in enumerate(ranked):
            for rejected in ranked[i + 1 :]:
                gap = chosen.mean - rejected.mean
                if gap <= 0:
                    out.skip("tied answers (no pair)")
                elif gap < rules.min_gap:
                    out.skip(f"rating gap below {rules.min_gap:g} (no pair)")
                else:
                    made += 1
                    out.rows.append(
                        {
                            "id": stable_id("pair", prompt, chosen.response, rejected.response),
                            "prompt": prompt,
                            "chosen": chosen.response,
                            "rejected": rejected.response,
                            "margin": gap * rules.margin_scale,
                            "chosen_rating": chosen.mean,
                            "rejected_rating": rejected.mean,
                        }
                    )
        if not made:
            out.skip("prompt yields no pair")
    return out


def reward_rows(prompts: dict[str, list[AnswerScore]], rules: RatingRules = RatingRules()) -> Derived:
    """One row per usable answer: prompt, response, mean_rating, n_ratings."""
    out = Derived(rows=[])
    for prompt, answers in _usable(prompts, rules, out).items():
        for answer in answers:
            out.rows.append(
                {
                    "id": stable_id("reward", prompt, answer.response),
                    "prompt": prompt,
                    "response": answer.response,
                    "mean_rating": answer.mean,
                    "n_ratings": answer.n_ratings,
                }
            )
    return out


def derive(rows: Iterable[Mapping[str, Any]], kind: str, rules: RatingRules = RatingRules()) -> Derived:
    """Rated rows -> the rows of one derived dataset (`sft`, `preference` or `reward`)."""
    makers = {"sft": sft_rows, "preference": preference_pairs, "reward": reward_rows}
    if kind not in makers:
        raise CurateError(f"unknown derived dataset '{kind}': use one of {', '.join(DERIVE_KINDS)}")
    return makers[kind](score_answers(rows), rules)
