"""Screenshots of the review app's Rate, Compare and Admin pages, taken in headless Chromium with sample data.

    .venv/bin/python docs/screenshots.py            # writes docs/rate.png, docs/compare.png, docs/admin.png

Seeds a throwaway database from data/qa (items.jsonl to rate; ratings.jsonl gives each sample
labeler's ratings), serves it with `curate review serve`, and drives the pages with Playwright.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from curate.review.store import ReviewStore
from review_app.serving import free_port, wait_until_healthy

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LABELERS = {"alice": 40, "bob": 34, "chen": 26, "dana": 14}  # answers each has rated so far
SECONDS_PER_RATING = {"alice": 14.0, "bob": 26.0, "chen": 19.0, "dana": 38.0}
PASSWORD = "sample-password"


def seed(url: str) -> None:
    """Project `qa` (overlap 3) with data/qa/items.jsonl, four labelers part-way through, a flag, an admin."""
    rng = random.Random(7)
    store = ReviewStore(url, password_rounds=4, migrate=True)  # a fresh database: create the schema
    store.create_project("qa", overlap=3)
    items = [json.loads(line) for line in (REPO / "data/qa/items.jsonl").read_text().splitlines()]
    store.import_items("qa", items)
    given: dict[tuple[str, str, str], int] = {}
    per_answer: dict[tuple[str, str], list[int]] = defaultdict(list)
    for line in (REPO / "data/qa/ratings.jsonl").read_text().splitlines():
        row = json.loads(line)
        given[row["prompt"], row["response"], row["labeler"]] = row["rating"]
        per_answer[row["prompt"], row["response"]].append(row["rating"])
    ids = {}
    for name in [*LABELERS, "lead"]:
        store.accounts.add_labeler(name, role="admin" if name == "lead" else "labeler")
        ids[name] = store.accounts.authenticate(name, store.accounts.reset_password(name)).id
        store.accounts.set_password(ids[name], PASSWORD)
    # Round-robin, so the labelers share items the way concurrent work would.
    left = dict(LABELERS)
    while any(left.values()):
        for name in LABELERS:
            if not left[name] or (task := store.next_rating_task(ids[name], "qa")) is None:
                left[name] = 0
                continue
            key = (task.prompt, task.answer)
            pool = per_answer.get(key) or [5]
            value = given.get((*key, name), round(sum(pool) / len(pool)))
            seconds = rng.lognormvariate(0, 0.4) * SECONDS_PER_RATING[name]
            store.submit_rating(ids[name], task.answer_id, value, None, seconds)
            left[name] -= 1
    task = store.next_rating_task(ids["chen"], "qa")
    if task is not None:
        store.flag(ids["chen"], task.answer_id, "<b>unsafe</b> advice: shown as text, never as HTML")
    store.close()


def _login(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Logged in as {name}")).to_be_visible()


def _settle(page: Page) -> None:
    """Let the last rerun finish and the charts draw."""
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    page.wait_for_timeout(1500)


def shoot(url: str, out: Path, chromium: str) -> None:
    """Rate and Compare as labeler dana, Admin as lead."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        expect.set_options(timeout=30_000)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        _login(page, url, "dana")
        expect(page.get_by_text("Progress:")).to_be_visible()
        page.get_by_label("Rating (1-10)", exact=True).fill("7")
        page.get_by_label("Comment (optional)", exact=True).fill("correct, could name the unit")
        _settle(page)
        page.screenshot(path=out / "rate.png")

        page.get_by_role("link", name="Compare").click()
        expect(page.get_by_text("Answer B")).to_be_visible()
        page.get_by_label("Rating for A (1-10)", exact=True).fill("8")
        page.get_by_label("Rating for A (1-10)", exact=True).press("Enter")
        page.get_by_label("Rating for B (1-10)", exact=True).fill("3")
        page.get_by_label("Rating for B (1-10)", exact=True).press("Enter")
        expect(page.get_by_text("Preference:")).to_be_visible()
        _settle(page)
        page.screenshot(path=out / "compare.png")

        admin = browser.new_page(viewport={"width": 1280, "height": 860})
        _login(admin, url, "lead")
        admin.get_by_role("link", name="Admin").click()
        expect(admin.get_by_text("Krippendorff's alpha (ordinal)")).to_be_visible()
        expect(admin.get_by_role("button", name="Export reward data")).to_be_visible()  # the page's last part
        _settle(admin)
        # Streamlit scrolls inside its main container, not the document: grow the window to the page instead.
        height = admin.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
        admin.set_viewport_size({"width": 1280, "height": int(height)})
        _settle(admin)
        admin.screenshot(path=out / "admin.png")
        browser.close()


def main() -> None:
    """Seed, serve, shoot, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (default docs/)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium binary")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'review.db'}"
        seed(url)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "curate.cli", "review", "serve", "--db", url, "--port", str(port)]
            + ["--export-dir", "/srv/review/exports"],  # shown on the Admin page; nothing is written there
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}", server)
            shoot(f"http://127.0.0.1:{port}", args.out, args.chromium)
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(f"wrote {', '.join(str(args.out / n) for n in ('rate.png', 'compare.png', 'admin.png'))}")


if __name__ == "__main__":
    main()
