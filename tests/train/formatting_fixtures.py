"""Tokenizers and tiny models for the formatting tests: the real SmolLM2 tokenizer and a Llama-2-style one built in code.

The Llama-2-style tokenizer is a byte-level BPE trained here on a few sentences: it adds `<s>` (BOS) itself,
ends with `</s>`, has Llama-2's Hugging Face chat template and no ChatML tokens, so it exercises what
SmolLM2's cannot (a BOS added by the tokenizer, a template whose special tokens it lacks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Llama-2-chat's Hugging Face chat template (meta-llama/Llama-2-7b-chat-hf), without its role-order check.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# Rows in two shapes: Stanford Alpaca's (instruction, input, output) and ours (prompt, response, system).
ROWS: list[dict[str, Any]] = [
    {"instruction": "Add the numbers.", "input": "2, 2", "output": "The sum is 4."},
    {"prompt": "Name a prime number.", "response": "Seven is prime.", "system": "Answer in one sentence."},
    {"prompt": "two plus two", "response": "2 + 2 = 4"},
]
ANSWERS = [row.get("output") or row["response"] for row in ROWS]
CORPUS = [json.dumps(ROWS), "Convert English to LaTeX English: LaTeX: ### Instruction: ### Input: ### Response:"] * 20


def llama_like_tokenizer() -> Any:
    """A byte-level BPE with Llama-2's specials (<s> added as BOS, </s> as EOS) and its chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(CORPUS, trainer)
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    return tokenizer


def save_tiny_lm(tokenizer: Any, path: Path) -> Path:
    """A randomly initialised 2-layer Llama for `tokenizer` (its own BOS/EOS ids), saved with it like a hub checkpoint."""
    from reward_fixtures import save_llama

    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return save_llama(path, tokenizer, max_position_embeddings=256, tie_word_embeddings=True, **ids)


def write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows as JSON Lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
