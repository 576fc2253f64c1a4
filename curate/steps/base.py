"""The one small interface every build step implements, and the context they share.

Like datatrove's pipeline steps: a step takes the records and returns those it keeps;
`FilterStep` subclasses only answer `filter(record)`, and the base counts what went
in and out, times the step, and files every dropped record with its reason (these
land in the export's manifest and in `duplicates.parquet`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from rich.progress import Progress

from curate.console import progress_bar
from curate.io.manifest import StepSections
from curate.schema import Record, readable_text

T = TypeVar("T")


@dataclass
class Dropped:
    """A record a step removed, and why."""

    id: str
    step: str
    reason: str
    source: str
    row: int
    kept_id: str | None = None
    similarity: float | None = None
    text: str = ""  # the dropped row's text, and the kept row's: a pair reads without a join
    kept_text: str | None = None


@dataclass
class StepStats:
    """Counts and timing of one step, as written to the manifest."""

    step: str
    rows_in: int
    rows_out: int
    seconds: float
    rows_out_by_source: dict[str, int] | None = None  # when the build mixes sources (record.extra["source"])

    @property
    def dropped(self) -> int:
        return self.rows_in - self.rows_out


@dataclass
class BuildContext:
    """What steps share during one build: progress, drops, stats, manifest sections, card sections, artifacts."""

    quiet: bool = False
    dropped: list[Dropped] = field(default_factory=list)
    stats: list[StepStats] = field(default_factory=list)
    manifest: StepSections = field(default_factory=StepSections)  # each step fills its own typed section
    card_sections: list[str] = field(default_factory=list)  # Markdown the steps add to the dataset card
    artifacts: dict[str, bytes] = field(default_factory=dict)  # extra files for the export root
    notes: list[str] = field(default_factory=list)  # warnings for the user (printed after the build, in the manifest)
    count_sources: bool = False  # count each step's rows per source too
    _progress: Progress | None = None

    def __enter__(self) -> BuildContext:
        if not self.quiet:
            self._progress = progress_bar()
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate with a progress bar (silent with --quiet)."""
        if self._progress is None:
            yield from items
            return
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        task = self._progress.add_task(description, total=total)
        for item in items:
            yield item
            self._progress.advance(task)
        self._progress.update(task, total=self._progress.tasks[task].completed)

    def drop(
        self, record: Record, step: str, reason: str, kept: Record | None = None, similarity: float | None = None
    ) -> None:
        """File a dropped record with its reason, and the kept record it duplicates (if any)."""
        self.dropped.append(
            Dropped(
                record.id,
                step,
                reason,
                record.source,
                record.row,
                kept.id if kept else None,
                similarity,
                readable_text(record.data),
                readable_text(kept.data) if kept else None,
            )
        )

    def note(self, message: str) -> None:
        """Record a warning the user must see (template/tokenizer mismatch, turns not trained...)."""
        if message not in self.notes:
            self.notes.append(message)

    def dropped_rows(self) -> list[dict[str, Any]]:
        """Every dropped record as a plain dict (one row of duplicates.parquet)."""
        return [asdict(d) for d in self.dropped]


class Step(ABC):
    """A build step: records in, kept records out."""

    name: ClassVar[str]

    def __call__(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        start = time.perf_counter()
        kept = self.run(records, ctx)
        by_source = dict(Counter(str(r.extra.get("source")) for r in kept)) if ctx.count_sources else None
        ctx.stats.append(
            StepStats(self.name, len(records), len(kept), round(time.perf_counter() - start, 3), by_source)
        )
        return kept

    @abstractmethod
    def run(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        """Return the records this step keeps (possibly changed)."""


class FilterStep(Step):
    """A step that keeps or drops each record on its own; subclasses implement `filter`."""

    @abstractmethod
    def filter(self, record: Record) -> bool | tuple[bool, str]:
        """True to keep; False or (False, reason) to drop."""

    def run(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        kept = []
        for record in ctx.track(records, self.name):
            verdict = self.filter(record)
            keep, reason = verdict if isinstance(verdict, tuple) else (verdict, self.name)
            if keep:
                kept.append(record)
            else:
                ctx.drop(record, self.name, reason)
        return kept
