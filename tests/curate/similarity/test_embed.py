"""The embedder: real all-MiniLM-L6-v2 (offline copy), ONNX vs sentence-transformers, and the on-disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import curate.similarity.embed as embed
from curate.errors import CurateError
from curate.similarity.embed import Embedder, EmbeddingCache, encode

ROOT = Path(__file__).resolve().parents[3]


def _texts(n: int) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "data/genres/descriptions.jsonl").read_text().splitlines()]
    return [r["text"] for r in rows[:n]]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export for the whole module (it takes seconds); each test links it into a fresh cache."""
    return tmp_path_factory.mktemp("onnx-export")


@pytest.fixture
def cache_dir(tmp_path: Path, onnx_dir: Path) -> Path:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "onnx").symlink_to(onnx_dir)
    return tmp_path / "cache"


@pytest.fixture
def forward_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows that go through the real SentenceTransformer forward pass (the torch backend's model calls)."""
    calls: list[int] = []
    real = SentenceTransformer.forward

    def spy(self, features, *args, **kwargs):
        calls.append(len(features["input_ids"]))
        return real(self, features, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "forward", spy)
    return calls


def test_torch_cache_miss_then_hit_encodes_only_new_texts(cache_dir, forward_calls):
    texts = _texts(24)
    first = encode(texts + texts[:4], cache_dir=cache_dir, backend="torch", quiet=True)  # repeats encoded once
    assert sum(forward_calls) == 24
    assert first.shape == (28, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first[24:], first[:4])

    forward_calls.clear()
    again = encode(texts, cache_dir=cache_dir, backend="torch", quiet=True)
    assert forward_calls == []  # all from the cache: the model never ran
    np.testing.assert_array_equal(again, first[:24])

    more = encode(
        texts + ["A brand new text about dragons.", "And one about tax law."],
        cache_dir=cache_dir,
        backend="torch",
        quiet=True,
    )
    assert sum(forward_calls) == 2
    np.testing.assert_array_equal(more[:24], first[:24])


def test_onnx_cache_hit_never_loads_the_model(cache_dir, onnx_dir):
    texts = _texts(20)
    cold = Embedder(cache_dir=cache_dir, backend="onnx")
    vectors = cold.encode(texts, quiet=True)
    assert cold.encoder.calls == 20
    export = next(onnx_dir.glob("*/model.onnx"))
    stamp = export.stat().st_mtime_ns

    warm = Embedder(cache_dir=cache_dir, backend="onnx")
    np.testing.assert_array_equal(warm.encode(texts, quiet=True), vectors)
    assert warm._encoder is None  # neither exported nor loaded: every vector came from disk

    warm.encode([*texts, "One more description."], quiet=True)
    assert warm.encoder.calls == 1
    assert export.stat().st_mtime_ns == stamp  # exported once, re-used


def test_onnx_matches_sentence_transformers_on_real_texts(cache_dir):
    # Short descriptions plus long answers (over 100 word pieces) so padding/truncation paths are exercised.
    answers = [
        a for line in (ROOT / "data/qa/items.jsonl").read_text().splitlines() for a in json.loads(line)["answers"]
    ]
    texts = _texts(30) + sorted(answers, key=len)[-6:]
    fast = encode(texts, cache_dir=cache_dir, backend="onnx", quiet=True)
    ref = encode(texts, cache_dir=cache_dir, backend="torch", quiet=True)
    cosine = (fast * ref).sum(axis=1)
    assert cosine.min() >= 0.999
    one = "A lone text, encoded in a batch of one."
    alone = (
        encode([one], cache_dir=cache_dir, backend="onnx", quiet=True)
        @ encode([one], cache_dir=cache_dir, backend="torch", quiet=True).T
    )
    assert alone.item() >= 0.999
    # and the same duplicate decisions at a strict threshold on the pairwise similarities
    assert np.array_equal(fast @ fast.T >= 0.6, ref @ ref.T >= 0.6)


def test_backends_and_truncation_use_separate_caches(cache_dir):
    texts = _texts(3)
    Embedder(cache_dir=cache_dir, backend="onnx").encode(texts, quiet=True)
    short = Embedder(cache_dir=cache_dir, backend="onnx", max_seq_length=8)
    cut = short.encode(texts, quiet=True)
    assert short.encoder.calls == 3  # a different truncation length is a different cache
    full = encode(texts, cache_dir=cache_dir, backend="onnx", quiet=True)
    assert ((cut * full).sum(axis=1) < 0.99).all()  # 8 word pieces really truncate these descriptions


def test_empty_input_and_bad_device(cache_dir):
    assert encode([], cache_dir=cache_dir, quiet=True).shape == (0, 384)
    if not torch.cuda.is_available():
        with pytest.raises(CurateError, match="sees no CUDA GPU"):
            encode(["x"], device="cuda", cache_dir=cache_dir)
    with pytest.raises(CurateError, match="runs on the CPU only"):
        embed.resolve_backend("onnx", "cuda")
    with pytest.raises(CurateError, match="cannot load embedder 'no/such-model-here'"):
        encode(["x"], "no/such-model-here", cache_dir=cache_dir, backend="torch")


def test_cache_store_compacts_and_skips_half_written_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "MAX_SHARDS", 2)
    rng = np.random.default_rng(0)
    store = EmbeddingCache(tmp_path)
    keys = [embed.text_digest(str(i)) for i in range(9)]
    vectors = rng.standard_normal((9, 4)).astype(np.float32)
    for start in range(0, 9, 3):
        store.add(keys[start : start + 3], vectors[start : start + 3])
    (tmp_path / "shard-zz.keys").write_bytes(b"\0" * 32)  # keys without vectors: an interrupted write

    reopened = EmbeddingCache(tmp_path)  # 4 shard files > MAX_SHARDS: merged into one
    assert len(list(tmp_path.glob("shard-*.npy"))) == 1
    rows = reopened.lookup(keys[::-1] + [embed.text_digest("absent")])
    assert rows[-1] == -1
    np.testing.assert_array_equal(reopened.gather(rows[:-1]), vectors[::-1])
    fresh = EmbeddingCache(tmp_path)
    np.testing.assert_array_equal(fresh.gather(fresh.lookup(keys)), vectors)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
