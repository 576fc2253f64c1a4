"""Multi-GPU training through accelerate (issue 13): the configs in recipes/accelerate/ and DDP's invariants.

On CPU: every config loads with accelerate's own loader (an unknown key is an error there), and two processes
(torchrun, gloo) end with the same adapter on both ranks and the loss logged once. With two CUDA GPUs the DDP
config itself launches `train sft`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from test_distributed import free_port, run_launched

from train.card import read_run_card

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "recipes" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("single_gpu", "NO"), ("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero3", "DEEPSPEED")],
)
def test_accelerate_configs_load(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(CONFIGS / f"{name}.yaml")
    assert config.distributed_type == kind and config.mixed_precision == "no"  # train sets bf16/fp16 itself
    if kind == "FSDP":
        assert (
            config.fsdp_config["fsdp_version"] == 2 and config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        )
    if kind == "DEEPSPEED":
        settings = json.loads((REPO / config.deepspeed_config["deepspeed_config_file"]).read_text())
        assert settings["zero_optimization"]["stage"] == 3 and settings["train_micro_batch_size_per_gpu"] == "auto"


# Runs `train sft` as `python -m train.cli` does, then writes this rank's trained weights for the test to compare.
RANK_WEIGHTS = """
import os, sys
from pathlib import Path
import torch
import train.sft as sft
from train.cli import main

original = sft.train_and_evaluate

def keep_weights(trainer, *args):
    result = original(trainer, *args)
    weights = {n: p.detach().cpu() for n, p in trainer.model.named_parameters() if p.requires_grad}
    torch.save(weights, Path(os.environ["WEIGHTS_DIR"]) / f"rank{os.environ['RANK']}.pt")
    return result

sft.train_and_evaluate = keep_weights
sys.argv[0] = "train"
main()
"""


@pytest.mark.slow
def test_two_processes_end_with_one_adapter_and_log_the_loss_once(
    tiny_lm: Path, latex_export: Path, tmp_path: Path
) -> None:
    script = tmp_path / "rank_weights.py"
    script.write_text(RANK_WEIGHTS)
    out = tmp_path / "run"
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    args = [str(script), "sft", "--data", str(latex_export), "--model", str(tiny_lm), "--out", str(out)]
    args += ["--max-steps", "3", "--batch-size", "2", "--no-gradient-checkpointing", "--lr", "1e-2"]
    args += ["logging.logging_steps=1", "logging.progress_seconds=0", "generation.samples=0"]
    args += ["training.eval_each_epoch=false", "training.save_each_epoch=false"]
    run_launched([*launch, *args], tmp_path, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", WEIGHTS_DIR=str(tmp_path))
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert first.keys() == second.keys() and any("lora" in name for name in first)
    for name, weight in first.items():
        assert torch.equal(weight, second[name]), name  # DDP kept the ranks in step
    from safetensors.torch import load_file

    saved = load_file(out / "adapter_model.safetensors")
    assert len(saved) == len([n for n in first if "lora" in n])  # the one adapter written is the trained one
    card = read_run_card(out)
    steps = [e["step"] for e in card["loss_curve"] if "loss" in e]
    assert steps == [1, 2, 3]  # each step's loss logged once, not once per process


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_ddp_config_launches_sft_on_two_gpus(tiny_lm: Path, latex_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    launch = ["accelerate", "launch", "--config_file", str(CONFIGS / "ddp.yaml"), "--num_processes", "2"]
    launch += ["--main_process_port", str(free_port()), "-m", "train.cli"]
    args = ["sft", "--data", str(latex_export), "--model", str(tiny_lm), "--out", str(out), "--max-steps", "2"]
    args += ["generation.samples=0"]
    run_launched([*launch, *args], tmp_path, NCCL_NVLS_ENABLE="0")
    assert read_run_card(out)["distributed"]["world_size"] == 2
