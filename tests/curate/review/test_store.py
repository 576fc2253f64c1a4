"""The review store on SQLite and a real PostgreSQL server: schema, labelers, assignment, ratings, exports."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError
from store_helpers import labeler, run_at_once

from curate.errors import CurateError
from curate.recipe import RatingsConfig, SplitConfig
from curate.review.database import StoreUnavailable
from curate.review.queries import project_row
from curate.review.store import MIGRATIONS, AuthError, CompareTask, RatingTask, ReviewStore
from curate.review_export import export_ratings

ITEMS = [
    {"prompt": f"question {i}?", "answers": [f"answer {i}a", f"answer {i}b"], "models": ["m-a", "m-b"]}
    for i in range(5)
]


def open_store(url: str) -> ReviewStore:
    return ReviewStore(url, password_rounds=4)  # cheap bcrypt cost in tests; 12 by default


@pytest.fixture
def store(db_url: str) -> ReviewStore:
    s = open_store(db_url)
    s.create_project("qa", overlap=2)
    s.import_items("qa", ITEMS)
    yield s
    s.close()


def rate_all(store: ReviewStore, labeler_id: int, value: int = 5, project: str = "qa") -> list[int]:
    """Rate every answer this labeler is handed; returns the answer ids."""
    rated = []
    while (task := store.next_rating_task(labeler_id, project)) is not None:
        store.submit_rating(labeler_id, task.answer_id, value, None, 1.5)
        rated.append(task.answer_id)
    return rated


def _head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def test_schema_is_migrated_to_head_and_reopening_keeps_data(db_url: str) -> None:
    store = open_store(db_url)
    store.create_project("p")
    store.close()
    again = open_store(db_url)
    assert again.projects() == ["p"]
    engine = create_engine(again.db.url)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == _head_revision()
        tables = set(inspect(conn).get_table_names())
        if again.db.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
    assert {
        "projects",
        "items",
        "answers",
        "labelers",
        "assignments",
        "ratings",
        "comparisons",
        "skips",
        "flags",
        "login_throttle",
    } <= tables
    with again.db.session() as s:  # the store's own connections have foreign keys on and a busy timeout
        if again.db.dialect == "sqlite":
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert s.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    again.close()


def test_migrations_match_the_models(db_url: str) -> None:
    """The Alembic revisions build exactly the schema the ORM models describe (no pending autogenerate diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from curate.review.models import Base

    store = open_store(db_url)
    with store.db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    store.close()


def test_projects_and_import(store: ReviewStore) -> None:
    assert store.import_items("qa", ITEMS) == 0  # re-import adds nothing
    assert store.import_items("qa", [{"prompt": "question 0?", "answers": ["answer 0a", "answer 0c"]}]) == 1
    with pytest.raises(CurateError, match="project 'qa' already exists"):
        store.create_project("qa")
    with pytest.raises(CurateError, match="overlap must be a whole number >= 1"):
        store.create_project("other", overlap=0)
    with pytest.raises(CurateError, match="no project named 'nope'"):
        store.import_items("nope", ITEMS)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answers": ["a"]}, "item 1: field 'prompt': Field required"),
        ({"prompt": "p", "answers": []}, "item 1: field 'answers'"),
        ({"prompt": "p", "answers": ["a", "b"], "models": ["m"]}, "'models' has 1 entries for 2 answers"),
        ({"prompt": "p", "answers": ["a"], "score": 3}, "item 1: field 'score': Extra inputs"),
    ],
)
def test_import_rejects_bad_rows(store: ReviewStore, row: dict, message: str) -> None:
    with pytest.raises(CurateError, match=message):
        store.import_items("qa", [row])


