"""docs/design.md is the design every module cites: it exists, and its manifest table is the model's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from curate.io.manifest import fields_markdown

REPO = Path(__file__).resolve().parents[1]
DESIGN = REPO / "docs" / "design.md"


def test_the_manifest_table_in_the_design_doc_matches_the_model() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    start, end = "<!-- manifest-fields:start -->\n", "\n<!-- manifest-fields:end -->"
    table = text[text.index(start) + len(start) : text.index(end)]
    expected = "\n".join(["| field | type | meaning |", "|---|---|---|", *fields_markdown()])
    assert table == expected, "regenerate the table with `python -m curate.io.manifest`"


def test_every_design_citation_points_at_a_file_in_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    citing = [
        path
        for path in tracked.split()
        if (REPO / path).is_file()
        and path.endswith((".py", ".yaml", ".md"))
        and path != "tests/test_design_doc.py"
        and "DESIGN.md" in (REPO / path).read_text(encoding="utf-8", errors="replace")
    ]
    assert citing == [], f"these cite a DESIGN.md that is not in the repository (use docs/design.md): {citing}"
