"""Rate page: a rating writes a row (value, comment, seconds); Skip and Flag move on; bad input is refused."""

from __future__ import annotations

from review_harness import PROJECT, Review, button, progress_text


def test_rating_is_stored_with_comment_and_seconds_and_the_next_answer_follows(review: Review, app) -> None:
    at = app("ann")
    first = at.session_state["rate_task"]
    assert first.prompt == "What is 2 + 2?" and first.answer == "4"
    # ann holds the first item (2 answers); the 2 other items (4 answers) have free slots she may get.
    assert progress_text(at) == "Progress: 0 / 2 done · up to 4 more to come"
    assert [t.value for t in at.text][:2] == ["What is 2 + 2?", "4"]

    at.number_input(key=f"rating-{first.answer_id}").set_value(9)
    at.text_input(key=f"comment-{first.answer_id}").input("  correct and short  ")
    button(at, "Submit").click()
    at.run()

    assert not at.exception and not at.error
    rows = review.store.reports.ratings_frame(PROJECT, review.labeler_id("ann"))
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row.answer_id, row.rating, row.comment, row["mode"]) == (first.answer_id, 9, "correct and short", "rate")
    assert row.seconds > 0  # how long the answer was on screen, measured by the page
    # The next answer is on screen at once, progress moved, and the notice says what happened.
    second = at.session_state["rate_task"]
    assert second.answer_id != first.answer_id and second.answer == "5"
    assert progress_text(at) == "Progress: 1 / 2 done · up to 4 more to come"
    assert [s.value for s in at.success] == ["Saved your rating 9. Here is the next answer."]


def test_submit_without_a_rating_is_refused(review: Review, app) -> None:
    at = app("ann")
    task = at.session_state["rate_task"]
    button(at, "Submit").click()
    at.run()
    assert [e.value for e in at.error] == ["Choose a rating from 1 to 10 before submitting."]
    assert at.session_state["rate_task"] == task
    assert review.store.reports.ratings_frame(PROJECT).empty


def test_skip_records_nothing_and_moves_on(review: Review, app) -> None:
    at = app("ben")
    first = at.session_state["rate_task"]
    button(at, "Skip").click()
    at.run()
    assert at.session_state["rate_task"].answer_id != first.answer_id
    assert progress_text(at) == "Progress: 1 / 2 done · up to 4 more to come"
    assert review.store.reports.ratings_frame(PROJECT).empty
    # A skipped answer does not come back to the same labeler.
    ben = review.labeler_id("ben")
    seen = {first.answer_id}
    while (task := review.store.next_rating_task(ben, PROJECT)) is not None:
        assert task.answer_id not in seen
        seen.add(task.answer_id)
        review.store.skip(ben, task.answer_id)


def test_flag_needs_a_reason_and_reaches_the_admin_verbatim(review: Review, app) -> None:
    at = app("ann")
    first = at.session_state["rate_task"]
    button(at, "Flag").click()
    at.run()
    assert [e.value for e in at.error] == ["Say why you flag this item (a few words are enough)."]
    assert review.store.reports.flagged(PROJECT).empty

    reason = "<b>wrong</b> maths'; DROP TABLE flags; --"
    at.text_input(key=f"flag-reason-{first.answer_id}").input(reason)
    button(at, "Flag").click()
    at.run()
    flagged = review.store.reports.flagged(PROJECT)
    assert list(zip(flagged.answer_id, flagged.labeler, flagged.reason, strict=True)) == [
        (first.answer_id, "ann", reason)
    ]
    assert at.session_state["rate_task"].answer_id != first.answer_id
    assert [s.value for s in at.success] == ["Flagged for an admin. Here is the next answer."]


def test_last_rating_can_be_changed_and_the_old_one_stays_in_history(review: Review, app) -> None:
    at = app("ann")
    first = at.session_state["rate_task"]
    at.number_input(key=f"rating-{first.answer_id}").set_value(2)
    at.text_input(key=f"comment-{first.answer_id}").input("meh")
    button(at, "Submit").click()
    at.run()
    rating_id = int(review.store.reports.ratings_frame(PROJECT).rating_id.iloc[0])
    at.number_input(key=f"edit-rating-{rating_id}").set_value(9)
    button(at, "Change rating").click()
    at.run()
    assert [s.value for s in at.success] == ["Changed your last rating from 2 to 9."]
    current = review.store.reports.ratings_frame(PROJECT)
    assert list(zip(current.answer_id, current.rating, current.comment, strict=True)) == [(first.answer_id, 9, "meh")]
    history = review.store.reports.ratings_frame(PROJECT, history=True)
    assert sorted(history.rating) == [2, 9] and history.superseded_at.notna().sum() == 1
    assert progress_text(at) == "Progress: 1 / 2 done · up to 4 more to come"  # an edit is not a new answer done


def test_a_conversation_prompt_shows_its_earlier_turns_above_the_answer(review: Review, app) -> None:
    """An item imported with a conversation as its prompt: each earlier turn is plain text, labelled by role."""
    turns = [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "Seven."},
        {"role": "user", "content": "A **bigger** one?"},
    ]
    review.store.create_project("chat", overlap=1)
    review.store.import_items("chat", [{"prompt": turns, "answers": ["Eleven."]}])
    at = app("ann")
    at.selectbox(key="project_choice").set_value("chat").run()
    assert not at.exception
    assert [t.value for t in at.text][:4] == ["Name a prime.", "Seven.", "A **bigger** one?", "Eleven."]
    assert [c.value for c in at.caption][:4] == ["User", "Assistant", "User", "Answer"]
