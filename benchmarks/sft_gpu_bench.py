"""`train sft` on a GPU against plain TRL: QLoRA 4-bit LaTeX recipe, tokens/s, peak memory, loss curves.

Runs, on the same model (SmolLM2-135M-Instruct), data (the latex export) and GPU:
  ours      `train sft` with recipes/latex-sft.yaml + memory.quantize=4bit (QLoRA, nf4, bf16 compute)
  trl-same  plain TRL SFTTrainer given the same hyperparameters, quantization and LoRA by hand
  trl-prep  trl-same, with the model loaded and passed through peft's prepare_model_for_kbit_training
            by hand as `train sft` does (isolates that step's cost from the rest of the wrapper)
  trl-lora  plain TRL, same LoRA but no quantization (what QLoRA saves)
  trl-defaults  plain TRL with SFTConfig() defaults (full fine-tune, lr 2e-5, 3 epochs, max_length 1024)
and prints ratios against ours, the loss curves side by side, and the LaTeX generated for held-out
sentences (beam search 2, 24 new tokens). Needs a CUDA GPU and bitsandbytes.

    python benchmarks/sft_gpu_bench.py --data out/latex --model smollm2 --json results.json
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from typing import Any

import torch

HELD_OUT = [
    "g of x equals integral from 0 to 1 of x squared",
    "the square root of x plus one",
    "f of x equals e to the minus x squared",
    "the limit as n goes to infinity of one over n equals zero",
]


def _free() -> None:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def _summary(name: str, seconds: float, tokens: int, log_history: list[dict[str, Any]]) -> dict[str, Any]:
    from train.run import loss_curve

    curve = loss_curve(log_history)
    evals = [e["eval_loss"] for e in curve if "eval_loss" in e]
    return {
        "name": name,
        "seconds": round(seconds, 2),
        "train_tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1),
        "peak_allocated_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3),
        "final_eval_loss": evals[-1] if evals else None,
        "best_eval_loss": min(evals) if evals else None,
        "loss_curve": curve,
    }


def run_ours(args: argparse.Namespace, overrides: dict[str, Any], out: Path) -> dict[str, Any]:
    """`train sft` through its Python entry point (what the CLI calls)."""
    from train.card import read_run_card
    from train.config import SFTRecipe, load_recipe
    from train.sft import run_sft

    recipe = load_recipe(
        SFTRecipe,
        "recipes/latex-sft.yaml",
        {"dataset.path": args.data, "model.name": args.model, "logging.output_dir": str(out), **overrides},
    )
    _free()
    run_dir = run_sft(recipe, overwrite=True, quiet=True)
    card = read_run_card(run_dir)
    result = {
        "name": "ours",
        # Wall time of training (its evals and checkpoints included), as the plain-TRL runs are timed here;
        # the card's own tokens_per_second counts training steps only.
        "seconds": card["throughput"]["wall_seconds"],
        "train_tokens": card["throughput"]["train_tokens"],
        "tokens_per_second": round(card["throughput"]["train_tokens"] / card["throughput"]["wall_seconds"], 1),
        "peak_allocated_gb": card["peak_memory"]["peak_allocated_gb"],
        "final_eval_loss": card["metrics"].get("eval_loss"),
        "best_eval_loss": card["metrics"].get("best_eval_loss"),
        "loss_curve": card["loss_curve"],
        "samples": card["samples"],
        "run_dir": str(run_dir),
    }
    return result


def run_plain_trl(
    args: argparse.Namespace, name: str, quantize: bool, lora: bool, defaults: bool, prep: bool = False
) -> dict[str, Any]:
    """Plain TRL, written the way its docs show, on the same data and model directory."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from train.model import model_path

    path = model_path(args.model)
    files = {s: str(next((Path(args.data) / "data").glob(f"{s}-*.parquet"))) for s in ("train", "test")}
    data = load_dataset("parquet", data_files=files).select_columns(["prompt", "completion"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    out = f"/tmp/bench-{name}"
    if defaults:
        config = SFTConfig(output_dir=out, report_to="none", eval_strategy="epoch", save_strategy="no")
        trainer = SFTTrainer(
            model=path, args=config, train_dataset=data["train"], eval_dataset=data["test"], processing_class=tokenizer
        )
    else:
        config = SFTConfig(
            output_dir=out,
            num_train_epochs=8,
            learning_rate=1e-3,
            lr_scheduler_type="linear",
            warmup_steps=0.05,
            per_device_train_batch_size=8,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=2,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            logging_steps=4,
            max_length=args.max_length,
            completion_only_loss=True,
            gradient_checkpointing=quantize,
            seed=42,
            report_to="none",
            model_init_kwargs={"dtype": torch.bfloat16},
        )
        peft = (
            LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
            if lora
            else None
        )
        bnb = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
            if quantize
            else None
        )
        model: Any = path
        if prep:
            from peft import prepare_model_for_kbit_training
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(
                path, quantization_config=bnb, dtype=torch.bfloat16, device_map={"": 0}
            )
            model = prepare_model_for_kbit_training(model, gradient_checkpointing_kwargs={"use_reentrant": False})
            config.model_init_kwargs = None
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=data["train"],
            eval_dataset=data["test"],
            processing_class=tokenizer,
            peft_config=peft,
            quantization_config=None if prep else bnb,
        )
    _free()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    result = _summary(name, seconds, int(trainer._total_train_tokens), trainer.state.log_history)
    del trainer
    return result


