"""Embedding throughput, agreement with the fp32 sentence-transformers path, and the embedding cache.

    nice .venv/bin/python benchmarks/embed_bench.py                      # 5k texts, 1M-row cache store
    nice .venv/bin/python benchmarks/embed_bench.py --texts 1000 --store-rows 100000   # quick

Texts: real sentences from data/ (genre descriptions, questions, answers, English math phrases)
expanded with paraphrase-like variants (case, prefixes, dropped/swapped/synonym words) so that
near-duplicate pairs exist. Baseline: `SentenceTransformer.encode` (fp32, torch, its defaults).
Every timing is the best of `--repeats` runs in this process, measured interleaved, on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import curate.similarity.embed as embed  # noqa: E402
from curate.env import cpu_count, package_versions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
console = Console(width=150)
SYNONYMS = {
    "a": "one",
    "the": "this",
    "find": "discover",
    "finds": "discovers",
    "young": "teenage",
    "old": "elderly",
    "city": "town",
    "small": "little",
    "big": "large",
    "how": "in what way",
    "what": "which",
    "quickly": "fast",
    "equals": "is equal to",
    "plus": "added to",
}
PREFIXES = ("Please ", "Question: ", "In short, ", "Tell me: ", "Quick one: ")
SUFFIXES = (" Thanks.", " Explain briefly.", " Please.", "?", " (short answer)")


def real_texts() -> list[str]:
    """Unique sentences from the sample data sets."""
    texts = [json.loads(line)["text"] for line in (ROOT / "data/genres/descriptions.jsonl").read_text().splitlines()]
    for line in (ROOT / "data/qa/items.jsonl").read_text().splitlines():
        item = json.loads(line)
        texts += [item["prompt"], *item["answers"]]
    texts += [json.loads(line)["english"] for line in (ROOT / "data/latex/pairs.jsonl").read_text().splitlines()]
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


def variant(text: str, rng: random.Random) -> str:
    """A paraphrase-like copy: one to three small edits."""
    words = text.split()
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        if op == 0:
            words = [w.lower() for w in words]
        elif op == 1:
            words = [*rng.choice(PREFIXES).split(), *words]
        elif op == 2:
            words = [*words, *rng.choice(SUFFIXES).split()]
        elif op == 3 and len(words) > 4:
            del words[rng.randrange(len(words))]
        elif op == 4 and len(words) > 3:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        else:
            words = [SYNONYMS.get(w, w) for w in words]
    return " ".join(words)


def corpus(n: int, seed: int = 0) -> list[str]:
    """`n` unique texts: the real ones, then variants of random real ones."""
    rng = random.Random(seed)
    base = real_texts()
    out = dict.fromkeys(base[:n])
    while len(out) < n:
        out[variant(rng.choice(base), rng)] = None
    return list(out)[:n]


def long_texts(n: int, seed: int = 1) -> list[str]:
    """Texts of 100-400 word pieces (several real sentences joined), half of them variants of the others,
    for the truncation measurement."""
    rng = random.Random(seed)
    base = real_texts()
    joined = [" ".join(rng.sample(base, rng.randint(4, 12))) for _ in range(n // 2)]
    return list(dict.fromkeys([*joined, *(variant(t, rng) for t in joined)]))


def best_of(repeats: int, fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """Shortest wall time of `repeats` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return min(times), result


