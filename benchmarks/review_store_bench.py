"""Review store under load: many labelers rating at once (nothing lost) and the latency of what a page calls.

    nice .venv/bin/python benchmarks/review_store_bench.py                          # SQLite, 20 x 200
    nice .venv/bin/python benchmarks/review_store_bench.py --db postgresql://u@127.0.0.1:5432/bench

Baseline: one labeler rating alone through the same store (ratings/s); the concurrent run's
aggregate ratings/s is reported as a ratio to it. Page calls (next task, submit, progress,
admin stats, agreement) are timed on the filled database against the 300 ms page budget
(docs/design.md); the ratio is budget / p95.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.env import package_versions  # noqa: E402
from curate.review.agreement import krippendorff_alpha  # noqa: E402
from curate.review.store import ReviewStore  # noqa: E402

console = Console(width=150)
BUDGET_MS = 300.0


def rate(store: ReviewStore, labeler_id: int, n: int, project: str) -> None:
    """What the rate page does n times: fetch the next task, submit a rating."""
    for i in range(n):
        task = store.next_rating_task(labeler_id, project)
        assert task is not None, "ran out of items"
        store.submit_rating(labeler_id, task.answer_id, 1 + (labeler_id + i) % 10, None, 2.0)


def timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(p50, p95) milliseconds of `call`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--ratings", type=int, default=200, help="ratings per labeler in the concurrent run")
    parser.add_argument("--solo", type=int, default=400, help="ratings of the single-labeler baseline")
    parser.add_argument(
        "--analyze", action="store_true", help="PostgreSQL: ANALYZE before the page calls (what autovacuum does soon)"
    )
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="review-bench-")
    url = args.db or f"sqlite:///{tmp}/bench.db"
    store = ReviewStore(url, password_rounds=4, migrate=True)
    project = f"bench-{int(time.time())}"
    store.create_project(project, overlap=3)
    n_items = (args.labelers * args.ratings + args.solo) // 3 + 10
    store.import_items(project, [{"prompt": f"q{i}", "answers": [f"a{i}", f"b{i}", f"c{i}"]} for i in range(n_items)])
    ids = [
        store.accounts.authenticate(n, store.accounts.add_labeler(n)).id
        for n in (f"{project}-l{i}" for i in range(args.labelers + 1))
    ]

    start = time.perf_counter()
    rate(store, ids[-1], args.solo, project)
    solo_rate = args.solo / (time.perf_counter() - start)

    barrier = threading.Barrier(args.labelers)
    errors: list[BaseException] = []

    def work(lid: int) -> None:
        try:
            barrier.wait()
            rate(store, lid, args.ratings, project)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(lid,)) for lid in ids[:-1]]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    concurrent_s = time.perf_counter() - start
    ratings = store.reports.ratings_frame(project)
    expected = args.labelers * args.ratings + args.solo
    lost = expected - len(ratings)
    duplicated = int(ratings.duplicated(["labeler_id", "answer_id"]).sum())
    concurrent_rate = args.labelers * args.ratings / concurrent_s

    analyzed = " (after ANALYZE)" if args.analyze and store.db.dialect == "postgresql" else ""
    table = Table(title=f"review store on {store.db.dialect}{analyzed}: {len(ratings)} ratings, {n_items} x 3 answers")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row("1 labeler alone (baseline)", f"{solo_rate:,.0f} ratings/s", "1.00x")
    table.add_row(
        f"{args.labelers} labelers at once", f"{concurrent_rate:,.0f} ratings/s", f"{concurrent_rate / solo_rate:.2f}x"
    )
    table.add_row("lost / duplicated ratings", f"{lost} / {duplicated}", "")
    table.add_row("errors", str(len(errors)), "")
    if args.analyze and store.db.dialect == "postgresql":
        with store.db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    lid = ids[0]
    calls: dict[str, Callable[[], object]] = {
        "next_rating_task": lambda: store.next_rating_task(lid, project),
        "progress": lambda: store.reports.progress(lid, project),
        "claimable": lambda: store.reports.claimable(lid, project),
        "ratings_frame (own)": lambda: store.reports.ratings_frame(project, lid),
        "ratings_frame (admin, all)": lambda: store.reports.ratings_frame(project),
        "labeler_stats (admin)": lambda: store.reports.labeler_stats(project),
        "krippendorff_alpha (admin)": lambda: krippendorff_alpha(ratings),
    }
    for name, call in calls.items():
        p50, p95 = timed(call, 20 if "admin" in name else 100)
        table.add_row(f"{name} p50 / p95", f"{p50:.1f} / {p95:.1f} ms", f"{BUDGET_MS / p95:.1f}x under budget")
    console.print(table)
    versions = package_versions(("SQLAlchemy", "alembic", "pandas", "krippendorff"))
    console.print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.processor() or platform.machine()} · {versions}")
    if errors or lost or duplicated:
        raise SystemExit(f"FAILED: {len(errors)} errors, {lost} lost, {duplicated} duplicated ({errors[:2]})")


if __name__ == "__main__":
    main()
