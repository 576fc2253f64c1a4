"""`--inspect N`: print the first N examples exactly as the trainer receives them, with counts, then stop.

Shared by the `train` verbs (sft, reward; dpo renders pairs like reward): the ids come from the same
`curate.render.Renderer` the verb feeds its TRL trainer with, and the counts apply that trainer's rules
(SFTTrainer: truncate to max_length keeping the start, drop rows with no loss token left; RewardTrainer:
drop pairs with a side over max_length). No model is loaded.
"""

from __future__ import annotations

from curate.console import console
from curate.inspect import inspect_splits
from curate.render import Renderer
from train.data import TrainData


def inspect_data(data: TrainData, renderer: Renderer, verb: str, max_length: int | None, limit: int) -> None:
    """Show the first `limit` train examples of `train <verb>` and the counts of every split."""
    title = f"train {verb} · {data.name} · first {limit} train examples, as the trainer receives them"
    inspect_splits(console, data.dataset, renderer, verb in ("reward", "dpo"), max_length, limit, title)
