"""The one small interface every build step implements, and the context they share.

Like datatrove's pipeline steps: a step is a generator over records — it reads the records
streaming in and yields those it keeps, so a build holds one batch of rows, not the file;
`FilterStep` subclasses only answer `filter(record)`. The base counts what went in and out (per
source too), times the step's own work, and files every dropped record with its reason (these land
in the export's manifest and in `duplicates.parquet`). A step that must see every row before it can
decide (dedupe, split) sets `passes = 2` and gets a `RecordStore` it may read twice: the rows
pickled to a spooled temporary file (curate/steps/store.py), on disk once large, not held as objects.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from rich.progress import Progress

from curate.console import progress_bar
from curate.io.columnar import RowTable
from curate.io.manifest import StepSections
from curate.schema import Record, readable_text
from curate.steps.store import RecordStore

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
class DropLog:
    """One step's dropped records, as compact Arrow rows (one of duplicates.parquet each), and their reasons."""

    rows: RowTable = field(default_factory=RowTable)
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class BuildContext:
    """What steps share during one build: progress, drops, stats, manifest sections, card sections, artifacts.

    Steps stream, so their drops interleave; each step files them in its own `DropLog`, and the
    drops are read back step by step in the build's order (the order `duplicates.parquet` keeps).
    """

    quiet: bool = False
    stats: list[StepStats] = field(default_factory=list)
    manifest: StepSections = field(default_factory=StepSections)  # each step fills its own typed section
    card_sections: list[str] = field(default_factory=list)  # Markdown the steps add to the dataset card
    artifacts: dict[str, bytes] = field(default_factory=dict)  # extra files for the export root
    notes: list[str] = field(default_factory=list)  # warnings for the user (printed after the build, in the manifest)
    count_sources: bool = False  # count each step's rows per source too
    drops: dict[str, DropLog] = field(default_factory=dict)  # step name -> its drops, in the build's step order
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
        if total is None and isinstance(items, Sized):
            total = len(items)
        task = self._progress.add_task(description, total=total)
        for item in items:
            yield item
            self._progress.advance(task)
        self._progress.update(task, total=self._progress.tasks[task].completed)

    def drop(
        self, record: Record, step: str, reason: str, kept: Record | None = None, similarity: float | None = None
    ) -> None:
        """File a dropped record with its reason, and the kept record it duplicates (if any)."""
        log = self.drops.setdefault(step, DropLog())
        log.reasons[reason] += 1
        log.rows.append(
            {
                "id": record.id,
                "step": step,
                "reason": reason,
                "source": record.source,
                "row": record.row,
                "kept_id": kept.id if kept else None,
                "similarity": similarity,
                "text": readable_text(record.data),
                "kept_text": readable_text(kept.data) if kept else None,
            }
        )

    def note(self, message: str) -> None:
        """Record a warning the user must see (template/tokenizer mismatch, turns not trained...)."""
        if message not in self.notes:
            self.notes.append(message)

    def dropped_rows(self) -> RowTable:
        """Every dropped record, step by step (the rows of duplicates.parquet)."""
        logs = [log.rows for log in self.drops.values() if len(log.rows)]
        return logs[0] if len(logs) == 1 else RowTable(row for rows in logs for row in rows)

    @property
    def dropped(self) -> list[Dropped]:
        """Every dropped record as a `Dropped`, step by step (reads the compact rows back: for tests and small builds)."""
        return [Dropped(**row) for log in self.drops.values() for row in log.rows]

    def dropped_reasons(self) -> dict[str, int]:
        """'step: reason' -> rows dropped so, step by step."""
        return {f"{step}: {reason}": n for step, log in self.drops.items() for reason, n in log.reasons.items()}


class _Metered:
    """A step's input: counts the rows it yields and the time spent pulling them from the steps before."""

    def __init__(self, records: Iterable[Record]):
        self.records = records
        self.rows = 0
        self.seconds = 0.0

    def __iter__(self) -> Iterator[Record]:
        iterator = iter(self.records)
        while True:
            start = time.perf_counter()
            record = next(iterator, None)
            self.seconds += time.perf_counter() - start
            if record is None:
                return
            self.rows += 1
            yield record


class Step(ABC):
    """A build step: records stream in, the kept records (possibly changed) stream out."""

    name: ClassVar[str]
    passes: int = 1  # 2: `run` reads its input more than once, from a RecordStore (set per class or instance)

    def __call__(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        """The kept records, as a stream; the step's counts land in `ctx.stats` once the stream is read."""
        ctx.drops.setdefault(self.name, DropLog())  # drops are read back in the order the steps were built
        return self._counted(records, ctx)

    def _counted(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        started = time.perf_counter()
        upstream = _Metered(records)
        source: Iterable[Record] = upstream
        if self.passes > 1:  # runs the steps before this one to the end
            source = records if isinstance(records, (list, RecordStore)) else RecordStore(upstream)
        own, out = 0.0, 0
        by_source: Counter[str] = Counter()
        for record in self.run(source, ctx):
            out += 1
            if ctx.count_sources:
                by_source[str(record.extra.get("source"))] += 1
            own += time.perf_counter() - started
            yield record
            started = time.perf_counter()
        own += time.perf_counter() - started
        if isinstance(source, RecordStore) and source is not records:
            source.remove()
        if self.listed():
            rows_in = len(source) if isinstance(source, (list, RecordStore)) else upstream.rows
            seconds = round(max(own - upstream.seconds, 0.0), 3)  # this step's work, not the steps before it
            by = dict(by_source) if ctx.count_sources else None
            ctx.stats.append(StepStats(self.name, rows_in, out, seconds, by))

    def listed(self) -> bool:
        """Whether the step appears in the manifest's steps (a step that had nothing to do may say no)."""
        return True

    @abstractmethod
    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        """Yield the records this step keeps (possibly changed); `records` may be read `passes` times."""


class FilterStep(Step):
    """A step that keeps or drops each record on its own; subclasses implement `filter`."""

    @abstractmethod
    def filter(self, record: Record) -> bool | tuple[bool, str]:
        """True to keep; False or (False, reason) to drop."""

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        for record in ctx.track(records, self.name):
            verdict = self.filter(record)
            keep, reason = verdict if isinstance(verdict, tuple) else (verdict, self.name)
            if keep:
                yield record
            else:
                ctx.drop(record, self.name, reason)
