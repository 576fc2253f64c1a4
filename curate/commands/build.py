"""`curate build`: ingest, validate, normalize, dedupe, template, split and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from curate.console import console, err_console, user_errors
from curate.errors import CurateError
from curate.pipeline import BuildResult, Built, build, run_build
from curate.recipe import BuildRecipe, apply_overrides, load_recipe
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
    for step in manifest.steps:
        table.add_row(step.step, str(step.rows_in), str(step.dropped), str(step.rows_out))
    for split, n in counts.splits.items():
        table.add_row(f"[bold]{split}[/]", "", "", f"[bold]{n}[/]")
    console.print(table)
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
    inspect_splits(console, built.splits, renderer, info.kind is Kind.preference, max_length, limit, title)


@user_errors
def build_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="A recipe (.yaml), or input files/directories: JSONL, CSV, Parquet, saved HF datasets, hf:NAME[:split]."
        ),
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Export directory to write (replaced atomically).")
    ] = None,
    kind: Annotated[Optional[Kind], typer.Option(help="Record kind; default: detected from the columns.")] = None,
    map_: Annotated[
        list[str], typer.Option("--map", help="Rename a column, OLD=NEW (repeatable), e.g. --map question=prompt.")
    ] = [],  # noqa: B006
    ignore: Annotated[list[str], typer.Option(help="Drop an input column before validation (repeatable).")] = [],  # noqa: B006
    skip_invalid: Annotated[
        Optional[bool],
        typer.Option(
            "--skip-invalid/--stop-on-invalid",
            help="Drop bad rows and list them in invalid_rows.jsonl (default: stop at the first).",
        ),
    ] = None,
    min_chars: Annotated[
        Optional[int], typer.Option(help="Drop rows with a required text field shorter than this (default 1).")
    ] = None,
    lowercase_match: Annotated[
        Optional[bool],
        typer.Option(
            "--lowercase-match/--case-sensitive-match",
            help="Compare case-insensitively in exact dedupe; stored text keeps its case.",
        ),
    ] = None,
    exact_dedupe: Annotated[
        Optional[bool],
        typer.Option(
            "--exact-dedupe/--no-exact-dedupe", help="Drop exact duplicates after normalization (default on)."
        ),
    ] = None,
    dedupe_on: Annotated[
        list[str],
        typer.Option(help="Fields compared by exact dedupe (repeatable; default: the kind's content fields)."),
    ] = [],  # noqa: B006
    template: Annotated[
        Optional[str],
        typer.Option(help="latex | alpaca | llama2 | chatml | chat-template:<tokenizer> | path to a Jinja2 file."),
    ] = None,
    format_: Annotated[
        Optional[str], typer.Option("--format", help="prompt-completion | messages | text (TRL dataset formats).")
    ] = None,
    system_prompt: Annotated[
        Optional[str], typer.Option("--system", help="System prompt for instruction rows that have none.")
    ] = None,
    default_system_prompt: Annotated[
        Optional[bool],
        typer.Option(
            "--default-system-prompt/--no-default-system-prompt",
            help="Let a chat template add its own default system prompt to rows without one (default: no, "
            "an empty system turn instead).",
        ),
    ] = None,
    strict: Annotated[
        Optional[bool],
        typer.Option("--strict", help="Refuse a template whose special tokens the target tokenizer lacks."),
    ] = None,
    test_size: Annotated[
        Optional[float], typer.Option(help="Fraction of rows (or groups) in the test split (default 0.2).")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the split (default 42).")] = None,
    group_by: Annotated[Optional[str], typer.Option(help="Column whose equal values stay in one split.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Export name (default: the --out directory's name).")] = None,
    derive: Annotated[
        Optional[str],
        typer.Option(help="From rated rows, export: sft (best answer per prompt) | preference (pairs) | reward."),
    ] = None,
    min_rating: Annotated[
        Optional[float], typer.Option(help="--derive sft: keep a prompt's best answer if its mean is >= this (7).")
    ] = None,
    min_gap: Annotated[
        Optional[float], typer.Option(help="--derive preference: pair answers whose means differ by >= this (2).")
    ] = None,
    margin_scale: Annotated[
        Optional[float], typer.Option(help="--derive preference: margin = rating gap x this (1.0).")
    ] = None,
    min_ratings: Annotated[
        Optional[int], typer.Option(help="--derive: leave out answers rated by fewer labelers than this (1).")
    ] = None,
    tokenizer: Annotated[
        Optional[str],
        typer.Option(help="Token-length analysis with this tokenizer (smollm2 offline, or a hub id/path); enables it."),
    ] = None,
    max_length: Annotated[
        Optional[int], typer.Option(help="Report how many rows/tokens this max_length truncates (default: p99 rule).")
    ] = None,
    min_tokens: Annotated[Optional[int], typer.Option(help="Drop formatted rows with fewer tokens than this.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Drop formatted rows with more tokens than this.")] = None,
    semantic_dedupe: Annotated[
        Optional[bool],
        typer.Option(
            "--semantic-dedupe/--no-semantic-dedupe",
            help="Drop rows whose embedding is >= --threshold cosine-similar to an earlier kept row (default off).",
        ),
    ] = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            help="Semantic dedupe threshold, a hyperparameter to tune (0.95; see `curate dedupe --sweep`). "
            "Any semantic dedupe option enables it."
        ),
    ] = None,
    embedder: Annotated[
        Optional[str], typer.Option(help="Semantic dedupe embedder (default all-MiniLM-L6-v2, offline copy).")
    ] = None,
    semantic_field: Annotated[
        list[str], typer.Option(help="Field embedded for semantic dedupe (repeatable; default: the kind's text).")
    ] = [],  # noqa: B006
    index: Annotated[
        Optional[str], typer.Option(help="Semantic dedupe search: auto | exact | ivf | hnsw (auto: exact to 20k rows).")
    ] = None,
    device: Annotated[
        Optional[str], typer.Option(help="Embedding device: cpu | cuda (default: cuda if present).")
    ] = None,
    cross_split: Annotated[
        Optional[str],
        typer.Option(help="Test rows >= threshold similar to a train row: move (to train) | drop | report | off."),
    ] = None,
    embed_backend: Annotated[
        Optional[str],
        typer.Option(
            help="Embedding backend: auto | bf16 | onnx | torch (onnx/torch: exact fp32; auto: bf16 on AMX CPUs)."
        ),
    ] = None,
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
      curate build data/latex --map english=prompt --map latex=response --template latex --out out/latex
      curate build recipes/latex-build.yaml --inspect 3
    """
    if len(inputs) == 1 and inputs[0].endswith((".yaml", ".yml")):
        recipe = load_recipe(inputs[0])
    else:
        recipe = BuildRecipe(inputs=inputs)
    overrides: dict[str, Any] = {
        "out": str(out) if out else None,
        "kind": kind,
        "map": {**recipe.map, **parse_map(map_)} if map_ else None,
        "ignore": ignore or None,
        "skip_invalid": skip_invalid,
        "normalize.min_chars": min_chars,
        "normalize.lowercase_match": lowercase_match,
        "dedupe.exact": exact_dedupe,
        "dedupe.fields": dedupe_on or None,
        "template": template,
        "format": format_,
        "system_prompt": system_prompt,
        "default_system_prompt": default_system_prompt,
        "strict": strict,
        "split.test_size": test_size,
        "split.seed": seed,
        "split.group_by": group_by,
        "name": name,
        "derive": derive,
        "ratings.min_rating": min_rating,
        "ratings.min_gap": min_gap,
        "ratings.margin_scale": margin_scale,
        "ratings.min_ratings": min_ratings,
        "lengths.tokenizer": tokenizer,
        "lengths.max_length": max_length,
        "lengths.min_tokens": min_tokens,
        "lengths.max_tokens": max_tokens,
        # Any semantic option enables the section (apply_overrides fills an absent section).
        "dedupe.semantic": {} if semantic_dedupe and recipe.dedupe.semantic is None else None,
        "dedupe.semantic.threshold": threshold,
        "dedupe.semantic.embedder": embedder,
        "dedupe.semantic.fields": semantic_field or None,
        "dedupe.semantic.index": index,
        "dedupe.semantic.device": device,
        "dedupe.semantic.cross_split": cross_split,
        "dedupe.semantic.backend": embed_backend,
    }
    recipe = apply_overrides(recipe, overrides)
    if semantic_dedupe is False:
        recipe.dedupe.semantic = None
    if inspect:
        inspect_build(run_build(recipe, quiet=quiet), recipe, inspect)
        return
    result = build(recipe, quiet=quiet)
    if not quiet:
        print_summary(result)
    for note in result.manifest.notes:
        err_console.print(f"[bold yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
