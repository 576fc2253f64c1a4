"""The dataset card (README.md) of an export, from its manifest."""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml


def render_card(manifest: dict[str, Any]) -> str:
    """Markdown card with Hugging Face front matter so `load_dataset(export_dir)` finds the splits."""
    splits = manifest["counts"]["splits"]
    front = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits if splits[s]],
            }
        ],
        "tags": ["curatrain", manifest["kind"]],
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {manifest['name']}",
        "",
        f"A **{manifest['kind']}** dataset built by `curate build` (curatrain {manifest['versions'].get('curatrain', 'from a source checkout')}), "
        f"written in the `{manifest['template']['format']}` format"
        + (f" with the `{manifest['template']['name']}` template." if manifest["template"]["name"] else "."),
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("parquet", data_dir="{manifest["name"]}/data")',
        "```",
        "",
        "## Sources",
        "",
        *[f"- `{s['path']}` ({s['sha256'][:19]}…)" for s in manifest["sources"]],
        "",
        "## How it was filtered",
        "",
        "| step | rows in | dropped | rows out |",
        "|---|---:|---:|---:|",
        *[
            f"| {s['step']} | {s['rows_in']} | {s['rows_in'] - s['rows_out']} | {s['rows_out']} |"
            for s in manifest["steps"]
        ],
        "",
    ]
    reasons = Counter(manifest.get("dropped_reasons", {}))
    if reasons:
        lines += ["Dropped rows by reason (each listed in `duplicates.parquet`):", ""]
        lines += [f"- {reason}: {n}" for reason, n in reasons.most_common()]
        lines.append("")
    if manifest["counts"].get("invalid"):
        lines += [f"{manifest['counts']['invalid']} invalid rows were skipped; see `invalid_rows.jsonl`.", ""]
    lines += ["## Splits", "", *[f"- {s}: {n} rows" for s, n in splits.items()], ""]
    split = manifest.get("split", {})
    if split:
        group = f", grouped by `{split['group_by']}`" if split.get("group_by") else ""
        lines += [f"Seeded split: test size {split['test_size']}, seed {split['seed']}{group}.", ""]
    for section in manifest.get("card_sections", []):
        lines += [section, ""]
    lines += [
        "## Columns",
        "",
        ", ".join(f"`{c}`" for c in manifest["columns"]),
        "",
        f"Content hash: `{manifest['content_hash']}`",
        "",
    ]
    return "\n".join(lines)
