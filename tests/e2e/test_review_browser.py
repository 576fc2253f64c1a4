"""The review app in a real headless Chromium, served by `curate review serve` on a DB set up through the CLI:
a labeler rates three answers with the keyboard, another compares two answers, the admin sees the agreement;
the rows are then read back from the database. A server restarted under an open tab sends it to the login page."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from curate.review.agreement import krippendorff_alpha
from curate.review.models import Comparison
from curate.review.store import ReviewStore, shown_order
from review_app.serving import free_port, wait_until_healthy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CURATE = [sys.executable, "-m", "curate.cli"]
HOSTILE = "<script>window.pwned = 1</script> **not bold**"
ITEMS = [
    {"prompt": "What is 2 + 2?", "answers": [HOSTILE, "4"], "models": ["m-a", "m-b"]},
    {"prompt": "Capital of France?", "answers": ["Paris."], "models": ["m-a"]},
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM} (apt install chromium)"
    ),
]


@dataclass
class Served:
    """The running app, its database and the one-time passwords the CLI printed."""

    url: str
    db: str
    passwords: dict[str, str]


def _curate(*args: str) -> str:
    result = subprocess.run([*CURATE, *args], capture_output=True, text=True, timeout=120, env=os.environ)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _serve(db: str, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [*CURATE, "review", "serve", "--db", db, "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_healthy(f"http://127.0.0.1:{port}", server)
    return server


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`curate review init/import/labeler add` on a fresh SQLite DB, then `curate review serve` on a free port."""
    tmp = tmp_path_factory.mktemp("review-browser")
    db = f"sqlite:///{tmp / 'review.db'}"
    items = tmp / "items.jsonl"
    items.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    _curate("review", "init", "--db", db, "--project", "qa", "--overlap", "3")
    _curate("review", "import", str(items), "--db", db, "--project", "qa", "--quiet")
    passwords = {
        name: _curate("review", "labeler", "add", name, "--db", db, *flags).strip().splitlines()[-1]
        for name, flags in (("ann", []), ("ben", []), ("cy", []), ("root", ["--admin"]))
    }
    port = free_port()
    server = _serve(db, port)
    try:
        yield Served(f"http://127.0.0.1:{port}", db, passwords)
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # two shared CPU cores: a rerun can take seconds
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _log_in(browser: Any, served: Served, name: str) -> Any:
    """A new page logged in as `name`, with the one-time password replaced by their own."""
    page = browser.new_page()
    page.set_default_timeout(30_000)
    page.goto(served.url)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(served.passwords[name])
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("New password", exact=True).fill(f"{name}-own-password")
    page.get_by_label("Repeat it", exact=True).fill(f"{name}-own-password")
    page.get_by_role("button", name="Save password").click()
    return page


def _settled(page: Any) -> None:
    """Wait until Streamlit's script run is over and the previous run's elements are gone.

    Between reruns the old form lingers, marked stale, beside the new one (two "Rating" fields at once),
    so a locator checked in that window sees both."""
    from playwright.sync_api import expect

    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(1)
    expect(page.locator('[data-stale="true"]')).to_have_count(0)


def _own_ratings(served: Served, name: str) -> Any:
    store = ReviewStore(served.db)
    try:
        return store.reports.ratings_frame("qa", store.accounts.authenticate(name, f"{name}-own-password").id)
    finally:
        store.close()


def test_labeler_rates_three_answers_with_the_keyboard(served: Served, browser: Any) -> None:
    from playwright.sync_api import expect

    # ann (labeler 1) sees item 1's answers (ids 1, 2) in her own order, which puts the <script> answer first.
    assert shown_order(1, [1, 2]) == [1, 2]
    page = _log_in(browser, served, "ann")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    # Assigned: the 2 answers of the item she holds; the other item has a free slot she may still get.
    expect(page.get_by_text("Progress: 0 / 2 done · up to 1 more to come")).to_be_visible()
    _settled(page)
    # The hostile answer is on screen as literal text and its script never ran.
    expect(page.get_by_text(HOSTILE)).to_be_visible()
    assert page.evaluate("window.pwned") is None

    rating = page.get_by_label("Rating (1-10)", exact=True)
    expect(rating).to_be_focused()  # the cursor waits in the rating field: no mouse needed
    page.keyboard.type("8")  # 1st answer: type the number, Enter submits the form
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved your rating 8.")).to_be_visible()
    expect(page.get_by_text("Progress: 1 / 2 done · up to 1 more to come")).to_be_visible()
    _settled(page)

    expect(rating).to_have_value("")  # the next answer's field, empty
    expect(rating).to_be_focused()  # 2nd answer: the arrow keys step the number
    page.keyboard.type("5")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved your rating 6.")).to_be_visible()
    expect(page.get_by_text("Progress: 2 / 3 done", exact=True)).to_be_visible()  # the next item is hers now
    _settled(page)

    expect(rating).to_have_value("")
    expect(rating).to_be_focused()  # 3rd answer: a comment, and the Submit button
    page.keyboard.type("3")
    page.get_by_label("Comment (optional)", exact=True).fill("<b>too</b> short")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("Saved your rating 3.")).to_be_visible()
    expect(page.get_by_text("Nothing left to rate in this project.")).to_be_visible()
    expect(page.get_by_text("Progress: 3 / 3 done", exact=True)).to_be_visible()
    assert dialogs == []
    page.close()

    rows = _own_ratings(served, "ann")
    assert list(rows.response) == [HOSTILE, "4", "Paris."]
    assert list(rows.rating) == [8, 6, 3]
    assert list(rows.comment.fillna("")) == ["", "", "<b>too</b> short"]
    assert (rows.seconds > 0).all()


