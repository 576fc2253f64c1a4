"""From 1-10 ratings of answers to datasets (an SFT set, preference pairs, reward data) that know their raters.

Every rated row is (prompt, response, rating, labeler), optionally `labeler_kind` (`human`, the
default, or `judge`: an LLM judge, see `curate review judge`) and `flag` (a reason). The rules
(`RatingsConfig` in curate/recipe.py holds their thresholds), in order:

1. **Pool** the ratings per answer (same prompt and response text).
2. **A judge must earn trust.** On the answers it and at least one human rated, a judge's ratings
   are compared with the human consensus (the mean human rating): Krippendorff's interval alpha,
   Spearman, mean offset (`curate.review.agreement.judge_vs_humans`). Its ratings count only if it
   shares >= `judge_min_items` (20) answers with humans and its alpha is >= `judge_min_alpha`
   (0.667); otherwise they are left out and the dataset card says why. A judge that counts also
   rates answers no human rated (`judge_fill`); rows made only of such ratings are `judge_only`.
3. **Usable answers**: flagged answers (any rating row carries a `flag`) are left out of every
   dataset (a flag means "a person must look at this first"); so are answers with fewer than
   `min_ratings` counted ratings. Single-rated answers count by default.
4. **Calibration** (`calibrate`): each rater's lean and spread against the other raters of the same
   answers is removed (`curate.review.agreement.consensus_calibrate`: a z-score taken against the
   consensus rather than the rater's own mean, which depends on which answers they happened to get),
   so a harsh and a generous labeler rate alike; means, margins and agreement use calibrated values.
5. **Datasets** from the per-answer means:
   - *SFT* (`sft_rows`): per prompt, the answer with the highest mean, kept if that mean is
     >= `min_rating` (7). Ties go to the answer with more ratings, then to the one seen first.
   - *Preference pairs* (`preference_pairs`): per prompt, every pair of answers whose means differ
     by >= `min_gap` (2); the higher one is `chosen`; `margin` = gap x `margin_scale` (1.0; the
     Llama-2 margin of the reward loss). Tied answers never form a pair, even with min_gap 0.
   - *Reward data* (`reward_rows`): every usable answer with its mean rating and count.
   A prompt with fewer than two usable answers yields no pairs; one whose best answer is below
   `min_rating` yields no SFT row.

Every derived row carries who rated it (`RATER_COLUMNS`):

- `n_raters`: distinct raters whose ratings made the row (an answer's raters; for a pair, the
  raters of either answer), humans and counted judges.
- `agreement` (0-1, null when it cannot be measured), how much those raters agreed:
  - one answer (SFT, reward rows): 1 - mean |r_i - r_j| / 9 over every two ratings of the answer
    (1: all gave the same rating; 0: split 1 vs 10); null with a single rating;
  - a pair: the share of the raters who rated both answers that rated `chosen` above `rejected`
    (a tie counts half): 1 = every such rater agrees with the pair; null when no rater rated both.
  `min_agreement` drops rows below it, and rows whose agreement is unknown.
- `judge`: a judge's rating counted in the row; `judge_only`: no human rated the row's answers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd

from curate.errors import CurateError
from curate.recipe import RatingsConfig

DeriveKind = Literal["sft", "preference", "reward"]
DERIVE_KINDS: tuple[str, ...] = ("sft", "preference", "reward")
RATER_COLUMNS: tuple[str, ...] = ("n_raters", "agreement", "judge", "judge_only")
LABELER_KINDS: tuple[str, ...] = ("human", "judge")
SCALE_SPAN = 9  # the widest gap between two 1-10 ratings


@dataclass(frozen=True)
class Rating:
    """One rater's rating of an answer: the 1-10 value given and the value the rules use (calibrated or not)."""

    labeler: str
    raw: int
    judge: bool = False
    value: float = math.nan  # raw, or calibrated with `calibrate`; set by `pool_ratings`


