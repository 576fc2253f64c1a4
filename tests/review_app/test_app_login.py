"""Login through the app's form: good or wrong password, unknown name, lock after failures, password change."""

from __future__ import annotations

import re

from review_harness import APP, PROJECT, Review, button, choose_password, login
from streamlit.testing.v1 import AppTest

from curate.review.store import LoginLimit

BAD_LOGIN = "unknown labeler or wrong password (an admin can add you or reset your password)"


def _page_titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def test_good_password_then_own_password_opens_rate_page(review: Review) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert _page_titles(at) == ["curatrain review"]
    login(at, "ann", review.passwords["ann"])
    assert not at.exception
    assert _page_titles(at) == ["Choose your password"], "a one-time password must be replaced first"
    # It worked once: another tab (or this one after a reload) cannot log in with it again.
    other_tab = login(AppTest.from_file(str(APP), default_timeout=30).run(), "ann", review.passwords["ann"])
    assert [e.value for e in other_tab.error] == [BAD_LOGIN] and "user" not in other_tab.session_state

    choose_password(at, "ann-chose-this")
    assert not at.exception
    assert _page_titles(at) == ["Rate"]
    assert at.sidebar.text[0].value == "Logged in as ann (labeler)"
    # The new password works and the one-time password no longer does.
    assert review.store.accounts.authenticate("ann", "ann-chose-this").name == "ann"
    fresh = login(AppTest.from_file(str(APP), default_timeout=30).run(), "ann", review.passwords["ann"])
    assert [e.value for e in fresh.error] == [BAD_LOGIN]


def test_wrong_password_and_unknown_name_show_a_clear_message(review: Review) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    login(at, "ann", "not-her-password")
    assert [e.value for e in at.error] == [BAD_LOGIN]
    assert _page_titles(at) == ["curatrain review"]
    assert "user" not in at.session_state

    login(at, "mallory'; DROP TABLE labelers; --", "x")
    assert [e.value for e in at.error] == [BAD_LOGIN]  # the same message: names cannot be probed
    assert review.store.accounts.authenticate("ben", review.passwords["ben"]).name == "ben"  # table still there


def test_password_mismatch_is_rejected(review: Review) -> None:
    at = login(AppTest.from_file(str(APP), default_timeout=30).run(), "ben", review.passwords["ben"])
    at.text_input(key="new_password").input("first-choice")
    at.text_input(key="new_password_again").input("second-choice")
    at.button[0].click()
    at.run()
    assert [e.value for e in at.error] == ["The two passwords differ; type the same one twice."]
    choose_password(at, "short")
    assert [e.value for e in at.error] == ["a password must be 8 to 72 bytes long"]
    assert _page_titles(at) == ["Choose your password"]


def test_without_a_database_the_app_says_how_to_give_one(review: Review, monkeypatch) -> None:
    monkeypatch.delenv("CURATRAIN_REVIEW_DB")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert len(at.error) == 1 and "curate review serve --db URL" in at.error[0].value


def test_labeler_deactivated_while_logged_in_can_no_longer_rate(review: Review, app) -> None:
    at = app("ben")
    task = at.session_state["rate_task"]
    review.store.accounts.deactivate_labeler("ben")
    at.number_input(key=f"rating-{task.answer_id}").set_value(4)
    button(at, "Submit").click()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["labeler 'ben' is deactivated"]
    assert review.store.reports.ratings_frame(PROJECT).empty
    # The next page load (the task is fetched anew) says the same instead of failing.
    at.session_state["rate_task"] = None
    at.run()
    assert not at.exception and [e.value for e in at.error] == ["labeler 'ben' is deactivated"]


def test_too_many_failed_logins_lock_the_name_and_say_until_when(review: Review) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    for _ in range(LoginLimit().max_failures - 1):
        login(at, "ann", "guess")
        assert [e.value for e in at.error] == [BAD_LOGIN]
    login(at, "ann", "guess")  # the fifth failure within 15 minutes locks the name for 15 minutes
    assert len(at.error) == 1
    message = at.error[0].value
    assert re.fullmatch(
        r"too many failed logins with this name: try again after \d\d:\d\d UTC \(in 15 minutes\).*", message
    )
    login(at, "ann", review.passwords["ann"])  # the right password waits too
    assert [e.value for e in at.error] == [message] and "user" not in at.session_state


def test_a_tab_whose_session_is_gone_is_told_to_log_in_again(review: Review, app) -> None:
    at = app("ann")
    assert at.query_params["signed_in"] == "1"  # a logged-in tab says so in its URL
    # The same URL in a new session (the server restarted, or the tab was reloaded): the login page says why.
    fresh = AppTest.from_file(str(APP), default_timeout=30)
    fresh.query_params["signed_in"] = "1"
    fresh.run()
    assert _page_titles(fresh) == ["curatrain review"]
    assert [w.value for w in fresh.warning] == [
        "Your session has ended (the review server was restarted, or this tab was reloaded): please log in again. "
        "Anything you entered since then was not saved."
    ]
    assert "signed_in" not in fresh.query_params  # said once
    button(at, "Log out").click()
    at.run()
    assert "signed_in" not in at.query_params and not at.warning  # logging out is not an ended session
