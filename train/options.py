"""Command-line options shared by the `train` verbs, declared once so their flags and help agree."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Model = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Hub id, local directory, .gguf file, or 'smollm2' (offline)."),
]
Epochs = Annotated[Optional[float], typer.Option(help="Training epochs.")]
MaxSteps = Annotated[Optional[int], typer.Option(help="Stop after this many optimizer steps (overrides epochs).")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate.")]
GradAccum = Annotated[Optional[int], typer.Option(help="Gradient accumulation steps.")]
Quantize = Annotated[Optional[str], typer.Option(help="4bit | 8bit | none (bitsandbytes; 4/8-bit need a CUDA GPU).")]
LoraR = Annotated[Optional[int], typer.Option(help="LoRA rank.")]
LoraAlpha = Annotated[Optional[int], typer.Option(help="LoRA alpha.")]
LoraDropout = Annotated[Optional[float], typer.Option(help="LoRA dropout.")]
GradientCheckpointing = Annotated[
    Optional[bool],
    typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Trade compute for memory."),
]
Seed = Annotated[Optional[int], typer.Option(help="Random seed.")]
ReportTo = Annotated[Optional[str], typer.Option(help="none | wandb | tensorboard.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in the run directory.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")]
