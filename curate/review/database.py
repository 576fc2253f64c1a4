"""The review database: one SQLAlchemy engine, its sessions, and the schema's Alembic migrations.

SQLite by default (WAL, busy timeout, foreign keys on; writes take the write lock up front with
BEGIN IMMEDIATE so concurrent labelers queue instead of failing), PostgreSQL by URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from curate.errors import CurateError
from curate.review.models import utcnow
from curate.review.types import resolve_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # Alembic scripts ship inside the package
_MIGRATION_LOCK = 0x63757261  # pg_advisory_xact_lock key: one migrator at a time


def _sqlite_pragmas(busy_timeout: float) -> Any:
    """A connect-event hook: WAL, busy timeout (ms), foreign keys on, and our own BEGIN."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (see _sqlite_begin); pysqlite's own transaction handling is off.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    return on_connect


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock at BEGIN: a deferred transaction that upgrades to a writer
    # fails at once with "database is locked" when another writer is active (no busy wait).
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("curate_write") else "BEGIN")


class Database:
    """The engine (and connection pool) on one review database, with the clock every component reads."""

    def __init__(self, url: str, busy_timeout: float = 30.0, clock: Callable[[], datetime] = utcnow) -> None:
        """Connect lazily to `url` (a bare path means SQLite); `busy_timeout`: seconds a SQLite writer waits."""
        self.url = resolve_url(url)
        self.clock = clock
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise CurateError(f"not a database URL: {url!r} (use sqlite:///path.db or postgresql://...)") from None
        self.dialect = parsed.get_backend_name()
        self.display_url = parsed.render_as_string(hide_password=True)
        if self.dialect == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise CurateError("the review store needs a database file: use sqlite:///path/to/review.db")
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_timeout=60)
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_timeout))
            event.listen(self.engine, "begin", _sqlite_begin)
        elif self.dialect == "postgresql":
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        else:
            raise CurateError(f"unsupported database '{self.dialect}': use sqlite:///path.db or postgresql://...")
        self._writer = self.engine.execution_options(curate_write=True)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A session in one transaction, committed on exit; `write` takes SQLite's write lock at BEGIN."""
        with Session(self._writer if write else self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (one migrator at a time)."""
        try:
            self._upgrade()
        except OperationalError as exc:
            self.engine.dispose()
            raise CurateError(f"cannot open the review database {self.display_url}: {exc.orig}") from None

    def _upgrade(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._writer.connect() as conn:
            sqlite = conn.connection.dbapi_connection if self.dialect == "sqlite" else None
            if sqlite is not None:
                # Alembic alters a SQLite table by rebuilding it (copy, DROP, rename); with foreign keys on,
                # that DROP would cascade-delete every row that points at the table. So they are off while
                # migrating (set outside a transaction, where SQLite honours it), checked before commit.
                sqlite.cursor().execute("PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                    if sqlite is not None and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise CurateError("the schema upgrade would leave dangling references: nothing was changed")
            finally:
                if sqlite is not None:
                    sqlite.cursor().execute("PRAGMA foreign_keys = ON")