def test_labelers_passwords_and_hostile_names(store: ReviewStore) -> None:
    hostile = "Robert'); DROP TABLE labelers;--"
    password = store.accounts.add_labeler(hostile)
    stored = store.accounts.labelers()[0].password_hash
    assert stored.startswith("$2b$04$") and password not in stored  # bcrypt, never the password
    assert store.accounts.authenticate(hostile, password).name == hostile
    assert [lab.name for lab in store.accounts.labelers()] == [hostile]  # the table is still there, name verbatim
    # A wrong password and an unknown name fail alike, so names cannot be probed through login.
    with pytest.raises(AuthError) as wrong:
        store.accounts.authenticate(hostile, password + "x")
    with pytest.raises(AuthError) as unknown:
        store.accounts.authenticate("ghost", password)
    assert (
        str(wrong.value)
        == str(unknown.value)
        == "unknown labeler or wrong password (an admin can add you or reset your password)"
    )
    with pytest.raises(CurateError, match="already exists"):
        store.accounts.add_labeler(hostile)
    for bad in ("", " padded", "tab\there", "x" * 101):
        with pytest.raises(CurateError, match="labeler name must be"):
            store.accounts.add_labeler(bad)
    with pytest.raises(CurateError, match="role must be one of"):
        store.accounts.add_labeler("eve", role="root")
    new = store.accounts.reset_password(hostile)
    with pytest.raises(AuthError):
        store.accounts.authenticate(hostile, password)
    first_login = store.accounts.authenticate(hostile, new)
    assert first_login.password_temporary
    store.accounts.set_password(first_login.id, "a chosen passphrase")
    assert not store.accounts.authenticate(hostile, "a chosen passphrase").password_temporary


def test_each_item_goes_to_overlap_labelers_never_twice(store: ReviewStore) -> None:
    ids = [labeler(store, n) for n in ("ann", "ben", "cat")]
    rated = {lid: rate_all(store, lid) for lid in ids}
    for answers in rated.values():
        assert len(answers) == len(set(answers))  # no labeler rates an answer twice
    ratings = store.reports.ratings_frame("qa")
    per_item = ratings.groupby("item_id")["labeler"].nunique()
    assert (per_item == 2).all() and len(per_item) == len(ITEMS)  # overlap 2, every item covered
    assert len(ratings) == len(ITEMS) * 2 * 2
    assert sum(len(a) for a in rated.values()) == len(ratings)
    assert store.next_rating_task(ids[0], "qa") is None
    progress = store.reports.progress_all("qa")
    assert progress == {lid: store.reports.progress(lid, "qa") for lid in ids}
    assert all(done == assigned == len(rated[lid]) for lid, (done, assigned) in progress.items())


def test_tasks_are_blind(store: ReviewStore) -> None:
    ann, ben = labeler(store, "ann"), labeler(store, "ben")
    task = store.next_rating_task(ann, "qa")
    assert isinstance(task, RatingTask)
    assert {f.name for f in dataclasses.fields(RatingTask)} == {
        "item_id",
        "prompt",
        "answer_id",
        "answer",
        "answer_index",
        "n_answers",
        "shown_position",
    }
    store.submit_rating(ann, task.answer_id, 9, "mine", 2.0)
    assert store.reports.ratings_frame("qa", labeler_id=ben).empty
    assert list(store.reports.ratings_frame("qa", labeler_id=ann).rating) == [9]
    assert len(store.reports.ratings_frame("qa")) == 1  # the admin view sees everyone


def test_deactivated_labeler_is_locked_out_and_frees_untouched_items(store: ReviewStore) -> None:
    ann = store.accounts.authenticate("ann", store.accounts.add_labeler("ann")).id
    store.accounts.set_password(ann, password := "ann-own-password")
    first = store.next_rating_task(ann, "qa")
    store.submit_rating(ann, first.answer_id, 6, None, 1.0)  # item 1 touched
    with store.db.session(write=True) as s:  # claim item 2 without touching it
        store._claim(s, ann, project_row(s, "qa"))
    assert store.accounts.deactivate_labeler("ann") == 1
    with pytest.raises(AuthError, match="deactivated"):
        store.accounts.authenticate("ann", password)
    with pytest.raises(CurateError, match="deactivated"):
        store.next_rating_task(ann, "qa")
    assert len(store.reports.ratings_frame("qa")) == 1  # her rating stays
    with store.db.session() as s:
        claims = dict(s.execute(text("SELECT id, claims FROM items ORDER BY id")).tuples().all())
    assert claims[first.item_id] == 1 and sum(claims.values()) == 1


def test_editing_a_rating_keeps_its_history(store: ReviewStore) -> None:
    ann = labeler(store, "ann")
    task = store.next_rating_task(ann, "qa")
    first = store.submit_rating(ann, task.answer_id, 4, "first look", 3.0)
    second = store.submit_rating(ann, task.answer_id, 7, "changed my mind", 1.0)
    current = store.reports.ratings_frame("qa")
    assert list(current.rating_id) == [second] and list(current.rating) == [7]
    history = store.reports.ratings_frame("qa", history=True).set_index("rating_id")
    assert history.loc[first, "superseded_by_id"] == second and history.loc[first, "rating"] == 4
    assert pd.notna(history.loc[first, "superseded_at"]) and pd.isna(history.loc[second, "superseded_at"])


