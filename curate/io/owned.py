"""What marks a file as written by curatrain, so that only our own outputs are ever replaced.

Every JSON document that identifies one of our output directories (an export's manifest.json,
`curate dedupe`'s dedupe.json, a run's run_card.json) carries `"written_by": "curatrain"`. A
directory counts as ours only when that document is there *and* says so: a foreign folder that
merely holds a file of the same name is never deleted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Literal

MARKER_FIELD: Final = "written_by"
WRITTEN_BY: Final = "curatrain"
Marker = Literal["curatrain"]


def stamped(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with our marker first (a new dict)."""
    return {MARKER_FIELD: WRITTEN_BY, **{k: v for k, v in document.items() if k != MARKER_FIELD}}


def written_by_us(path: Path) -> bool:
    """True when `path` is a JSON object whose marker field says curatrain wrote it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(document, dict) and document.get(MARKER_FIELD) == WRITTEN_BY
