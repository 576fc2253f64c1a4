"""Write the review-database corpus beside this file: databases `curate review` must refuse with one line.

Run from the repository root (`python tests/corpus/review_db/make_corpus.py`) after a schema change that
the files should follow; the files are committed, so the tests never depend on this script's output.
Small on purpose: 1 KiB pages, no WAL.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from curate.review.database import MIGRATIONS

HERE = Path(__file__).resolve().parent


def review_db(path: Path, revision: str = "head") -> bytes:
    """A review database at `revision` holding one project, as a compact file's bytes."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA page_size = 1024")
        conn.execute("VACUUM")
    engine = create_engine(f"sqlite:///{path}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.exec_driver_sql(
            "INSERT INTO projects (name, overlap, mode, created_at) VALUES ('qa', 2, 'rate', '2026-01-01')"
        )
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    return path.read_bytes()


def main() -> None:
    rng = random.Random(15)
    tmp = Path(tempfile.mkdtemp())
    current = review_db(tmp / "current.db")
    files = {
        "empty.db": b"",
        "random-bytes.db": rng.randbytes(4096),
        "truncated.db": current[: len(current) // 2],
        # Page 7 (a table's b-tree page) overwritten: the schema reads fine, quick_check does not.
        "corrupt-page.db": current[: 6 * 1024] + rng.randbytes(1024) + current[7 * 1024 :],
        "old-revision-0002.db": review_db(tmp / "old.db", "0002"),
    }
    future = tmp / "future.db"
    future.write_bytes(current)
    with sqlite3.connect(future) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")  # as a later curatrain would leave it
    files["future-revision.db"] = future.read_bytes()
    foreign = tmp / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("PRAGMA page_size = 1024")
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL)")
        conn.execute("INSERT INTO customers (name) VALUES ('keep me')")
    files["foreign-app.db"] = foreign.read_bytes()
    foreign_alembic = tmp / "foreign-alembic.db"
    with sqlite3.connect(foreign_alembic) as conn:
        conn.execute("PRAGMA page_size = 1024")
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")  # another Alembic app, same revision name
        conn.execute("CREATE TABLE projects (id INTEGER PRIMARY KEY, title TEXT)")
    files["foreign-alembic-app.db"] = foreign_alembic.read_bytes()
    for name, data in files.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