def test_labeler_compares_two_answers_and_the_admin_sees_agreement(served: Served, browser: Any) -> None:
    from playwright.sync_api import expect

    # cy rated both answers of the first item (through the store), so agreement has two answers to go on.
    store = ReviewStore(served.db)
    cy = store.accounts.authenticate("cy", served.passwords["cy"]).id
    for value in (7, 5):
        task = store.next_rating_task(cy, "qa")
        store.submit_rating(cy, task.answer_id, value, None, 3.0)
    store.close()

    page = _log_in(browser, served, "ben")
    expect(page.get_by_role("link", name="Compare")).to_be_visible()
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)  # labelers never see the admin page
    page.get_by_role("link", name="Compare").click()
    expect(page.get_by_text("Answer B")).to_be_visible()
    _settled(page)
    shown_a = page.get_by_test_id("stColumn").nth(0).get_by_test_id("stText").inner_text()
    page.get_by_label("Rating for A (1-10)", exact=True).fill("9")
    page.get_by_label("Rating for A (1-10)", exact=True).press("Enter")
    _settled(page)
    page.get_by_label("Rating for B (1-10)", exact=True).fill("4")
    page.get_by_label("Rating for B (1-10)", exact=True).press("Enter")
    expect(page.get_by_text("A preferred by 5 points")).to_be_visible()
    _settled(page)
    page.get_by_role("button", name="Submit both ratings").click()
    expect(page.get_by_text("Saved A = 9, B = 4")).to_be_visible()
    page.close()

    rows = _own_ratings(served, "ben")
    assert set(rows["mode"]) == {"compare"} and len(rows) == 2
    by_text = dict(zip(rows.response, rows.rating, strict=True))
    assert by_text[shown_a] == 9  # the answer shown on the left got the left rating
    store = ReviewStore(served.db)
    with Session(store.db.engine) as s:
        comparison = s.scalars(select(Comparison)).one()
    left_text = next(r.response for r in rows.itertuples() if r.answer_id == comparison.left_answer_id)
    assert left_text == shown_a and comparison.preferred == "left"
    alpha = krippendorff_alpha(store.reports.ratings_frame("qa"))  # cy's, ben's (and ann's) ratings
    store.close()
    assert not math.isnan(alpha)

    admin = _log_in(browser, served, "root")
    admin.get_by_role("link", name="Admin").click()
    expect(admin.get_by_text("Krippendorff's alpha (ordinal)")).to_be_visible()
    expect(admin.get_by_test_id("stMetricValue").nth(2)).to_have_text(f"{alpha:.3f}")
    admin.close()


def test_a_restarted_server_sends_the_open_tab_to_login_before_anything_is_typed(browser: Any, tmp_path: Path) -> None:
    """The issue's case: after a server restart the open tab still looked logged in, and the next rating typed
    was silently dropped. Now the tab shows the login page with why, by itself, as soon as the server is back;
    and labelers get no Deploy button or developer menu."""
    from playwright.sync_api import expect

    db = f"sqlite:///{tmp_path / 'review.db'}"
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(ITEMS[1]) + "\n")
    _curate("review", "init", "--db", db, "--project", "qa")
    _curate("review", "import", str(items), "--db", db, "--project", "qa", "--quiet")
    one_time = _curate("review", "labeler", "add", "dee", "--db", db).strip().splitlines()[-1]
    port = free_port()
    server = _serve(db, port)
    try:
        first = browser.new_page()
        first.goto(f"http://127.0.0.1:{port}")
        expect(first.get_by_label("Name", exact=True)).to_be_visible()
        _settled(first)
        # From the very first page (before: a Deploy button and the developer menu until the second run).
        expect(first.get_by_role("button", name="Deploy")).to_have_count(0)
        expect(first.get_by_test_id("stMainMenu")).to_have_count(0)
        first.close()
        page = _log_in(browser, Served(f"http://127.0.0.1:{port}", db, {"dee": one_time}), "dee")
        expect(page.get_by_label("Rating (1-10)", exact=True)).to_be_visible()
        _settled(page)

        _stop(server)
        server = _serve(db, port)  # same address: the tab reconnects to a server that forgot its session
        expect(page.get_by_text("Your session has ended (the review server was restarted")).to_be_visible()
        expect(page.get_by_label("Name", exact=True)).to_be_visible()
        expect(page.get_by_label("Rating (1-10)", exact=True)).to_have_count(0)  # nothing left to type into

        page.get_by_label("Name", exact=True).fill("dee")
        page.get_by_label("Password", exact=True).fill("dee-own-password")
        page.get_by_role("button", name="Log in").click()
        page.get_by_label("Rating (1-10)", exact=True).fill("9")
        page.keyboard.press("Enter")
        expect(page.get_by_text("Saved your rating 9.")).to_be_visible()
        page.close()
    finally:
        _stop(server)
    store = ReviewStore(db)
    assert list(store.reports.ratings_frame("qa").rating) == [9]
    store.close()
