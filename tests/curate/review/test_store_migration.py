"""Upgrading a review database that holds data: revision 0003 keeps every row (a SQLite table rebuild
with foreign keys on would cascade-delete them) and gives existing claims an expiry."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from curate.review.store import MIGRATIONS, ReviewStore

PROJECT, ITEM = "(SELECT id FROM projects)", "(SELECT id FROM items)"
ANN, BEN = "(SELECT id FROM labelers WHERE name = 'ann')", "(SELECT id FROM labelers WHERE name = 'ben')"
A1 = "(SELECT id FROM answers WHERE text = 'a')"
ROWS = [  # no explicit ids, so PostgreSQL's sequences stay in step
    "INSERT INTO projects (name, overlap, mode, created_at) VALUES ('qa', 1, 'rate', :old)",
    f"INSERT INTO items (project_id, prompt, claims, created_at) VALUES ({PROJECT}, 'q?', 1, :old)",
    f"INSERT INTO answers (item_id, position, text) VALUES ({ITEM}, 0, 'a'), ({ITEM}, 1, 'b')",
    "INSERT INTO labelers (name, role, password_hash, password_temporary, active, created_at) "
    "VALUES ('ann', 'labeler', 'x', :no, :yes, :old), ('ben', 'labeler', 'x', :no, :yes, :old)",
    f"INSERT INTO assignments (project_id, item_id, labeler_id, created_at) VALUES ({PROJECT}, {ITEM}, {ANN}, :old)",
    "INSERT INTO ratings (labeler_id, answer_id, value, seconds_spent, mode, created_at) "
    f"VALUES ({ANN}, {A1}, 7, 2.0, 'rate', :old)",
    f"INSERT INTO flags (labeler_id, answer_id, reason, created_at) VALUES ({ANN}, {A1}, 'odd', :old)",
]


def test_upgrading_a_database_with_data_keeps_every_row(empty_db_url: str) -> None:
    db_url = empty_db_url
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(db_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")  # the schema before claim expiry and clearable flags
        for row in ROWS:
            conn.execute(text(row), {"old": "2026-01-01 10:00:00", "no": False, "yes": True})

    store = ReviewStore(db_url, password_rounds=4, migrate=True)  # what `curate review init` does
    with engine.connect() as conn:
        counts = {t: conn.scalar(text(f"SELECT COUNT(*) FROM {t}")) for t in ("items", "answers", "ratings", "flags")}
        assert counts == {"items": 1, "answers": 2, "ratings": 1, "flags": 1}
        assert conn.scalar(text("SELECT claim_hours FROM projects")) == 24
        assert conn.scalar(text("SELECT expires_at FROM assignments")) is not None  # old claims expire too
    assert list(store.reports.flagged("qa").reason) == ["odd"] and list(store.reports.ratings_frame("qa").rating) == [7]
    # ann's claim from January is unfinished (answer b open): ben gets the slot, ann keeps her item.
    with engine.connect() as conn:
        ann, ben, item = (conn.scalar(text(f"SELECT {q}")) for q in (ANN, BEN, ITEM))
    ben_task = store.next_rating_task(ben, "qa")
    assert ben_task is not None and ben_task.item_id == item
    assert store.next_rating_task(ann, "qa").answer == "b"
    with store.db.session() as s:  # foreign keys are back on for the store's connections
        if store.db.dialect == "sqlite":
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()
    engine.dispose()
