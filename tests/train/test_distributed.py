"""`train sft` under torchrun: two processes, one run directory and card, the progress shown once.

On CPU the two processes train with DDP over gloo; with two CUDA GPUs the same test runs over NCCL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from train.card import read_run_card

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_launched(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a launcher (torchrun, accelerate launch) with this checkout first on PYTHONPATH (the caller's entries
    kept, e.g. packages carried to a GPU machine) and `env` set; fail the test with its output if it fails."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        command, env={**os.environ, "PYTHONPATH": path, **env}, capture_output=True, text=True, timeout=600, cwd=cwd
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs"),
            ],
        ),
    ],
)
def test_sft_under_torchrun_writes_one_card_and_shows_progress_once(
    device: str, tiny_lm: Path, latex_export: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    args = ["-m", "train.cli", "sft", "--data", str(latex_export), "--model", str(tiny_lm), "--out", str(out)]
    args += ["--max-steps", "2", "--batch-size", "4", "--grad-accum", "2", "--no-gradient-checkpointing"]
    args += ["logging.progress_seconds=0", "generation.samples=0"]
    env = {"OMP_NUM_THREADS": "1"} | ({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {})
    result = run_launched([*launch, *args], tmp_path, **env)
    card = read_run_card(out)
    assert card["distributed"] == {
        "world_size": 2,
        "per_device_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "effective_batch_size": 16,  # 4 per device x 2 accumulated x 2 processes
    }
    assert card["metrics"]["global_step"] == 2
    for line in ("train sft · step 2/2 (100%)", "eval at step 2", "train sft done:", f"run written to {out}"):
        assert result.stdout.count(line) == 1, (line, result.stdout)
    assert result.stdout.count("train sft · command line") == 1  # the recipe, printed once
