"""What labelers see when the database fails under them: one friendly line, no traceback, the detail in the server
log (a full disk, simulated with SQLite's max_page_count); and a database the app cannot use stops it with one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from review_harness import APP, PROJECT, Review, button
from sqlalchemy import event, text
from streamlit.testing.v1 import AppTest

from review_app import state

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "review_db"
FULL = (
    "the review database is out of disk space: nothing was saved. Please tell an admin (details are in the server log)."
)


def test_a_full_disk_shows_one_friendly_line_and_logs_the_detail(
    review: Review, app, caplog: pytest.LogCaptureFixture
) -> None:
    at = app("ann")
    task = at.session_state["rate_task"]
    served = state.store()  # the server process's store (st.cache_resource), as the pages use it
    with served.db.session() as s:
        pages = s.execute(text("PRAGMA page_count")).scalar()
    served.db.engine.dispose()

    def no_room(conn, _record) -> None:  # type: ignore[no-untyped-def]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: a full disk, as SQLite sees it

    event.listen(served.db.engine, "connect", no_room)
    try:
        at.number_input(key=f"rating-{task.answer_id}").set_value(8)
        at.text_input(key=f"comment-{task.answer_id}").input("why: " + "a careful reason " * 250)
        with caplog.at_level("ERROR", logger="curate.review"):
            button(at, "Submit").click()
            at.run()
    finally:
        event.remove(served.db.engine, "connect", no_room)
        served.db.engine.dispose()
    assert not at.exception
    assert [e.value for e in at.error] == [FULL]
    assert at.session_state["rate_task"] == task  # still on screen: the labeler can submit again
    assert "database or disk is full" in caplog.text  # the detail, in the server's log
    assert review.store.reports.ratings_frame(PROJECT).empty
    button(at, "Submit").click()  # room again: the same input goes through
    at.run()
    assert not at.error and len(review.store.reports.ratings_frame(PROJECT)) == 1


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("future-revision.db", "was written by a newer curatrain (schema revision 0099"),
        ("random-bytes.db", "is not a SQLite database or is damaged (file is not a database)"),
        ("foreign-app.db", "is not a curatrain review database"),
    ],
)
def test_a_database_the_app_cannot_use_is_one_line(
    name: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(CORPUS / name, tmp_path / name)
    monkeypatch.setenv("CURATRAIN_REVIEW_DB", f"sqlite:///{tmp_path / name}")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    assert len(at.error) == 1 and says in at.error[0].value
