"""`curate lengths`: token-length stats of formatted examples and the max_length they call for.

On an export directory the rows are rendered as its trainer renders them (the export's template and
system-prompt policy, through `curate.render.Renderer`) and the analysis is written back into the
export: `manifest.json["lengths"]` (whose `recommended_max_length` `train` uses), `lengths.png` and the
card's "Token lengths" section.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from curate.console import console, progress_bar, user_errors
from curate.hub import cached_tokenizer
from curate.io.manifest import MANIFEST, LengthsInfo, Manifest, has_manifest, read_manifest
from curate.io.readers import read_rows
from curate.lengths import (
    DEFAULT_TOKENIZER,
    MULTIPLE,
    LengthReport,
    analyze,
    histogram_png,
    token_counts,
)
from curate.render import Renderer


def _inputs(paths: list[str]) -> list[str]:
    """An export directory means its data/ parquet files; anything else is read as given."""
    return [str(Path(p) / "data") if has_manifest(p) else p for p in paths]


def _export(paths: list[str]) -> Path | None:
    """The export directory when the input is exactly one."""
    return Path(paths[0]) if len(paths) == 1 and has_manifest(paths[0]) else None


def _replace_file(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def save_to_export(export: Path, manifest: Manifest, report: LengthReport, png: bytes) -> None:
    """Write the analysis into an export: manifest lengths section, lengths.png, the card's section (each
    file replaced atomically); the data files, and so the content hash, are untouched."""
    previous = manifest.lengths.model_dump() if manifest.lengths else {}
    lengths = LengthsInfo.model_validate({**previous, **report.as_manifest()})
    updated = manifest.model_copy(update={"lengths": lengths, "files": sorted({*manifest.files, "lengths.png"})})
    card_path = export / "README.md"
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
    section = re.compile(r"^## Token lengths\n.*?(?=^## |\Z)", re.S | re.M)
    fresh = report.card_markdown() + "\n\n"
    card = section.sub(lambda _: fresh, card) if section.search(card) else card.rstrip("\n") + "\n\n" + fresh
    _replace_file(export / "lengths.png", png)
    _replace_file(card_path, card.encode("utf-8"))
    _replace_file(export / MANIFEST, Manifest.model_validate(updated.model_dump()).to_json().encode("utf-8"))


@user_errors
def lengths_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="An export directory (out/NAME) or formatted files (JSONL/CSV/Parquet with text, "
            "prompt+completion or messages columns)."
        ),
    ],
    tokenizer: Annotated[
        str, typer.Option(help="Target model's tokenizer: smollm2 (offline), a hub id or a local path.")
    ] = DEFAULT_TOKENIZER,
    max_length: Annotated[
        Optional[int], typer.Option(help="Show how many rows/tokens this max_length truncates (default: the rule's).")
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option(help="Write a histogram PNG with percentiles and the cut marked.")
    ] = None,
    save: Annotated[
        bool,
        typer.Option(
            "--save/--no-save",
            help="On an export directory, write the analysis into it (manifest lengths, which `train` reads; "
            "lengths.png; the card).",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Token counts of formatted examples (exactly as the trainer receives them) and a recommended max_length.

    Rule: recommended max_length = the smallest multiple of 64 that is >= p99 of the token counts.
    On an export directory the result is written into it (see --save), where `train` reads it.

    \b
    Examples:
      curate lengths out/latex --plot lengths.png
      curate lengths out/latex --tokenizer smollm2 --max-length 64
    """
    export = _export(inputs)
    manifest = read_manifest(export) if export else None
    section = manifest.template if manifest else None
    raws = list(read_rows(_inputs(inputs)))
    tok = cached_tokenizer(tokenizer)
    renderer = Renderer(
        tok,
        section.name if section else None,
        default_system_prompt=section.default_system_prompt if section else False,
        chat_strings=True,  # untemplated preference strings: `train reward` renders them as chat turns
    )
    with progress_bar(unit="seqs", disable=quiet) as progress:
        counts = token_counts(
            [r.data for r in raws],
            renderer,
            lambda items, desc, total: progress.track(items, total=total, description=desc),
            where=lambda i: f"{raws[i].source} {raws[i].unit} {raws[i].row}",
        )
    report = analyze(counts, tokenizer, max_length)
    s = report.stats
    table = Table(title=f"Token lengths ({tokenizer}, {s.rows} rows, {s.tokens:,} tokens)")
    for name in ("min", "mean", "p50", "p90", "p95", "p99", "max"):
        table.add_column(name, justify="right")
    table.add_row(*(f"{getattr(s, name):g}" for name in ("min", "mean", "p50", "p90", "p95", "p99", "max")))
    console.print(table)
    console.print(
        f"Recommended max_length: [bold]{report.recommended_max_length}[/] (smallest multiple of {MULTIPLE} >= p99)"
    )
    share = report.truncated_rows / s.rows
    console.print(
        f"At max_length {report.max_length}: {report.truncated_rows} rows ({share:.1%}) truncated, "
        f"{report.truncated_tokens:,} tokens cut"
    )
    png = histogram_png(counts, report) if plot or (export and save) else b""
    if plot:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(png)
        console.print(f"Histogram written to [bold]{plot}[/]")
    if export and manifest and save:
        save_to_export(export, manifest, report, png)
        console.print(
            f"Written to [bold]{export}[/] (manifest.json lengths, lengths.png, README.md): "
            f"`train` now uses max_length {report.recommended_max_length} for this export"
        )