def normalized(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def pair_sets(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Pairs i < j with cosine >= threshold."""
    sims = x @ x.T
    i, j = np.nonzero(np.triu(sims >= threshold, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def agreement(ref: np.ndarray, ours: np.ndarray, threshold: float) -> tuple[int, int, float]:
    """(pairs in ref, pairs in ours, |ref ∩ ours| / |ref ∪ ours|) of duplicate pairs at `threshold`."""
    a, b = pair_sets(ref, threshold), pair_sets(ours, threshold)
    return len(a), len(b), (len(a & b) / len(a | b)) if a | b else 1.0


def unsorted_onnx(encoder: embed.OnnxEncoder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """ONNX Runtime alone: input order, fixed batches padded to their longest text (no sorting, no budget)."""
    out = []
    for start in range(0, len(texts), batch_size):
        feed = encoder.tokenizer(
            texts[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=encoder.max_seq_length,
            return_tensors="np",
        )
        out.append(encoder.session.run(None, {k: feed[k].astype(np.int64) for k in encoder.inputs})[0])
    return np.concatenate(out)


def onnx_run(encoder: embed.OnnxEncoder, texts: list[str], budget: int = embed.TOKENS_PER_BATCH) -> np.ndarray:
    saved, embed.TOKENS_PER_BATCH = embed.TOKENS_PER_BATCH, budget
    try:
        return encoder.encode(texts, 64, lambda n: None)
    finally:
        embed.TOKENS_PER_BATCH = saved


def fused_encoder(model: str, encoder: embed.OnnxEncoder, workdir: Path) -> embed.OnnxEncoder:
    """The same model exported with eager attention and fused by ONNX Runtime's BERT optimizer
    (Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization kernels)."""
    from onnxruntime.transformers import optimizer
    from sentence_transformers import SentenceTransformer

    eager = SentenceTransformer(
        embed.resolve_model(model).path, device="cpu", model_kwargs={"attn_implementation": "eager"}
    )
    loader, embed._sentence_transformer = embed._sentence_transformer, lambda *_: eager  # type: ignore[assignment]
    try:
        embed._export_onnx(model, workdir / "eager.onnx")
    finally:
        embed._sentence_transformer = loader
    config: Any = eager[0].auto_model.config  # type: ignore[union-attr]
    fused = optimizer.optimize_model(
        str(workdir / "eager.onnx"),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    fused.save_model_to_file(str(workdir / "fused.onnx"))
    console.print(f"fused operators: { {k: v for k, v in fused.get_fused_operator_statistics().items() if v} }")
    clone = embed.OnnxEncoder.__new__(embed.OnnxEncoder)
    clone.__dict__.update(encoder.__dict__)
    clone.session = embed._onnx_session(str(workdir / "fused.onnx"), cpu_count(), False)
    return clone


def store_benchmark(rows: int, dim: int = 384) -> list[tuple[str, float, float, float]]:
    """Write `rows` vectors in 8192-row batches, open the store cold and read every row back, then 1k rows:
    our sharded .npy + keys store vs SQLite (key BLOB PRIMARY KEY, vector BLOB)."""
    rng = np.random.default_rng(0)
    keys = [embed.text_digest(f"text {i}") for i in range(rows)]
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="embed-store-"))
    try:
        start = time.perf_counter()
        store = embed.EmbeddingCache(tmp / "npy")
        for s in range(0, rows, embed.SHARD_ROWS):
            store.add(
                keys[s : s + embed.SHARD_ROWS],
                rng.standard_normal((len(keys[s : s + embed.SHARD_ROWS]), dim), dtype=np.float32),
            )
        write = time.perf_counter() - start
        del store
        start = time.perf_counter()
        store = embed.EmbeddingCache(tmp / "npy")
        every = store.gather(store.lookup(keys))
        read_all = time.perf_counter() - start
        sample = random.Random(0).sample(keys, 1000)
        start = time.perf_counter()
        store = embed.EmbeddingCache(tmp / "npy")
        store.gather(store.lookup(sample))
        read_1k = time.perf_counter() - start
        results.append(("sharded .npy + keys (ours)", write, read_all, read_1k))
        del store, every

        db = sqlite3.connect(tmp / "cache.sqlite")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE v (key BLOB PRIMARY KEY, vec BLOB) WITHOUT ROWID")
        start = time.perf_counter()
        for s in range(0, rows, embed.SHARD_ROWS):
            block = rng.standard_normal((len(keys[s : s + embed.SHARD_ROWS]), dim), dtype=np.float32)
            db.executemany(
                "INSERT INTO v VALUES (?, ?)", zip(keys[s : s + embed.SHARD_ROWS], map(bytes, block), strict=True)
            )
            db.commit()
        write = time.perf_counter() - start
        db.close()

        def sqlite_read(wanted: list[bytes]) -> np.ndarray:
            conn = sqlite3.connect(tmp / "cache.sqlite")
            out = np.empty((len(wanted), dim), dtype=np.float32)
            for i, key in enumerate(wanted):
                (blob,) = conn.execute("SELECT vec FROM v WHERE key = ?", (key,)).fetchone()
                out[i] = np.frombuffer(blob, dtype=np.float32)
            conn.close()
            return out

        read_all, _ = best_of(1, lambda: sqlite_read(keys))
        read_1k, _ = best_of(1, lambda: sqlite_read(sample))
        results.append(("SQLite, one row per key", write, read_all, read_1k))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--long-texts", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--thresholds", default="0.95,0.90")
    parser.add_argument("--store-rows", type=int, default=1_000_000)
    parser.add_argument("--model", default=embed.DEFAULT_EMBEDDER, help="sentence-transformers name or directory")
    parser.add_argument("--cuda", action="store_true", help="also time the torch backend on the GPU")
    parser.add_argument("--budgets", type=lambda v: [int(b) for b in v.split(",")], default=[512, 2048, 4096])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnxruntime
    import torch

    cores = cpu_count()
    torch.set_num_threads(cores)
    texts = corpus(args.texts)
    workdir = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    st = embed._sentence_transformer(args.model, "cpu")
    tokens = np.array([len(ids) for ids in st.tokenizer(texts, verbose=False)["input_ids"]])
    console.print(
        f"{len(texts)} texts, word pieces mean {tokens.mean():.1f} / p50 {np.median(tokens):.0f} / max {tokens.max()}; "
        f"{cores} cores; {platform.processor() or platform.machine()}; load avg {os.getloadavg()[0]:.2f}"
    )

    start = time.perf_counter()
    onnx_dir = workdir / "onnx"
    encoder = embed.OnnxEncoder(args.model, onnx_dir, None)
    export_s = time.perf_counter() - start
    one_thread = embed.OnnxEncoder(args.model, onnx_dir, None, threads=1)
    spinning = embed.OnnxEncoder(args.model, onnx_dir, None, spin=True)
    fused = fused_encoder(args.model, encoder, workdir)
    st_bf16 = embed._sentence_transformer(args.model, "cpu", True)

    methods: dict[str, Callable[[list[str]], np.ndarray]] = {
        "sentence-transformers fp32 (baseline)": lambda t: st.encode(t, normalize_embeddings=True),
        "bf16 weights on AMX (default where the CPU has amx_bf16)": lambda t: normalized(
            st_bf16.encode(t, convert_to_tensor=True).float().numpy()
        ),
        "onnx, input order, batches of 64": lambda t: normalized(unsorted_onnx(encoder, t)),
        f"onnx, sorted, {embed.TOKENS_PER_BATCH}-token batches (default)": lambda t: normalized(onnx_run(encoder, t)),
        **{
            f"onnx, sorted, {budget}-token batches": (lambda b: lambda t: normalized(onnx_run(encoder, t, b)))(budget)
            for budget in args.budgets
            if budget != embed.TOKENS_PER_BATCH
        },
        "onnx default, 1 intra-op thread": lambda t: normalized(onnx_run(one_thread, t)),
        "onnx default, threads spin-wait": lambda t: normalized(onnx_run(spinning, t)),
        "onnx default + ORT BERT fusion (eager export)": lambda t: normalized(onnx_run(fused, t)),
    }
    for fn in methods.values():
        fn(texts[:256])  # warm-up: first-call allocations and thread pools
    # Rounds interleave the methods, so a burst of load from elsewhere hits them all alike; best round counts.
    rounds: dict[str, list[float]] = {name: [] for name in methods}
    vectors_of: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            vectors_of[name] = fn(texts)
            elapsed = time.perf_counter() - start
            rounds[name].append(elapsed)
            console.print(f"  round {len(rounds[name])}: {name}: {len(texts) / elapsed:.0f} texts/s", style="dim")
    timings = {name: (min(rounds[name]), vectors_of[name]) for name in methods}
    base_s, ref = timings["sentence-transformers fp32 (baseline)"]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    table = Table(title=f"Embedding {len(texts)} texts with all-MiniLM-L6-v2 on {cores} CPU cores")
    for col in ("method", "texts/s", "× baseline", "mean cos", "min cos", *[f"pairs ≥{t} (agree)" for t in thresholds]):
        table.add_column(col, justify="left" if col == "method" else "right")
    results: dict[str, dict[str, float]] = {}
    for name, (seconds, vectors) in timings.items():
        cos = (vectors * ref).sum(axis=1)
        row = {"texts_per_s": len(texts) / seconds, "ratio": base_s / seconds, "mean_cos": float(cos.mean())}
        cells = []
        for t in thresholds:
            n_ref, n_ours, agree = agreement(ref, vectors, t)
            row[f"agree_{t}"] = agree
            cells.append(f"{n_ours}/{n_ref} ({agree:.4f})")
        results[name] = row
        table.add_row(
            name, f"{row['texts_per_s']:.0f}", f"{row['ratio']:.2f}", f"{cos.mean():.7f}", f"{cos.min():.7f}", *cells
        )
    console.print(table)
    if args.cuda:
        gpu = embed._sentence_transformer(args.model, "cuda")
        gpu.encode(texts[:256])
        seconds, vectors = best_of(args.repeats, lambda: gpu.encode(texts, batch_size=256, normalize_embeddings=True))
        n_ref, n_gpu, agree = agreement(ref, vectors, thresholds[0])
        console.print(
            f"torch backend on {torch.cuda.get_device_name()}: {len(texts) / seconds:.0f} texts/s "
            f"({base_s / seconds:.1f}× the CPU baseline); mean cos {(vectors * ref).sum(axis=1).mean():.7f}; "
            f"pairs ≥{thresholds[0]} {n_gpu}/{n_ref} (agree {agree:.4f})"
        )
    console.print(f"one-off ONNX export (load + torch.onnx.export + session): {export_s:.1f} s")

    # Truncation: long texts at the model's 256 word pieces vs 128 (MiniLM's training length).
    longs = long_texts(args.long_texts)
    long_tokens = np.array([len(ids) for ids in st.tokenizer(longs, verbose=False)["input_ids"]])
    short_encoder = embed.OnnxEncoder(args.model, onnx_dir, 128)
    t256, v256 = best_of(args.repeats, lambda: normalized(onnx_run(encoder, longs)))
    t128, v128 = best_of(args.repeats, lambda: normalized(onnx_run(short_encoder, longs)))
    cos = (v256 * v128).sum(axis=1)
    long_pairs = agreement(v256, v128, thresholds[0])
    console.print(
        f"truncation on {len(longs)} long texts (word pieces mean {long_tokens.mean():.0f}, "
        f"{(long_tokens > 128).mean():.0%} over 128): 256 → {len(longs) / t256:.0f} texts/s, 128 → {len(longs) / t128:.0f} "
        f"texts/s ({t256 / t128:.2f}×); cosine 128 vs 256 mean {cos.mean():.4f} min {cos.min():.4f}; "
        f"pairs ≥{thresholds[0]} {long_pairs[1]}/{long_pairs[0]} (agree {long_pairs[2]:.4f}) — default stays 256"
    )

    # Cache: cold (fresh store; export already on disk) vs warm (a new process-level Embedder, same store).
    cache = workdir / "cache"
    cache.mkdir()
    (cache / "onnx").symlink_to(onnx_dir)
    embed._onnx_session.cache_clear()  # cold means a new process: the session is loaded again too (CPU path)
    start = time.perf_counter()
    cold_vectors = embed.Embedder(args.model, device="cpu", cache_dir=cache).encode(texts, quiet=True)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    warm_vectors = embed.Embedder(args.model, device="cpu", cache_dir=cache).encode(texts, quiet=True)
    warm = time.perf_counter() - start
    console.print(
        f"cache: cold encode {cold:.2f} s, warm {warm:.3f} s → {cold / warm:.0f}× (vs the sentence-transformers "
        f"baseline with no cache: {base_s / warm:.0f}×); warm vectors identical to cold: "
        f"{np.array_equal(warm_vectors, cold_vectors)}"
    )

    store = store_benchmark(args.store_rows) if args.store_rows else []
    if store:
        table = Table(title=f"Cache store, {args.store_rows:,} × 384 float32 vectors")
        for col in ("store", "write (s)", f"open + read all {args.store_rows:,} (s)", "open + read 1,000 (s)"):
            table.add_column(col, justify="left" if col == "store" else "right")
        for name, write, read_all, read_1k in store:
            table.add_row(name, f"{write:.1f}", f"{read_all:.1f}", f"{read_1k:.2f}")
        console.print(table)

    versions = package_versions(("sentence-transformers", "transformers", "torch", "onnxruntime", "onnx", "numpy"))
    console.print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · "
        + " · ".join(f"{k} {v}" for k, v in versions.items())
        + f" · onnxruntime providers {onnxruntime.get_available_providers()}"
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
