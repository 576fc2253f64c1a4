"""Turn rated records into an SFT set, preference pairs or reward data (rules: `curate.review.ratings`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar

from curate.errors import CurateError
from curate.io.manifest import DeriveInfo, RaterInfo
from curate.recipe import RatingsConfig
from curate.review.ratings import RaterSummary, derive
from curate.schema import Kind, Record
from curate.steps.base import BuildContext, Step

# The record kind each derived dataset has after this step (what Format then writes).
DERIVED_KIND: dict[str, Kind] = {"sft": Kind.instruction, "preference": Kind.preference, "reward": Kind.reward}


def output_kind(derive_kind: str | None, kind: Kind) -> Kind:
    """The kind of the records leaving a build that derives `derive_kind` (None: unchanged)."""
    if derive_kind is None:
        return kind
    if kind is not Kind.rated:
        raise CurateError(
            f"derive: {derive_kind} needs rated records (prompt, response, rating, labeler), "
            f"but the input is '{kind.value}' data"
        )
    return DERIVED_KIND[derive_kind]


class Derive(Step):
    """Pool ratings per answer and emit the derived rows; flagged answers' ratings are filed as dropped."""

    name: ClassVar[str] = "derive"

    def __init__(self, derive_kind: str, rules: RatingsConfig):
        if derive_kind not in DERIVED_KIND:
            raise CurateError(f"unknown derive '{derive_kind}': use one of {', '.join(DERIVED_KIND)}")
        self.derive_kind = derive_kind
        self.rules = rules

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        # Ratings are pooled per answer across all rows: this step holds its (rated) input.
        rows = list(records)
        first: dict[tuple[str, str], Record] = {}
        for record in ctx.track(rows, self.name):
            first.setdefault((record.data["prompt"], record.data["response"]), record)
            if record.data.get("flag"):
                ctx.drop(record, self.name, f"flagged: {record.data['flag']}")
        result = derive((r.data for r in rows), self.derive_kind, self.rules)
        derived = []
        for row in result.rows:
            origin = first[(row["prompt"], row["response"] if "response" in row else row["chosen"])]
            row_id = row.pop("id")
            extra = {"source": origin.extra["source"]} if "source" in origin.extra else {}
            derived.append(Record(id=row_id, data=row, source=origin.source, row=origin.row, extra=extra))
        raters = RaterInfo.model_validate(
            {**vars(result.raters), "judges": [vars(judge) for judge in result.raters.judges]}
        )
        ctx.manifest.derive = DeriveInfo.model_validate(
            {
                "kind": self.derive_kind,
                "rules": self.rules,
                "ratings": len(rows),
                "answers": result.answers,
                "prompts": result.prompts,
                "rows": len(derived),
                "skipped": result.skipped,
                "raters": raters,
            }
        )
        ctx.card_sections.append(self.card_section(result.skipped, len(derived)))
        ctx.card_sections.append(raters_section(result.raters, self.rules))
        yield from derived

    def card_section(self, skipped: dict[str, int], rows: int) -> str:
        """Markdown for the dataset card: which rules made this set from ratings."""
        r = self.rules
        rules = {
            "sft": f"the best-rated answer per prompt, kept if its mean rating is >= {r.min_rating:g}",
            "preference": f"pairs of answers to a prompt whose mean ratings differ by >= {r.min_gap:g}; "
            f"margin = gap x {r.margin_scale:g}",
            "reward": "every answer with its mean rating and number of ratings",
        }[self.derive_kind]
        lines = [
            "## From ratings",
            "",
            f"{rows} rows: {rules}. Answers need >= {r.min_ratings} rating(s); flagged answers are left out; "
            "tied answers never form a pair (rules: `curate/review/ratings.py`).",
            "",
        ]
        lines += [f"- {reason}: {n}" for reason, n in sorted(skipped.items())]
        return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def raters_section(raters: RaterSummary, rules: RatingsConfig) -> str:
    """Markdown for the dataset card: who rated, how much they agreed, which judges count and why."""
    lines = [
        "## Raters",
        "",
        f"{raters.humans} human rater(s). Krippendorff's alpha (ordinal, answers rated at least twice): "
        f"{_num(raters.alpha_humans)} among humans, {_num(raters.alpha_with_judges)} with the judges that count.",
        "",
    ]
    if raters.calibrated:
        lines += [
            "Ratings are **calibrated**: each rater's lean and spread against the other raters of the same answers "
            f"are removed before means and margins are taken (interval alpha of the calibrated ratings: "
            f"{_num(raters.alpha_calibrated)}).",
            "",
        ]
    if raters.judges:
        lines += [
            f"LLM judges count only with alpha >= {rules.judge_min_alpha:g} against the human consensus "
            f"on >= {rules.judge_min_items} shared answers:",
            "",
            "| judge | shared answers | alpha | Spearman | mean offset | counts |",
            "|---|---:|---:|---:|---:|---|",
        ]
        lines += [
            f"| {j.name} | {j.shared} | {_num(j.alpha)} | {_num(j.spearman)} | {_num(j.mean_offset, 2, True)} | "
            f"{'yes' if j.counted else 'no'}: {j.reason} |"
            for j in raters.judges
        ]
        lines += ["", f"{raters.judge_only_rows} row(s) were rated by a judge alone (`judge_only`).", ""]
    else:
        lines += ["No LLM judge rated these answers.", ""]
    lines += [
        "Per row: `n_raters` (distinct raters behind it), `agreement` (one answer: 1 - mean |r_i - r_j| / 9 over "
        "its ratings; a pair: the share of raters of both answers who rated `chosen` higher, ties half; null when "
        "unmeasurable), `judge` (a judge's rating counted), `judge_only` (no human rated it)."
        + (
            f" Rows whose agreement is below {rules.min_agreement:g} or unknown were dropped."
            if rules.min_agreement is not None
            else ""
        ),
    ]
    return "\n".join(lines) + "\n"
