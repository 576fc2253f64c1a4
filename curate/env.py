"""The environment curatrain runs in, read in one place: its cache directory, the CPUs it may use, package versions.

Environment variables: `CURATRAIN_CACHE` (cache root, below) and `CURATRAIN_REVIEW_DB` (the review
database; `curate.review.types.ENV_DB`, beside the rest of the database defaults).
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

CACHE_ENV = "CURATRAIN_CACHE"


def cache_dir(kind: str) -> Path:
    """Where cached `kind` lives (embeddings, models): $CURATRAIN_CACHE/kind, else ~/.cache/curatrain/kind."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "curatrain") / kind


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, which containers and `taskset` narrow), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Python's version and the installed version of each named package (packages not installed are left out)."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