@dataclass
class AnswerScore:
    """All counted ratings of one answer to one prompt, pooled."""

    prompt: str
    response: str
    ratings: list[Rating] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    order: int = 0  # first appearance in the input, for deterministic tie-breaks
    first_row: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_ratings(self) -> int:
        return len(self.ratings)

    @property
    def mean(self) -> float:
        return sum(r.value for r in self.ratings) / len(self.ratings)

    @property
    def agreement(self) -> float | None:
        """1 - mean |r_i - r_j| / 9 over every two of its ratings; None with a single rating."""
        values = [r.value for r in self.ratings]
        if len(values) < 2:
            return None
        gaps = [abs(a - b) for a, b in itertools.combinations(values, 2)]
        return 1 - sum(gaps) / len(gaps) / SCALE_SPAN


def pair_agreement(chosen: AnswerScore, rejected: AnswerScore) -> float | None:
    """Share of the raters of both answers who rated `chosen` higher (a tie counts half); None if nobody rated both."""
    theirs = {r.labeler: r.value for r in rejected.ratings}
    votes = [
        1.0 if r.value > theirs[r.labeler] else 0.5 if r.value == theirs[r.labeler] else 0.0
        for r in chosen.ratings
        if r.labeler in theirs
    ]
    return sum(votes) / len(votes) if votes else None


def rater_columns(answers: Iterable[AnswerScore], agreement: float | None) -> dict[str, Any]:
    """The rater columns of a row made from `answers` (see the module docstring)."""
    ratings = [r for a in answers for r in a.ratings]
    return {
        "n_raters": len({r.labeler for r in ratings}),
        "agreement": None if agreement is None else round(agreement, 6),
        "judge": any(r.judge for r in ratings),
        "judge_only": all(r.judge for r in ratings),
    }


@dataclass(frozen=True)
class JudgeCheck:
    """A judge against the human consensus on the answers both rated, and whether its ratings count."""

    name: str
    shared: int
    alpha: float | None
    spearman: float | None
    mean_offset: float | None
    counted: bool
    reason: str


@dataclass
class RaterSummary:
    """Who rated the usable answers and how much they agreed (for the manifest and the dataset card)."""

    humans: int = 0
    alpha_humans: float | None = None  # Krippendorff's ordinal alpha of the human ratings
    alpha_with_judges: float | None = None  # the same over humans and the judges that count
    alpha_calibrated: float | None = None  # interval alpha of the calibrated values (with `calibrate`)
    calibrated: bool = False
    judges: list[JudgeCheck] = field(default_factory=list)
    judge_only_rows: int = 0


@dataclass
class Derived:
    """Rows of a derived dataset, why answers or prompts were left out (reason -> count), and its raters."""

    rows: list[dict[str, Any]]
    skipped: dict[str, int] = field(default_factory=dict)
    answers: int = 0
    prompts: int = 0
    raters: RaterSummary = field(default_factory=RaterSummary)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def stable_id(*parts: str) -> str:
    """A short content hash: the same texts always give the same row id."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def score_answers(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[AnswerScore]]:
    """Pool rated rows per (prompt, response), raw values: prompt -> its answers, in input order."""
    by_answer: dict[tuple[str, str], AnswerScore] = {}
    for row in rows:
        key = (row["prompt"], row["response"])
        score = by_answer.get(key)
        if score is None:
            score = by_answer[key] = AnswerScore(key[0], key[1], order=len(by_answer), first_row=row)
        rating = row["rating"]
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 10:
            raise CurateError(f"rating of '{key[1][:40]}' must be a whole number from 1 to 10, got {rating!r}")
        kind = row.get("labeler_kind") or "human"
        if kind not in LABELER_KINDS:
            raise CurateError(f"labeler_kind of '{key[1][:40]}' must be human or judge, got {kind!r}")
        score.ratings.append(Rating(str(row.get("labeler", "")), rating, kind == "judge", float(rating)))
        if row.get("flag"):
            score.flags.append(str(row["flag"]))
    prompts: dict[str, list[AnswerScore]] = {}
    for score in by_answer.values():
        prompts.setdefault(score.prompt, []).append(score)
    return prompts


def ratings_table(answers: Iterable[AnswerScore]) -> pd.DataFrame:
    """The long table `curate.review.agreement` takes: labeler, labeler_kind, answer_id, rating (raw), value."""
    rows = [
        {
            "labeler": r.labeler,
            "labeler_kind": "judge" if r.judge else "human",
            "answer_id": a.order,
            "rating": r.raw,
            "value": r.value,
        }
        for a in answers
        for r in a.ratings
    ]
    return pd.DataFrame(rows, columns=["labeler", "labeler_kind", "answer_id", "rating", "value"])


def judge_gate(shared: int, alpha: float | None, rules: RatingsConfig) -> tuple[bool, str]:
    """Whether a judge's ratings count (step 2 of the module docstring), and why, in words."""
    if shared < rules.judge_min_items:
        return False, f"rated only {shared} answer(s) a human rated too (needs {rules.judge_min_items})"
    if alpha is None or alpha < rules.judge_min_alpha:
        shown = "undefined" if alpha is None else f"{alpha:.3f}"
        return False, f"alpha {shown} against the human consensus is below {rules.judge_min_alpha:g}"
    return True, f"alpha {alpha:.3f} >= {rules.judge_min_alpha:g} on {shared} answers shared with humans"


