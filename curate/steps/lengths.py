"""Build step: token lengths of the formatted rows with the target tokenizer; optional length filters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import ClassVar

from curate.hub import cached_tokenizer
from curate.io.manifest import LengthsInfo
from curate.lengths import analyze, histogram_png, token_counts
from curate.render import Renderer, template_warnings
from curate.schema import Record
from curate.steps.base import BuildContext, Step

BATCH = 1024  # rows tokenized together


class Lengths(Step):
    """Count tokens of each formatted row (after the template step), drop rows outside
    [min_tokens, max_tokens] with the reason, and write the analysis of the kept rows to
    `manifest.lengths`, `lengths.png` and a dataset-card section.
    """

    name: ClassVar[str] = "lengths"

    def __init__(
        self,
        tokenizer: str,
        max_length: int | None = None,
        min_tokens: int | None = None,
        max_tokens: int | None = None,
        template: str | None = None,
        default_system_prompt: bool = False,
        strict: bool = False,
    ):
        self.tokenizer = tokenizer
        self.template = template
        self.default_system_prompt = default_system_prompt
        self.strict = strict
        self.max_length = max_length
        self.min_tokens = min_tokens
        self.max_tokens = max_tokens

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        tok = cached_tokenizer(self.tokenizer)
        for warning in template_warnings(self.template, tok, self.tokenizer, self.strict):
            ctx.note(warning)
        renderer: Renderer | None = None
        kept_counts: list[int] = []  # one int per kept row: the analysis needs every count, not every row
        rows_in = 0
        rows = iter(ctx.track(records, self.name))
        while batch := list(islice(rows, BATCH)):
            renderer = renderer or self.renderer(tok, ctx)  # after the template step described its format
            names = [f"{r.source} row {r.row}" for r in batch]
            counts = token_counts([r.data for r in batch], renderer, where=names.__getitem__)
            rows_in += len(batch)
            for record, n in zip(batch, counts, strict=True):
                if self.min_tokens is not None and n < self.min_tokens:
                    ctx.drop(record, self.name, f"{n} tokens < min_tokens {self.min_tokens}")
                elif self.max_tokens is not None and n > self.max_tokens:
                    ctx.drop(record, self.name, f"{n} tokens > max_tokens {self.max_tokens}")
                else:
                    kept_counts.append(n)
                    yield record
        if not kept_counts:
            ctx.manifest.lengths = LengthsInfo(tokenizer=self.tokenizer, stats=None, recommended_max_length=None)
            return
        report = analyze(kept_counts, self.tokenizer, self.max_length)
        ctx.manifest.lengths = LengthsInfo(
            **report.as_manifest(),
            min_tokens=self.min_tokens,
            max_tokens=self.max_tokens,
            dropped=rows_in - len(kept_counts),
        )
        ctx.artifacts["lengths.png"] = histogram_png(kept_counts, report)
        ctx.card_sections.append(report.card_markdown())

    def renderer(self, tokenizer: object, ctx: BuildContext) -> Renderer:
        """The rendering the trainers will use on this export (format and template from the template step)."""
        section = ctx.manifest.template
        return Renderer(
            tokenizer,
            section.name if section else self.template,
            default_system_prompt=section.default_system_prompt if section else self.default_system_prompt,
            chat_strings=True,  # untemplated preference strings: `train reward` renders them as chat turns
        )
