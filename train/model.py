"""Load a base model and tokenizer for training: resolve, quantize, add LoRA. Shared by every verb.

`--model` is a hub id, a local directory, a `.gguf` file or an offline alias (`smollm2`). A
GGUF-loaded model is marked quantized by transformers and refuses training and
`save_pretrained`, so it is materialized once into the model cache (`curate.hub.materialize_gguf`),
which every later load reuses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from curate.errors import CurateError
from curate.hub import materialize_gguf, resolve_model
from train.config import LoraSection, MemorySection, ModelSection

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_dtype(spec: str) -> torch.dtype:
    """`auto` = bf16 on a GPU with compute capability >= 8, fp16 on older GPUs, fp32 on CPU."""
    if spec != "auto":
        return DTYPES[spec]
    if not torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8 else torch.float16


def model_path(name: str) -> str:
    """A path or hub id `from_pretrained` can load without `gguf_file=` (GGUF is materialized first)."""
    ref = resolve_model(name)
    if ref.gguf_file:
        return str(materialize_gguf(ref))
    local = Path(ref.path)
    looks_local = local.is_absolute() or name.startswith((".", "~")) or local.exists() or name.count("/") > 1
    if looks_local and not local.is_dir():
        raise CurateError(f"--model {name}: no such model directory (give a hub id, a local directory or a .gguf file)")
    return ref.path


def load_tokenizer(name: str, padding_side: str = "right", pad_token: str | None = None) -> Any:
    """The model's tokenizer with a pad token (`pad_token`; eos when it is "eos" or the tokenizer has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path(name))
    except (OSError, ValueError) as exc:
        raise CurateError(f"cannot load the tokenizer of '{name}': {str(exc).splitlines()[0]}") from None
    if pad_token == "eos" or (pad_token is None and tokenizer.pad_token is None):
        tokenizer.pad_token = tokenizer.eos_token
    elif pad_token is not None:
        tokenizer.pad_token = pad_token
    tokenizer.padding_side = padding_side
    return tokenizer


def quantization_config(memory: MemorySection) -> Any:
    """BitsAndBytesConfig for `quantize: 4bit|8bit` (None for `none`); 4/8-bit need a CUDA GPU."""
    if memory.quantize == "none":
        return None
    if not torch.cuda.is_available():
        raise CurateError(
            f"--quantize {memory.quantize}: bitsandbytes {memory.quantize} quantization needs a CUDA GPU and none "
            "was found; use --quantize none on this machine"
        )
    from transformers import BitsAndBytesConfig

    if memory.quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=memory.quant_type,
        bnb_4bit_use_double_quant=memory.double_quant,
        bnb_4bit_compute_dtype=resolve_dtype(memory.compute_dtype),
    )


HEADS = ("score", "classifier")  # what AutoModelForSequenceClassification adds on top of a base model


def from_pretrained(auto_class: Any, path: str, **kwargs: Any) -> Any:
    """`auto_class.from_pretrained`, without transformers' load report for a head the class adds on purpose.

    A sequence-classification model built from a causal LM checkpoint has no `score` weights and
    leaves `lm_head` unused; transformers prints that as a MISSING/UNEXPECTED table (with raw ANSI
    codes) although the head is the part `train reward` trains, or `train score` loads from the
    adapter right after. Any other missing weight is still reported, in one line.
    """
    import logging

    def not_the_report(record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()

    # A filter, not a higher level: transformers 5 runs an extra tensor-parallel check (with its own
    # warning) when this logger's level is raised.
    report = logging.getLogger("transformers.modeling_utils")
    report.addFilter(not_the_report)
    try:
        model, info = auto_class.from_pretrained(path, output_loading_info=True, **kwargs)
    finally:
        report.removeFilter(not_the_report)
    missing = [key for key in info.get("missing_keys", ()) if key.split(".")[0] not in HEADS]
    if missing:
        from rich.markup import escape

        from curate.console import err_console

        shown = ", ".join(sorted(missing)[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        err_console.print(
            f"[yellow]warning:[/] {escape(path)}: {len(missing)} weights not in the checkpoint, "
            f"initialised at random: {escape(shown)}",
            highlight=False,
            soft_wrap=True,
        )
    return model


def load_model(model: ModelSection, memory: MemorySection, auto_class: Any = None, **kwargs: Any) -> Any:
    """Load the base model (quantized when asked) ready for LoRA training.

    `auto_class` defaults to AutoModelForCausalLM (reward models pass AutoModelForSequenceClassification
    and `num_labels=1` in `kwargs`, `train sft` its `attn_implementation`). A quantized model is frozen; with
    `memory.upcast_unquantized` it goes through peft's `prepare_model_for_kbit_training` (fp32 norms, embeddings, head).
    """
    from transformers import AutoModelForCausalLM

    if not model.name:
        raise CurateError("no model: pass --model NAME (hub id, local directory, .gguf file or 'smollm2')")
    auto_class = auto_class or AutoModelForCausalLM
    bnb = quantization_config(memory)
    path = model_path(model.name)
    load_kwargs: dict[str, Any] = {"dtype": resolve_dtype(model.dtype), "trust_remote_code": model.trust_remote_code}
    if bnb is not None:
        load_kwargs["quantization_config"] = bnb
        # Quantized weights must live on the GPU; under accelerate/torchrun each process takes its own.
        load_kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    try:
        loaded = from_pretrained(auto_class, path, **load_kwargs, **kwargs)
    except (OSError, ValueError) as exc:
        raise CurateError(f"cannot load model '{model.name}': {str(exc).splitlines()[0]}") from None
    if bnb is not None and memory.upcast_unquantized:
        from peft import prepare_model_for_kbit_training

        loaded = prepare_model_for_kbit_training(
            loaded,
            use_gradient_checkpointing=memory.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif bnb is not None:  # frozen as prepare_model_for_kbit_training leaves it, without its fp32 copies
        loaded.requires_grad_(False)
    if loaded.config.pad_token_id is None and loaded.config.eos_token_id is not None:
        eos = loaded.config.eos_token_id
        loaded.config.pad_token_id = eos[0] if isinstance(eos, list) else eos
    return loaded


def lora_config(lora: LoraSection, task_type: str = "CAUSAL_LM") -> Any:
    """The PEFT LoraConfig (None when LoRA is off); pass it to a TRL trainer as `peft_config`."""
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias=lora.bias,
        task_type=task_type,
        modules_to_save=lora.modules_to_save,
    )


def upcast_trainable(model: Any) -> None:
    """Keep trainable weights (LoRA, the score head, or all of a full fine-tune) in fp32 under mixed precision.

    Autocast still computes in bf16/fp16; a half-precision head loses small updates, and fp16 gradients
    cannot be unscaled at all.
    """
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()


def describe(model: Any) -> dict[str, Any]:
    """Parameter counts and dtype of a (possibly PEFT-wrapped) model, for the run card.

    A PEFT model counts with PEFT's own method, which unpacks bitsandbytes' 4-bit weights (two per byte);
    a plain `numel()` would report about half the parameters of a QLoRA model.
    """
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable, "dtype": str(next(model.parameters()).dtype)}
