"""Split the prompt two whole conversations share off their answers, with TRL's `extract_prompt`.

HH-RLHF stores each side of a pair as the whole conversation (see curate/transcripts.py); the prompt
is their shared start, up to the first turn where they differ, which must be an assistant turn.
"""

from __future__ import annotations

from typing import ClassVar

from curate.schema import Record
from curate.steps.base import FilterStep


class ExtractPrompt(FilterStep):
    """Rows without a `prompt` get the turns their chosen and rejected conversations share as the prompt."""

    name: ClassVar[str] = "extract_prompt"

    def __init__(self) -> None:
        self.implicit_rows = 0  # rows that had no prompt

    def listed(self) -> bool:
        """Listed in the manifest only when some row had no prompt (the pipeline adds it to every preference build)."""
        return self.implicit_rows > 0

    def filter(self, record: Record) -> bool | tuple[bool, str]:
        from trl.data_utils import extract_prompt

        data = record.data
        if "prompt" in data:
            return True
        self.implicit_rows += 1
        # Identical conversations were dropped by normalize; extract_prompt needs them to differ somewhere.
        split = extract_prompt({"chosen": data["chosen"], "rejected": data["rejected"]})
        if not split["prompt"]:
            return False, "the two conversations share no prompt (they differ from the first turn)"
        if not split["chosen"] or not split["rejected"] or split["chosen"][0] == split["rejected"][0]:
            return False, "one conversation is the start of the other: no two answers to compare"
        if split["chosen"][0]["role"] != "assistant" or split["rejected"][0]["role"] != "assistant":
            return False, "the conversations part at a user turn, not at an answer"
        data.update(split)
        return True
