"""Tiny real models and data for the reward tests: a word-level tokenizer and a 2-layer Llama built in code.

The tokenizer has no pad token on purpose (like most base LMs), so the pad-token handling is exercised.
The toy preference set is separable by one word: chosen answers say good/great/fine, rejected ones
bad/awful/wrong, with random filler so lengths differ inside a batch.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

GOOD = ["good", "great", "fine", "correct"]
BAD = ["bad", "awful", "wrong", "rude"]
FILLER = ["the", "answer", "is", "really", "quite", "so", "very", "here", "a", "b", "c", "x", "y", "z"]
TOPICS = ["eggs", "rust", "python", "seasons", "vim", "tea", "bread", "stars"]
SPECIAL = ["<unk>", "<eos>", "<|user|>", "<|assistant|>", "?", ":", "how", "do", "i", "make"]
VOCAB = SPECIAL + GOOD + BAD + FILLER + TOPICS

# A minimal chat template, for the conversational (messages) path.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' <eos> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)


def tiny_tokenizer(chat_template: bool = False) -> Any:
    """Word-level fast tokenizer over VOCAB (unknown words -> <unk>), eos but no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_llama(path: Path, tokenizer: Any, seed: int = 0, **config: Any) -> Path:
    """A randomly initialised small Llama causal LM (2 layers, width 32) for `tokenizer` (eos id 1), saved with it
    like a hub checkpoint; `config` overrides LlamaConfig keys."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    shape = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    )
    settings = {"max_position_embeddings": 128, "eos_token_id": 1, "bos_token_id": 1, **shape, **config}
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **settings)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_base(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama causal LM + the word-level tokenizer, saved like a hub checkpoint."""
    return save_llama(path, tiny_tokenizer(), seed, pad_token_id=None)


def toy_pairs(n: int, seed: int = 0, margin: bool = True) -> list[dict[str, Any]]:
    """`n` separable preference pairs (prompt, chosen, rejected[, margin, chosen_rating, rejected_rating])."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        filler = " ".join(rng.choices(FILLER, k=rng.randint(0, 6)))
        row: dict[str, Any] = {
            "prompt": f"how do i make {rng.choice(TOPICS)} ? ",
            "chosen": f"{filler} {rng.choice(GOOD)} {TOPICS[i % len(TOPICS)]}".strip(),
            "rejected": f"{rng.choice(BAD)} {filler}".strip(),
        }
        if margin:
            good, bad = rng.randint(7, 10), rng.randint(1, 4)
            row.update(margin=float(good - bad) / 4, chosen_rating=float(good), rejected_rating=float(bad))
        rows.append(row)
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows as JSON Lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_export(rows: list[dict[str, Any]], out: Path, kind: str = "preference") -> Path:
    """A real export directory made by `curate build` from rows (80/20 split)."""
    from curate.pipeline import build
    from curate.recipe import BuildRecipe

    source = write_jsonl(rows, out.parent / f"{out.name}.jsonl")
    build(BuildRecipe(inputs=[str(source)], out=str(out), kind=kind, split={"test_size": 0.25, "seed": 0}), quiet=True)
    return out
