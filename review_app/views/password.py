"""After logging in with a one-time password, the labeler chooses their own before rating."""

from __future__ import annotations

import dataclasses

import streamlit as st

from curate.errors import CurateError
from review_app import state

user = state.require_user()
st.title("Choose your password")
st.text(
    f"Welcome, {user.name}. The password you were given worked once and is now used up: choose your own "
    "(8 to 72 characters) before you leave this page, or ask an admin for a new one-time password."
)

with st.form("new_password"):
    first = st.text_input("New password", type="password", key="new_password")
    second = st.text_input("Repeat it", type="password", key="new_password_again")
    submitted = st.form_submit_button("Save password", type="primary")

if submitted:
    if first != second:
        st.error("The two passwords differ; type the same one twice.")
    else:
        try:
            state.store().accounts.set_password(user.id, first)
        except CurateError as exc:
            st.error(str(exc))
        else:
            st.session_state["user"] = dataclasses.replace(user, must_change_password=False)
            st.rerun()
