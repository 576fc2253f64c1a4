"""`train reward` on a GPU: the qa-reward recipe against plain TRL, with test pairwise accuracy and Spearman.

Runs, on the same model (SmolLM2-135M-Instruct), data (the qa-pairs export) and GPU:
  untrained     the base model with a fresh score head, no training (the chance baseline)
  ours          `train reward` with recipes/qa-reward.yaml (LoRA + score head, margin loss, chat turns)
  ours-nomargin the same with reward.use_margin=false: plain -log σ(r_chosen − r_rejected)
  trl-defaults  plain TRL RewardTrainer(model=path) with RewardConfig() defaults (full fine-tune,
                lr 1e-4, 3 epochs, bf16, gradient checkpointing) on the export as it is
and prints the loss curve, test pairwise accuracy, Spearman of rewards vs mean human ratings,
tokens/s and peak memory, with ratios against ours. Needs a CUDA GPU.

    python benchmarks/reward_gpu_bench.py --data out/qa-pairs --model smollm2 --json results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from typing import Any

import torch


def _free() -> None:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def run_ours(args: argparse.Namespace, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """`train reward` through its Python entry point (what the CLI calls)."""
    from train.config import load_recipe
    from train.reward import RewardRecipe, train_reward

    recipe = load_recipe(
        RewardRecipe,
        "recipes/qa-reward.yaml",
        {"dataset.path": args.data, "model.name": args.model, "logging.output_dir": f"/tmp/runs/{name}", **overrides},
    )
    _free()
    run = train_reward(recipe, overwrite=True, quiet=True)
    card = json.loads((run.run_dir / "run_card.json").read_text())
    return {
        "name": name,
        "seconds": card["throughput"]["wall_seconds"],
        "train_tokens": card["throughput"]["train_tokens"],
        "tokens_per_second": round(card["throughput"]["tokens_per_second"], 1),
        "peak_allocated_gb": card["peak_memory"].get("peak_allocated_gb"),
        "test_pairwise_accuracy": card["metrics"]["test_pairwise_accuracy"],
        "test_spearman": card["metrics"].get("test_spearman_vs_mean_rating"),
        "eval_loss": card["metrics"].get("eval_loss"),
        "loss_curve": card["loss_curve"],
        "run_dir": str(run.run_dir),
        "content_hash": card["data"]["content_hash"],
        "trainable_parameters": card["model"]["trainable_parameters"],
    }


def run_untrained(args: argparse.Namespace) -> dict[str, Any]:
    """The base model with a freshly initialised 1-output head: what training has to beat."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from train.data import load_data
    from train.model import model_path
    from train.reward import evaluate_pairs, text_format_for

    path = model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    torch.manual_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.bfloat16).cuda()
    model.config.pad_token_id = tokenizer.pad_token_id
    data = load_data(args.data, "reward")
    fmt = text_format_for(data.manifest, tokenizer, chat_template=True)  # as the recipe renders them
    metrics = evaluate_pairs(model, tokenizer, data.eval, fmt, 16)
    return {
        "name": "untrained",
        "test_pairwise_accuracy": metrics["test_pairwise_accuracy"],
        "test_spearman": metrics.get("test_spearman_vs_mean_rating"),
    }


def run_trl_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """Plain TRL as its docs show it: RewardTrainer(model=<path>) with RewardConfig() defaults."""
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from train.model import model_path
    from train.reward import evaluate_pairs
    from train.score import TextFormat

    path = model_path(args.model)
    files = {s: str(next((Path(args.data) / "data").glob(f"{s}-*.parquet"))) for s in ("train", "test")}
    data = load_dataset("parquet", data_files=files)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = RewardConfig(output_dir="/tmp/bench-trl-defaults", report_to="none", save_strategy="no")
    trainer = RewardTrainer(model=path, args=config, train_dataset=data["train"], processing_class=tokenizer)
    _free()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    tokens = int(trainer._total_train_tokens)
    # TRL's default feeds prompt + answer glued as plain strings: score them the same way.
    metrics = evaluate_pairs(trainer.model, tokenizer, data["test"], TextFormat(), 16)
    result = {
        "name": "trl-defaults",
        "seconds": round(seconds, 2),
        "train_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1),
        "peak_allocated_gb": peak,
        "test_pairwise_accuracy": metrics["test_pairwise_accuracy"],
        "test_spearman": metrics.get("test_spearman_vs_mean_rating"),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    del trainer
    return result


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", default="out/qa-pairs")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--json", default=None, help="Write every figure to this JSON file.")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    torch.ones(1024, 1024, device="cuda").matmul(torch.ones(1024, 1024, device="cuda"))  # CUDA context up front

    results = [run_ours(args, "ours", {})]
    results.append(run_ours(args, "ours-nomargin", {"reward.use_margin": False}))
    results.append(run_trl_defaults(args))
    results.append(run_untrained(args))

    ours = results[0]
    print(f"\nGPU: {torch.cuda.get_device_name(0)} · torch {torch.__version__} · export {ours['content_hash'][:23]}…")
    print(
        f"{'run':14} {'s':>6} {'tokens/s':>9} {'ratio':>6} {'peak GB':>8} {'ratio':>6} "
        f"{'trainable':>11} {'test acc':>8} {'spearman':>8}"
    )
    for r in results:
        tps, peak = r.get("tokens_per_second"), r.get("peak_allocated_gb")
        print(
            f"{r['name']:14} {_fmt(r.get('seconds'), '6.1f')} {_fmt(tps, '9.0f')} "
            f"{_fmt(tps / ours['tokens_per_second'] if tps else None, '6.2f')} {_fmt(peak, '8.3f')} "
            f"{_fmt(peak / ours['peak_allocated_gb'] if peak else None, '6.2f')} "
            f"{_fmt(r.get('trainable_parameters'), '11,d')} {_fmt(r['test_pairwise_accuracy'], '8.3f')} "
            f"{_fmt(r['test_spearman'], '8.3f')}"
        )
    print("\nloss curve of ours (step: train loss | eval loss at each epoch)")
    for e in ours["loss_curve"]:
        key = "loss" if "loss" in e else "eval_loss"
        print(f"  {e['step']:4} {key:9} {e[key]:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
