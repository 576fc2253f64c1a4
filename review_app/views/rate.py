"""Rate mode: one prompt and one answer at a time, rated 1-10; the next item follows immediately."""

from __future__ import annotations

import streamlit as st

from curate.errors import CurateError
from review_app import state
from review_app.widgets import SCALE_HELP, focus_input, plain_text, progress_bar, scale_legend, show_prompt

user = state.require_user()
project = state.require_project()
store = state.store()


def _next_item(notice: str) -> None:
    """Drop the current item so the rerun fetches the next one, and say what happened to this one."""
    st.session_state.pop("rate_task", None)
    st.session_state["rate_notice"] = notice
    st.rerun()


def _change_last_rating() -> None:
    """Let the labeler correct their latest rating here; the store keeps the old one as history."""
    mine = store.reports.ratings_frame(project, user.id, actor=user.id)  # their own ratings only (blind)
    mine = mine[mine["mode"] == "rate"]  # a compare rating is changed with its pair, not alone
    if mine.empty:
        return
    last = mine.iloc[-1]
    rating_id, old = int(last.rating_id), int(last.rating)
    with st.expander(f"Change your last rating ({old})"):
        plain_text(str(last.response), label="The answer you rated last")
        with st.form(f"edit-{rating_id}"):
            new = st.number_input("New rating (1-10)", 1, 10, value=old, step=1, key=f"edit-rating-{rating_id}")
            changed = st.form_submit_button("Change rating")
    if changed and int(new) != old:
        comment = last.comment if isinstance(last.comment, str) else None
        store.submit_rating(user.id, int(last.answer_id), int(new), comment, float(last.seconds))
        st.session_state["rate_notice"] = f"Changed your last rating from {old} to {int(new)}."
        st.rerun()


# Before the progress line: fetching may claim a new item.
task = state.current_task("rate", project, lambda: store.next_rating_task(user.id, project))

st.title("Rate")
progress_bar(*store.reports.progress(user.id, project), store.reports.claimable(user.id, project))
if notice := st.session_state.pop("rate_notice", None):
    st.success(notice)
if task is None:
    st.info("Nothing left to rate in this project. Thank you!")
    _change_last_rating()
    st.stop()

show_prompt(task.prompt)
plain_text(task.answer, label="Answer")
scale_legend()

with st.form(f"rate-{task.answer_id}"):
    rating = st.number_input(
        "Rating (1-10)",
        min_value=1,
        max_value=10,
        value=None,
        step=1,
        placeholder="type 1-10 (arrow keys work), Enter submits",
        help=SCALE_HELP,
        required=True,
        key=f"rating-{task.answer_id}",
    )
    comment = st.text_input("Comment (optional)", key=f"comment-{task.answer_id}")
    submitted = st.form_submit_button("Submit", type="primary")

focus_input("Rating (1-10)", task.answer_id)  # type the rating, Enter, type the next one: no mouse needed

skip_col, flag_col = st.columns([1, 3])
skipped = skip_col.button(
    "Skip", help="Not sure? Skip it: it leaves your queue for good (other labelers of this item still rate it)."
)
with flag_col.expander("Flag this item"), st.form(f"flag-{task.answer_id}"):
    reason = st.text_input(
        "Reason", placeholder="e.g. prompt is unclear, offensive, duplicate", key=f"flag-reason-{task.answer_id}"
    )
    flagged = st.form_submit_button("Flag")

try:
    if submitted:
        if rating is None:
            st.error("Choose a rating from 1 to 10 before submitting.")
        else:
            seconds = state.seconds_since_shown("rate")
            store.submit_rating(user.id, task.answer_id, int(rating), comment.strip() or None, seconds)
            _next_item(f"Saved your rating {int(rating)}. Here is the next answer.")
    elif skipped:
        store.skip(user.id, task.answer_id)
        _next_item("Skipped. Here is the next answer.")
    elif flagged:
        if not reason.strip():
            st.error("Say why you flag this item (a few words are enough).")
        else:
            store.flag(user.id, task.answer_id, reason.strip())
            _next_item("Flagged for an admin. Here is the next answer.")
except CurateError as exc:
    st.error(str(exc))

_change_last_rating()
