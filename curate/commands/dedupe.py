"""`curate dedupe`: semantic dedupe of any table by one or more text fields, or a threshold sweep."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.table import Table

from curate.console import console, user_errors
from curate.errors import CurateError
from curate.io.atomic import atomic_directory, check_replaceable
from curate.io.export import write_parquet
from curate.io.owned import stamped
from curate.io.readers import RawRow, read_rows
from curate.schema import default_row_id, detect_kind
from curate.similarity.dedupe import DedupeResult, semantic_dedupe, threshold_sweep
from curate.similarity.embed import DEFAULT_EMBEDDER, encode
from curate.similarity.pair_search import INDEX_KINDS, Pairs
from curate.steps.semantic_dedupe import SEMANTIC_FIELDS, joined_text

SAMPLE_PAIRS = 4  # pairs shown on each side of the chosen threshold


def parse_sweep(spec: str) -> list[float]:
    """`0.80:0.99:0.01` -> [0.80, 0.81, ..., 0.99] (both ends included)."""
    try:
        start, stop, step = (float(part) for part in spec.split(":"))
    except ValueError:
        raise CurateError(f"--sweep takes START:STOP:STEP (e.g. 0.80:0.99:0.01), got '{spec}'") from None
    if step <= 0 or stop < start or not -1.0 <= start <= stop <= 1.0:
        raise CurateError(f"--sweep {spec}: need -1 <= START <= STOP <= 1 and STEP > 0")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 6) for i in range(count)]


def default_fields(raws: list[RawRow]) -> list[str]:
    """The text compared when --field is not given: the record kind's, as `curate build` compares it."""
    columns = sorted({column for raw in raws for column in raw.data})
    try:
        kind = detect_kind(columns)
    except CurateError:
        return ["text"]
    present = [name for name in SEMANTIC_FIELDS.get(kind, ("text",)) if name in columns]
    return present or ["text"]


def row_text(raw: RawRow, fields: list[str]) -> str:
    """The text embedded for a raw row: its `fields` joined by blank lines (a conversation: its non-system turns)."""
    return joined_text(raw.data, fields, f"{raw.source} {raw.unit} {raw.row}", "choose the text with --field")


def row_id(raw: RawRow) -> str:
    """A row's `id` column, else the id `curate build` gives it (file stem and row: `pairs-3`)."""
    return str(raw.data["id"]) if raw.data.get("id") is not None else default_row_id(raw.source, raw.row)


