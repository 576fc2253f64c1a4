"""`train sft`'s GPU fast path against TRL's tutorial setup: tokens/s, step time, memory, MFU, loss (issue 12).

One process per model shape, every row on the same data, model weights and seed:

  baseline   TRL `SFTTrainer` as its tutorial writes it: right padding, no packing, bf16, LoRA r=64 alpha=16
             on all linear layers, batch 8, gradient checkpointing, SDPA (`--shape 8b`: the model in nf4)
  ours       `train sft` (train.sft.run_sft, the CLI's entry point) with its defaults on a GPU
  ours -X    the same with one fast-path key changed (recipe KEY=VALUE), to show what each part buys

Model: random weights of Llama-3.2-1B's shape (`1b`) or Llama-3-8B's (`8b`, loaded in 4-bit nf4 through
bitsandbytes as `train sft --quantize 4bit` loads it); weights cannot reach the GPU machine and speed and
memory do not depend on their values. Data: a curate export (`curate build` of a synthetic JSONL) of 1,500
prompt/completion rows whose token lengths follow a log-normal mix (median 400, sigma 0.75, cut to 100-2,000;
prompt 20-60% of each row), words drawn from a Zipf law over a word-level tokenizer with the model's
vocabulary size, one word per token, so lengths are exact.

Columns: tokens/s counts real tokens (no padding) over the timed steps (after `--warmup` steps), step time,
peak GPU memory allocated/reserved by PyTorch during training (and the device's used memory at step ends,
which also counts the CUDA context and paged optimizer states), MFU = model FLOPs / (time x the bf16 matmul
rate measured at the start of the run; FLOPs per token: forward 2N + input gradients 2N over the frozen
matmul weights incl. the LM head, 6 per LoRA weight, causal attention 6 x layers x width x mean context;
recomputation not counted), the loss at the last step, and ratios against the baseline.

    python benchmarks/train_bench.py --shape 1b --json out/bench-1b.json
    python benchmarks/train_bench.py --shape 8b --json out/bench-8b.json
    python benchmarks/train_bench.py --tiny            # CPU smoke run of every code path, tiny shapes
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES: dict[str, dict[str, Any]] = {
    "1b": dict(  # meta-llama/Llama-3.2-1B config.json (rope scaling left out: it changes no cost)
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0,
        max_position_embeddings=131072, rms_norm_eps=1e-5,
    ),
    "8b": dict(  # meta-llama/Meta-Llama-3-8B config.json
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False, rope_theta=500000.0,
        max_position_embeddings=8192, rms_norm_eps=1e-5,
    ),
    "tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=2000, tie_word_embeddings=True,
        max_position_embeddings=4096,
    ),
}  # fmt: skip

LORA = {"r": 64, "alpha": 16, "dropout": 0.05}  # the baseline LoRA, used by every row
LR = 2e-4
MAX_LENGTH = 2048

# Rows: name -> recipe KEY=VALUE overrides on top of `train sft`'s defaults; run in this order.
ROWS_1B: list[tuple[str, dict[str, Any]]] = [  # most telling first: a --budget run stops at the end of the list
    ("ours", {}),
    ("ours -packing (padded batches, SDPA)", {"dataset.packing": False}),
    ("ours -varlen (packed, SDPA block mask)", {"speed.attention": "sdpa"}),
    ("ours -liger", {"speed.liger_kernels": False}),
    ("ours -checkpointing", {"memory.gradient_checkpointing": False}),
    ("ours, 4x tokens/step", {"speed.tokens_per_step": 16384}),
    ("ours -checkpointing, 4x tokens/step", {"memory.gradient_checkpointing": False, "speed.tokens_per_step": 16384}),
    ("ours -liger, 4x tokens/step", {"speed.liger_kernels": False, "speed.tokens_per_step": 16384}),
    ("ours -bf16 adapters", {"speed.bf16_adapters": False}),
    ("ours, flex attention (packed)", {"speed.attention": "flex_attention"}),
    ("ours + torch.compile", {"speed.compile": True}),
]
NF4 = {"memory.quantize": "4bit"}
ROWS_8B: list[tuple[str, dict[str, Any]]] = [
    ("ours nf4", NF4),
    ("ours nf4, 2,048 tokens/step, paged 8-bit AdamW", {**NF4, "speed.tokens_per_step": 2048,
                                                        "training.optim": "paged_adamw_8bit"}),
    ("ours nf4 -liger", {**NF4, "speed.liger_kernels": False}),
    ("ours nf4 + fp32 upcast (peft prepare)", {**NF4, "memory.upcast_unquantized": True}),
    ("ours nf4, 2,048 tokens/step", {**NF4, "speed.tokens_per_step": 2048}),
    ("ours nf4, 2,048 tokens/step, paged 8-bit AdamW, double quant", {**NF4, "speed.tokens_per_step": 2048,
                                                                      "training.optim": "paged_adamw_8bit",
                                                                      "memory.double_quant": True}),
]  # fmt: skip


# -- data and model --------------------------------------------------------------------------------


def word(i: int) -> str:
    return f"w{i}"


def save_tokenizer(path: Path, vocab_size: int) -> None:
    """A word-level tokenizer of `vocab_size` ids (w0, w1, ...; ids 0-2 are pad/eos/unk), one id per word."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{word(i): i for i in range(3, vocab_size)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(path)


