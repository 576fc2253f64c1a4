"""Turn rated records into an SFT set, preference pairs or reward data (rules: `curate.review.ratings`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import ClassVar

from curate.errors import CurateError
from curate.io.manifest import DeriveInfo
from curate.recipe import RatingsConfig
from curate.review.ratings import RatingRules, derive
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

    def __init__(self, derive_kind: str, rules: RatingRules):
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
        ctx.manifest.derive = DeriveInfo.model_validate(
            {
                "kind": self.derive_kind,
                "rules": RatingsConfig(**vars(self.rules)),
                "ratings": len(rows),
                "answers": result.answers,
                "prompts": result.prompts,
                "rows": len(derived),
                "skipped": result.skipped,
            }
        )
        ctx.card_sections.append(self.card_section(result.skipped, len(derived)))
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
