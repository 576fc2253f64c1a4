"""`curate build`: ingest → normalize → dedupe → split → template → export, as a list of steps."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curate.env import package_versions
from curate.errors import CurateError
from curate.io.atomic import check_replaceable
from curate.io.card import render_card
from curate.io.columnar import RowTable
from curate.io.export import SPLITS, write_export
from curate.io.ingest import Ingested, ingest, source_hashes
from curate.io.manifest import MANIFEST, BuildInfo, Counts, Manifest, SkippedFile, SourceInfo, StepCount
from curate.recipe import BuildRecipe
from curate.schema import DEDUPE_FIELDS, Kind, Record
from curate.steps.base import BuildContext, Step, StepStats
from curate.steps.cross_split import CrossSplitCheck
from curate.steps.derive import Derive, output_kind
from curate.steps.exact_dedupe import ExactDedupe
from curate.steps.implicit_prompt import ExtractPrompt
from curate.steps.lengths import Lengths
from curate.steps.normalize import Normalize
from curate.steps.semantic_dedupe import SEMANTIC_FIELDS, SemanticDedupe, SimilaritySpec
from curate.steps.split import Split
from curate.steps.template import Format
from curate.templates import load_template

VERSIONED = (  # the packages whose versions shape an export (in its manifest)
    "curatrain",
    "datasets",
    "pyarrow",
    "pydantic",
    "sentence-transformers",
    "faiss-cpu",
    "transformers",
    "tokenizers",
)


@dataclass
class BuildResult:
    """Where the export went and its manifest."""

    out: Path
    manifest: Manifest


def build_steps(recipe: BuildRecipe, kind: Kind) -> list[Step]:
    """The steps of a build, in order, as the recipe configures them."""
    steps: list[Step] = [Normalize(kind, recipe.normalize.min_chars)]
    if kind is Kind.preference:  # rows without a prompt get one (listed in the manifest only if some had none)
        steps.append(ExtractPrompt())
    if recipe.dedupe.exact:
        fields = tuple(recipe.dedupe.fields or DEDUPE_FIELDS[kind])
        steps.append(ExactDedupe(fields, recipe.normalize.lowercase_match))
    semantic = recipe.dedupe.semantic
    if semantic:
        spec = SimilaritySpec(
            tuple(semantic.fields or SEMANTIC_FIELDS[kind]),
            semantic.threshold,
            semantic.embedder,
            semantic.index,
            semantic.device,
            semantic.backend,
        )
        # Before `derive`, rows are single ratings: dropping "near duplicates" would drop other
        # labelers' ratings of the same answer, so derived builds only run the cross-split check.
        if not recipe.derive:
            steps.append(SemanticDedupe(spec))
    if recipe.derive:
        steps.append(Derive(recipe.derive, recipe.ratings))
    steps.append(Split(recipe.split.test_size, recipe.split.seed, recipe.split.group_by))
    if semantic and semantic.cross_split != "off":
        # Derived rows (SFT, pairs, reward) all carry the question: near-duplicate questions must
        # not straddle train and test.
        cross_spec = replace(spec, fields=("prompt",)) if recipe.derive else spec
        steps.append(CrossSplitCheck(cross_spec, semantic.cross_split, recipe.split.group_by))
    template = (
        load_template(recipe.template, default_system_prompt=recipe.default_system_prompt) if recipe.template else None
    )
    steps.append(Format(output_kind(recipe.derive, kind), template, recipe.format, recipe.default_system_prompt))
    if recipe.lengths:
        cfg = recipe.lengths
        steps.append(
            Lengths(
                cfg.tokenizer,
                cfg.max_length,
                cfg.min_tokens,
                cfg.max_tokens,
                recipe.template,
                recipe.default_system_prompt,
                recipe.strict,
            )
        )
    return steps


@dataclass
class Built:
    """A build's rows per split (compact Arrow columns) and what it knows about them, before anything is written."""

    info: BuildInfo
    splits: dict[str, RowTable]
    ctx: BuildContext
    invalid: list[dict[str, Any]]


