"""`curate build`: ingest, validate, normalize, dedupe, template, split and export."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from curate.config import NULL, Flag, FlagValues, load_recipe, parse_overrides, split_overrides, with_flags
from curate.console import console, err_console, user_errors
from curate.errors import CurateError
from curate.pipeline import BuildResult, Built, build, run_build
from curate.recipe import BuildRecipe
from curate.schema import Kind


def parse_map(pairs: list[str]) -> dict[str, str]:
    """`--map question=prompt` options as a dict of old -> new column names."""
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise CurateError(f"--map takes OLD=NEW (e.g. --map question=prompt), got '{pair}'")
        mapping[old] = new
    return mapping


def print_summary(result: BuildResult) -> None:
    """The table a user reads after a build: rows through each step, rows per split, where it went."""
    manifest = result.manifest
    table = Table(title=Text(f"curate build: {manifest.name} ({manifest.kind.value})"))
    table.add_column("step")
    table.add_column("rows in", justify="right")
    table.add_column("dropped", justify="right")
    table.add_column("rows out", justify="right")
    counts = manifest.counts
    table.add_row("ingest", str(counts.rows_read), str(counts.invalid), str(counts.rows_read - counts.invalid))
    counted = [s for s in manifest.sources if s.steps is not None]
    if counted:  # the sources' weight / max_rows samples
        valid, kept = counts.rows_read - counts.invalid, sum(s.kept or 0 for s in counted)
        table.add_row("sample", str(valid), str(valid - kept), str(kept))
    for step in manifest.steps:
        table.add_row(step.step, str(step.rows_in), str(step.dropped), str(step.rows_out))
    for split, n in counts.splits.items():
        table.add_row(f"[bold]{split}[/]", "", "", f"[bold]{n}[/]")
    console.print(table)
    if counted:
        sources = Table(title="rows per source")
        steps = list(counted[0].steps or {})
        for column in ["source", "read", "sampled", *steps, "train", "test"]:
            sources.add_column(column, justify="left" if column == "source" else "right")
        for source in counted:
            cells = [source.rows_read, source.kept, *(source.steps or {}).values(), *(source.splits or {}).values()]
            sources.add_row(escape(source.name or source.path), *(str(n) for n in cells))
        console.print(sources)
    if manifest.skipped_files:
        console.print(f"Skipped {len(manifest.skipped_files)} file(s) in the input directories:", highlight=False)
        for entry in manifest.skipped_files:
            console.print(f"  {escape(entry.path)}: {escape(entry.reason)}", highlight=False)
    console.print(f"Export written to [bold]{escape(str(result.out))}[/]: {', '.join(manifest.files)}")
    console.print(f"Columns: {', '.join(manifest.columns)} · content hash {manifest.content_hash[:23]}…")
    lengths = manifest.lengths
    if lengths and lengths.stats:
        console.print(
            f"Token lengths ({lengths.tokenizer}): p99 {lengths.stats.p99:g}, max {lengths.stats.max} "
            f"→ recommended max_length [bold]{lengths.recommended_max_length}[/]"
        )
    cross = manifest.cross_split
    if cross and cross.flagged:
        console.print(
            f"Cross-split check: {cross.flagged} test rows near a train row (cosine >= {cross.threshold:g}); "
            f"action: {cross.action} (see manifest.json 'cross_split')"
        )


def inspect_build(built: Built, recipe: BuildRecipe, limit: int) -> None:
    """`--inspect N`: the first N train rows as token ids with the lengths tokenizer (default smollm2), and counts."""
    from curate.hub import cached_tokenizer
    from curate.inspect import inspect_splits
    from curate.recipe import LengthsConfig
    from curate.render import Renderer

    info = built.info
    if info.kind not in (Kind.instruction, Kind.preference):
        raise CurateError(f"--inspect shows instruction and preference rows, not '{info.kind.value}' rows")
    lengths = recipe.lengths or LengthsConfig()
    tokenizer = cached_tokenizer(lengths.tokenizer)
    renderer = Renderer(
        tokenizer,
        info.template.name if info.template else None,
        default_system_prompt=info.template.default_system_prompt if info.template else False,
        chat_strings=True,  # untemplated preference strings: `train reward` renders them as chat turns
    )
    max_length = lengths.max_length or (info.lengths.recommended_max_length if info.lengths else None)
    title = f"curate build · first {limit} train rows with {lengths.tokenizer}, as the trainer receives them"
    splits = {split: rows.dataset() for split, rows in built.splits.items()}
    inspect_splits(console, splits, renderer, info.kind is Kind.preference, max_length, limit, title)


# The everyday keys as flags (type, help and default from the BuildRecipe field); every other
# key is a KEY=VALUE argument (e.g. ratings.min_gap=3), listed at the end of `curate build --help`.
BUILD_FLAGS = (
    Flag("out", "--out", "-o"),
    Flag("kind"),
    Flag("map", "--map", convert=parse_map, cli_type=list[str], metavar="OLD=NEW"),
    Flag("ignore"),
    Flag("skip_invalid", "--skip-invalid/--stop-on-invalid"),
    Flag("template"),
    Flag("format"),
    Flag("system_prompt", "--system"),
    Flag("default_system_prompt"),
    Flag("strict"),
    Flag("split.test_size"),
    Flag("split.seed"),
    Flag("split.group_by"),
    Flag("derive"),
    Flag("lengths.tokenizer"),
    Flag("dedupe.semantic.threshold"),
    # After --threshold, so --no-semantic-dedupe wins over a threshold given with it.
    Flag(
        "dedupe.semantic",
        "--semantic-dedupe/--no-semantic-dedupe",
        convert=lambda on: {} if on else NULL,
        cli_type=bool,
    ),
)


@user_errors
@with_flags(BuildRecipe, BUILD_FLAGS)
def build_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="A recipe (.yaml), or input files/directories (JSONL, CSV, Parquet, saved HF datasets, "
            "hf:NAME[:split]); then any KEY=VALUE recipe keys (listed below).",
            show_default=False,
        ),
    ],
    flags: FlagValues = None,
    inspect: Annotated[
        int,
        typer.Option(
            min=0,
            help="Print the first N train examples as the trainer receives them (tokens with the lengths "
            "tokenizer, loss mask, counts) and exit without writing the export.",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
) -> None:
    """Ingest, validate, normalize, dedupe, template and split; write an export directory.

    \b
    Examples:
      curate build recipes/latex-build.yaml
      curate build recipes/latex-build.yaml split.seed=3 --out out/latex-s3
      curate build data/latex --map english=prompt --map latex=response \\
          --template latex --out out/latex
      curate build data/qa/ratings.jsonl --derive preference ratings.min_gap=3
      curate build recipes/latex-build.yaml --inspect 3
    """
    paths, keys = split_overrides(inputs)
    if paths and paths[0].endswith((".yaml", ".yml")):
        if len(paths) > 1:
            raise CurateError(f"give a recipe ({paths[0]}) or input files, not both: {' '.join(paths[1:])}")
        recipe = load_recipe(BuildRecipe, paths[0], parse_overrides(keys), flags or {})
    else:
        recipe = load_recipe(BuildRecipe, None, {"inputs": paths}, parse_overrides(keys), flags or {})
    if not recipe.inputs:
        raise CurateError("nothing to build: give a recipe (.yaml) or input files")
    if inspect:
        inspect_build(run_build(recipe, quiet=quiet), recipe, inspect)
        return
    result = build(recipe, quiet=quiet)
    if not quiet:
        print_summary(result)
    for note in result.manifest.notes:
        err_console.print(f"[bold yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
