"""`train sft` on 1 GPU vs N GPUs under `accelerate launch` (DDP), same global batch (issue 13).

The model and data are train_bench.py's (`--prepare`: random weights of Llama-3.2-1B's shape, a curate export of
synthetic rows with log-normal lengths). Each row launches the `train sft` command line itself, the 1-GPU row with
recipes/accelerate/single_gpu.yaml and the N-GPU row with recipes/accelerate/ddp.yaml, and reads the run card:
tokens/s over the training steps (TRL's count of real tokens, summed over the processes), rank 0's peak memory,
world size and effective batch. Scaling efficiency = tokens/s on N GPUs / (N x tokens/s on 1 GPU).

    python benchmarks/multi_gpu_bench.py --gpus 2 --global-batch 16 --steps 40 --json multi_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "recipes" / "accelerate"


def launch(processes: int, work: Path, global_batch: int, steps: int) -> dict[str, Any]:
    """One `train sft` run on `processes` GPUs; returns the figures of its run card."""
    out = work / f"run-{processes}gpu"
    config = CONFIGS / ("single_gpu.yaml" if processes == 1 else "ddp.yaml")
    command = ["accelerate", "launch", "--config_file", str(config), "--num_processes", str(processes)]
    command += ["-m", "train.cli", "sft", "--data", str(work / "export"), "--model", str(work / "model")]
    command += ["--out", str(out), "--max-steps", str(steps), "--batch-size", str(global_batch // processes)]
    command += ["tokenizer.max_length=2048", "lora.r=64", "lora.alpha=16", "generation.samples=0"]
    command += ["training.eval_rows=0", "training.eval_each_epoch=false", "training.save_each_epoch=false"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env["NCCL_NVLS_ENABLE"] = "0"  # the device's rule: NVLink multicast stays off
    subprocess.run(command, env=env, check=True)
    card = json.loads((out / "run_card.json").read_text())
    return {
        "gpus": processes,
        "tokens_per_s": card["throughput"]["tokens_per_second"],
        "train_tokens": card["throughput"]["train_tokens"],
        "train_seconds": card["throughput"]["train_seconds"],
        "peak_allocated_gb_rank0": card["peak_memory"].get("peak_allocated_gb"),
        "world_size": card["distributed"]["world_size"],
        "effective_batch_size": card["distributed"]["effective_batch_size"],
        "train_loss": card["metrics"].get("train_loss"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gpus", type=int, default=2, help="GPUs of the multi-GPU row.")
    parser.add_argument("--global-batch", type=int, default=16, help="Rows per optimizer step, over all GPUs.")
    parser.add_argument("--steps", type=int, default=40, help="Optimizer steps of each run.")
    parser.add_argument("--rows", type=int, default=1500, help="Synthetic rows in the export.")
    parser.add_argument("--work", default=None, help="Scratch directory (default: a temp dir).")
    parser.add_argument("--json", default=None, help="Write the figures here.")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="multi-gpu-bench-"))
    if not (work / "model").is_dir():
        prepare = [sys.executable, str(REPO / "benchmarks" / "train_bench.py"), "--shape", "1b"]
        subprocess.run([*prepare, "--rows", str(args.rows), "--prepare", str(work)], check=True)
    rows = [launch(n, work, args.global_batch, args.steps) for n in (1, args.gpus)]
    one, many = rows
    report = {
        "rows": rows,
        "speedup": many["tokens_per_s"] / one["tokens_per_s"],
        "scaling_efficiency": many["tokens_per_s"] / (args.gpus * one["tokens_per_s"]),
        "token_count_ratio": many["train_tokens"] / one["train_tokens"],  # ~1: the same data was counted
    }
    print("| GPUs | world size | effective batch | tokens/s | train s | peak GB (rank 0) | train loss |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['gpus']} | {row['world_size']} | {row['effective_batch_size']} | {row['tokens_per_s']:,.0f} | "
            f"{row['train_seconds']:.1f} | {row['peak_allocated_gb_rank0']} | {row['train_loss']:.3f} |"
        )
    print(
        f"speedup {report['speedup']:.2f}x, scaling efficiency {report['scaling_efficiency']:.0%} "
        f"(tokens counted on {args.gpus} GPUs / on 1: {report['token_count_ratio']:.2f})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
