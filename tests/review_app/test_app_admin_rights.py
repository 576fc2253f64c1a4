"""The Admin page reads through the store as the logged-in admin: an admin deactivated mid-session sees nothing."""

from __future__ import annotations

import pytest
from review_harness import Review, button

from curate.review.store import AuthError
from review_app.state import store


def test_the_app_store_is_not_the_operators(review: Review, app) -> None:
    app("ann")
    assert store().rights.operator is False  # the app's admin reads need the acting admin (see curate/review/store.py)


def test_admin_deactivated_while_logged_in_gets_no_figures(review: Review, app) -> None:
    at = app("root")
    review.store.accounts.deactivate_labeler("root")  # the operator, from the CLI
    at.switch_page("views/admin.py").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["labeler 'root' is deactivated"]
    assert not at.metric and not at.dataframe


def test_admin_deactivated_on_the_admin_page_loses_even_the_cached_figures(review: Review, app) -> None:
    at = app("root")
    at.switch_page("views/admin.py").run()
    assert at.metric  # the figures are read and cached for 30 s
    review.store.accounts.deactivate_labeler("root")
    at.run()
    assert [e.value for e in at.error] == ["labeler 'root' is deactivated"]
    assert not at.metric and not at.dataframe


def test_admin_reads_refuse_an_admin_deactivated_past_the_page_check(review: Review, app) -> None:
    """The store itself refuses, even when a page has already passed the app's own check."""
    app("root")
    root = review.labeler_id("root")
    review.store.accounts.deactivate_labeler("root")
    with pytest.raises(AuthError, match="only an active admin may see the flagged items; 'root' is deactivated"):
        store().reports.flagged("qa", actor=root)


def test_admin_deactivated_on_the_admin_page_cannot_export(review: Review, app, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CURATRAIN_REVIEW_EXPORTS", str(tmp_path / "exports"))
    at = app("root")
    at.switch_page("views/admin.py").run()
    assert not at.error
    review.store.accounts.deactivate_labeler("root")
    button(at, "Export SFT set").click()
    at.run()
    assert not at.exception
    assert at.error and all(e.value.endswith("'root' is deactivated") for e in at.error)
    assert not (tmp_path / "exports").exists()