def build_export(work: Path, vocab_size: int, rows: int, seed: int = 0) -> tuple[Path, dict[str, float]]:
    """`curate build` of synthetic prompt/completion rows (log-normal token lengths 100-2,000, Zipf words)."""
    import numpy as np

    from curate.pipeline import build
    from curate.recipe import recipe_from_dict

    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(math.log(400), 0.75, rows)), 100, 2000).astype(int)
    ranks = np.arange(1, vocab_size - 2)
    zipf = 1.0 / (ranks + 10.0) ** 1.1
    zipf /= zipf.sum()
    lines = []
    for n in lengths:
        tokens = rng.choice(ranks + 2, size=int(n) - 1, p=zipf)  # -1: the EOS the renderer appends
        cut = max(1, int(len(tokens) * rng.uniform(0.2, 0.6)))
        prompt, response = " ".join(map(word, tokens[:cut])), " ".join(map(word, tokens[cut:]))
        lines.append(json.dumps({"prompt": prompt, "response": response}))
    (work / "rows.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (work / "synth.j2").write_text(
        "{% block prompt %}{{ prompt }} {% endblock %}{% block completion %}{{ response }}{% endblock %}"
    )
    recipe = {
        "name": "synth",
        "inputs": [str(work / "rows.jsonl")],
        "out": str(work / "export"),
        "kind": "instruction",
        "format": "prompt-completion",
        "template": str(work / "synth.j2"),
        "dedupe": {"exact": False},
        "normalize": {"min_chars": 1},
        "split": {"test_size": 0.02, "seed": seed},
    }
    build(recipe_from_dict(recipe, "train_bench"), quiet=True)
    squares = float((lengths.astype(float) ** 2).sum())
    stats = {"rows": rows, "mean": float(lengths.mean()), "p50": float(np.median(lengths)),
             "p99": float(np.percentile(lengths, 99)), "max": int(lengths.max()),
             "mean_context": squares / float(lengths.sum())}  # fmt: skip
    return work / "export", stats


