"""The review database: one SQLAlchemy engine, its sessions, and the schema's Alembic migrations.

SQLite by default (WAL, busy timeout, foreign keys on; writes take the write lock up front with
BEGIN IMMEDIATE so concurrent labelers queue instead of failing), PostgreSQL by URL.

Only `curate review init` creates or upgrades a schema (`Database.open(migrate=True)`). Every other
opener checks, before it changes anything, that the database is ours and at this code's revision,
and otherwise stops with one line saying what to run: a missing file or an empty database (init
it), another application's tables (wrong --db), an older revision (init upgrades it), a newer one
(upgrade curatrain), or a file SQLite cannot read or whose pages fail `PRAGMA quick_check`.

A database that fails under a request (disk full, busy past the timeout, damaged, read-only) raises
`StoreUnavailable`: one line for the person at the screen, the details logged server-side on the
`curate.review` logger (the review app sends it to the server's stderr).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from curate.errors import CurateError
from curate.review.models import utcnow
from curate.review.types import resolve_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # Alembic scripts ship inside the package
_MIGRATION_LOCK = 0x63757261  # pg_advisory_xact_lock key: one migrator at a time
APP_MARKER = "curatrain-review"  # settings.app of every review database since revision 0004
MARKED_SINCE = "0004"
# The tables of revision 0001: a database at any of our revisions holds at least these.
CORE_TABLES = frozenset({"projects", "items", "answers", "labelers", "assignments", "ratings", "comparisons"})
# quick_check reads every page (0.4 s for a 140 MB file, measured here): run it on open up to this size,
# where it costs well under a second; a bigger database opens without it.
QUICK_CHECK_MAX_BYTES = 256 << 20


log = logging.getLogger("curate.review")
log.addHandler(logging.NullHandler())  # silent unless the application (the review app) adds a handler

# What went wrong, by SQLite error name or PostgreSQL SQLSTATE -> (what the database is, what to do).
_PROBLEMS = {
    "SQLITE_FULL": ("is out of disk space", "Please tell an admin"),
    "53100": ("is out of disk space", "Please tell an admin"),  # disk_full
    "SQLITE_BUSY": ("is busy", "Please try again in a moment"),
    "SQLITE_LOCKED": ("is busy", "Please try again in a moment"),
    "SQLITE_CORRUPT": ("is damaged", "Please tell an admin"),
    "SQLITE_NOTADB": ("is damaged", "Please tell an admin"),
    "XX001": ("is damaged", "Please tell an admin"),  # data_corrupted
    "SQLITE_READONLY": ("is read-only", "Please tell an admin"),
    "SQLITE_IOERR": ("could not be read or written", "Please tell an admin"),
}


class StoreUnavailable(CurateError):
    """The database failed under a request (disk full, busy, damaged, read-only): nothing of it was saved."""


def _unavailable(exc: DatabaseError, where: str) -> StoreUnavailable:
    """One line for the person at the screen (no SQL, no paths); the details go to the server log."""
    orig = exc.orig
    code = str(getattr(orig, "sqlite_errorname", None) or getattr(orig, "sqlstate", None) or "")
    primary = "_".join(code.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
    problem, advice = _PROBLEMS.get(primary, ("failed", "Please try again, or tell an admin"))
    log.error("review database %s failed (%s): %s", where, code or type(orig).__name__, exc)
    return StoreUnavailable(
        f"the review database {problem}: nothing was saved. {advice} (details are in the server log)."
    )


def _migrations() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@dataclass(frozen=True)
class SchemaState:
    """What a database holds, read before anything is changed: its tables, Alembic revision and app marker."""

    tables: frozenset[str]
    revision: str | None
    app: str | None


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
        """An engine on `url` (a bare path means SQLite), not yet connected: `open` checks the schema first.

        `busy_timeout`: seconds a SQLite writer waits for the lock before "database is locked" is raised.
        """
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
            self.path: Path | None = Path(parsed.database).expanduser()
            self.engine: Engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_timeout=60)
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_timeout))
            event.listen(self.engine, "begin", _sqlite_begin)
        elif self.dialect == "postgresql":
            self.path = None
            self.engine = create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        else:
            raise CurateError(f"unsupported database '{self.dialect}': use sqlite:///path.db or postgresql://...")
        self._writer = self.engine.execution_options(curate_write=True)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A session in one transaction, committed on exit; `write` takes SQLite's write lock at BEGIN.

        A failing database (disk full, busy past the timeout, damaged) raises `StoreUnavailable`; a broken
        constraint stays an IntegrityError (a bug or a race the caller handles, not the database's state).
        """
        try:
            with Session(self._writer if write else self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except (IntegrityError, DataError):
            raise
        except DatabaseError as exc:
            raise _unavailable(exc, self.display_url) from exc

    @property
    def init_hint(self) -> str:
        """The command that creates or upgrades this database."""
        return f"curate review init --db {self.display_url}"

    def open(self, migrate: bool = False) -> None:
        """Check that this is a review database at this code's schema revision, else CurateError saying what to
        run; `migrate` (only `curate review init`) creates an empty database's schema or upgrades an older one."""
        if self.path is not None and not self.path.exists():
            if not migrate:
                raise CurateError(f"no review database at {self.path}: create it with `{self.init_hint}`")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        state = self.inspect()
        script = ScriptDirectory.from_config(_migrations())
        head = script.get_current_head()
        known = {rev.revision for rev in script.walk_revisions()}
        ours = state.tables >= CORE_TABLES and state.revision is not None
        if state.revision is not None and state.revision >= MARKED_SINCE:
            ours = ours and state.app == APP_MARKER
        if state.revision == head and ours:
            return
        if not state.tables:
            if migrate:
                return self._upgrade()
            raise CurateError(f"{self.display_url} holds no review database yet: create it with `{self.init_hint}`")
        if not ours:
            others = ", ".join(sorted(state.tables)[:5]) + (", ..." if len(state.tables) > 5 else "")
            raise CurateError(
                f"{self.display_url} is not a curatrain review database (it holds other tables: {others}): "
                "pass the review database with --db"
            )
        if state.revision not in known:
            raise CurateError(
                f"{self.display_url} was written by a newer curatrain (schema revision {state.revision}; this one "
                f"knows up to {head}): upgrade curatrain to open it"
            )
        if not migrate:
            raise CurateError(
                f"{self.display_url} has schema revision {state.revision}, this curatrain needs {head}: "
                f"upgrade it with `{self.init_hint}` (back it up first)"
            )
        self._upgrade()

    def inspect(self) -> SchemaState:
        """Read the tables, revision and marker over a plain connection (no WAL switch, nothing written);
        a SQLite file SQLite cannot read, or whose pages fail `quick_check`, is a CurateError."""
        plain = create_engine(self.url, poolclass=NullPool)
        try:
            with plain.connect() as conn:
                if self.path is not None and self.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                    verdict = str(conn.exec_driver_sql("PRAGMA quick_check(1)").scalar())
                    if verdict != "ok":
                        first = " ".join(verdict.replace("*** in database main ***", "").split())  # one line
                        raise CurateError(
                            f"{self.display_url} is damaged (SQLite quick_check: {first}): restore it from a backup"
                        )
                return _schema_state(conn)
        except OperationalError as exc:
            if self.path is None:  # PostgreSQL: the server, not the file
                raise CurateError(f"cannot open the review database {self.display_url}: {exc.orig}") from None
            raise self._unreadable(exc) from None
        except DatabaseError as exc:
            raise self._unreadable(exc) from None
        finally:
            plain.dispose()

    def _unreadable(self, exc: DatabaseError) -> CurateError:
        return CurateError(
            f"{self.display_url} is not a SQLite database or is damaged ({exc.orig}): "
            "restore it from a backup, or pass the right --db"
        )

    def _upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (one migrator at a time)."""
        try:
            self._run_migrations()
        except OperationalError as exc:
            self.engine.dispose()
            raise CurateError(f"cannot open the review database {self.display_url}: {exc.orig}") from None

    def _run_migrations(self) -> None:
        config = _migrations()
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


def _schema_state(conn: Connection) -> SchemaState:
    tables = frozenset(inspect(conn).get_table_names())
    revision = conn.scalar(text("SELECT version_num FROM alembic_version")) if "alembic_version" in tables else None
    app = conn.scalar(text("SELECT value FROM settings WHERE key = 'app'")) if "settings" in tables else None
    return SchemaState(tables, revision, app)
