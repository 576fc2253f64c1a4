"""Training recipes: pydantic models per verb, each key declared once with its default and its help.

A recipe groups its keys under plain headings (model, lora, tokenizer, dataset, training,
memory, logging, generation; a verb adds its own section, e.g. `reward`).
`train sft --config recipes/latex-sft.yaml training.epochs=3` loads the file, applies each
`key=value` (values parsed as YAML), then the command's flags, and validates the result with
curate/config.py's one loader: an unknown key is an error, never a silently ignored typo.
Flags, `KEY=VALUE` and the keys listed by `--help` all derive from these fields.
"""

from __future__ import annotations

from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from curate.config import load_recipe as load_recipe  # the one loader, re-exported for the verbs
from curate.config import parse_overrides as parse_overrides
from curate.console import console


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSection(_Section):
    """Which base model: a hub id, a local directory, a `.gguf` file, or an offline alias (`smollm2`)."""

    name: str | None = Field(
        default=None, description="Hub id, local directory, .gguf file, or 'smollm2' (SmolLM2-135M-Instruct, offline)."
    )
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto",
        description="Weights dtype; auto: bf16 on GPUs of compute capability >= 8, fp16 below, fp32 on CPU.",
    )
    trust_remote_code: bool = Field(default=False, description="Run the model repository's own code.")


class LoraSection(_Section):
    """LoRA adapter (PEFT); `enabled: false` trains every weight (full fine-tune)."""

    enabled: bool = Field(default=True, description="Train a LoRA adapter; false: a full fine-tune.")
    r: int = Field(default=16, ge=1, description="LoRA rank.")
    alpha: int = Field(default=32, ge=1, description="LoRA alpha (the update is scaled by alpha / r).")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: str | list[str] = Field(
        default="all-linear", description="Modules that get an adapter: all-linear, or a list of names."
    )
    bias: Literal["none", "all", "lora_only"] = Field(default="none", description="Which biases train.")
    modules_to_save: list[str] | None = Field(
        default=None, description="Modules trained in full and saved with the adapter (e.g. a new head)."
    )


class TokenizerSection(_Section):
    """Tokenizer handling; a missing pad token becomes the eos token."""

    padding_side: Literal["right", "left"] = Field(default="right", description="Side padding goes on.")
    pad_token: str | None = Field(
        default=None, description="Pad token; null: the tokenizer's own, else eos; 'eos': always eos."
    )
    max_length: int | None = Field(
        default=None,
        ge=1,
        description="Max tokens per example; null: the export's recommended max_length, else 1024. "
        "`train reward` leaves out pairs with a longer side.",
    )


class DatasetSection(_Section):
    """The training data: an export directory, a saved HF dataset, or a hub dataset id."""

    path: str | None = Field(default=None, description="Export directory, saved HF dataset or hub dataset id.")
    packing: bool | None = Field(
        default=None,
        description="Pack examples padding-free into max_length rows, each attending only to itself (train sft); "
        "null: on with a CUDA GPU, off on CPU.",
    )
    completion_only_loss: bool | None = Field(
        default=None,
        description="Loss only on what the model writes (the completion of prompt/completion rows); null: on; "
        "text rows: every token. The flag --completion-only-loss/--full-loss sets assistant_only_loss too.",
    )
    assistant_only_loss: bool | None = Field(
        default=None,
        description="Loss on the assistant turns only (conversations, TRL's assistant_only_loss); null: on.",
    )
    default_system_prompt: bool | None = Field(
        default=None,
        description="Let the chat template add its own default system prompt to conversations without one; "
        "null: as the export was built (curate build --default-system-prompt), else no.",
    )
    strict_template: bool = Field(
        default=False, description="Refuse, instead of warning, a template whose special tokens the model lacks."
    )


class TrainingSection(_Section):
    """Optimisation and evaluation (names follow transformers' TrainingArguments)."""

    epochs: float = Field(default=3.0, gt=0, description="Training epochs.")
    max_steps: int = Field(default=-1, description="Stop after this many optimizer steps; > 0 overrides epochs.")
    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field(default="linear", description="LR schedule: linear, cosine, constant, ...")
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0, description="Share of the steps spent warming up.")
    warmup_steps: int = Field(default=0, ge=0, description="Warmup steps; > 0 overrides warmup_ratio.")
    batch_size: int = Field(
        default=8, ge=1, description="Per-device train batch size (`train reward`: pairs, 2 sequences each)."
    )
    eval_batch_size: int | None = Field(default=None, ge=1, description="Per-device eval batch size; null: batch_size.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Batches per optimizer step.")
    optim: str = Field(default="adamw_torch", description="Optimizer (transformers' names, e.g. paged_adamw_32bit).")
    weight_decay: float = Field(default=0.0, ge=0.0, description="Weight decay.")
    max_grad_norm: float = Field(default=1.0, ge=0.0, description="Gradient clipping norm.")
    group_by_length: bool = Field(default=False, description="Batch examples of similar length together.")
    seed: int = Field(default=42, description="Random seed.")
    eval_each_epoch: bool = Field(default=True, description="Evaluate on the test split after every epoch.")
    eval_rows: int | None = Field(
        default=None,
        ge=0,
        description="Test rows evaluated (the first N); 0: none. null: all of them, but a max_steps run "
        "evaluates no more rows than it trains on (at least 100).",
    )
    save_each_epoch: bool = Field(default=True, description="Save a checkpoint after every epoch.")
    keep_best: bool = Field(default=True, description="Reload the checkpoint with the lowest eval loss at the end.")
    save_total_limit: int | None = Field(default=2, ge=1, description="Checkpoints kept on disk; null: all.")