def run_build(recipe: BuildRecipe, quiet: bool = False, ingested: Ingested | None = None) -> Built:
    """Run the build's steps, streaming (no export written; `curate build --inspect` stops here).

    Records flow through the steps as a stream; steps that must see every row first read it back from
    a temporary file (curate/steps/store.py). What stays in memory is compact: the exported and dropped
    rows as Arrow columns, and the steps' per-row numbers (keys, splits, embeddings).
    `ingested`: records validated elsewhere (e.g. read from the review store) instead of `recipe.inputs`.
    """
    # Mixed sources: every row says where it came from (its source's name), as its last column.
    tagged = recipe.mixes_sources and ingested is None
    with BuildContext(quiet=quiet, count_sources=tagged) as ctx:
        if ingested is None:
            ingested = ingest(
                recipe.inputs, recipe.kind, recipe.map, recipe.ignore, recipe.skip_invalid, ctx, recipe.split.seed
            )
        kind = ingested.kind
        records: Iterable[Record] = ingested.records
        if recipe.system_prompt and kind is Kind.instruction:
            records = with_system_prompt(records, recipe.system_prompt)
        for step in build_steps(recipe, kind):
            records = step(records, ctx)
        splits = {split: RowTable() for split in SPLITS}
        per_split: Counter[tuple[str | None, str]] = Counter()
        for record in records:  # the whole build runs here, as the last step's rows are taken
            split = record.extra.get("split")
            source = record.extra.get("source")
            splits[str(split)].append({"id": record.id, **record.data, **({"source": source} if tagged else {})})
            per_split[(source, str(split))] += 1
        kind = output_kind(recipe.derive, kind)
    if not any(len(rows) for rows in splits.values()):
        reasons = Counter(ctx.dropped_reasons())
        why = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common()) or "no valid rows"
        raise CurateError(f"no rows left to export: every row was dropped — {why}")
    columns = next(rows.columns for rows in splits.values() if len(rows))
    info = BuildInfo(
        name=recipe.export_name,
        kind=kind,
        columns=columns,
        counts=Counts(
            rows_read=ingested.rows_read,
            invalid=len(ingested.invalid),
            splits={s: len(rows) for s, rows in splits.items()},
        ),
        steps=[
            StepCount(step=s.step, rows_in=s.rows_in, rows_out=s.rows_out, dropped=s.dropped, seconds=s.seconds)
            for s in ctx.stats
        ],
        dropped_reasons=ctx.dropped_reasons(),
        **dict(ctx.manifest),
        notes=ctx.notes,
        sources=source_infos(recipe, ingested, ctx.stats, per_split, counted=tagged),
        skipped_files=[SkippedFile(path=s.path, reason=s.reason) for s in ingested.skipped],
        recipe=recipe.model_dump(mode="json"),
        versions=package_versions(VERSIONED),
    )
    return Built(info, splits, ctx, ingested.invalid)


def with_system_prompt(records: Iterable[Record], system_prompt: str) -> Iterator[Record]:
    """Instruction records, each given `system_prompt` when it has no system prompt of its own."""
    for record in records:
        record.data.setdefault("system", system_prompt)
        yield record


def build(recipe: BuildRecipe, quiet: bool = False, ingested: Ingested | None = None) -> BuildResult:
    """Run a whole build and write the export directory atomically.

    `ingested`: records validated elsewhere (e.g. read from the review store) instead of `recipe.inputs`.
    """
    if not recipe.out:
        raise CurateError("no output directory: pass --out DIR (or set `out:` in the recipe)")
    check_replaceable(Path(recipe.out).resolve(), MANIFEST)  # before the work, not after it
    check_writable(Path(recipe.out))
    built = run_build(recipe, quiet, ingested)
    try:
        manifest = write_export(
            Path(recipe.out),
            built.splits,
            built.info,
            lambda m: render_card(m, built.ctx.card_sections),
            built.ctx.dropped_rows(),
            built.invalid,
            built.ctx.artifacts,
        )
    except OSError as exc:  # disk full, read-only or vanished output: the export is not replaced
        raise CurateError(
            f"{recipe.out}: cannot write the export ({exc.strerror or exc}); an earlier export there is untouched"
        ) from None
    return BuildResult(Path(recipe.out), manifest)


def source_infos(
    recipe: BuildRecipe,
    ingested: Ingested,
    stats: list[StepStats],
    per_split: Counter[tuple[str | None, str]],
    counted: bool,
) -> list[SourceInfo]:
    """Each input's path and hash; with `counted` (mixed sources), also its rows read, invalid, kept by its sample,
    left after each step and per split."""
    infos = []
    for source, hashed in zip(recipe.sources, source_hashes(recipe.inputs), strict=True):
        count = ingested.by_source.get(source.label) if counted else None
        if count is None:
            infos.append(SourceInfo(path=hashed["path"], sha256=hashed["sha256"]))
            continue
        infos.append(
            SourceInfo(
                path=hashed["path"],
                sha256=hashed["sha256"],
                name=source.label,
                rows_read=count.rows_read,
                invalid=count.invalid,
                sample=count.sample,
                kept=count.kept,
                steps={s.step: (s.rows_out_by_source or {}).get(source.label, 0) for s in stats},
                splits={split: per_split[(source.label, split)] for split in SPLITS},
            )
        )
    return infos


def check_writable(out: Path) -> None:
    """Fail before the work, not after it, when the export's directory cannot be written (read-only, no rights)."""
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise CurateError(f"{out}: cannot write the export in {parent} ({exc.strerror or exc})") from None
