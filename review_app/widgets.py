"""Small display pieces the pages share. Untrusted text (prompts, answers, comments) only goes through here."""

from __future__ import annotations

import json

import streamlit as st

from curate.review.types import hidden_character

# The scale's anchors, shown next to every rating input so labelers share one meaning of each number.
SCALE_ANCHORS = {1: "terrible", 3: "poor", 5: "mediocre", 7: "good", 10: "great"}
SCALE_HELP = " · ".join(f"{value} = {word}" for value, word in SCALE_ANCHORS.items())


def reveal_hidden(text: str) -> tuple[str, int]:
    """`text` with each invisible or direction-changing character (`hidden_character`) shown as its code point,
    e.g. ⟦U+202E⟧, and how many there were: a right-to-left override can make "exe.txt" read "txt.exe"."""
    shown = [f"⟦U+{ord(char):04X}⟧" if hidden_character(char) else char for char in text]
    return "".join(shown), sum(len(part) > 1 for part in shown)


def plain_text(body: str, *, label: str | None = None) -> None:
    """Show model output or a comment as literal text (st.text never parses Markdown or HTML), with hidden
    characters marked, so labelers judge what the text holds rather than how it renders."""
    if label:
        st.caption(label)
    shown, hidden = reveal_hidden(body)
    with st.container(border=True):
        st.text(shown, width="stretch")
        if hidden:
            st.caption(
                f"{hidden} invisible or direction-changing character{'s' if hidden > 1 else ''} in this text "
                "shown as ⟦U+…⟧: they can make text read differently from what it holds."
            )


def show_prompt(prompt: str) -> None:
    """The prompt as literal text; a conversation's earlier turns one by one, each labelled with its role."""
    from curate.review.types import conversation_turns

    turns = conversation_turns(prompt)
    if turns is None:
        plain_text(prompt, label="Prompt")
        return
    for turn in turns:
        plain_text(turn["content"], label=turn["role"].capitalize())


def scale_legend() -> None:
    """The 1-10 scale with its anchors."""
    st.caption(f"Scale 1-10: {SCALE_HELP}")


def progress_bar(done: int, assigned: int, claimable: int = 0) -> None:
    """Done / assigned (answers of the items handed to this labeler), always at the top of a labeling page;
    `claimable`: answers they may still get from the pool (shared with others, so "up to")."""
    fraction = done / assigned if assigned else 0.0
    more = f" · up to {claimable} more to come" if claimable else ""
    st.progress(min(1.0, fraction), text=f"Progress: {done} / {assigned} done{more}")


def preference_label(rating_a: int, rating_b: int) -> str:
    """What two side-by-side ratings say, in the store's terms: the higher one is preferred, equal is a tie."""
    if rating_a == rating_b:
        return "tie"
    winner, gap = ("A", rating_a - rating_b) if rating_a > rating_b else ("B", rating_b - rating_a)
    return f"{winner} preferred by {gap} point{'s' if gap > 1 else ''}"


def focus_input(label: str, item_id: int) -> None:
    """Put the keyboard cursor in the input labelled `label` when a new item appears (Streamlit has no autofocus).

    A fixed script in the page itself (`st.html` with JavaScript allowed; `components.v1.html` is deprecated).
    Streamlit runs it again only when its HTML changes, and `item_id` changes it per item: once per item, not
    on every rerun. It skips the previous run's stale copy of the field. Only our constant label and an int
    reach it.
    """
    selector = json.dumps(f'input[aria-label="{label}"]')
    # A block scope: every run of the script shares the page's global scope, where a second `const` would clash.
    st.html(
        f"""<script data-item="{int(item_id)}">{{
        const find = (tries) => {{
          const fresh = [...document.querySelectorAll({selector})].filter((el) => !el.closest('[data-stale="true"]'));
          if (fresh.length) fresh[fresh.length - 1].focus();
          else if (tries > 0) setTimeout(() => find(tries - 1), 50);
        }};
        find(40);
        }}</script>""",
        unsafe_allow_javascript=True,
    )


SESSION_CHECK = "session_check"  # key of the hidden button the watch below clicks


def session_watch() -> None:
    """Ask the server again as soon as its connection comes back, so a tab whose session died with a restarted
    server shows the login page (and why) before the labeler types into a page that is no longer theirs.

    Streamlit does not rerun a page on reconnecting, and a restarted server has forgotten every session. Its
    frontend posts WEBSOCKET_DISCONNECTED / WEBSOCKET_CONNECTED to the window; on the reconnect the script
    clicks a hidden button, whose rerun is harmless in a live session. A fixed script: nothing from people
    reaches it.
    """
    st.button("check session", key=SESSION_CHECK)
    st.html(
        f"""<style>.st-key-{SESSION_CHECK} {{ display: none; }}</style>
        <script>{{
        if (!window.curatrainSessionWatch) {{
          window.curatrainSessionWatch = true;
          let lost = false;
          window.addEventListener("message", (event) => {{
            const message = event.data;
            if (!message || message.stCommVersion !== 1) return;
            if (message.type === "WEBSOCKET_DISCONNECTED") lost = true;
            else if (message.type === "WEBSOCKET_CONNECTED" && lost) {{
              lost = false;
              document.querySelector(".st-key-{SESSION_CHECK} button")?.click();
            }}
          }});
        }}
        }}</script>""",
        unsafe_allow_javascript=True,
    )
