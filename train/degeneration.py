"""The degeneration check every alignment run reports next to its reward, and the collapse rule.

Reward hacking is the known failure of RL on a learned reward: the original workflow's first PPO
run collapsed to answering "The". The reward alone does not show it, so every run measures its
held-out answers before, during and after training:

- distinct-n = unique n-grams / all n-grams over every answer together (Li et al. 2016), on
  lower-cased whitespace words, so runs on different tokenizers compare; 0.0 when the answers hold
  no n-gram at all (one-word answers have no bigram: the "The" collapse scores distinct-2 = 0);
- mean answer length in words;
- the share of answers identical to another answer (to a different prompt).

A run has collapsed when distinct-2 falls below `min_distinct2_ratio` (0.5) of its starting value,
or when the KL to the reference passes `max_kl` nats per answer token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from train.config import _Section


class DegenerationSection(_Section):
    """Held-out degeneration check (distinct n-grams, length, identical answers) and the collapse guard."""

    prompts: int = Field(default=32, ge=1, description="Held-out prompts (from the test split) answered for the check.")
    max_new_tokens: int = Field(default=64, ge=1, description="Longest held-out answer (greedy), in tokens.")
    check_every: int = Field(
        default=10, ge=0, description="Run the held-out check every N optimizer steps (0: only before and after)."
    )
    stop_on_collapse: bool = Field(
        default=True,
        description="Stop and say why when held-out distinct-2 or the KL cross their limits "
        "(degeneration.min_distinct2_ratio, max_kl).",
    )
    min_distinct2_ratio: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Collapse: held-out distinct-2 below this share of its start value."
    )
    max_kl: float = Field(
        default=1.0, gt=0.0, description="Collapse: mean KL to the reference above this many nats per answer token."
    )


def words(text: str) -> list[str]:
    """Lower-cased whitespace words: the unit of the n-gram counts (tokenizer-independent)."""
    return text.lower().split()


def distinct_n(answers: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over all answers together (0.0 when there is no n-gram)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for answer in answers:
        tokens = words(answer)
        grams.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def identical_share(answers: Sequence[str]) -> float:
    """Share of answers whose (whitespace-normalised) text equals at least one other answer's."""
    if not answers:
        return 0.0
    counts = Counter(" ".join(words(a)) for a in answers)
    return sum(counts[" ".join(words(a))] > 1 for a in answers) / len(answers)


def degeneration_report(answers: Sequence[str], rewards: Sequence[float] | None = None) -> dict[str, Any]:
    """The check on one set of answers: distinct-1/2, mean length in words, identical share (+ mean reward)."""
    report: dict[str, Any] = {
        "answers": len(answers),
        "distinct_1": round(distinct_n(answers, 1), 4),
        "distinct_2": round(distinct_n(answers, 2), 4),
        "mean_words": round(sum(len(words(a)) for a in answers) / max(len(answers), 1), 2),
        "identical_share": round(identical_share(answers), 4),
    }
    if rewards is not None:
        report["mean_reward"] = round(sum(rewards) / max(len(rewards), 1), 4)
    return report


def collapse_reason(
    start: dict[str, Any] | None, now: dict[str, Any] | None, kl_per_token: float | None, limits: DegenerationSection
) -> str | None:
    """Why the run has collapsed (one line), or None: distinct-2 below the ratio of its start, or KL past the limit."""
    if kl_per_token is not None and kl_per_token > limits.max_kl:
        return f"KL to the reference {kl_per_token:.3f} nats/token passed the limit {limits.max_kl:g}"
    if start is not None and now is not None and start["distinct_2"] > 0:
        floor = limits.min_distinct2_ratio * start["distinct_2"]
        if now["distinct_2"] < floor:
            return (
                f"held-out distinct-2 fell to {now['distinct_2']:.3f}, below {limits.min_distinct2_ratio:g} x its "
                f"start {start['distinct_2']:.3f} (mean answer {now['mean_words']:g} words, "
                f"{now['identical_share']:.0%} identical)"
            )
    return None