def check_judges(answers: list[AnswerScore], rules: RatingsConfig) -> list[JudgeCheck]:
    """Every judge against the human consensus, and whether it passes the trust gate (module docstring, step 2)."""
    from curate.review.agreement import judge_vs_humans

    table = ratings_table(answers)
    checks = []
    for name in sorted(set(table.loc[table.labeler_kind == "judge", "labeler"])):
        stats = judge_vs_humans(table, name)
        shared, alpha = int(stats["n_shared"]), _finite(stats["alpha"])
        counted, reason = judge_gate(shared, alpha, rules)
        checks.append(
            JudgeCheck(name, shared, alpha, _finite(stats["spearman"]), _finite(stats["mean_offset"]), counted, reason)
        )
    return checks


def _calibrate(answers: list[AnswerScore]) -> None:
    """Replace every rating's value by its rater's calibrated one (agreement.consensus_calibrate)."""
    from curate.review.agreement import consensus_calibrate

    table = ratings_table(answers)
    if table.empty:
        return
    calibrated = iter(consensus_calibrate(table)["calibrated"].tolist())
    for answer in answers:
        answer.ratings = [replace(r, value=float(next(calibrated))) for r in answer.ratings]


def _alpha(table: pd.DataFrame, column: str = "rating", level: Literal["ordinal", "interval"] = "ordinal") -> float:
    from curate.review.agreement import krippendorff_alpha

    if table.empty:
        return math.nan
    return krippendorff_alpha(table.assign(rating=table[column]), level=level)


@dataclass
class Pooled:
    """The usable answers per prompt after the gate, the usability rules and calibration; what was left out."""

    prompts: dict[str, list[AnswerScore]]
    skipped: dict[str, int]
    answers: int
    raters: RaterSummary


def pool_ratings(rows: Iterable[Mapping[str, Any]], rules: RatingsConfig) -> Pooled:
    """Steps 1-4 of the module docstring: pool, gate the judges, keep usable answers, calibrate."""
    prompts = score_answers(rows)
    everything = [a for answers in prompts.values() for a in answers]
    checks = check_judges(everything, rules)
    counted = {c.name for c in checks if c.counted}
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    usable: dict[str, list[AnswerScore]] = {}
    for prompt, answers in prompts.items():
        kept = []
        for answer in answers:
            humans = [r for r in answer.ratings if not r.judge]
            trusted = [r for r in answer.ratings if r.judge and r.labeler in counted]
            answer.ratings = humans + (trusted if humans or rules.judge_fill else [])
            if answer.flags:
                skip("flagged answer")
            elif not answer.ratings:
                skip(
                    "rated only by a judge that does not count"
                    if not trusted
                    else "rated only by a judge (judge_fill off)"
                )
            elif answer.n_ratings < rules.min_ratings:
                skip(f"answer has fewer than {rules.min_ratings} ratings")
            else:
                kept.append(answer)
        usable[prompt] = kept
    kept_answers = [a for answers in usable.values() for a in answers]
    table = ratings_table(kept_answers)
    humans_only = table[table.labeler_kind == "human"]
    summary = RaterSummary(
        humans=int(humans_only.labeler.nunique()),
        alpha_humans=_finite(_alpha(humans_only)),
        alpha_with_judges=_finite(_alpha(table)),
        calibrated=rules.calibrate,
        judges=checks,
    )
    if rules.calibrate:
        _calibrate(kept_answers)
        summary.alpha_calibrated = _finite(_alpha(ratings_table(kept_answers), "value", "interval"))
    return Pooled(usable, skipped, len(everything), summary)


