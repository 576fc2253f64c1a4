"""The GPU fast path of `train sft`: padding-free packing with per-sequence attention, Liger kernels, bf16 adapters.

What each part does and costs (measured: BENCHMARKS.md, "train sft fast path"):

- **Packing** (`dataset.packing`): TRL packs the tokenized examples best-fit into rows of max_length and its
  collator concatenates a batch into one padding-free row, with `position_ids` restarting at every example and
  the boundaries as `cu_seq_lens_q/k`. No pad token is computed; tokens per step stay what an unpacked batch
  holds (`packed_rows`), so the learning rate and steps per epoch keep their meaning.
- **varlen attention** (`speed.attention`): each packed example attends only to itself, through PyTorch's own
  flash-attention varlen kernel (`torch.nn.attention.varlen`, CUDA) fed with those boundaries: no mask, no
  attention across neighbours, cost of each example's own length. Off CUDA (or for a batch that is not
  packed) the same function runs SDPA per example, which is what the CPU test compares with unpacked training.
- **Liger kernels** (`speed.liger_kernels`): fused RMSNorm, RoPE and SwiGLU through TRL's `use_liger_kernel`
  (TRL's own chunked LM head already computes the loss without materializing the logits).
- **bf16 adapters** (`speed.bf16_adapters`): LoRA weights in bf16 as TRL does for QLoRA (no per-step casts).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

from train.config import BaseRecipe

VARLEN = "curatrain_varlen"  # the attention implementation name registered with transformers


@dataclass(frozen=True)
class FastPath:
    """The fast-path settings of one run, `auto`/null keys resolved for the machine it runs on."""

    packing: bool
    attention: str  # a transformers attn_implementation
    liger_kernels: bool
    bf16_adapters: bool
    compile: bool


def liger_installed() -> bool:
    """liger-kernel importable (it needs Triton and a GPU to run)."""
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def fast_path(recipe: BaseRecipe, packs: bool = True) -> FastPath:
    """Resolve the recipe's speed keys: packing, varlen attention, Liger and bf16 adapters default on with a CUDA GPU.

    `packs`: whether the verb can pack its rows (`train sft`); a verb that cannot (reward: pairs) gets the rest.
    """
    from train.model import resolve_dtype

    on_gpu = torch.cuda.is_available()
    speed = recipe.speed
    packing = packs and (on_gpu if recipe.dataset.packing is None else recipe.dataset.packing)
    attention = speed.attention if speed.attention != "auto" else VARLEN if packing else "sdpa"
    if attention == "varlen":
        attention = VARLEN
    liger = (on_gpu and liger_installed()) if speed.liger_kernels is None else speed.liger_kernels
    dtype = resolve_dtype(recipe.memory.compute_dtype if recipe.memory.quantize != "none" else recipe.model.dtype)
    bf16 = on_gpu and dtype == torch.bfloat16 if speed.bf16_adapters is None else speed.bf16_adapters
    if attention == VARLEN:
        register_varlen_attention()
    return FastPath(packing, attention, liger, bf16, speed.compile)


def packed_rows(recipe: BaseRecipe, mean_tokens: float, max_length: int) -> int:
    """Packed rows of max_length per device and step: `speed.tokens_per_step`, else the tokens of an unpacked
    batch (batch_size x the mean example length), at least one row."""
    tokens = recipe.speed.tokens_per_step or recipe.training.batch_size * mean_tokens
    return max(1, round(tokens / max_length))


def config_kwargs(path: FastPath) -> dict[str, Any]:
    """The TrainingArguments/SFTConfig keywords of the fast path (packing's own are the verb's)."""
    kwargs: dict[str, Any] = {"use_liger_kernel": path.liger_kernels, "torch_compile": path.compile}
    if path.liger_kernels:
        # TRL computes the loss with its own chunked LM head; Liger's fused cross-entropy would replace it.
        kwargs["liger_kernel_config"] = {"fused_linear_cross_entropy": False, "cross_entropy": False}
        # TRL 1.16 marks use_liger_kernel deprecated in favour of Hub kernels, which cannot be fetched offline.
        warnings.filterwarnings("ignore", message=".*use_liger_kernel=True` is deprecated.*", category=FutureWarning)
    return kwargs


def adapters_to_bf16(model: Any) -> None:
    """Cast the trainable (LoRA) weights to bf16; call before the optimizer is built."""
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.float32:
            param.data = param.data.to(torch.bfloat16)


# -- attention over packed sequences ------------------------------------------------------------


@cache
def register_varlen_attention() -> None:
    """Register `curatrain_varlen` with transformers (attention function and its mask: padding masks only)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(VARLEN, varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN, padding_mask_only)


