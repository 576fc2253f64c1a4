"""Records a step reads twice, kept in a spooled temporary file: in memory while small, on disk once large.

A build streams records from step to step; a step that decides from all rows first (dedupe, split,
the cross-split check) reads them once to decide and once to apply, from a `RecordStore`: the
records pickled in batches into a `tempfile.SpooledTemporaryFile` of the build, which stays in
memory up to SPOOL_BYTES and moves to disk past that; read back one batch at a time.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Generic, TypeVar

from curate.errors import CurateError

T = TypeVar("T")

BATCH = 2048  # records per pickled batch: one batch is in memory at a time
SPOOL_BYTES = 4 << 20  # a store this small stays in memory (a small build never writes a temporary file)


class RecordStore(Generic[T]):
    """A re-readable sequence of records (or rows): written once, read any number of times, in order."""

    def __init__(self, records: Iterable[T]):
        self.count = 0
        # On disk it is an unnamed file in TMPDIR: deleted when closed, or when the process ends however it ends.
        self._file: IO[bytes] | None = tempfile.SpooledTemporaryFile(SPOOL_BYTES)  # noqa: SIM115 - closed by remove()
        try:
            batch: list[T] = []
            for record in records:
                batch.append(record)
                if len(batch) == BATCH:
                    self._dump(batch)
                    batch = []
            if batch:
                self._dump(batch)
            self._file.flush()
        except OSError as exc:  # a full disk while spilling: one line, not a traceback
            self.remove()
            raise CurateError(
                f"cannot spill the build's rows to {tempfile.gettempdir()} ({exc.strerror or exc}): free space there, "
                "or point TMPDIR at a larger disk"
            ) from None

    def _dump(self, batch: list[T]) -> None:
        assert self._file is not None
        pickle.dump(batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += len(batch)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[T]:
        if self._file is None:
            raise RuntimeError("the store was removed")
        self._file.seek(0)
        while True:
            try:
                batch = pickle.load(self._file)
            except EOFError:
                return
            position = self._file.tell()  # another reader of this store may move the file between batches
            yield from batch
            self._file.seek(position)

    def remove(self) -> None:
        """Free the memory or delete the file (a spooled file on disk is deleted when closed)."""
        if self._file is not None:
            self._file.close()
            self._file = None