def _agreed(out: Derived, agreement: float | None, rules: RatingsConfig, what: str) -> bool:
    """Whether a row passes `min_agreement` (always, when unset); counts why one does not."""
    if rules.min_agreement is None:
        return True
    if agreement is None:
        out.skip(f"{what}: agreement unknown (no two ratings to compare)")
        return False
    if agreement < rules.min_agreement:
        out.skip(f"{what}: raters agree less than {rules.min_agreement:g}")
        return False
    return True


def _ranked(answers: list[AnswerScore]) -> list[AnswerScore]:
    """Best mean first; ties: more ratings, then first seen."""
    return sorted(answers, key=lambda a: (-a.mean, -a.n_ratings, a.order))


def sft_rows(pooled: Pooled, rules: RatingsConfig) -> Derived:
    """Best answer per prompt (ties: more ratings, then first seen) if its mean >= min_rating."""
    out = Derived(rows=[])
    for prompt, answers in pooled.prompts.items():
        if not answers:
            out.skip("prompt has no usable answer")
            continue
        best = _ranked(answers)[0]
        if best.mean < rules.min_rating:
            out.skip(f"best answer's mean rating is below {rules.min_rating:g}")
            continue
        if not _agreed(out, best.agreement, rules, "best answer"):
            continue
        out.rows.append(
            {
                "id": stable_id("sft", prompt, best.response),
                "prompt": prompt,
                "response": best.response,
                **rater_columns([best], best.agreement),
            }
        )
    return out


def preference_pairs(pooled: Pooled, rules: RatingsConfig) -> Derived:
    """Every pair of answers to a prompt whose means differ by >= min_gap; margin = gap x margin_scale."""
    out = Derived(rows=[])
    for prompt, answers in pooled.prompts.items():
        if len(answers) < 2:
            out.skip("prompt has fewer than two usable answers")
            continue
        made = 0
        ranked = _ranked(answers)
        for i, chosen in enumerate(ranked):
            for rejected in ranked[i + 1 :]:
                gap = chosen.mean - rejected.mean
                if gap <= 0:
                    out.skip("tied answers (no pair)")
                    continue
                if gap < rules.min_gap:
                    out.skip(f"rating gap below {rules.min_gap:g} (no pair)")
                    continue
                agreement = pair_agreement(chosen, rejected)
                if not _agreed(out, agreement, rules, "pair"):
                    continue
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
                        **rater_columns([chosen, rejected], agreement),
                    }
                )
        if not made:
            out.skip("prompt yields no pair")
    return out


def reward_rows(pooled: Pooled, rules: RatingsConfig) -> Derived:
    """One row per usable answer: prompt, response, mean_rating, n_ratings."""
    out = Derived(rows=[])
    for prompt, answers in pooled.prompts.items():
        for answer in answers:
            if not _agreed(out, answer.agreement, rules, "answer"):
                continue
            out.rows.append(
                {
                    "id": stable_id("reward", prompt, answer.response),
                    "prompt": prompt,
                    "response": answer.response,
                    "mean_rating": answer.mean,
                    "n_ratings": answer.n_ratings,
                    **rater_columns([answer], answer.agreement),
                }
            )
    return out


MAKERS: dict[str, Callable[[Pooled, RatingsConfig], Derived]] = {
    "sft": sft_rows,
    "preference": preference_pairs,
    "reward": reward_rows,
}


def derive(rows: Iterable[Mapping[str, Any]], kind: str, rules: RatingsConfig | None = None) -> Derived:
    """Rated rows -> the rows of one derived dataset (`sft`, `preference` or `reward`), with rater columns."""
    if kind not in MAKERS:
        raise CurateError(f"unknown derived dataset '{kind}': use one of {', '.join(DERIVE_KINDS)}")
    rules = rules or RatingsConfig()
    pooled = pool_ratings(rows, rules)
    out = MAKERS[kind](pooled, rules)
    for reason, n in pooled.skipped.items():
        out.skip(reason, n)
    out.answers, out.prompts, out.raters = pooled.answers, len(pooled.prompts), pooled.raters
    out.raters.judge_only_rows = sum(bool(row["judge_only"]) for row in out.rows)
    return out