@pytest.mark.parametrize("bad", [0, 11, -3, "7", "seven", 7.5, None, True])
def test_bad_ratings_are_rejected_and_nothing_stored(store: ReviewStore, bad: object) -> None:
    ann = labeler(store, "ann")
    task = store.next_rating_task(ann, "qa")
    with pytest.raises(CurateError, match="a rating must be"):
        store.submit_rating(ann, task.answer_id, bad, None, 1.0)  # type: ignore[arg-type]
    assert store.reports.ratings_frame("qa").empty


def test_database_check_constraint_backs_the_1_to_10_rule(store: ReviewStore) -> None:
    ann = labeler(store, "ann")
    task = store.next_rating_task(ann, "qa")
    with pytest.raises(IntegrityError), store.db.session(write=True) as s:
        s.execute(
            text(
                "INSERT INTO ratings (labeler_id, answer_id, value, seconds_spent, mode, created_at) "
                "VALUES (:l, :a, 11, 0, 'rate', CURRENT_TIMESTAMP)"
            ),
            {"l": ann, "a": task.answer_id},
        )


def test_comments_and_other_bad_input(store: ReviewStore) -> None:
    ann, ben = labeler(store, "ann"), labeler(store, "ben")
    task = store.next_rating_task(ann, "qa")
    script = "<script>alert('x')</script> '; DROP TABLE ratings; --"
    store.submit_rating(ann, task.answer_id, 3, script, 2.0)
    assert store.reports.ratings_frame("qa").comment.tolist() == [script]  # stored verbatim, harmless as data
    with pytest.raises(CurateError, match="seconds spent must be a finite number >= 0"):
        store.submit_rating(ann, task.answer_id, 3, None, -1)
    with pytest.raises(CurateError, match="not assigned to this labeler"):
        store.submit_rating(ben, task.answer_id, 3, None, 1)
    with pytest.raises(CurateError, match="unknown labeler id 999"):
        store.submit_rating(999, task.answer_id, 3, None, 1)
    with pytest.raises(CurateError, match="no answer with id 12345"):
        store.submit_rating(ann, 12345, 3, None, 1)
    with pytest.raises(CurateError, match="at most 5000 characters"):
        store.submit_rating(ann, task.answer_id, 3, "x" * 5001, 1)


def test_skip_and_flag_leave_the_queue_and_flags_leave_exports(store: ReviewStore, tmp_path: Path) -> None:
    ann, ben = labeler(store, "ann"), labeler(store, "ben")
    first = store.next_rating_task(ann, "qa")
    store.skip(ann, first.answer_id)
    second = store.next_rating_task(ann, "qa")
    assert second.answer_id != first.answer_id
    with pytest.raises(CurateError, match="a flag needs a reason"):
        store.flag(ann, second.answer_id, "  ")
    store.flag(ann, second.answer_id, "<b>offensive</b>")
    assert store.reports.progress(ann, "qa") == (2, 2)  # both answers of the one item she holds are done
    assert store.reports.claimable(ann, "qa") == 8  # 4 unclaimed items x 2 answers she may still get
    assert store.reports.progress_all("qa") == {ann: (2, 2), ben: (0, 0)}
    assert store.reports.claimable(ben, "qa") == 10  # ben may still get all 5 items
    flagged = store.reports.flagged("qa")
    assert flagged[["answer_id", "labeler", "reason"]].values.tolist() == [
        [second.answer_id, "ann", "<b>offensive</b>"]
    ]
    rate_all(store, ann, 9)
    rate_all(store, ben, 3)
    export_ratings(store, "qa", tmp_path / "reward", "reward", split=SplitConfig(test_size=0.0))
    rows = pd.read_parquet(tmp_path / "reward/data/train-00000-of-00001.parquet")
    assert flagged.response[0] in set(store.reports.ratings_frame("qa").response)  # rated by ben, yet...
    assert flagged.response[0] not in set(rows.response) and len(rows) == 9  # ...left out of the export


