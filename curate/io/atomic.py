"""Replace an output directory all at once, only when it is ours, and recover when a run was killed mid-swap.

`atomic_directory(target, fill, marker)` builds the new contents in a hidden temporary directory
beside `target` and swaps it into place with two renames (target -> .NAME.old-*, .NAME.tmp-* ->
target), so readers see the old directory or the new one, never a half-written one. Replacing
deletes the old directory, so it must be empty or one of our own outputs: its `marker` file
(manifest.json, dedupe.json, run_card.json) carries `"written_by": "curatrain"` (curate/io/owned.py)
— a foreign folder that merely holds a file of that name is refused.

Crash safety: the hidden directories are named `.NAME.tmp-PID-TAG` / `.NAME.old-PID-TAG` after the
process that made them. A run killed between the two renames leaves no `target`; the next run that
writes or reads it (`recover`) completes the swap when the new directory is whole (it holds its
marker: `fill` finished before the first rename), else puts the old one back, and removes the
hidden directories of processes that are gone. Directories of a live process are left alone: that
run may still be writing.

`replace_file(path, data)` does the same for one file (a run card, an items file): a temporary file
beside it, renamed over it.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from curate.console import err_console
from curate.errors import CurateError
from curate.io.owned import WRITTEN_BY, written_by_us

_HIDDEN = re.compile(r"^\.(?P<name>.+)\.(?P<role>tmp|old)-(?:(?P<pid>\d+)-)?(?P<tag>[0-9a-f]{8})$")
_ACTIVE: set[str] = set()  # tags of the swaps this process is running now


def check_replaceable(target: Path, marker: str | None) -> None:
    """Refuse a `target` that holds something other than our own earlier output (its `marker` file says so).

    `--out data/` must never wipe a user's data. `marker=None` is for directories inside our own cache,
    whose names we made up: whatever they hold is ours. An interrupted swap of `target` is recovered first.
    """
    recover(target, marker)
    if target.exists() and not target.is_dir():
        raise CurateError(f"{target} exists and is a file, not a directory")
    if marker is None or not target.is_dir() or not any(target.iterdir()):
        return
    if not written_by_us(target / marker):
        why = f"its {marker} was not" if (target / marker).exists() else f"no {marker}"
        raise CurateError(
            f"{target} exists and is not an earlier output of this command ({why} written by {WRITTEN_BY}): "
            "refusing to replace it; choose a new directory or remove it yourself"
        )


def atomic_directory(target: Path, fill: Callable[[Path], None], marker: str | None) -> None:
    """Call `fill(tmp)` on a fresh temp dir beside `target`, then swap it into place.

    An existing `target` is replaced only if it is empty or our own (see `check_replaceable`); `fill` must
    write the `marker` file, so that the next run may replace what this one wrote.
    """
    target = target.resolve()
    check_replaceable(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = (target.parent / f".{target.name}.{role}-{os.getpid()}-{tag}" for role in ("tmp", "old"))
    _ACTIVE.add(tag)
    try:
        tmp.mkdir()
        fill(tmp)
        if marker is not None and not written_by_us(tmp / marker):  # else the next run could not replace it
            raise RuntimeError(f"{target}: the output was written without a {marker} marked as ours")
        _sync(tmp)
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
        _sync_directory(target.parent)
    except BaseException:
        if old.exists() and not target.exists():
            os.rename(old, target)  # undo the first rename: the previous output stays in place
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        try:
            shutil.rmtree(old, ignore_errors=True)
        finally:
            _ACTIVE.discard(tag)


def recover(target: Path, marker: str | None) -> list[str]:
    """Complete or undo a swap of `target` that a killed run left half done; remove dead runs' hidden dirs.

    Returns what it did, one line each (also printed as notes on stderr).
    """
    target = Path(target).resolve()
    found: dict[str, dict[str, Path]] = {}
    if target.parent.is_dir():
        for entry in target.parent.iterdir():
            match = _HIDDEN.match(entry.name)
            if match and match["name"] == target.name and entry.is_dir() and not _running(match["pid"], match["tag"]):
                found.setdefault(match["tag"], {})[match["role"]] = entry
    done = []
    for parts in found.values():
        old, tmp = parts.get("old"), parts.get("tmp")
        if old is not None and not target.exists():
            # Killed between the two renames. The new directory is whole (fill ended before the first rename)
            # unless it lacks its marker; then the previous output goes back.
            if tmp is not None and (marker is None or written_by_us(tmp / marker)):
                os.rename(tmp, target)
                done.append(f"{target}: completed the swap a killed run left half done (the new output is in place)")
            else:
                os.rename(old, target)
                done.append(f"{target}: restored the previous output a killed run had moved aside")
        for leftover in (old, tmp):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
                done.append(f"{target}: removed {leftover.name}, left by a killed run")
    for line in done:
        err_console.print(f"[yellow]note:[/] {line}", highlight=False, soft_wrap=True)
    return done


def _running(pid: str | None, tag: str) -> bool:
    """Whether the swap that named a hidden directory may still be in progress (its process is alive)."""
    if pid is None:  # named before hidden directories carried their process id: long finished
        return False
    if int(pid) == os.getpid():
        return tag in _ACTIVE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _sync(directory: Path) -> None:
    """fsync every file under `directory`, so the swap never publishes data still only in the page cache."""
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    """fsync a directory's entries (the renames in it), where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
