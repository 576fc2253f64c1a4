"""Anthropic HH-RLHF's transcript convention: `\\n\\nHuman: …\\n\\nAssistant: …` as chat turns.

HH-RLHF (and sets built like it) stores each side of a preference pair as one string holding the
whole conversation. `transcript_turns` turns such a string into TRL's conversational messages;
the prompt the two sides share is then split off with `trl.data_utils.extract_prompt`
(curate/steps/implicit_prompt.py).
"""

from __future__ import annotations

import re

# A speaker marker: at the very start (after blank space) or after a blank line, as HH writes them.
_MARKER = re.compile(r"(?:\A\s*|\n\n)(Human|Assistant):[ \t]?")
ROLES = {"Human": "user", "Assistant": "assistant"}


def is_transcript(text: str) -> bool:
    """True if `text` is written as Human:/Assistant: turns from its first characters on."""
    first = _MARKER.search(text)
    return first is not None and first.start() == 0


def transcript_turns(text: str) -> list[dict[str, str]]:
    """The turns of a Human:/Assistant: transcript as [{role, content}] (contents stripped); ValueError if not one."""
    if not is_transcript(text):
        raise ValueError("not a Human:/Assistant: transcript (it must start with 'Human:' or '\\n\\nHuman:')")
    markers = list(_MARKER.finditer(text))
    return [
        {
            "role": ROLES[marker.group(1)],
            "content": text[marker.end() : following.start() if following else None].strip(),
        }
        for marker, following in zip(markers, [*markers[1:], None], strict=True)
    ]


def prompt_turns(text: str) -> list[dict[str, str]]:
    """A transcript that ends with an open `Assistant:` (waiting for its answer) as the turns before it."""
    turns = transcript_turns(text)
    if len(turns) > 1 and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    return turns