def save_model(path: Path, shape: dict[str, Any], tokenizer_dir: Path) -> None:
    """A Llama of `shape` with random weights (bf16), saved with the tokenizer like a hub checkpoint."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**shape, bos_token_id=None, eos_token_id=1, pad_token_id=0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialised on the GPU: seconds, where 8B on the CPU takes minutes
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    del model
    free()


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def matmul_peak() -> float:
    """bf16 dense matmul rate (TFLOP/s) on this GPU: 8192^3 products of random data, median of 20 after warm-up."""
    if not torch.cuda.is_available():
        return float("nan")
    n = 8192
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(5):
        a @ b
    times = []
    for _ in range(20):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    del a, b
    free()
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e12


def flops_per_token(shape: dict[str, Any], lora_r: int, mean_context: float) -> float:
    """Model FLOPs of one trained token (see the module docstring): frozen matmuls 4N, LoRA 6 per weight, attention."""
    h, i, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    heads, kv, d = shape["num_attention_heads"], shape["num_key_value_heads"], shape["head_dim"]
    linears = [(h, heads * d), (h, kv * d), (h, kv * d), (heads * d, h), (h, i), (h, i), (i, h)]
    frozen = layers * sum(a * b for a, b in linears) + h * shape["vocab_size"]
    lora = layers * sum(lora_r * (a + b) for a, b in linears)
    attention = 6 * layers * heads * d * mean_context  # QK^T and AV, causal (half), forward + 2x backward
    return 4 * frozen + 6 * lora + attention


# -- timing ----------------------------------------------------------------------------------------


def timer_callback(trainer: Any, warmup: int, log: Callable[[str], None]) -> Any:
    """A TrainerCallback timing steps after `warmup`, counting TRL's real-token count, sampling device memory."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[int, float, int]] = []  # (step, time, tokens so far)
            self.device_used = 0.0
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                free_bytes, total = torch.cuda.mem_get_info()
                self.device_used = max(self.device_used, (total - free_bytes) / 2**30)
            self.marks.append((state.global_step, time.perf_counter(), int(trainer._total_train_tokens)))
            if state.global_step <= warmup + 1:
                log(f"    step {state.global_step} at {time.perf_counter() - self.started:.1f} s")

        def result(self) -> dict[str, Any]:
            timed = [m for m in self.marks if m[0] >= warmup]
            (s0, t0, n0), (s1, t1, n1) = timed[0], timed[-1]
            steps = s1 - s0
            return {"steps": steps, "seconds": t1 - t0, "tokens": n1 - n0, "step_s": (t1 - t0) / max(steps, 1),
                    "tokens_per_s": (n1 - n0) / (t1 - t0), "device_used_gb": self.device_used,
                    "warmup_s": t0 - self.started}  # fmt: skip

    return StepTimer()


def memory() -> dict[str, float]:
    if not torch.cuda.is_available():
        return {"peak_allocated_gb": float("nan"), "peak_reserved_gb": float("nan")}
    return {
        "peak_allocated_gb": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gb": torch.cuda.max_memory_reserved() / 2**30,
    }


def last_loss(trainer: Any) -> float:
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return float(losses[-1]) if losses else float("nan")


# -- rows ------------------------------------------------------------------------------------------


