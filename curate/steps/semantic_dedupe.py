"""Build step: drop near-duplicate rows by embedding cosine similarity (keep rule in curate/similarity/dedupe.py)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from curate.errors import CurateError
from curate.io.manifest import SemanticDedupeInfo
from curate.schema import Kind, Record
from curate.similarity.dedupe import semantic_dedupe
from curate.similarity.embed import Backend, Embedder, resolve_backend, resolve_device
from curate.steps.base import BuildContext, Step

EMBED_CHUNK = 100_000  # texts embedded per call: the texts of one chunk are held, not every row's

# The text that makes two rows "the same" by default: what a reader of the row would compare. For a conversation
# (`messages`, ShareGPT `conversations`) that is its user and assistant turns; a system prompt many rows share
# would make different conversations look alike, so it is left out.
SEMANTIC_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.instruction: ("prompt", "input", "response", "messages", "conversations"),
    Kind.rated: ("prompt", "response"),
    Kind.preference: ("prompt", "chosen", "rejected"),
    Kind.labelled: ("text", "text_pair"),  # a sentence pair is the pair: a shared first sentence is not a duplicate
}
CONVERSATION_FIELDS = ("messages", "conversations")


def text_parts(data: dict[str, Any], fields: tuple[str, ...] | list[str]) -> list[str]:
    """The texts compared for a row: each present field's text; a conversation's non-system turns.

    Raises TypeError naming the first field that is neither text nor a conversation.
    """
    parts: list[str] = []
    for name in fields:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(turn, dict) for turn in value):  # a conversation, or turns
            for turn in value:
                role = turn.get("role", turn.get("from"))
                if role != "system":
                    parts.append(str(turn.get("content", turn.get("value", ""))))
        elif isinstance(value, str):
            parts.append(value)
        else:
            raise TypeError(name, type(value).__name__)
    return parts


def joined_text(data: dict[str, Any], fields: tuple[str, ...] | list[str], where: str, hint: str) -> str:
    """The text compared for a row: its `fields`' texts joined by blank lines; `where` and `hint` go in errors."""
    try:
        parts = text_parts(data, fields)
    except TypeError as exc:
        name, kind = exc.args
        raise CurateError(f"{where}: field '{name}' is {kind}, not text (columns: {sorted(data)}); {hint}") from None
    if not parts:
        missing = (
            f"field '{fields[0]}' is missing"
            if len(fields) == 1
            else f"none of the fields {', '.join(fields)} is present"
        )
        raise CurateError(f"{where}: {missing} (columns: {sorted(data)}); {hint}")
    return "\n\n".join(parts)


def record_text(record: Record, fields: tuple[str, ...]) -> str:
    """The text embedded for a record: its `fields` joined by blank lines (conversations by their turns)."""
    hint = "choose others with dedupe.semantic.fields=[...] (curate build) or --field (curate dedupe)"
    return joined_text(record.data, fields, f"{record.source} row {record.row}", hint)


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

    def embed(self, records: Iterable[Record], quiet: bool, rows: int | None = None) -> np.ndarray:
        """Embeddings (L2-normalized, cached on disk by curate.similarity.embed) of the records' `fields`.

        Texts are embedded EMBED_CHUNK at a time, so one chunk of texts is held, not every row's; when the
        number of `rows` is known (given, or sized `records`) the vectors go into one preallocated array.
        """
        embedder = Embedder(self.embedder, device=self.device, backend=self.backend)
        stream = iter(records)
        chunks = (
            embedder.encode([record_text(r, self.fields) for r in chunk], quiet=quiet)
            for chunk in iter(lambda: list(itertools.islice(stream, EMBED_CHUNK)), [])
        )
        if rows is None and isinstance(records, Sized):
            rows = len(records)
        if rows is None:
            parts = list(chunks)
            return np.concatenate(parts) if parts else embedder.encode([], quiet=quiet)
        out: np.ndarray | None = None
        done = 0
        for vectors in chunks:
            if out is None:
                out = np.empty((rows, vectors.shape[1]), dtype=np.float32)
            out[done : done + len(vectors)] = vectors
            done += len(vectors)
        return out if out is not None else embedder.encode([], quiet=quiet)


class SemanticDedupe(Step):
    """Drop each row whose embedding is within `threshold` cosine similarity of an earlier kept row."""

    name: ClassVar[str] = "semantic_dedupe"
    passes = 2

    def __init__(self, spec: SimilaritySpec):
        self.spec = spec

    def run(self, records: Iterable[Record], ctx: BuildContext) -> Iterator[Record]:
        spec = self.spec
        start = time.perf_counter()
        embeddings = spec.embed(records, ctx.quiet)  # pass 1
        embedded = time.perf_counter()
        result = semantic_dedupe(embeddings, spec.threshold, spec.index)
        rows_in, dim = embeddings.shape
        del embeddings
        searched = time.perf_counter()
        ctx.manifest.semantic_dedupe = SemanticDedupeInfo(
            fields=list(spec.fields),
            threshold=spec.threshold,
            embedder=spec.embedder,
            embed_backend=resolve_backend(spec.backend, resolve_device(spec.device)),
            dim=int(dim),
            index=result.index,
            rows_in=int(rows_in),
            dropped=result.dropped,
            kept=int(rows_in) - result.dropped,
            seconds_embed=round(embedded - start, 3),
            seconds_search=round(searched - embedded, 3),
        )
        ctx.card_sections.append(
            f"Semantic dedupe: {result.dropped} of {rows_in} rows dropped as near duplicates "
            f"(cosine similarity >= {spec.threshold:g} to an earlier kept row; `{spec.embedder}` embeddings "
            f"of {', '.join(spec.fields)}; {result.index} search)."
        )
        reason = f"near duplicate (cosine >= {spec.threshold:g})"
        wanted = np.zeros(len(result.keep), dtype=bool)  # kept rows a later row near-duplicates
        wanted[result.kept_by[~result.keep]] = True
        kept_rows: dict[int, Record] = {}  # those rows, for the kept text of duplicates.parquet
        for i, record in enumerate(ctx.track(records, self.name)):  # pass 2
            if result.keep[i]:
                if wanted[i]:
                    kept_rows[i] = record
                yield record
            else:
                kept_by = kept_rows[int(result.kept_by[i])]
                ctx.drop(record, self.name, reason, kept=kept_by, similarity=round(float(result.similarity[i]), 6))
