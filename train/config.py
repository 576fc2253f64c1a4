"""Training recipes: pydantic models per verb, loaded from YAML, overridden torchtune-style.

A recipe groups its keys under plain headings (model, lora, tokenizer, dataset, training,
memory, logging, generation). `train sft --config recipes/latex-sft.yaml training.epochs=3`
loads the file, applies each `key=value` (values parsed as YAML), then the command's flags,
and validates the result: an unknown key is an error, never a silently ignored typo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.console import console
from curate.errors import CurateError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSection(_Section):
    """Which base model: a hub id, a local directory, a `.gguf` file, or an offline alias (`smollm2`)."""

    name: str | None = None
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = (
        "auto"  # auto: bf16 on GPUs with capability >= 8, else fp16; fp32 on CPU
    )
    trust_remote_code: bool = False


class LoraSection(_Section):
    """LoRA adapter (PEFT). `enabled: false` trains every weight (full fine-tune)."""

    enabled: bool = True
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    bias: Literal["none", "all", "lora_only"] = "none"
    modules_to_save: list[str] | None = None


class TokenizerSection(_Section):
    """Tokenizer handling; a missing pad token becomes the eos token."""

    padding_side: Literal["right", "left"] = "right"
    pad_token: str | None = None  # None: the tokenizer's own, eos when it has none; "eos": always eos
    max_length: int | None = Field(default=None, ge=1)  # None: the export's recommended max_length, else 1024


class DatasetSection(_Section):
    """The training data: an export directory, a saved HF dataset, or a hub dataset id."""

    path: str | None = None
    packing: bool = False
    completion_only_loss: bool | None = Field(
        default=None, description="Loss on the completion only (prompt/completion rows); None: on. text rows: all."
    )
    assistant_only_loss: bool | None = Field(
        default=None,
        description="Loss on the assistant turns only (conversations, TRL's assistant_only_loss); None: on.",
    )
    default_system_prompt: bool | None = Field(
        default=None,
        description="Let the chat template add its own default system prompt to conversations without one; "
        "None: as the export was built (curate build --default-system-prompt), else no.",
    )
    strict_template: bool = Field(
        default=False, description="Refuse, instead of warning, a template whose special tokens the model lacks."
    )


class TrainingSection(_Section):
    """Optimisation and evaluation (names follow transformers' TrainingArguments)."""

    epochs: float = Field(default=3.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = Field(default=2e-4, gt=0)
    lr_scheduler: str = "linear"
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    warmup_steps: int = Field(default=0, ge=0)
    batch_size: int = Field(default=8, ge=1)
    eval_batch_size: int | None = Field(default=None, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    optim: str = "adamw_torch"
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float = Field(default=1.0, ge=0.0)
    group_by_length: bool = False
    seed: int = 42
    eval_each_epoch: bool = True  # eval on the test split after every epoch (when the data has one)
    save_each_epoch: bool = True
    keep_best: bool = True  # reload the checkpoint with the lowest eval loss at the end
    save_total_limit: int | None = Field(default=2, ge=1)


class MemorySection(_Section):
    """Memory savers: bitsandbytes quantization (QLoRA) and gradient checkpointing."""

    quantize: Literal["none", "4bit", "8bit"] = "none"
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = False
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    gradient_checkpointing: bool = True


class LoggingSection(_Section):
    """Where the run goes and who watches it."""

    output_dir: str | None = None  # default: runs/<data name>-<verb>
    report_to: Literal["none", "wandb", "tensorboard"] = "none"
    logging_steps: int = Field(default=5, ge=1)
    push_to_hub: bool = False
    hub_model_id: str | None = None


class GenerationSection(_Section):
    """Decoding for `train generate` and the sample generations in the run card."""

    num_beams: int = Field(default=1, ge=1)
    max_new_tokens: int = Field(default=64, ge=1)
    samples: int = Field(default=3, ge=0)  # test prompts generated into the run card


class BaseRecipe(_Section):
    """The sections every `train` verb shares."""

    model: ModelSection = Field(default_factory=ModelSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    memory: MemorySection = Field(default_factory=MemorySection)
    logging: LoggingSection = Field(default_factory=LoggingSection)


class SFTRecipe(BaseRecipe):
    """`train sft`: supervised fine-tuning with TRL's SFTTrainer."""

    generation: GenerationSection = Field(default_factory=GenerationSection)


R = TypeVar("R", bound=BaseRecipe)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`training.epochs=3 lora.r=8` as {dotted key: YAML-parsed value}."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or key.startswith("-"):
            raise CurateError(f"overrides are KEY=VALUE (e.g. training.epochs=3), got '{pair}'")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            overrides[key.strip()] = value
    return overrides


def load_recipe(cls: type[R], path: str | Path | None, *layers: dict[str, Any]) -> R:
    """Validate a recipe: the YAML file (if any), then each layer of dotted overrides (None = unset)."""
    data: dict[str, Any] = {}
    origin = "command line"
    if path is not None:
        origin = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise CurateError(f"{path}: cannot read the recipe ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise CurateError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(raw, dict):
            raise CurateError(f"{path}: a recipe is a mapping of sections to keys")
        data = raw
    for layer in layers:
        for dotted, value in layer.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise CurateError(f"{origin}: '{dotted}': '{part}' is not a section")
                node = child
            node[leaf] = value
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise CurateError(f"{origin}: '{key}': {message}") from None


def print_recipe(recipe: BaseRecipe, title: str) -> None:
    """Show the resolved recipe (after overrides) at the start of a run."""
    from rich.panel import Panel
    from rich.syntax import Syntax

    text = yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
    console.print(Panel(Syntax(text, "yaml", background_color="default"), title=title, expand=False))
