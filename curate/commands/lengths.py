"""`curate lengths`: token-length stats of formatted examples and the max_length they call for."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from curate.console import console, progress_bar, user_errors
from curate.io.readers import read_rows
from curate.lengths import DEFAULT_TOKENIZER, MULTIPLE, analyze, cached_tokenizer, histogram_png, token_counts


def _inputs(paths: list[str]) -> list[str]:
    """An export directory means its data/ parquet files; anything else is read as given."""
    return [str(Path(p) / "data") if (Path(p) / "manifest.json").is_file() else p for p in paths]


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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Token counts of formatted examples (as the SFT trainer tokenizes them) and a recommended max_length.

    Rule: recommended max_length = the smallest multiple of 64 that is >= p99 of the token counts.

    Examples:
      curate lengths out/latex --plot lengths.png
      curate lengths out/latex --tokenizer smollm2 --max-length 64
    """
    raws = list(read_rows(_inputs(inputs)))
    tok = cached_tokenizer(tokenizer)
    with progress_bar(unit="seqs", disable=quiet) as progress:
        counts = token_counts(
            [r.data for r in raws],
            tok,
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
    if plot:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(histogram_png(counts, report))
        console.print(f"Histogram written to [bold]{plot}[/]")
