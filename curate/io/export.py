"""Write an export directory atomically: Parquet splits, manifest.json, dataset card.

Layout (docs/design.md): data/{split}-00000-of-00001.parquet, manifest.json (curate/io/manifest.py), README.md,
duplicates.parquet (every dropped row and why), invalid_rows.jsonl (with
--skip-invalid), plus any artifacts the steps made (e.g. lengths.png). Everything
is written into a hidden temporary directory beside the target and renamed into
place, so a crash never leaves a half export.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.io.atomic import atomic_directory
from curate.io.columnar import RowTable
from curate.io.manifest import MANIFEST, BuildInfo, Manifest, parse_manifest

SPLITS = ("train", "test")


def shard_name(split: str) -> str:
    """The Parquet file name of a split (Hugging Face's shard naming)."""
    return f"{split}-00000-of-00001.parquet"


def write_parquet(rows: RowTable | list[dict[str, Any]], path: Path) -> None:
    """Write rows as Parquet with `datasets` features in the schema; same rows give the same bytes."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    table = rows if isinstance(rows, RowTable) else RowTable(rows)
    table.dataset().to_parquet(str(path))


def content_hash(directory: Path) -> str:
    """sha256 over the data files' names and bytes: the identity `train` records in run cards."""
    digest = hashlib.sha256()
    for file in sorted((directory / "data").glob("*.parquet")):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file (or of every file under a directory, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def write_export(
    out: Path,
    splits: Mapping[str, RowTable | list[dict[str, Any]]],
    info: BuildInfo,
    card: Callable[[Manifest], str],
    dropped: RowTable | list[dict[str, Any]],
    invalid: list[dict[str, Any]],
    artifacts: dict[str, bytes],
) -> Manifest:
    """Write the export directory; returns its manifest (`info` plus the content hash and the files)."""
    if not any(len(rows) for rows in splits.values()):
        raise CurateError("no rows left to export: every row was dropped")
    written: list[Manifest] = []

    def fill(tmp: Path) -> None:
        (tmp / "data").mkdir()
        for split in SPLITS:
            if len(splits.get(split) or []):
                write_parquet(splits[split], tmp / "data" / shard_name(split))
        if dropped:
            write_parquet(dropped, tmp / "duplicates.parquet")
        if invalid:
            lines = (json.dumps(row, ensure_ascii=False) for row in invalid)
            (tmp / "invalid_rows.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for name, payload in artifacts.items():
            (tmp / name).write_bytes(payload)
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + [MANIFEST, "README.md"]
        manifest = Manifest(**dict(info), content_hash=content_hash(tmp), files=files)
        text = manifest.to_json()
        written.append(parse_manifest(text, f"{out}/{MANIFEST}"))  # what train will read back must validate
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        (tmp / "README.md").write_text(card(manifest), encoding="utf-8")

    atomic_directory(out, fill, marker=MANIFEST)
    return written[0]