def run_baseline(args: argparse.Namespace, model_dir: Path, export: Path, work: Path) -> dict[str, Any]:
    """TRL's SFTTrainer written as its docs show it (quantized through BitsAndBytesConfig for the 8B shape)."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    files = {"train": str(next((export / "data").glob("train-*.parquet")))}
    data = load_dataset("parquet", data_files=files)["train"].select_columns(["prompt", "completion"])
    on_gpu = torch.cuda.is_available()
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if on_gpu else torch.float32}
    if args.shape == "8b":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    config = SFTConfig(
        output_dir=str(work / "baseline"), per_device_train_batch_size=8, gradient_checkpointing=True,
        bf16=on_gpu, max_length=MAX_LENGTH, max_steps=args.warmup + args.steps, learning_rate=LR,
        logging_steps=1, save_strategy="no", report_to="none", seed=42, use_cpu=not on_gpu,
    )  # fmt: skip
    peft = LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules="all-linear",
        task_type="CAUSAL_LM",
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=data, processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft,
    )  # fmt: skip
    timer = timer_callback(trainer, args.warmup, print)
    trainer.add_callback(timer)
    free()
    trainer.train()
    row = {**timer.result(), **memory(), "loss": last_loss(trainer)}
    del trainer, model
    free()
    return row


def run_ours(
    args: argparse.Namespace, model_dir: Path, export: Path, work: Path, overrides: dict[str, Any]
) -> dict[str, Any]:
    """`train sft` itself (run_sft, what the CLI calls), with a step timer added to its trainer."""
    import train.sft as sft
    from train.config import SFTRecipe, load_recipe

    keys = {
        "dataset.path": str(export), "model.name": str(model_dir), "logging.output_dir": str(work / "ours"),
        "tokenizer.max_length": MAX_LENGTH, "training.max_steps": args.warmup + args.steps,
        "training.learning_rate": LR, "training.eval_rows": 0, "training.save_each_epoch": False,
        "training.eval_each_epoch": False, "logging.logging_steps": 1, "generation.samples": 0,
        "lora.r": LORA["r"], "lora.alpha": LORA["alpha"], "lora.dropout": LORA["dropout"], **overrides,
    }  # fmt: skip
    if args.shape == "tiny":
        keys.setdefault("speed.liger_kernels", False)
        keys.setdefault("dataset.packing", True)  # what a GPU gets by default
    recipe = load_recipe(SFTRecipe, None, keys)
    captured: dict[str, Any] = {}
    original = sft.train_and_evaluate

    def timed(trainer: Any, run: Any, recipe: Any, quiet: bool) -> Any:
        captured["timer"] = timer_callback(trainer, args.warmup, print)
        trainer.add_callback(captured["timer"])
        captured["trainer"] = trainer
        result = original(trainer, run, recipe, quiet)
        captured["memory"] = memory()
        captured["loss"] = last_loss(trainer)
        captured["rows"] = trainer.args.per_device_train_batch_size
        return result

    sft.train_and_evaluate = timed
    try:
        free()
        sft.run_sft(recipe, overwrite=True, quiet=True)
    finally:
        sft.train_and_evaluate = original
        captured.pop("trainer", None)
        free()
    return {**captured["timer"].result(), **captured["memory"], "loss": captured["loss"], "rows": captured["rows"]}


class LlamaModulePatches:
    """Liger replaces functions of transformers' llama module for the whole process; put them back after a row."""

    NAMES = ("apply_rotary_pos_emb", "LlamaRMSNorm", "LlamaMLP")

    def __enter__(self) -> None:
        from transformers.models.llama import modeling_llama

        self.saved = {n: getattr(modeling_llama, n) for n in self.NAMES}

    def __exit__(self, *exc: Any) -> None:
        from transformers.models.llama import modeling_llama

        for name, value in self.saved.items():
            setattr(modeling_llama, name, value)


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["1b", "8b"], default="1b")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny shapes, few rows and steps.")
    parser.add_argument("--rows", type=int, default=1500, help="Synthetic rows in the export.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps first.")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps.")
    parser.add_argument("--only", default="", help="Row names to run, separated by ';' (default: all).")
    parser.add_argument("--budget", type=float, default=1e9, help="Seconds: start no row after this.")
    parser.add_argument("--work", default=None, help="Scratch directory (default: a temp dir, /dev/shm if large).")
    parser.add_argument("--json", default=None, help="Write every figure here (after each row).")
    parser.add_argument(
        "--prepare",
        default=None,
        help="Only write tokenizer/, export/ and model/ into this directory (multi-GPU runs).",
    )
    args = parser.parse_args()
    if args.tiny:
        args.shape, args.rows, args.warmup, args.steps = "tiny", 60, 1, 2
    started = time.perf_counter()
    shape = SHAPES[args.shape]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import shutil

    in_memory = Path("/dev/shm").is_dir() and shutil.disk_usage("/dev/shm").free > 40 * 2**30
    work = Path(tempfile.mkdtemp(prefix="train-bench-", dir=args.work or ("/dev/shm" if in_memory else None)))
    if args.prepare:
        work = Path(args.prepare)
        work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"shape": args.shape, "config": shape, "rows": [], "environment": environment()}
    report["matmul_tflops"] = peak = matmul_peak()
    print(f"bf16 matmul 8192^3: {peak:.0f} TFLOP/s", flush=True)
    save_tokenizer(work / "tokenizer", shape["vocab_size"])
    export, stats = build_export(work, shape["vocab_size"], args.rows)
    report["data"] = stats
    print(f"data: {stats}", flush=True)
    model_dir = work / "model"
    save_model(model_dir, shape, work / "tokenizer")
    print(f"model saved at {time.perf_counter() - started:.0f} s", flush=True)
    if args.prepare:
        print(f"prepared {work}/export and {work}/model")
        return
    per_token = flops_per_token(shape, LORA["r"], stats["mean_context"])
    report["flops_per_token"] = per_token

    def record(name: str, run: Callable[[], dict[str, Any]]) -> None:
        if time.perf_counter() - started > args.budget:
            report["rows"].append({"name": name, "skipped": "time budget"})
            return
        print(f"-- {name}", flush=True)
        t = time.perf_counter()
        before = torch.cuda.memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
        try:
            with LlamaModulePatches():
                row = run()
            row["mfu"] = row["tokens_per_s"] * per_token / (peak * 1e12)
        except Exception as exc:  # a failing row is reported, the others still run
            import traceback

            traceback.print_exc()
            row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
            free()
        row.update(name=name, row_seconds=time.perf_counter() - t, allocated_before_gb=before)
        report["rows"].append(row)
        print(f"   {json.dumps(row)}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))

    only = {n.strip() for n in args.only.split(";") if n.strip()}
    if not only or "baseline" in only:
        record("baseline (TRL tutorial)" + (" nf4" if args.shape == "8b" else ""),
               lambda: run_baseline(args, model_dir, export, work))  # fmt: skip
    for name, overrides in ROWS_8B if args.shape == "8b" else ROWS_1B:
        if args.tiny and overrides.get("speed.attention") == "flex_attention":
            continue  # FlexAttention has no backward on CPU
        if not only or name in only:
            record(name, lambda o=overrides: run_ours(args, model_dir, export, work, o))
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)