def test_cuda_encodes_like_the_cpu(cache_dir):
    texts = _texts(16)
    gpu = Embedder(device="cuda", cache_dir=cache_dir)
    assert gpu.backend == "torch"  # auto: ONNX Runtime here is the CPU build
    on_gpu = gpu.encode(texts, quiet=True)
    # another store: the torch cache is shared across devices, so the same one would just hand back the GPU's rows
    on_cpu = encode(texts, device="cpu", cache_dir=cache_dir.parent / "cpu", backend="torch", quiet=True)
    assert ((on_gpu * on_cpu).sum(axis=1) >= 0.999).all()


def test_bf16_backend_keeps_the_duplicate_decisions(cache_dir, monkeypatch):
    rows = [json.loads(line) for line in (ROOT / "data" / "genres" / "descriptions.jsonl").read_text().splitlines()]
    texts = [r["text"] for r in rows]
    fast = encode(texts, cache_dir=cache_dir, backend="bf16", quiet=True)
    ref = encode(texts, cache_dir=cache_dir, backend="torch", quiet=True)
    assert fast.dtype == np.float32 and np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert ((fast * ref).sum(axis=1) >= 0.995).all()
    for threshold in (0.85, 0.95):
        pairs = {tuple(p) for p in np.argwhere(np.triu(fast @ fast.T >= threshold, 1))}
        ref_pairs = {tuple(p) for p in np.argwhere(np.triu(ref @ ref.T >= threshold, 1))}
        assert pairs == ref_pairs and len(ref_pairs) >= 25

    monkeypatch.setattr(embed, "cpu_has_amx_bf16", lambda: True)
    assert embed.resolve_backend("auto", "cpu") == "bf16"
    monkeypatch.setattr(embed, "cpu_has_amx_bf16", lambda: False)
    assert embed.resolve_backend("auto", "cpu") == "onnx"
    assert embed.resolve_backend("auto", "cuda") == "torch"