def padding_mask_only(attention_mask: Any = None, **kwargs: Any) -> Any:
    """The 4D mask SDPA needs when there is padding (eval, generation); none otherwise: a packed row's boundaries
    travel as `cu_seq_lens_q`, not as an O(length^2) mask."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(attention_mask=attention_mask, **kwargs)


def varlen_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: a packed row (batch 1, no mask) attends within each sequence; anything
    else goes to SDPA. `query`: (1, heads, tokens, dim) -> (1, tokens, heads, dim)."""
    cu = kwargs.get("cu_seq_lens_q")
    if attention_mask is None and query.shape[0] == 1 and query.shape[2] > 1:
        if cu is None:  # packed position_ids without the collator's boundaries
            cu = boundaries_from_positions(kwargs.get("position_ids"), query.shape[2])
    else:
        cu = None
    if cu is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling)
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, dim)
    if q.is_cuda and varlen_kernel() is not None and dropout == 0.0:
        from transformers.integrations.flash_attention import get_target_dtype

        # fp32 activations (norms upcast by memory.upcast_unquantized): flash runs in bf16/fp16, as transformers' does
        target = get_target_dtype(q, module)
        if target is not None:
            q, k, v = (t.to(target) for t in (q, k, v))
        max_length = kwargs.get("max_length_q") or int((cu[1:] - cu[:-1]).max())
        out = flash_varlen(q, k, v, cu.to(device=q.device, dtype=torch.int32), int(max_length), scaling)
        out = out.to(query.dtype)
    else:
        out = sdpa_per_sequence(q, k, v, cu, scaling, dropout)
    return out.unsqueeze(0), None


def boundaries_from_positions(position_ids: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """Cumulative sequence starts of a packed row from its position ids (None when it holds one sequence)."""
    if position_ids is None:
        return None
    starts = (position_ids.reshape(-1)[:length] == 0).nonzero().flatten()
    if len(starts) <= 1:
        return None
    end = torch.tensor([length], device=starts.device, dtype=starts.dtype)
    return torch.cat([starts, end]).to(torch.int32)


@cache
def varlen_kernel() -> Any:
    """PyTorch's flash-attention varlen function (torch >= 2.10), or None."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


@cache
def _varlen_parameters() -> frozenset[str]:
    return frozenset(inspect.signature(varlen_kernel()).parameters)


def flash_varlen(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_length: int, scaling: float | None
) -> torch.Tensor:
    """Causal flash attention within each [cu[i], cu[i+1]) slice; (tokens, heads, dim) in and out."""
    params = _varlen_parameters()
    kwargs: dict[str, Any] = {"scale": scaling}
    # torch 2.11 takes window_size=(-1, 0) for causal, 2.10 is_causal=True
    kwargs.update({"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True})
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:  # grouped-query attention by repeating the key/value heads
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
    return varlen_kernel()(q, k, v, cu, cu, max_length, max_length, **kwargs)


def sdpa_per_sequence(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, scaling: float | None, dropout: float
) -> torch.Tensor:
    """The same attention as `flash_varlen`, one SDPA call per sequence (CPU, or no varlen kernel)."""
    import torch.nn.functional as F

    bounds = cu.tolist()
    outs = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end <= start:
            continue
        qs, ks, vs = (t[start:end].transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, heads, length, dim)
        out = F.scaled_dot_product_attention(
            qs, ks, vs, is_causal=True, scale=scaling, dropout_p=dropout, enable_gqa=ks.shape[1] != qs.shape[1]
        )
        outs.append(out[0].transpose(0, 1))
    return torch.cat(outs)
