"""Compare page: two answers side by side in the store's random order; both ratings and the order are stored."""

from __future__ import annotations

from review_harness import APP, PROJECT, Review, button, choose_password, login
from sqlalchemy import select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from curate.review.models import Comparison
from curate.review.store import ReviewStore


def test_both_ratings_and_the_shown_order_are_stored(review: Review, app) -> None:
    at = app("ann")
    at.switch_page("views/compare.py").run()
    assert [t.value for t in at.title] == ["Compare"]
    task = at.session_state["compare_task"]
    assert task.prompt == "What is 2 + 2?" and {task.left_text, task.right_text} == {"4", "5"}
    # Left column shows the store's left answer, right column its right answer.
    left_col, right_col = at.columns[0], at.columns[1]
    assert task.left_text in [t.value for t in left_col.text]
    assert task.right_text in [t.value for t in right_col.text]

    key = f"{task.left_answer_id}-{task.right_answer_id}"
    at.number_input(key=f"a-{key}").set_value(3)
    at.number_input(key=f"b-{key}").set_value(8)
    at.run()
    assert "**Preference:** B preferred by 5 points" in [m.value for m in at.markdown]
    button(at, "Submit both ratings").click()
    at.run()
    assert not at.exception and not at.error

    ratings = review.store.reports.ratings_frame(PROJECT, review.labeler_id("ann"))
    assert dict(zip(ratings.answer_id, ratings.rating, strict=True)) == {
        task.left_answer_id: 3,
        task.right_answer_id: 8,
    }
    assert set(ratings["mode"]) == {"compare"} and ratings.comparison_id.nunique() == 1
    with Session(review.store.db.engine) as s:
        comparison = s.scalars(select(Comparison)).one()
    assert (comparison.left_answer_id, comparison.right_answer_id) == (task.left_answer_id, task.right_answer_id)
    assert comparison.swapped == task.swapped
    assert comparison.preferred == "right"
    assert comparison.seconds_spent > 0
    assert at.success[0].value.startswith("Saved A = 3, B = 8 (B preferred by 5 points).")
    assert at.session_state["compare_task"].item_id != task.item_id


def test_one_rating_missing_is_refused(review: Review, app) -> None:
    at = app("ben")
    at.switch_page("views/compare.py").run()
    task = at.session_state["compare_task"]
    at.number_input(key=f"a-{task.left_answer_id}-{task.right_answer_id}").set_value(6)
    button(at, "Submit both ratings").click()
    at.run()
    assert [e.value for e in at.error] == ["Rate both answers (1-10) before submitting."]
    assert review.store.reports.ratings_frame(PROJECT).empty


def test_switching_modes_never_offers_an_answer_already_rated(review: Review, app) -> None:
    at = app("ann")
    held_by_rate = at.session_state["rate_task"]
    at.switch_page("views/compare.py").run()
    task = at.session_state["compare_task"]
    assert held_by_rate.answer_id in (task.left_answer_id, task.right_answer_id)
    key = f"{task.left_answer_id}-{task.right_answer_id}"
    at.number_input(key=f"a-{key}").set_value(7)
    at.number_input(key=f"b-{key}").set_value(7)
    button(at, "Submit both ratings").click()
    at.run()
    at.switch_page("views/rate.py").run()
    rated = set(review.store.reports.ratings_frame(PROJECT, review.labeler_id("ann")).answer_id)
    assert at.session_state["rate_task"].answer_id not in rated


def test_a_compare_project_opens_on_the_compare_page(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'compare.db'}"
    monkeypatch.setenv("CURATRAIN_REVIEW_DB", url)
    store = ReviewStore(url, password_rounds=4, migrate=True)
    store.create_project("side-by-side", overlap=1, mode="compare")
    store.import_items("side-by-side", [{"prompt": "Best pet?", "answers": ["A cat.", "A rock."]}])
    password = store.accounts.add_labeler("ann")
    at = login(AppTest.from_file(str(APP), default_timeout=30).run(), "ann", password)
    choose_password(at, "ann-own-password")
    assert [t.value for t in at.title] == ["Compare"]
    assert at.session_state["compare_task"].prompt == "Best pet?"
