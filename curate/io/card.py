"""The dataset card (README.md) of an export, from its manifest."""

from __future__ import annotations

from collections import Counter

import yaml

from curate.io.manifest import Manifest, SourceInfo


def render_card(manifest: Manifest, sections: list[str] | None = None) -> str:
    """Markdown card with Hugging Face front matter so `load_dataset(export_dir)` finds the splits.

    `sections`: Markdown the build steps wrote (semantic dedupe, ratings, token lengths), in step order.
    """
    splits = manifest.counts.splits
    front = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits if splits[s]],
            }
        ],
        "tags": ["curatrain", manifest.kind.value],
    }
    template = manifest.template
    written = f"written in the `{template.format}` format" if template else "written"
    if template and template.name:
        written += f" with the `{template.name}` template"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {manifest.name}",
        "",
        f"A **{manifest.kind.value}** dataset built by `curate build` "
        f"(curatrain {manifest.versions.get('curatrain', 'from a source checkout')}), {written}.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("parquet", data_dir="{manifest.name}/data")',
        "```",
        "",
        "## Sources",
        "",
        *[f"- `{s.path}` ({s.sha256[:19]}…)" for s in manifest.sources],
        "",
        *(
            ["Files in the input directories that were not read:", ""]
            + [f"- `{s.path}`: {s.reason}" for s in manifest.skipped_files]
            + [""]
            if manifest.skipped_files
            else []
        ),
        "## How it was filtered",
        "",
        "| step | rows in | dropped | rows out |",
        "|---|---:|---:|---:|",
        *[f"| {s.step} | {s.rows_in} | {s.rows_in - s.rows_out} | {s.rows_out} |" for s in manifest.steps],
        "",
    ]
    lines += source_table(manifest.sources)
    reasons = Counter(manifest.dropped_reasons)
    if reasons:
        lines += ["Dropped rows by reason (each listed in `duplicates.parquet`):", ""]
        lines += [f"- {reason}: {n}" for reason, n in reasons.most_common()]
        lines.append("")
    if manifest.counts.invalid:
        lines += [f"{manifest.counts.invalid} invalid rows were skipped; see `invalid_rows.jsonl`.", ""]
    lines += ["## Splits", "", *[f"- {s}: {n} rows" for s, n in splits.items()], ""]
    split = manifest.split
    if split:
        group = f", grouped by `{split.group_by}`" if split.group_by else ""
        lines += [f"Seeded split: test size {split.test_size}, seed {split.seed}{group}.", ""]
    for section in sections or []:
        lines += [section, ""]
    lines += [
        "## Columns",
        "",
        ", ".join(f"`{c}`" for c in manifest.columns),
        "",
        f"Content hash: `{manifest.content_hash}`",
        "",
    ]
    return "\n".join(lines)


def source_table(sources: list[SourceInfo]) -> list[str]:
    """Markdown lines: each source's rows read, kept by its sample, left after each step, and per split."""
    counted = [s for s in sources if s.steps is not None]
    if not counted:
        return []
    steps = list(counted[0].steps or {})
    head = ["source", "read", "invalid", "sampled", *steps, "train", "test"]
    lines = ["Rows per source (`source` column), through every step:", "", "| " + " | ".join(head) + " |"]
    lines.append("|---|" + "---:|" * (len(head) - 1))
    for source in counted:
        sampled = f"{source.kept} ({source.sample})" if source.sample else str(source.kept)
        cells = [f"`{source.name}`", str(source.rows_read), str(source.invalid), sampled]
        cells += [str((source.steps or {})[step]) for step in steps]
        cells += [str((source.splits or {}).get(split, 0)) for split in ("train", "test")]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
