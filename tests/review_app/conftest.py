"""Fixtures: a real SQLite review store with a small project, and AppTest sessions logged in through the form."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from review_harness import APP, ITEMS, PROJECT, Review, choose_password, login
from streamlit.testing.v1 import AppTest

from curate.review.store import ReviewStore


@pytest.fixture
def review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Review:
    """A fresh SQLite DB with project `qa` (overlap 2), three items, labelers ann and ben, and admin root."""
    url = f"sqlite:///{tmp_path / 'review.db'}"
    monkeypatch.setenv("CURATRAIN_REVIEW_DB", url)
    # A new database (created as `curate review init` does); cheap hashes for the fixture's users.
    store = ReviewStore(url, password_rounds=4, migrate=True)
    store.create_project(PROJECT, overlap=2)
    store.import_items(PROJECT, ITEMS)
    passwords = {name: store.accounts.add_labeler(name) for name in ("ann", "ben")}
    passwords["root"] = store.accounts.add_labeler("root", role="admin")
    return Review(url, store, passwords)


@pytest.fixture
def app(review: Review) -> Callable[[str], AppTest]:
    """Start the app and log in as the given user (returns the AppTest on its default page)."""

    def start(name: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30).run()
        assert not at.exception, at.exception
        login(at, name, review.passwords[name])
        choose_password(at, f"{name}-own-password")
        review.passwords[name] = f"{name}-own-password"
        assert not at.exception, at.exception
        return at

    return start
