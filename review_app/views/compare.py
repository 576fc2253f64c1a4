"""Compare mode: two answers to one prompt side by side, each rated 1-10; the preference follows from the ratings."""

from __future__ import annotations

import streamlit as st

from curate.errors import CurateError
from review_app import state
from review_app.widgets import (
    SCALE_HELP,
    focus_input,
    plain_text,
    preference_label,
    progress_bar,
    scale_legend,
    show_prompt,
)

user = state.require_user()
project = state.require_project()
store = state.store()

# Before the progress line: fetching may claim a new item.
task = state.current_task("compare", project, lambda: store.next_compare_task(user.id, project))

st.title("Compare")
progress_bar(*store.reports.progress(user.id, project), store.reports.claimable(user.id, project, min_answers=2))
if notice := st.session_state.pop("compare_notice", None):
    st.success(notice)
if task is None:
    st.info("No prompt with two answers left for you to compare in this project. Thank you!")
    st.stop()

show_prompt(task.prompt)
scale_legend()
# The store randomized which answer is A (left) and which is B (right) and recorded it with the task.
key = f"{task.left_answer_id}-{task.right_answer_id}"
left, right = st.columns(2)
with left:
    plain_text(task.left_text, label="Answer A")
    rating_a = st.number_input(
        "Rating for A (1-10)", 1, 10, value=None, step=1, help=SCALE_HELP, placeholder="1-10", key=f"a-{key}"
    )
with right:
    plain_text(task.right_text, label="Answer B")
    rating_b = st.number_input(
        "Rating for B (1-10)", 1, 10, value=None, step=1, help=SCALE_HELP, placeholder="1-10", key=f"b-{key}"
    )

focus_input("Rating for A (1-10)", task.left_answer_id)

if rating_a is not None and rating_b is not None:
    st.markdown(f"**Preference:** {preference_label(int(rating_a), int(rating_b))}")

if st.button("Submit both ratings", type="primary"):
    if rating_a is None or rating_b is None:
        st.error("Rate both answers (1-10) before submitting.")
    else:
        try:
            store.submit_comparison(user.id, task, int(rating_a), int(rating_b), state.seconds_since_shown("compare"))
        except CurateError as exc:
            st.error(str(exc))
        else:
            st.session_state.pop("compare_task", None)
            st.session_state["compare_notice"] = (
                f"Saved A = {int(rating_a)}, B = {int(rating_b)} ({preference_label(int(rating_a), int(rating_b))}). "
                "Here is the next pair."
            )
            st.rerun()
