"""Entry point: `streamlit run review_app/app.py -- --db URL` (or `curate review serve`).

Routes between login, the first-login password change and, once logged in, Rate and
Compare (and Admin for admins). Pages live in views/ rather than pages/, because a
pages/ folder would also be picked up by Streamlit's automatic page discovery.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from curate.errors import CurateError
from review_app import state
from review_app.widgets import session_watch

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="curatrain review", page_icon="⭐", layout="wide")
# Labelers get no developer menu or "Deploy" button (`curate review serve` also passes it, for the first run).
st.set_option("client.toolbarMode", "minimal")

try:
    store = state.store()
except CurateError as exc:
    st.error(str(exc))
    st.stop()

current = state.user()
if current is not None:
    # Deactivated while logged in: stopped at the next click, before any page (or its cached figures) shows.
    try:
        store.accounts.active_labeler(current.id)
    except CurateError as exc:
        st.error(str(exc))
        st.stop()
if current is None or current.must_change_password:
    view = "login.py" if current is None else "password.py"
    st.navigation([st.Page(VIEWS / view, title="Log in")], position="hidden").run()
    st.stop()
# The URL of a logged-in tab says so: if its session is gone (server restarted), the login page tells why.
if st.query_params.get(state.SIGNED_IN) != "1":
    st.query_params[state.SIGNED_IN] = "1"


def _logged_in(current: state.User) -> None:
    """Sidebar (who, which project, log out) and the pages this user may open."""
    with st.sidebar:
        st.text(f"Logged in as {current.name} ({current.role})")
        projects = store.projects()
        if projects:
            chosen = state.project()
            st.selectbox(
                "Project", projects, index=projects.index(chosen) if chosen in projects else 0, key="project_choice"
            )
            st.session_state["project"] = st.session_state["project_choice"]
        if st.button("Log out"):
            st.session_state.clear()
            st.query_params.clear()
            st.rerun()
        session_watch()

    # A project set up for side-by-side work (`curate review init --mode compare`) opens on Compare.
    project_name = state.project()
    compare_first = bool(project_name) and store.project(str(project_name)).mode == "compare"
    pages = [
        st.Page(VIEWS / "rate.py", title="Rate", icon=":material/star:", default=not compare_first),
        st.Page(VIEWS / "compare.py", title="Compare", icon=":material/compare:", default=compare_first),
    ]
    if current.is_admin:
        pages.append(st.Page(VIEWS / "admin.py", title="Admin", icon=":material/monitoring:"))
    st.navigation(pages).run()


try:
    _logged_in(current)
except CurateError as exc:
    # e.g. an admin deactivated this labeler, or removed the project, while they were logged in
    st.error(str(exc))
