"""Log in with the name and one-time password from `curate review labeler add NAME`."""

from __future__ import annotations

import streamlit as st

from curate.errors import CurateError
from review_app import state

st.title("curatrain review")
st.caption("Rate model answers 1-10. Your ratings are blind: nobody else's ratings are shown to you.")
if st.query_params.get(state.SIGNED_IN) == "1":  # this tab was logged in, but its session is gone
    st.warning(state.SESSION_ENDED)
    del st.query_params[state.SIGNED_IN]

with st.form("login"):
    name = st.text_input("Name", key="login_name")
    password = st.text_input("Password", type="password", key="login_password")
    submitted = st.form_submit_button("Log in", type="primary")

if submitted:
    try:
        labeler = state.store().accounts.authenticate(name.strip(), password)
    except CurateError as exc:
        st.error(str(exc))
    else:
        st.session_state["user"] = state.User(
            id=labeler.id, name=labeler.name, role=labeler.role, must_change_password=labeler.password_temporary
        )
        st.rerun()
