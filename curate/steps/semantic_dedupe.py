"""Build step: drop near-duplicate rows by embedding cosine similarity (keep rule in curate/similarity/dedupe.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from curate.errors import CurateError
from curate.io.manifest import SemanticDedupeInfo
from curate.schema import Kind, Record
from curate.similarity.dedupe import semantic_dedupe
from curate.similarity.embed import Backend, encode, resolve_backend, resolve_device
from curate.steps.base import BuildContext, Step

# The text that makes two rows "the same" by default: what a reader of the row would compare.
SEMANTIC_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.instruction: ("prompt", "response", "messages"),
    Kind.rated: ("prompt", "response"),
    Kind.preference: ("prompt", "chosen", "rejected"),
    Kind.labelled: ("text",),
}


def record_text(record: Record, fields: tuple[str, ...]) -> str:
    """The text embedded for a record: its `fields` joined by blank lines (messages by their contents)."""
    parts: list[str] = []
    for name in fields:
        value = record.data.get(name)
        if value is None:
            continue
        if name == "messages":
            parts.extend(m["content"] for m in value)
        elif isinstance(value, str):
            parts.append(value)
        else:
            raise CurateError(
                f"{record.source} row {record.row}: field '{name}' is {type(value).__name__}, not text; "
                "semantic dedupe embeds text fields only"
            )
    if not parts:
        raise CurateError(
            f"{record.source} row {record.row}: none of the semantic dedupe field(s) {', '.join(fields)} is present "
            f"(columns: {sorted(record.data)}); choose others with --semantic-field or dedupe.semantic.fields"
        )
    return "\n\n".join(parts)


@dataclass(frozen=True)
class SimilaritySpec:
    """What makes two rows near duplicates: cosine >= `threshold` between embeddings of `fields`.

    Shared by the semantic dedupe and cross-split steps: the embedder, its device and backend
    (curate/similarity/embed.py), and the FAISS search `index` (curate/similarity/pair_search.py).
    """

    fields: tuple[str, ...]
    threshold: float
    embedder: str
    index: str = "auto"
    device: str | None = None
    backend: Backend = "auto"

    def embed(self, records: list[Record], quiet: bool) -> np.ndarray:
        """Embeddings (L2-normalized, cached on disk by curate.similarity.embed) of the records' `fields`."""
        texts = [record_text(r, self.fields) for r in records]
        return encode(texts, self.embedder, device=self.device, quiet=quiet, backend=self.backend)


class SemanticDedupe(Step):
    """Drop each row whose embedding is within `threshold` cosine similarity of an earlier kept row."""

    name: ClassVar[str] = "semantic_dedupe"

    def __init__(self, spec: SimilaritySpec):
        self.spec = spec

    def run(self, records: list[Record], ctx: BuildContext) -> list[Record]:
        spec = self.spec
        start = time.perf_counter()
        embeddings = spec.embed(records, ctx.quiet)
        embedded = time.perf_counter()
        result = semantic_dedupe(embeddings, spec.threshold, spec.index)
        kept = []
        reason = f"near duplicate (cosine >= {spec.threshold:g})"
        for i, record in enumerate(records):
            if result.keep[i]:
                kept.append(record)
            else:
                kept_id = records[result.kept_by[i]].id
                ctx.drop(record, self.name, reason, kept_id=kept_id, similarity=round(float(result.similarity[i]), 6))
        ctx.manifest.semantic_dedupe = SemanticDedupeInfo(
            fields=list(spec.fields),
            threshold=spec.threshold,
            embedder=spec.embedder,
            embed_backend=resolve_backend(spec.backend, resolve_device(spec.device)),
            dim=int(embeddings.shape[1]),
            index=result.index,
            rows_in=len(records),
            dropped=result.dropped,
            kept=len(kept),
            seconds_embed=round(embedded - start, 3),
            seconds_search=round(time.perf_counter() - embedded, 3),
        )
        ctx.card_sections.append(
            f"Semantic dedupe: {result.dropped} of {len(records)} rows dropped as near duplicates "
            f"(cosine similarity >= {spec.threshold:g} to an earlier kept row; `{spec.embedder}` embeddings "
            f"of {', '.join(spec.fields)}; {result.index} search)."
        )
        return kept
