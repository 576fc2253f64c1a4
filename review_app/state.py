"""Session plumbing shared by the pages: the cached store, the logged-in labeler, the chosen project."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import streamlit as st

from curate.errors import CurateError
from curate.review.store import MODES, ReviewStore
from curate.review.types import DEFAULT_EXPORT_DIR, ENV_DB, ENV_EXPORTS

SIGNED_IN = "signed_in"  # query parameter a logged-in tab carries (see app.py and views/login.py)
SESSION_ENDED = (
    "Your session has ended (the review server was restarted, or this tab was reloaded): please log in again. "
    "Anything you entered since then was not saved."
)
Task = TypeVar("Task")


@dataclass(frozen=True)
class User:
    """The logged-in labeler as plain values (ORM objects must not outlive their DB session)."""

    id: int
    name: str
    role: str
    must_change_password: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether this user may open the Admin page."""
        return self.role == "admin"


def _app_arguments() -> argparse.Namespace:
    """What follows `--` after `streamlit run app.py`: `--db URL`, `--export-dir DIR`."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db")
    parser.add_argument("--export-dir")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def db_url() -> str:
    """The store URL: `-- --db URL` after `streamlit run app.py`, else $CURATRAIN_REVIEW_DB."""
    url = _app_arguments().db or os.environ.get(ENV_DB)
    if not url:
        raise CurateError(
            f"no review database given: run `curate review serve --db URL` or set {ENV_DB}=sqlite:///path.db"
        )
    return str(url)


def export_root() -> Path:
    """The one directory the Admin page writes exports under: `-- --export-dir DIR`, else
    $CURATRAIN_REVIEW_EXPORTS, else out/review in the server's working directory."""
    return Path(_app_arguments().export_dir or os.environ.get(ENV_EXPORTS) or DEFAULT_EXPORT_DIR).expanduser().resolve()


def _log_to_server() -> None:
    """Send the store's error details (`curate.review` logger) to the server's stderr; labelers see one line."""
    logger = logging.getLogger("curate.review")
    if not any(handler.get_name() == "review_app" for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler.set_name("review_app")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


@st.cache_resource(show_spinner=False)
def _store_for(url: str) -> ReviewStore:
    # One engine (and connection pool) per server process, shared by every browser session. Not the
    # operator's store: its admin-only reads and exports need the acting admin, and it manages no accounts.
    _log_to_server()
    return ReviewStore(url, operator=False)


def store() -> ReviewStore:
    """The process-wide store for this app's database."""
    return _store_for(db_url())


def user() -> User | None:
    """The logged-in user of this browser session, if any."""
    return st.session_state.get("user")


def require_user() -> User:
    """The logged-in user; stops the page (with a message) when there is none."""
    current = user()
    if current is None:
        st.warning("Please log in first.")
        st.stop()
    return current


def project() -> str | None:
    """The project chosen in the sidebar."""
    return st.session_state.get("project")


def require_project() -> str:
    """The chosen project; stops the page (with a message) when none exists yet."""
    name = project()
    if not name:
        st.info("No project yet. An admin creates one with `curate review init` and `curate review import`.")
        st.stop()
    return name


def start_clock(key: str) -> None:
    """Remember when the current item was first shown, so its rating records how long the labeler looked."""
    st.session_state[f"{key}_shown_at"] = time.monotonic()


def seconds_since_shown(key: str) -> float:
    """Seconds since `start_clock(key)`; 0.0 if the clock was never started."""
    started = st.session_state.get(f"{key}_shown_at")
    return 0.0 if started is None else max(0.0, time.monotonic() - started)


def current_task(mode: str, project: str, fetch: Callable[[], Task | None]) -> Task | None:
    """The item on screen in `mode` (session key `{mode}_task`), fetched with `fetch()` when none is held for
    `project`, which also starts its clock. The other mode's item is dropped: it may have been rated there
    meanwhile, so it is fetched afresh when that page opens."""
    for other in MODES:
        if other != mode:
            st.session_state.pop(f"{other}_task", None)
    task = st.session_state.get(f"{mode}_task")
    if task is None or st.session_state.get(f"{mode}_task_project") != project:
        task = fetch()
        st.session_state[f"{mode}_task"] = task
        st.session_state[f"{mode}_task_project"] = project
        start_clock(mode)
    return task
