"""The review app in a real headless Chromium: set up through the CLI, `curate review serve`, log in, rate three
answers with the keyboard and the mouse, then read the rows back from the database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from curate.store import ReviewStore

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS.append("--no-first-run")
CURATE = [sys.executable, "-m", "curate.cli"]
HOSTILE = "<script>window.pwned = 1</script> **not bold**"
ITEMS = [
    {"prompt": "What is 2 + 2?", "answers": [HOSTILE, "4"], "models": ["m-a", "m-b"]},
    {"prompt": "Capital of France?", "answers": ["Paris."], "models": ["m-a"]},
]


def _curate(*args: str) -> str:
    result = subprocess.run([*CURATE, *args], capture_output=True, text=True, timeout=120, env=os.environ)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"`curate review serve` exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the review app did not answer on {url} within {timeout:.0f} s")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM} (apt install chromium)")
def test_labeler_logs_in_and_rates_three_answers_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    db = f"sqlite:///{tmp_path / 'review.db'}"
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    _curate("review", "init", "--db", db, "--project", "qa", "--overlap", "2")
    _curate("review", "import", str(items), "--db", db, "--project", "qa", "--quiet")
    password = _curate("review", "labeler", "add", "ann", "--db", db).strip().splitlines()[-1]

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*CURATE, "review", "serve", "--db", db, "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(url, server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                dialogs: list[str] = []
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
                page.set_default_timeout(30_000)
                expect.set_options(timeout=30_000)  # two shared CPU cores: a rerun can take seconds
                page.goto(url)

                page.get_by_label("Name", exact=True).fill("ann")
                page.get_by_label("Password", exact=True).fill(password)
                page.get_by_role("button", name="Log in").click()
                page.get_by_label("New password", exact=True).fill("ann-own-password")
                page.get_by_label("Repeat it", exact=True).fill("ann-own-password")
                page.get_by_role("button", name="Save password").click()

                expect(page.get_by_text("Progress: 0 / 3 done")).to_be_visible()
                # The hostile answer is on screen as literal text and its script never ran.
                expect(page.get_by_text(HOSTILE)).to_be_visible()
                assert page.evaluate("window.pwned") is None

                rating = page.get_by_label("Rating (1-10)", exact=True)
                expect(rating).to_be_focused()  # the cursor waits in the rating field: no mouse needed
                page.keyboard.type("8")  # 1st answer: type the number, Enter submits the form
                page.keyboard.press("Enter")
                expect(page.get_by_text("Saved your rating 8.")).to_be_visible()
                expect(page.get_by_text("Progress: 1 / 3 done")).to_be_visible()

                expect(rating).to_have_value("")  # the next answer's field, empty
                expect(rating).to_be_focused()  # 2nd answer: the arrow keys step the number
                page.keyboard.type("5")
                page.keyboard.press("ArrowUp")
                page.keyboard.press("Enter")
                expect(page.get_by_text("Saved your rating 6.")).to_be_visible()

                expect(rating).to_have_value("")  # the next answer's field, empty
                expect(rating).to_be_focused()  # 3rd answer: a comment, and the Submit button
                page.keyboard.type("3")
                page.get_by_label("Comment (optional)", exact=True).fill("<b>too</b> short")
                page.get_by_role("button", name="Submit").click()
                expect(page.get_by_text("Saved your rating 3.")).to_be_visible()
                expect(page.get_by_text("Nothing left to rate in this project.")).to_be_visible()
                expect(page.get_by_text("Progress: 3 / 3 done")).to_be_visible()
                assert dialogs == []
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    store = ReviewStore(db)
    ann = store.authenticate("ann", "ann-own-password")
    rows = store.ratings_frame("qa", ann.id)
    store.close()
    assert list(rows.response) == [HOSTILE, "4", "Paris."]
    assert list(rows.rating) == [8, 6, 3]
    assert list(rows.comment.fillna("")) == ["", "", "<b>too</b> short"]
    assert (rows.seconds > 0).all()
