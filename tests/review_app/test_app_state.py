"""Where the app finds its database: `-- --db URL` first, then $CURATRAIN_REVIEW_DB, else a clear error."""

from __future__ import annotations

import pytest

from curate.errors import CurateError
from review_app.state import db_url


def test_db_argument_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATRAIN_REVIEW_DB", "sqlite:///from-env.db")
    monkeypatch.setattr("sys.argv", ["review_app/app.py", "--db", "sqlite:///from-arg.db"])
    assert db_url() == "sqlite:///from-arg.db"
    monkeypatch.setattr("sys.argv", ["review_app/app.py"])
    assert db_url() == "sqlite:///from-env.db"


def test_no_database_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATRAIN_REVIEW_DB", raising=False)
    monkeypatch.setattr("sys.argv", ["review_app/app.py", "--dbx", "ignored"])
    with pytest.raises(CurateError, match="curate review serve --db URL"):
        db_url()
