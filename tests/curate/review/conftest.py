"""Review-store fixtures: `db_url`, a review database with the current schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from curate.review.store import ReviewStore


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A fresh review database at the newest schema revision, as `curate review init` leaves it."""
    ReviewStore(empty_db_url, migrate=True).close()
    return empty_db_url
