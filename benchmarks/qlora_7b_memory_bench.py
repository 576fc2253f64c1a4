"""Does `recipes/llama2-qlora-sft.yaml` fit a 7B model in < 16 GB of GPU memory (docs/design.md target)?

No 7B checkpoint can reach the GPU machine (no hub, 64 MiB per transfer), and peak memory does
not depend on the weights' values, so this builds a randomly initialised model of Llama-2-7B's
exact shape (32 layers, hidden 4096, MLP 11008, 32 heads), saves it like a hub checkpoint, and
runs `train sft` with the workflow-4 recipe unchanged (4-bit nf4, LoRA r=64 on all linear
layers, paged AdamW, gradient checkpointing) on ~500-token instruction examples. The baseline
is the same model's bf16 weights alone, measured before quantized loading.

    python benchmarks/qlora_7b_memory_bench.py --tokenizer DIR --steps 8
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch


def long_examples(out: Path, rows: int, seed: int = 0) -> Path:
    """A saved HF dataset of prompt/completion rows of ~500 tokens (English math -> LaTeX, concatenated)."""
    from datasets import Dataset, DatasetDict

    pairs = [json.loads(line) for line in Path("data/latex/pairs.jsonl").read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    data = []
    for _ in range(rows):
        chosen = rng.sample(pairs, 24)
        prompt = "Convert each sentence to LaTeX.\n" + "\n".join(p["english"] for p in chosen) + "\nLaTeX:\n"
        data.append({"prompt": prompt, "completion": "\n".join(p["latex"] for p in chosen)})
    DatasetDict(
        {"train": Dataset.from_list(data[: rows - 8]), "test": Dataset.from_list(data[rows - 8 :])}
    ).save_to_disk(str(out))
    return out


def random_llama2_7b(tokenizer_dir: str, out: Path) -> tuple[Path, float]:
    """Save a random model of Llama-2-7B's shape in bf16 (built on the GPU); return its path and bf16 GB."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # 49152 here vs Llama-2's 32000: slightly more memory, not less
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    params = sum(p.numel() for p in model.parameters())
    print(f"random Llama-2-7B shape: {params / 1e9:.2f}B parameters, {gb:.1f} GB in bf16")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out, gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="A tokenizer directory (e.g. SmolLM2's).")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    from train.card import read_run_card
    from train.config import SFTRecipe, load_recipe
    from train.sft import run_sft

    start = time.perf_counter()
    model_dir, bf16_gb = random_llama2_7b(args.tokenizer, Path("/tmp/llama2-7b-random"))
    print(f"built + saved in {time.perf_counter() - start:.0f} s")
    data = long_examples(Path("/tmp/long-sft"), rows=72)
    recipe = load_recipe(
        SFTRecipe,
        "recipes/llama2-qlora-sft.yaml",
        {
            "model.name": str(model_dir),
            "dataset.path": str(data),
            "tokenizer.max_length": args.max_length,
            "training.max_steps": args.steps,
            "logging.output_dir": "/tmp/runs/llama2-7b-qlora",
            "logging.logging_steps": 1,
            "generation.samples": 0,
        },
    )
    torch.cuda.reset_peak_memory_stats()
    run_dir = run_sft(recipe, overwrite=True, quiet=True)
    card = read_run_card(run_dir)
    total_peak_gb = torch.cuda.max_memory_allocated() / 2**30  # loading included
    result = {
        "bf16_weights_gb": round(bf16_gb, 2),
        "train_peak_allocated_gb": card["peak_memory"]["peak_allocated_gb"],
        "train_peak_reserved_gb": card["peak_memory"]["peak_reserved_gb"],
        "process_peak_allocated_gb": round(total_peak_gb, 3),
        "tokens_per_second": round(card["throughput"]["tokens_per_second"], 1),
        "train_tokens": card["throughput"]["train_tokens"],
        "steps": card["metrics"]["global_step"],
        "trainable_parameters": card["model"]["trainable_parameters"],
        "parameters": card["model"]["parameters"],
        "losses": [e.get("loss") for e in card["loss_curve"] if "loss" in e],
        "gpu": card["hardware"].get("gpu"),
    }
    print(json.dumps(result, indent=2))
    print(
        f"\nQLoRA 7B peak allocated while training: {result['train_peak_allocated_gb']:.2f} GB "
        f"(reserved {result['train_peak_reserved_gb']:.2f} GB) vs bf16 weights alone {bf16_gb:.1f} GB "
        f"({result['train_peak_allocated_gb'] / bf16_gb:.2f}x); target < 16 GB: "
        f"{'met' if result['train_peak_reserved_gb'] < 16 else 'NOT met'}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