def sweep_plot(thresholds: list[float], dropped: list[int], rows: int, chosen: float) -> bytes:
    """PNG: rows dropped at each threshold, the chosen one marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(thresholds, dropped, marker="o", markersize=3)
    ax.axvline(chosen, color="tab:red", linestyle="--", label=f"threshold {chosen:g}")
    ax.set_xlabel("cosine similarity threshold (drop when >= threshold)")
    ax.set_ylabel(f"rows dropped (of {rows:,})")
    ax.set_title("Semantic dedupe: rows dropped per threshold")
    ax.grid(alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def print_sweep(thresholds: list[float], results: list[DedupeResult], chosen: float, rows: int) -> None:
    table = Table(title=f"Semantic dedupe sweep ({rows:,} rows)")
    for col in ("threshold", "dropped", "kept", "% dropped"):
        table.add_column(col, justify="right")
    for t, r in zip(thresholds, results, strict=True):
        style = "bold" if abs(t - chosen) < 1e-9 else None
        table.add_row(
            f"{t:g}", f"{r.dropped:,}", f"{rows - r.dropped:,}", f"{r.dropped / max(rows, 1):.1%}", style=style
        )
    console.print(table)


def print_samples(pairs: Pairs, chosen: float, ids: list[str], texts: list[str]) -> None:
    """The pairs just above and just below the chosen threshold, to judge where it should sit."""
    sims = pairs.similarity
    above = np.flatnonzero(sims >= np.float32(chosen))
    below = np.flatnonzero(sims < np.float32(chosen))
    picked = list(above[np.argsort(sims[above], kind="stable")][:SAMPLE_PAIRS])
    picked += list(below[np.argsort(-sims[below], kind="stable")][:SAMPLE_PAIRS])
    if not picked:
        console.print("No pair of rows reaches the lowest threshold of the sweep.")
        return
    table = Table(title=f"Pairs nearest the threshold {chosen:g}", show_lines=True)
    table.add_column("similarity", justify="right")
    table.add_column("at threshold")
    table.add_column("earlier row")
    table.add_column("later row")
    for k in sorted(picked, key=lambda k: -sims[k]):
        i, j = int(pairs.left[k]), int(pairs.right[k])
        verdict = "same (drop)" if sims[k] >= np.float32(chosen) else "different"
        table.add_row(
            f"{sims[k]:.4f}", verdict, f"[dim]{ids[j]}[/] {texts[j][:160]}", f"[dim]{ids[i]}[/] {texts[i][:160]}"
        )
    console.print(table)


def write_output(
    out: Path,
    raws: list[RawRow],
    ids: list[str],
    texts: list[str],
    result: DedupeResult,
    summary: dict[str, Any],
    extra: dict[str, bytes],
) -> None:
    """out/kept.parquet (kept rows as read), duplicates.parquet (with both texts), dedupe.json and `extra`
    files, written atomically."""
    dropped = [
        {
            "id": ids[i],
            "kept_id": ids[result.kept_by[i]],
            "similarity": round(float(result.similarity[i]), 6),
            "source": raws[i].source,
            "row": raws[i].row,
            "text": texts[i],
            "kept_text": texts[result.kept_by[i]],
        }
        for i in np.flatnonzero(~result.keep)
    ]

    def fill(tmp: Path) -> None:
        kept = [raws[i].data for i in np.flatnonzero(result.keep)]
        if kept:
            write_parquet(kept, tmp / "kept.parquet")
        if dropped:
            write_parquet(dropped, tmp / "duplicates.parquet")
        (tmp / "dedupe.json").write_text(json.dumps(stamped(summary), indent=2) + "\n", encoding="utf-8")
        for name, payload in extra.items():
            (tmp / name).write_bytes(payload)

    atomic_directory(out, fill, marker="dedupe.json")


@user_errors
def dedupe_command(
    inputs: Annotated[list[str], typer.Argument(help="Input files/directories: JSONL, CSV, Parquet, HF datasets.")],
    field: Annotated[
        list[str],
        typer.Option(
            "--field",
            "-f",
            help="Text field to embed (repeatable: joined). Default: the record kind's text, as curate build "
            "compares it (instruction: prompt, input, response or a conversation's turns; labelled: text).",
        ),
    ] = [],  # noqa: B006
    threshold: Annotated[
        float,
        typer.Option(
            min=-1.0,
            max=1.0,
            help="Drop a row whose cosine similarity to an earlier kept row is >= this. A hyperparameter: tune it "
            "with --sweep.",
        ),
    ] = 0.95,
    embedder: Annotated[str, typer.Option(help="sentence-transformers model name or path.")] = DEFAULT_EMBEDDER,
    index: Annotated[
        str, typer.Option(help="exact (FAISS flat) | ivf | hnsw (approximate) | auto (exact up to 20k rows).")
    ] = "auto",
    device: Annotated[
        Optional[str], typer.Option(help="Embedding device: cpu | cuda (default: cuda if present).")
    ] = None,
    embed_backend: Annotated[
        str,
        typer.Option(
            help="Embedding backend: auto | bf16 | onnx | torch (onnx/torch: exact fp32; auto: bf16 on AMX CPUs)."
        ),
    ] = "auto",
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Write kept.parquet, duplicates.parquet, dedupe.json here.")
    ] = None,
    sweep: Annotated[
        Optional[str], typer.Option(help="START:STOP:STEP: show how many rows each threshold drops, and a plot.")
    ] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(help="Where --sweep writes its PNG (default: OUT/sweep.png, else dedupe-sweep.png)."),
    ] = None,
    map_: Annotated[list[str], typer.Option("--map", help="Rename a column, OLD=NEW (repeatable).")] = [],  # noqa: B006
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or tables.")] = False,
) -> None:
    """Drop near-duplicate rows by sentence-embedding cosine similarity (keep the first of each).

    Rows are visited in input order; a row is dropped if its similarity to an already kept row is
    >= --threshold. Exact search keeps exactly the rows the full similarity matrix would.

    \b
    Examples:
      curate dedupe data/genres/descriptions.jsonl --sweep 0.80:0.99:0.01
      curate dedupe data/genres/descriptions.jsonl --field text --threshold 0.9 \\
          --out out/genres-dedupe
    """
    from curate.commands.build import parse_map

    if index not in INDEX_KINDS:
        raise CurateError(f"--index {index}: choose from {', '.join(INDEX_KINDS)}")
    if out is None and sweep is None:
        raise CurateError("nothing to do: pass --out DIR to write the deduped rows, or --sweep START:STOP:STEP")
    if out is not None:
        check_replaceable(out.resolve(), "dedupe.json")  # before the embedding work, not after it
    thresholds = parse_sweep(sweep) if sweep else []
    raws = list(read_rows(inputs, parse_map(map_)))
    fields = field or default_fields(raws)
    if not quiet:
        turns = (
            "; of a conversation, its user and assistant turns" if set(fields) & {"messages", "conversations"} else ""
        )
        console.print(f"Comparing {' + '.join(fields)} (joined by blank lines{turns})", highlight=False)
    texts = [row_text(raw, fields) for raw in raws]
    ids = [row_id(raw) for raw in raws]
    start = time.perf_counter()
    if embed_backend not in ("auto", "bf16", "onnx", "torch"):
        raise CurateError(f"--embed-backend {embed_backend}: choose from auto, bf16, onnx, torch")
    embeddings = encode(texts, embedder, device=device, quiet=quiet, backend=embed_backend)  # type: ignore[arg-type]
    embedded = time.perf_counter()
    if thresholds:
        grid = sorted({*thresholds, threshold})
        results, pairs = threshold_sweep(embeddings, grid, index)
        if not quiet:
            print_sweep(grid, results, threshold, len(raws))
            print_samples(pairs, threshold, ids, texts)
        png: bytes | None = sweep_plot(grid, [r.dropped for r in results], len(raws), threshold)
        result = results[grid.index(threshold)]
    else:
        result = semantic_dedupe(embeddings, threshold, index)
        png = None
    searched = time.perf_counter()
    if not quiet:
        console.print(
            f"{len(raws):,} rows: [bold]{result.dropped:,}[/] dropped at threshold {threshold:g}, "
            f"{len(raws) - result.dropped:,} kept ({result.index} search {searched - embedded:.2f} s, "
            f"embedding {embedded - start:.1f} s)"
        )
    if out is not None:
        summary = {
            "inputs": inputs,
            "fields": fields,
            "threshold": threshold,
            "embedder": embedder,
            "index": result.index,
            "rows": len(raws),
            "dropped": result.dropped,
            "kept": len(raws) - result.dropped,
        }
        extra = {"sweep.png": png} if png is not None and plot is None else {}
        write_output(out, raws, ids, texts, result, summary, extra)
        console.print(f"Kept rows, duplicates and summary written to [bold]{out}[/]")
    if png is not None and (plot is not None or out is None):
        target = plot or Path("dedupe-sweep.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
        console.print(f"Sweep plot written to [bold]{target}[/]")