class MemorySection(_Section):
    """Memory savers: bitsandbytes quantization (QLoRA) and gradient checkpointing."""

    quantize: Literal["none", "4bit", "8bit"] = Field(
        default="none", description="Load the base quantized by bitsandbytes (QLoRA); 4bit/8bit need a CUDA GPU."
    )
    quant_type: Literal["nf4", "fp4"] = Field(default="nf4", description="4-bit data type.")
    double_quant: bool = Field(default=False, description="Quantize the quantization constants too.")
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="Compute dtype of a quantized model (auto as model.dtype)."
    )
    gradient_checkpointing: bool = Field(default=True, description="Trade compute for memory.")
    upcast_unquantized: bool = Field(
        default=False,
        description="QLoRA: keep the weights bitsandbytes leaves unquantized (embeddings, norms, lm_head) in fp32, "
        "as peft's prepare_model_for_kbit_training does (+2 bytes each: 2.1 GB on an 8B Llama); false: the "
        "model dtype, as TRL does.",
    )


class SpeedSection(_Section):
    """The GPU fast path (train/speed.py): what each part does and costs is in the README's 'Fast training'."""

    attention: Literal["auto", "varlen", "sdpa", "flex_attention", "eager"] = Field(
        default="auto",
        description="Attention kernel; auto: varlen (flash attention over each packed sequence) when packing, "
        "else sdpa.",
    )
    liger_kernels: bool | None = Field(
        default=None,
        description="Liger's fused RMSNorm, RoPE and SwiGLU kernels; null: on with a CUDA GPU and liger-kernel "
        "installed.",
    )
    bf16_adapters: bool | None = Field(
        default=None,
        description="train sft: keep the LoRA weights in bf16 instead of fp32; null: on when the model trains in bf16 "
        "on a GPU (train reward keeps its trainable weights in fp32).",
    )
    compile: bool = Field(default=False, description="torch.compile the model (a slow first step while it compiles).")
    tokens_per_step: int | None = Field(
        default=None,
        ge=1,
        description="Packed tokens per device and step; null: batch_size x the mean example length, the tokens "
        "an unpacked batch holds.",
    )


class LoggingSection(_Section):
    """Where the run goes and who watches it."""

    output_dir: str | None = Field(default=None, description="Run directory; null: runs/<data name>-<verb>.")
    report_to: Literal["none", "wandb", "tensorboard"] = Field(default="none", description="Experiment tracking.")
    logging_steps: int = Field(default=5, ge=1, description="Log the training loss every this many steps.")
    progress_seconds: float = Field(
        default=30.0,
        ge=0.0,
        description="Seconds between progress lines when the output is not a terminal (a log, CI); 0: every step.",
    )
    push_to_hub: bool = Field(default=False, description="Push the adapter (or model) to the Hub at the end.")
    hub_model_id: str | None = Field(default=None, description="Hub repository to push to.")


class GenerationSection(_Section):
    """Decoding for `train generate` and the sample generations in the run card."""

    num_beams: int = Field(default=1, ge=1, description="Beam search width (1: greedy).")
    max_new_tokens: int = Field(default=64, ge=1, description="Most tokens generated per answer.")
    samples: int = Field(default=3, ge=0, description="Test prompts answered into the run card.")


class BaseRecipe(_Section):
    """The sections every `train` verb shares."""

    model: ModelSection = Field(default_factory=ModelSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    memory: MemorySection = Field(default_factory=MemorySection)
    speed: SpeedSection = Field(default_factory=SpeedSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)


class SFTRecipe(BaseRecipe):
    """`train sft`: supervised fine-tuning with TRL's SFTTrainer."""

    generation: GenerationSection = Field(default_factory=GenerationSection)


def print_recipe(recipe: BaseRecipe, title: str) -> None:
    """Show the resolved recipe (after overrides) at the start of a run."""
    from rich.panel import Panel
    from rich.syntax import Syntax

    text = yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
    console.print(Panel(Syntax(text, "yaml", background_color="default"), title=title, expand=False))
