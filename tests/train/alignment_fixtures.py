"""A rigged reward for the alignment tests (ppo, rloo, grpo): it pays for one word, so a policy can hack it."""

from __future__ import annotations


class PaysForGood:
    """A rigged reward: 10 x the share of the answer's words that are "good" (one token of the vocabulary)."""

    def score(self, questions: list[str], answers: list[str]) -> list[float]:
        return [sum(w == "good" for w in a.split()) / max(len(a.split()), 1) * 10 for a in answers]
