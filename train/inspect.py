"""`--inspect N`: print the first N examples exactly as the trainer receives them, with counts, then stop.

Shared by the `train` verbs (sft, reward; dpo renders pairs like reward): the ids come from the same
`curate.render.Renderer` the verb feeds its TRL trainer with, and the counts apply that trainer's rules
(SFTTrainer: truncate to max_length keeping the start, drop rows with no loss token left; RewardTrainer:
drop pairs with a side over max_length). Online RL (ppo, rloo, grpo) shows its prompts, tokenized as
generation prompts the policy. No model is loaded.
"""

from __future__ import annotations

from typing import Any

from curate.console import console
from curate.inspect import inspect_splits, token_text
from curate.render import Example, Renderer
from train.data import TrainData


def inspect_data(data: TrainData, renderer: Renderer, verb: str, max_length: int | None, limit: int) -> None:
    """Show the first `limit` train examples of `train <verb>` and the counts of every split."""
    title = f"train {verb} · {data.name} · first {limit} train examples, as the trainer receives them"
    inspect_splits(console, data.dataset, renderer, verb in ("reward", "dpo"), max_length, limit, title)


def inspect_prompts(data: TrainData, prompt_ids: list[list[int]], tokenizer: Any, verb: str, limit: int) -> None:
    """Online RL (ppo, rloo, grpo): the first `limit` prompts as the policy is prompted with them, and their counts."""
    plain = not console.is_terminal or console.no_color
    console.rule(f"train {verb} · {data.name} · first {limit} prompts, as the policy receives them")
    console.print("the policy writes the answer after each prompt; special tokens " + ("⟨…⟩" if plain else "reversed"))
    for i, ids in enumerate(prompt_ids[:limit], 1):
        console.print(f"#{i} · {len(ids)} tokens", style="bold", highlight=False)
        example = Example(list(ids), [0] * len(ids))
        console.print(token_text(example, tokenizer, None, plain, loss=False), highlight=False, soft_wrap=True)
    console.rule("counts")
    lengths = [len(ids) for ids in prompt_ids]
    console.print(
        f"train: {len(lengths):,} distinct prompts · {sum(lengths):,} tokens · longest {max(lengths, default=0)}",
        highlight=False,
        soft_wrap=True,
    )
