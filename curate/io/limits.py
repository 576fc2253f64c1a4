"""How much input a build may hold in memory: a limit that follows the machine, checked before and while reading.

A build streams its rows, but still keeps something per row: the exported rows and every dropped row
(with its text, for duplicates.parquet) as Arrow columns, and per-row keys; a 63 KB Parquet file of
3.6M repeated rows once drove a build to a 2.9 GB `MemoryError`. So each file's
declared size (Parquet metadata: rows and uncompressed bytes; text files: their size) is checked
before it is read, and the rows actually read are counted as they arrive, against a share of the
machine's memory. The message says how to raise the limit.
"""

from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path

from curate.errors import CurateError

ENV = "CURATRAIN_MAX_MEMORY"
# The share of the machine's memory that held input rows may take: the steps need the rest
# (normalized copies, the export's Arrow tables, embeddings).
SHARE = 0.5
# Peak build memory per row beyond its text and per byte of text: an upper bound. Measured on the
# streaming build (peak RSS over the interpreter's own 170 MB): 200k short rows (35 MB) -> 210 MB and
# 50k long rows (114 MB) -> 600 MB (about 140 B per exported row and 5x its text, the export's Parquet
# writer included), 300k rows all dropped as duplicates -> 360 MB (1.2 KB per dropped row, its text kept
# for duplicates.parquet). Fitted earlier to a build holding every row as Python objects: 1.5 KB, 6x.
ROW_BYTES = 1_500
TEXT_FACTOR = 6
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}


def format_bytes(n: float) -> str:
    """Bytes as a short human-readable figure (1.5 GB)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def parse_size(text: str) -> int:
    """`8GB`, `512M`, `2g` or a number of bytes as an int."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise CurateError(f"{ENV}={text!r}: give a size such as 8GB, 512MB or 2000000000")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _cgroup_memory() -> int | None:
    """The memory this process's cgroup may still use (cgroup v2), if one is set."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(int(limit) - usage, 0)
    return None


def _address_space_left() -> int | None:
    """What `ulimit -v` (RLIMIT_AS) still allows this process to map, if it is set."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        mapped = 0
    return max(soft - mapped, 0)


@dataclass(frozen=True)
class MemoryLimit:
    """The bytes a build's held rows may take, and where that figure comes from (for the message)."""

    bytes: int
    origin: str

    @classmethod
    def for_this_machine(cls) -> MemoryLimit:
        """`$CURATRAIN_MAX_MEMORY` if set, else half of the smallest of RAM, the cgroup's room and `ulimit -v`'s."""
        if os.environ.get(ENV):
            return cls(parse_size(os.environ[ENV]), f"set by {ENV}")
        candidates = [(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's RAM")]
        cgroup = _cgroup_memory()
        if cgroup is not None:
            candidates.append((cgroup, "what this container may still use"))
        address_space = _address_space_left()
        if address_space is not None:
            candidates.append((address_space, "what `ulimit -v` still allows"))
        room, where = min(candidates)
        return cls(int(room * SHARE), f"{SHARE:.0%} of {format_bytes(room)}, {where}")

    def refuse(self, what: str, need: int) -> CurateError:
        """The one-line error for input that would need `need` bytes."""
        return CurateError(
            f"{what} needs about {format_bytes(need)} of memory as rows, over this build's limit of "
            f"{format_bytes(self.bytes)} ({self.origin}): split the input or sample it (`max_rows` in the "
            f"recipe's inputs), or raise the limit, e.g. {ENV}={_suggest(need)}"
        )


def _suggest(need: int) -> str:
    return f"{-(-need // (1 << 30)) + 1}GB"


def row_memory(rows: int, text_bytes: int) -> int:
    """Estimated memory of `rows` held rows whose text takes `text_bytes` in the file."""
    return rows * ROW_BYTES + text_bytes * TEXT_FACTOR


@dataclass
class MemoryBudget:
    """Counts the rows and bytes read so far in a build and stops when they would not fit."""

    limit: MemoryLimit
    rows: int = 0
    text_bytes: int = 0

    def check_declared(self, path: Path | str, rows: int, text_bytes: int, declared: str) -> None:
        """Before reading a file: refuse it if what it declares (plus what is already held) cannot fit."""
        need = row_memory(self.rows + rows, self.text_bytes + text_bytes)
        if need > self.limit.bytes:
            raise self.limit.refuse(f"{path} ({declared})", need)

    def charge(self, where: str, rows: int, text_bytes: int) -> None:
        """Count rows just read; raise once the held rows would pass the limit."""
        self.rows += rows
        self.text_bytes += text_bytes
        need = row_memory(self.rows, self.text_bytes)
        if need > self.limit.bytes:
            raise self.limit.refuse(f"{where}: the {self.rows:,} rows read so far", need)