def environment() -> dict[str, Any]:
    import platform

    from curate.env import package_versions

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    info.update(package_versions(("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes",
                                  "liger-kernel", "triton")))  # fmt: skip
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def print_table(report: dict[str, Any]) -> None:
    rows = [r for r in report["rows"] if "tokens_per_s" in r]
    base = next((r for r in rows if r["name"].startswith("baseline")), rows[0] if rows else None)
    print(
        f"\n{report['shape']} · {report['environment'].get('gpu', 'cpu')} · matmul {report['matmul_tflops']:.0f} TF/s"
    )
    print(f"{'row':48} {'tok/s':>8} {'x':>5} {'step s':>7} {'alloc GB':>8} {'x':>5} {'resv GB':>8} {'dev GB':>7} "
          f"{'MFU':>6} {'loss':>7} {'rows':>4}")  # fmt: skip
    for r in report["rows"]:
        if "tokens_per_s" not in r:
            print(f"{r['name']:48} {r.get('error') or r.get('skipped')}")
            continue
        assert base is not None
        print(
            f"{r['name']:48} {r['tokens_per_s']:8.0f} {r['tokens_per_s'] / base['tokens_per_s']:5.2f} "
            f"{r['step_s']:7.3f} {r['peak_allocated_gb']:8.2f} {r['peak_allocated_gb'] / base['peak_allocated_gb']:5.2f} "
            f"{r['peak_reserved_gb']:8.2f} {r['device_used_gb']:7.2f} {100 * r['mfu']:5.1f}% {r['loss']:7.3f} "
            f"{r.get('rows', 8):>4}"
        )


if __name__ == "__main__":
    main()