def held_out_generations(run_dir: str) -> list[dict[str, str]]:
    """`train generate` on sentences of the test split and new ones (beam search 2, 24 tokens)."""
    from train.generate import generate_texts, load_run, render_prompt

    model, tokenizer, card = load_run(run_dir)
    prompts = [render_prompt(card, text, tokenizer) for text in HELD_OUT]
    outputs = generate_texts(model, tokenizer, prompts, num_beams=2, max_new_tokens=24)
    return [{"english": e, "latex": o.strip()} for e, o in zip(HELD_OUT, outputs, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="out/latex")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--max-length", type=int, default=None, help="Default: the export's recommended max_length.")
    parser.add_argument("--json", default=None, help="Write every figure to this JSON file.")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    if args.max_length is None:  # as `train sft` picks it: recounted when the export used another tokenizer
        from train.data import export_max_length, load_data
        from train.model import load_tokenizer

        args.max_length, why = export_max_length(load_data(args.data, "sft"), args.model, load_tokenizer(args.model))
        print(f"max_length {args.max_length}: {why}")
    torch.ones(1024, 1024, device="cuda").matmul(torch.ones(1024, 1024, device="cuda"))  # CUDA context up front

    qlora = {"memory.quantize": "4bit", "memory.gradient_checkpointing": True, "tokenizer.max_length": args.max_length}
    # Plain TRL runs first as well, so that one-time CUDA/bitsandbytes start-up costs are not charged to ours.
    results = [run_plain_trl(args, "trl-same", quantize=True, lora=True, defaults=False)]
    results.insert(0, run_ours(args, qlora, Path("/tmp/runs/latex-qlora")))
    generations = held_out_generations(results[0]["run_dir"])
    for name, quantize, lora, defaults, prep in (
        ("trl-prep", True, True, False, True),
        ("trl-lora", False, True, False, False),
        ("trl-defaults", False, False, True, False),
    ):
        try:  # a failing baseline must not lose the figures measured so far
            results.append(run_plain_trl(args, name, quantize=quantize, lora=lora, defaults=defaults, prep=prep))
        except Exception as exc:
            print(f"{name} failed: {type(exc).__name__}: {exc}")

    ours = results[0]
    print(f"\nGPU: {torch.cuda.get_device_name(0)} · torch {torch.__version__}")
    print(f"{'run':14} {'s':>7} {'tokens/s':>10} {'ratio':>6} {'peak GB':>8} {'ratio':>6} {'eval loss':>9} {'best':>7}")
    for r in results:
        print(
            f"{r['name']:14} {r['seconds']:7.1f} {r['tokens_per_second']:10.0f} "
            f"{r['tokens_per_second'] / ours['tokens_per_second']:6.2f} {r['peak_allocated_gb']:8.3f} "
            f"{r['peak_allocated_gb'] / ours['peak_allocated_gb']:6.2f} {r['final_eval_loss'] or 0:9.4f} "
            f"{r['best_eval_loss'] or 0:7.4f}"
        )
    same = {e["step"]: e for e in next((r for r in results if r["name"] == "trl-same"), ours)["loss_curve"]}
    print("\nloss curve (step: ours vs plain TRL, same settings)")
    for e in ours["loss_curve"]:
        other = same.get(e["step"], {})
        key = "loss" if "loss" in e else "eval_loss"
        print(f"  {e['step']:4} {key:9} {e[key]:.4f}  {other.get(key, float('nan')):.4f}")
    print("\nheld-out generations (beam 2, 24 tokens)")
    for g in generations:
        print(f"  {g['english']!r} -> {g['latex']!r}")
    for s in ours["samples"]:
        print(f"  test: {s['prompt'].splitlines()[1]!r} -> {s['generated']!r} (reference {s['reference']!r})")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "generations": generations}, indent=2))


if __name__ == "__main__":
    main()