def test_compare_tasks_random_order_recorded(store: ReviewStore) -> None:
    ann = labeler(store, "ann")
    seen_swapped = set()
    while (task := store.next_compare_task(ann, "qa")) is not None:
        assert isinstance(task, CompareTask) and task.left_answer_id != task.right_answer_id
        seen_swapped.add(task.swapped)
        store.submit_comparison(ann, task, 8, 3, 6.0)
    ratings = store.reports.ratings_frame("qa")
    assert len(ratings) == len(ITEMS) * 2 and set(ratings["mode"]) == {"compare"}
    assert ratings.seconds.sum() == pytest.approx(6.0 * len(ITEMS))
    with store.db.session() as s:
        rows = s.execute(text("SELECT left_answer_id, right_answer_id, swapped, preferred FROM comparisons")).all()
    assert {r.preferred for r in rows} == {"left"}
    left_ratings = ratings.set_index("answer_id").rating
    assert all(left_ratings[r.left_answer_id] == 8 and left_ratings[r.right_answer_id] == 3 for r in rows)
    assert {bool(r.swapped) for r in rows} == seen_swapped
    replay = CompareTask(1, "q", rows[0].left_answer_id, "", rows[0].right_answer_id, "", False)
    with pytest.raises(CurateError, match="a rating must be"):
        store.submit_comparison(ann, replay, 0, 5, 1.0)


def test_labeler_stats_progress_and_export(store: ReviewStore, tmp_path: Path) -> None:
    ann, ben = labeler(store, "ann"), labeler(store, "ben")
    labeler(store, "root", role="admin")
    rate_all(store, ann, 8)
    while (task := store.next_rating_task(ben, "qa")) is not None:  # ben: 'a' answers good, 'b' answers bad
        store.submit_rating(ben, task.answer_id, 9 if task.answer.endswith("a") else 2, None, 3.0)
    stats = store.reports.labeler_stats("qa").set_index("labeler")
    assert list(stats.index) == ["ann", "ben"]  # the idle admin is not listed
    assert stats.loc["ann", "done"] == stats.loc["ann", "assigned"] == 10
    assert stats.loc["ann", "seconds_per_rating"] == 1.5 and stats.loc["ben", "ratings_per_hour"] == 1200
    assert stats.loc["ann", "bias"] == pytest.approx(8 - 5.5) and stats.loc["ben", "bias"] == pytest.approx(-2.5)
    rules = RatingsConfig(min_gap=1, margin_scale=2.0)
    out = export_ratings(store, "qa", tmp_path / "pairs", "preference", ratings=rules, split=SplitConfig()).out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "preference" and manifest["derive"]["rules"]["min_gap"] == 1
    pairs = pd.concat(pd.read_parquet(p) for p in (out / "data").glob("*.parquet"))
    assert len(pairs) == len(ITEMS) and (pairs.margin == 7.0).all()  # (8.5 - 5) x 2
    assert pairs.chosen.str.endswith("a").all()
    with pytest.raises(CurateError, match="unknown export kind"):
        export_ratings(store, "qa", tmp_path / "x", "dpo")


