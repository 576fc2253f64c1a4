"""How fast the review app's pages answer: one full script run per page, as Streamlit executes it.

    nice .venv/bin/python benchmarks/review_app_bench.py            # sample data + 3000 synthetic ratings

Each page (Rate shown, Rate submit -> next answer, Compare shown, Admin shown) is run through
Streamlit's AppTest, which executes the same script a browser request does (without the
websocket round trip and the browser's drawing). Baseline: the same run with the app's caches
cleared first, i.e. the page opening its database (and the admin page reading every rating) on
every rerun, as it would without st.cache_resource / st.cache_data. Budget: 300 ms per page
(docs/design.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from curate.env import cpu_count, package_versions  # noqa: E402
from curate.review.store import ReviewStore  # noqa: E402
from docs.screenshots import seed  # noqa: E402
from review_app import state  # noqa: E402

console = Console(width=150)
BUDGET_MS = 300.0
APP = REPO / "review_app" / "app.py"


def add_synthetic(url: str, labelers: int, per_labeler: int) -> None:
    """A second, bigger project: `labelers` rate `per_labeler` answers each (overlap 3)."""
    store = ReviewStore(url, password_rounds=4)
    store.create_project("big", overlap=3)
    n_items = labelers * per_labeler // 3 + 10
    store.import_items("big", [{"prompt": f"q{i}", "answers": [f"a{i}", f"b{i}", f"c{i}"]} for i in range(n_items)])
    for n in range(labelers):
        lid = store.accounts.authenticate(f"w{n}", store.accounts.add_labeler(f"w{n}")).id
        for i in range(per_labeler):
            task = store.next_rating_task(lid, "big")
            store.submit_rating(lid, task.answer_id, 1 + (i * 7 + n) % 10, None, 5.0)
    store.close()


def session(url: str, name: str, role: str, project: str, page: str | None) -> AppTest:
    """An AppTest logged in as `name` on `page` (views/<page>.py), after one warm-up run."""
    store = ReviewStore(url)
    lid = next(lab.id for lab in store.accounts.labelers() if lab.name == name)
    store.close()
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = state.User(id=lid, name=name, role=role)
    at.session_state["project"] = project
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def timed(call: Callable[[], object], repeats: int, cold: bool) -> tuple[float, float]:
    """(p50, p95) ms of `call`; `cold` clears the app's caches before each call (the baseline)."""
    times = []
    for _ in range(repeats):
        if cold:
            state._store_for.clear()
            st.cache_data.clear()  # the admin page's 30 s snapshot too
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def submit_rating(at: AppTest) -> None:
    """Rate the answer on screen 5 and submit: the store write plus the rerun that shows the next answer."""
    task = at.session_state["rate_task"]
    at.number_input(key=f"rating-{task.answer_id}").set_value(5)
    next(b for b in at.button if b.label == "Submit").click()
    at.run()
    assert at.session_state["rate_task"] != task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--labelers", type=int, default=10, help="labelers of the synthetic project")
    parser.add_argument("--per-labeler", type=int, default=300, help="ratings each in the synthetic project")
    args = parser.parse_args()
    url = f"sqlite:///{tempfile.mkdtemp(prefix='review-app-bench-')}/review.db"
    seed(url)
    add_synthetic(url, args.labelers, args.per_labeler)
    os.environ[state.ENV_DB] = url

    table = Table(title=f"review app pages (AppTest script runs), p50 / p95 of {args.repeats}")
    for column in ("page", "with the app's caches", "no caches (baseline)", "speed-up", "under 300 ms"):
        table.add_column(column, justify="left" if column == "page" else "right")
    cases: list[tuple[str, Callable[[], AppTest], Callable[[AppTest], object]]] = [
        ("Rate: shown", lambda: session(url, "dana", "labeler", "qa", None), lambda at: at.run()),
        ("Rate: submit -> next answer", lambda: session(url, "dana", "labeler", "qa", None), submit_rating),
        ("Compare: shown", lambda: session(url, "chen", "labeler", "qa", "compare"), lambda at: at.run()),
        ("Admin: sample (114 ratings)", lambda: session(url, "lead", "admin", "qa", "admin"), lambda at: at.run()),
        (
            f"Admin: big ({args.labelers * args.per_labeler} ratings)",
            lambda: session(url, "lead", "admin", "big", "admin"),
            lambda at: at.run(),
        ),
    ]
    for name, make, action in cases:
        hot_at, cold_at = make(), make()
        hot = timed(lambda at=hot_at, act=action: act(at), args.repeats, cold=False)
        cold = timed(lambda at=cold_at, act=action: act(at), args.repeats, cold=True)
        table.add_row(
            name,
            f"{hot[0]:.0f} / {hot[1]:.0f} ms",
            f"{cold[0]:.0f} / {cold[1]:.0f} ms",
            f"{cold[0] / hot[0]:.1f}x",
            "yes" if hot[1] < BUDGET_MS else "NO",
        )
    console.print(table)
    versions = package_versions(("streamlit", "SQLAlchemy", "pandas"))
    console.print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.machine()} · {cpu_count()} cpus · {versions}")


if __name__ == "__main__":
    main()
