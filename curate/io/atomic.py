"""Replace an output directory all at once, and only when it is ours.

`atomic_directory(target, fill, marker)` builds the new contents in a hidden temporary directory
beside `target` and swaps it into place with renames, so readers see the old directory or the new
one, never a half-written one. Replacing deletes the old directory, so it must be empty or one of
our own outputs: its `marker` file (manifest.json, dedupe.json, run_card.json) carries
`"written_by": "curatrain"` (curate/io/owned.py) — a foreign folder that merely holds a file of
that name is refused.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from curate.errors import CurateError
from curate.io.owned import WRITTEN_BY, written_by_us


def check_replaceable(target: Path, marker: str | None) -> None:
    """Refuse a `target` that holds something other than our own earlier output (its `marker` file says so).

    `--out data/` must never wipe a user's data. `marker=None` is for directories inside our own cache,
    whose names we made up: whatever they hold is ours.
    """
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
    tmp = target.parent / f".{target.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        fill(tmp)
        if marker is not None and not written_by_us(tmp / marker):  # else the next run could not replace it
            raise RuntimeError(f"{target}: the output was written without a {marker} marked as ours")
        if target.exists():
            old = target.parent / f".{target.name}.old-{tag}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