def test_database_is_locked_is_one_line_and_nothing_is_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = ReviewStore(url, password_rounds=4, busy_timeout=0.2, migrate=True)
    store.create_project("qa")
    store.import_items("qa", ITEMS)
    ann = labeler(store, "ann")
    task = store.next_rating_task(ann, "qa")
    blocker = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
    try:
        with pytest.raises(
            StoreUnavailable, match=r"^the review database is busy: nothing was saved\. Please try again"
        ):
            store.submit_rating(ann, task.answer_id, 5, None, 1.0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.submit_rating(ann, task.answer_id, 5, None, 1.0)
    assert len(store.reports.ratings_frame("qa")) == 1


def run_concurrently(url: str, n_labelers: int, per_labeler: int, tmp_path: Path) -> None:
    """n labelers rate at once through their own store handles; assert no rating is lost or duplicated."""
    ReviewStore(url, migrate=True).close()
    setup = open_store(url)
    setup.create_project("load", overlap=3)
    n_items = n_labelers * per_labeler // 3  # twice the 2-answer slots needed: nobody runs dry at the end
    setup.import_items("load", [{"prompt": f"q{i}", "answers": [f"a{i}", f"b{i}"]} for i in range(n_items)])
    ids = [labeler(setup, f"labeler-{i}") for i in range(n_labelers)]
    store = open_store(url)  # one shared engine, a session per call: as the Streamlit app runs
    submitted: dict[int, list[int]] = {lid: [] for lid in ids}

    def work(lid: int) -> None:
        for n in range(per_labeler):
            task = store.next_rating_task(lid, "load")
            assert task is not None
            submitted[lid].append(store.submit_rating(lid, task.answer_id, 1 + (lid + n) % 10, None, 0.5))

    run_at_once(work, ids)
    ratings = store.reports.ratings_frame("load", history=True)
    assert len(ratings) == n_labelers * per_labeler  # nothing lost
    assert sorted(ratings.rating_id) == sorted(r for rs in submitted.values() for r in rs)
    assert not ratings.duplicated(["labeler_id", "answer_id"]).any()  # nothing duplicated
    assert ratings.superseded_at.isna().all()
    assert Counter(ratings.labeler_id) == {lid: per_labeler for lid in ids}
    with store.db.session() as s:
        claims = s.execute(text("SELECT item_id, COUNT(*) AS n FROM assignments GROUP BY item_id")).all()
        counters = dict(s.execute(text("SELECT id, claims FROM items")).tuples().all())
    assert max(n for _, n in claims) <= 3 and all(counters[item] == n for item, n in claims)
    store.close()
    setup.close()


@pytest.mark.slow
def test_twenty_labelers_rate_at_once_on_sqlite(tmp_path: Path) -> None:
    run_concurrently(f"sqlite:///{tmp_path / 'load.db'}", 20, 200, tmp_path)


@pytest.mark.postgres
@pytest.mark.slow
def test_twenty_labelers_rate_at_once_on_postgresql(postgres_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_concurrently(postgres_server.create_database(), 20, 50, tmp_path)


def test_compare_mode_counts_only_items_it_can_hand_out(db_url: str) -> None:
    store = ReviewStore(db_url, password_rounds=4)
    store.create_project("mixed", overlap=1)
    store.import_items("mixed", [{"prompt": "one?", "answers": ["a"]}, {"prompt": "two?", "answers": ["b", "c"]}])
    ann = labeler(store, "ann")
    assert store.reports.claimable(ann, "mixed") == 3  # Rate mode may hand out all three answers
    assert store.reports.claimable(ann, "mixed", min_answers=2) == 2  # Compare never shows a single-answer item
    task = store.next_compare_task(ann, "mixed")
    assert task is not None and store.reports.claimable(ann, "mixed", min_answers=2) == 0
    store.close()


def _disk_full(store: ReviewStore) -> None:
    """From now on the store's SQLite file cannot grow (as on a full disk): SQLite's max_page_count, set on every
    new connection at the current size."""
    with store.db.session() as s:
        pages = s.execute(text("PRAGMA page_count")).scalar()
    store.db.engine.dispose()
    event.listen(store.db.engine, "connect", lambda conn, _: conn.execute(f"PRAGMA max_page_count = {pages}"))


def test_a_full_disk_is_one_line_and_the_detail_goes_to_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'full.db'}"
    store = ReviewStore(url, password_rounds=4, migrate=True)
    store.create_project("qa")
    store.import_items("qa", ITEMS)
    ann = labeler(store, "ann")
    task = store.next_rating_task(ann, "qa")
    _disk_full(store)
    with pytest.raises(StoreUnavailable) as full, caplog.at_level("ERROR", logger="curate.review"):
        store.submit_rating(ann, task.answer_id, 7, "a long comment " * 300, 3.0)  # needs new pages
    assert str(full.value) == (
        "the review database is out of disk space: nothing was saved. "
        "Please tell an admin (details are in the server log)."
    )
    assert str(tmp_path) not in str(full.value) and "INSERT" not in str(full.value)  # no paths, no SQL
    assert "SQLITE_FULL" in caplog.text and "database or disk is full" in caplog.text  # the detail, server-side
    store.close()
    fresh = ReviewStore(url, password_rounds=4)  # the disk has room again
    assert fresh.reports.ratings_frame("qa").empty  # nothing half-saved
    fresh.submit_rating(ann, task.answer_id, 7, "a long comment " * 300, 3.0)
    assert list(fresh.reports.ratings_frame("qa").rating) == [7]
    fresh.close()
