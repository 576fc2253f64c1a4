"""The review store: projects, items, labelers, assignments and ratings, for `review_app` and `curate review`.

SQLite by default (WAL, busy timeout, foreign keys on; writes take the write lock up
front with BEGIN IMMEDIATE so concurrent labelers queue instead of failing), PostgreSQL
by URL (claims use SELECT ... FOR UPDATE SKIP LOCKED). The schema is versioned with
Alembic (curate/migrations) and upgraded to head whenever a store is opened.

Assignment: a labeler's queue holds the answers of the items assigned to them that
they have not yet rated, skipped or flagged. When it runs dry they claim the next item
that fewer than `overlap` labelers hold and they don't hold yet, in import order — so
each item goes to `overlap` labelers, nobody gets an item twice, and two labelers
claiming at once never take the same slot. A claim holds its slot for the project's
`claim_hours` (24 by default); if the labeler has not done every answer of the item by
then, the slot goes back to the pool for another labeler, while the item stays in the
first labeler's queue and their later ratings are kept like any other.

Position bias: Rate mode shows each labeler an item's answers in an order of their own
(`shown_order`, stable per labeler), and every rating records where its answer was shown.

Blind rating: a labeler's tasks and `ratings_frame(project, labeler_id)` hold only
their own work; only admin views (no labeler_id) see everyone's ratings.

Rights: the store, not only the UI, enforces them. Reads of everyone's work (ratings,
flags, stats, progress, labelers) and exports take the acting labeler (`actor=`) and
refuse anyone but an active admin. `ReviewStore(url)` is the operator's store (CLI, scripts:
whoever holds the database URL can read every row with sqlite3/psql anyway, and the CLI
must work before any admin exists), where `actor` may be left out; the review app opens
`ReviewStore(url, operator=False)`, where it may not, and which cannot create projects,
import items or manage labelers at all.

Login throttle: `LoginLimit.max_failures` failed logins with one name within `window`
lock that name for `lockout` (default 5 in 15 min -> 15 min), counted in the database so
every server process shares the count; unknown names count and lock exactly like real ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, cast

import bcrypt
import pandas as pd
from alembic import command
from alembic.config import Config
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Engine, and_, create_engine, delete, event, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, aliased

from curate.errors import CurateError
from curate.store_models import (
    Answer,
    Assignment,
    Comparison,
    Flag,
    Item,
    Labeler,
    LoginThrottle,
    Project,
    Rating,
    Skip,
    utcnow,
)

ENV_DB = "CURATRAIN_REVIEW_DB"
DEFAULT_DB = "sqlite:///review.db"
ROLES = ("labeler", "admin")
MODES = ("rate", "compare")
MAX_COMMENT = 5000
MAX_REASON = 1000
DEFAULT_CLAIM_HOURS = 24.0
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")  # any printable text, no control characters
MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # Alembic scripts ship inside the package
_MIGRATION_LOCK = 0x63757261  # pg_advisory_xact_lock key: one migrator at a time


class AuthError(CurateError):
    """Login failed: unknown labeler, deactivated account or wrong password."""


class LoginLocked(AuthError):
    """Too many failed logins with one name: it is locked until `until` (UTC)."""

    def __init__(self, until: datetime, now: datetime) -> None:
        minutes = max(1, math.ceil((until - now).total_seconds() / 60))
        super().__init__(
            f"too many failed logins with this name: try again after {until:%H:%M} UTC "
            f"(in {minutes} minute{'s' if minutes > 1 else ''}), or ask an admin to reset your password"
        )
        self.until = until


@dataclass(frozen=True)
class LoginLimit:
    """`max_failures` failed logins with one name within `window` lock that name for `lockout`."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class RatingTask:
    """One answer to rate: its prompt and text, and where it sits among the item's answers."""

    item_id: int
    prompt: str
    answer_id: int
    answer: str
    answer_index: int  # 1-based position among the item's answers, in import order
    n_answers: int
    shown_position: int = 1  # 1-based place in this labeler's own order of the item's answers


@dataclass(frozen=True)
class CompareTask:
    """Two answers to one prompt, in the (random) order shown; `swapped`: left comes later in the item."""

    item_id: int
    prompt: str
    left_answer_id: int
    left_text: str
    right_answer_id: int
    right_text: str
    swapped: bool


class ReviewItem(BaseModel):
    """One row of `curate review import`: a prompt with 1..n candidate answers and optionally their sources."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1)
    answers: list[str] = Field(min_length=1)
    models: list[str | None] | None = None
    source: str | None = None

    @field_validator("answers", "models", mode="before")
    @classmethod
    def _list_from_text(cls, value: Any) -> Any:
        # CSV cells hold lists as JSON text: ["first answer", "second answer"]
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc}") from None
        return value

    @model_validator(mode="after")
    def _models_match_answers(self) -> ReviewItem:
        if any(not a.strip() for a in self.answers):
            raise ValueError("an answer is empty")
        if self.models is not None and len(self.models) != len(self.answers):
            raise ValueError(f"'models' has {len(self.models)} entries for {len(self.answers)} answers")
        return self


def resolve_url(url: str | None = None) -> str:
    """The database URL: `url`, else $CURATRAIN_REVIEW_DB, else sqlite:///review.db; a bare path means SQLite."""
    url = url or os.environ.get(ENV_DB) or DEFAULT_DB
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3 is the driver we ship
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        # Relative to the cwd of whoever resolves it, so `serve` hands Streamlit an absolute path.
        return f"sqlite:///{Path(url[len('sqlite:///') :]).resolve()}"
    return url


def check_rating(value: Any) -> int:
    """A rating as an int 1-10, or a CurateError saying what was wrong."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CurateError(f"a rating must be a whole number from 1 to 10, got {value!r}")
    if not 1 <= value <= 10:
        raise CurateError(f"a rating must be from 1 (terrible) to 10 (great), got {value}")
    return value


def check_name(name: Any, what: str) -> str:
    """A project or labeler name: 1-100 printable characters (any others are stored verbatim)."""
    if not isinstance(name, str) or not _NAME.match(name) or name != name.strip():
        raise CurateError(
            f"{what} name must be 1-100 printable characters without leading/trailing spaces, got {name!r}"
        )
    return name


def shown_order(labeler_id: int, answer_ids: Iterable[int]) -> list[int]:
    """The order in which Rate mode shows this labeler an item's answers: by a hash of (labeler, answer).

    Uniformly random across labelers (so no answer is always seen first), the same for one labeler on
    every visit and server, and an answer imported later slots in without reshuffling the others.
    """
    return sorted(answer_ids, key=lambda a: hashlib.blake2b(f"{labeler_id}:{a}".encode(), digest_size=8).digest())


def check_claim_hours(hours: Any) -> float:
    """Hours a claim holds its slot: a finite number > 0, or a CurateError."""
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours) or hours <= 0:
        raise CurateError(f"claim hours must be a number > 0 (how long a claimed item waits), got {hours!r}")
    return float(hours)


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise CurateError(f"seconds spent must be a number, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise CurateError(f"seconds spent must be a finite number >= 0, got {value!r}")
    return seconds


def _aware(moment: datetime) -> datetime:
    """A stored timestamp in UTC: SQLite hands back naive datetimes, PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _name_key(name: Any) -> str:
    """The login throttle's key: SHA-256 of the name as typed (a password typed as the name is never stored)."""
    return hashlib.sha256(str(name).encode("utf-8", "replace")).hexdigest()


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


class ReviewStore:
    """All reads and writes of the review app and `curate review`, over one SQLAlchemy engine."""

    def __init__(
        self,
        url: str,
        password_rounds: int = 12,
        busy_timeout: float = 30.0,
        *,
        login_limit: LoginLimit | None = None,
        operator: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """Open (and create or upgrade to the latest schema) the store at `url`; a bare path means SQLite.

        `busy_timeout`: seconds a SQLite writer waits for the lock before "database is locked" is raised.
        `operator`: False for the review app's store, whose admin-only operations need an acting admin.
        `login_limit`: the failed-login lock (default `LoginLimit()`); `clock`: the current UTC time.
        """
        self.url = resolve_url(url)
        self.password_rounds = password_rounds
        self.login_limit = login_limit or LoginLimit()
        self.clock = clock
        self.operator = operator
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
        try:
            self._upgrade()
        except OperationalError as exc:
            self.engine.dispose()
            raise CurateError(f"cannot open the review database {self.display_url}: {exc.orig}") from None

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def _upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (one migrator at a time)."""
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

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        with Session(self._writer if write else self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # --- projects, items, labelers -------------------------------------------------------------

    def create_project(
        self, name: str, overlap: int = 2, mode: str = "rate", claim_hours: float = DEFAULT_CLAIM_HOURS
    ) -> Project:
        """A new project whose items each go to `overlap` labelers; `mode` is rate or compare.

        `claim_hours`: how long a claimed item holds its slot before an unfinished claim frees it.
        """
        self._require_operator("create projects")
        check_name(name, "project")
        hours = check_claim_hours(claim_hours)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1:
            raise CurateError(f"overlap must be a whole number >= 1 (labelers per item), got {overlap!r}")
        if mode not in MODES:
            raise CurateError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        with self._session(write=True) as s:
            if s.scalar(select(Project.id).where(Project.name == name)) is not None:
                raise CurateError(f"project {name!r} already exists")
            project = Project(name=name, overlap=overlap, mode=mode, claim_hours=hours)
            s.add(project)
        return project

    def set_claim_hours(self, project: str, hours: float) -> None:
        """Change how long a project's claims hold their slot; claims made from now on use it."""
        self._require_operator("change claim hours")
        value = check_claim_hours(hours)
        with self._session(write=True) as s:
            self._project(s, project).claim_hours = value

    def projects(self) -> list[str]:
        """Names of all projects, oldest first."""
        with self._session() as s:
            return list(s.scalars(select(Project.name).order_by(Project.id)))

    def project(self, name: str) -> Project:
        """The project called `name` (CurateError when there is none)."""
        with self._session() as s:
            return self._project(s, name)

    def _project(self, s: Session, name: str) -> Project:
        project = s.scalar(select(Project).where(Project.name == name))
        if project is None:
            raise CurateError(f"no project named {name!r}: create it with `curate review init --project NAME`")
        return project

    def import_items(self, project: str, rows: Iterable[dict[str, Any]]) -> int:
        """Add prompts with their answers; returns the number of new answers.

        A prompt already in the project gets only the answers it does not have yet, so
        re-importing a file adds nothing and new model answers join their prompt's item.
        """
        self._require_operator("import items")
        items = []
        for n, row in enumerate(rows, start=1):
            try:
                items.append(ReviewItem.model_validate(row))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"]) or "(row)"
                raise CurateError(f"item {n}: field '{loc}': {first['msg']}") from None
        added = 0
        with self._session(write=True) as s:
            pid = self._project(s, project).id
            existing = {i.prompt: i for i in s.scalars(select(Item).where(Item.project_id == pid))}
            for item in items:
                row_item = existing.get(item.prompt)
                if row_item is None:
                    row_item = existing[item.prompt] = Item(project_id=pid, prompt=item.prompt, source=item.source)
                    s.add(row_item)
                    s.flush()
                    have: dict[str, int] = {}
                else:
                    query = select(Answer.text, Answer.position).where(Answer.item_id == row_item.id)
                    have = dict(s.execute(query).tuples().all())
                models = item.models or [None] * len(item.answers)
                for answer, model in zip(item.answers, models, strict=True):
                    if answer in have:
                        continue
                    have[answer] = len(have)
                    s.add(Answer(item_id=row_item.id, position=have[answer], text=answer, model=model))
                    added += 1
        return added

    def add_labeler(self, name: str, role: str = "labeler") -> str:
        """Create a labeler (or admin); returns their one-time password (only its bcrypt hash is stored)."""
        self._require_operator("add labelers")
        check_name(name, "labeler")
        if role not in ROLES:
            raise CurateError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        password = secrets.token_urlsafe(12)
        with self._session(write=True) as s:
            if s.scalar(select(Labeler.id).where(Labeler.name == name)) is not None:
                raise CurateError(f"labeler {name!r} already exists (give them a new password with --reset)")
            s.add(Labeler(name=name, role=role, password_hash=self._hash(password), password_temporary=True))
        return password

    def reset_password(self, name: str) -> str:
        """A new one-time password for an existing labeler; it also lifts a failed-login lock on their name."""
        self._require_operator("reset passwords")
        password = secrets.token_urlsafe(12)
        with self._session(write=True) as s:
            labeler = s.scalar(select(Labeler).where(Labeler.name == name))
            if labeler is None:
                raise CurateError(f"no labeler named {name!r}")
            labeler.password_hash = self._hash(password)
            labeler.password_temporary = True
            s.execute(delete(LoginThrottle).where(LoginThrottle.name_hash == _name_key(name)))
        return password

    def set_password(self, labeler_id: int, password: str) -> None:
        """Replace a labeler's password with one they chose (8-72 bytes)."""
        if not isinstance(password, str) or not 8 <= len(password.encode()) <= 72:
            raise CurateError("a password must be 8 to 72 bytes long")
        with self._session(write=True) as s:
            labeler = self._labeler(s, labeler_id)
            labeler.password_hash = self._hash(password)
            labeler.password_temporary = False

    def deactivate_labeler(self, name: str) -> int:
        """Lock a labeler out (their ratings stay); items they claimed but never touched go back to the pool.

        Returns the number of items released.
        """
        self._require_operator("deactivate labelers")
        with self._session(write=True) as s:
            labeler = s.scalar(select(Labeler).where(Labeler.name == name).with_for_update())
            if labeler is None:
                raise CurateError(f"no labeler named {name!r}")
            labeler.active = False
            touched = exists().where(Answer.item_id == Assignment.item_id, self._done(labeler.id))
            idle = list(s.scalars(select(Assignment).where(Assignment.labeler_id == labeler.id, ~touched)))
            for assignment in idle:
                item = s.scalar(select(Item).where(Item.id == assignment.item_id).with_for_update())
                if item is not None and assignment.released_at is None:  # an expired claim gave its slot back already
                    item.claims -= 1
                s.delete(assignment)
            return len(idle)

    def _require_operator(self, what: str) -> None:
        """Refuse `what` on the review app's store: only the operator (the CLI) sets up projects and accounts."""
        if not self.operator:
            raise AuthError(f"only the operator may {what}, with `curate review` on the database: not from the app")

    def _require_admin(self, actor: int | None, what: str) -> None:
        """Refuse `what` unless `actor` is an active admin; no actor means the operator (not on the app's store)."""
        if actor is None:
            if not self.operator:
                raise AuthError(f"only an admin may {what}: the review app must say which admin asks (actor=)")
            return
        with self._session() as s:
            labeler = s.get(Labeler, actor) if isinstance(actor, int) and not isinstance(actor, bool) else None
        if labeler is None:
            raise AuthError(f"only an admin may {what}: no labeler with id {actor!r}")
        if labeler.role != "admin":
            raise AuthError(f"only an admin may {what}; {labeler.name!r} is a labeler")
        if not labeler.active:
            raise AuthError(f"only an active admin may {what}; {labeler.name!r} is deactivated")

    def _hash(self, password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=self.password_rounds)).decode()

    def authenticate(self, name: str, password: str) -> Labeler:
        """The labeler with this name and password, or AuthError (LoginLocked after too many failures).

        An unknown name and a wrong password get the same message, the same bcrypt work and the
        same failure count, so the login form does not tell which labeler names exist.
        """
        key = _name_key(name)
        with self._session() as s:
            throttle = s.get(LoginThrottle, key)
            locked_until = _aware(throttle.locked_until) if throttle and throttle.locked_until else None
            labeler = s.scalar(select(Labeler).where(Labeler.name == name))
        now = self.clock()
        if locked_until is not None and locked_until > now:
            raise LoginLocked(locked_until, now)  # refused before bcrypt: guessing costs the server nothing
        failed = AuthError("unknown labeler or wrong password (an admin can add you or reset your password)")
        if labeler is None:
            self._hash("unknown labeler")  # the same bcrypt cost as a check: timing does not tell either
            self._login_failed(key, failed)
        secret = password.encode() if isinstance(password, str) else b""
        # bcrypt only reads 72 bytes (bcrypt 5 raises on more); no password we issue is that long.
        if not secret or len(secret) > 72 or not bcrypt.checkpw(secret, labeler.password_hash.encode()):
            self._login_failed(key, failed)
        if throttle is not None:
            with self._session(write=True) as s:
                s.execute(delete(LoginThrottle).where(LoginThrottle.name_hash == key))  # success resets the count
        if not labeler.active:
            raise AuthError(f"labeler {name!r} is deactivated: ask an admin")
        return labeler

    def _login_failed(self, key: str, failed: AuthError) -> NoReturn:
        """Count a failed login for this name in the database, then raise `failed` (LoginLocked when it tips over)."""
        limit, now = self.login_limit, self.clock()
        insert = postgresql_insert if self.dialect == "postgresql" else sqlite_insert
        with self._session(write=True) as s:
            # Forget names whose window and lock are over, so guessed names do not pile up.
            s.execute(
                delete(LoginThrottle).where(
                    LoginThrottle.window_started_at < now - limit.window,
                    (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
                )
            )
            fresh = {"name_hash": key, "failures": 0, "window_started_at": now}
            s.execute(insert(LoginThrottle).values(**fresh).on_conflict_do_nothing())
            row = s.scalar(select(LoginThrottle).where(LoginThrottle.name_hash == key).with_for_update())
            assert row is not None  # inserted above unless it was there
            if row.locked_until is not None and _aware(row.locked_until) > now:
                raise LoginLocked(_aware(row.locked_until), now)  # another process locked it meanwhile
            if row.locked_until is not None or _aware(row.window_started_at) <= now - limit.window:
                row.failures, row.window_started_at, row.locked_until = 0, now, None  # a new window
            row.failures += 1
            until = now + limit.lockout if row.failures >= limit.max_failures else None
            if until is not None:
                row.failures, row.locked_until = 0, until
        if until is not None:
            raise LoginLocked(until, now)
        raise failed

    def active_labeler(self, labeler_id: int) -> Labeler:
        """This labeler while their account is active, else CurateError (the app re-checks its user on every page)."""
        with self._session() as s:
            return self._labeler(s, labeler_id)

    def labelers(self, *, actor: int | None = None) -> list[Labeler]:
        """Every labeler and admin, oldest first."""
        self._require_admin(actor, "list every labeler")
        with self._session() as s:
            return list(s.scalars(select(Labeler).order_by(Labeler.id)))

    def _labeler(self, s: Session, labeler_id: int, lock: bool = False) -> Labeler:
        query = select(Labeler).where(Labeler.id == labeler_id)
        # Locking the labeler row serializes one labeler's own writes (two tabs) on PostgreSQL.
        labeler = s.scalar(query.with_for_update() if lock else query)
        if labeler is None:
            raise CurateError(f"unknown labeler id {labeler_id!r}")
        if not labeler.active:
            raise CurateError(f"labeler {labeler.name!r} is deactivated")
        return labeler

    # --- assignment and tasks ------------------------------------------------------------------

    @staticmethod
    def _done(labeler_id: Any) -> Any:
        """SQL condition: this labeler (an id, or a column to correlate with) rated, skipped or flagged the answer."""
        rated = exists().where(
            Rating.answer_id == Answer.id, Rating.labeler_id == labeler_id, Rating.superseded_at.is_(None)
        )
        skipped = exists().where(Skip.answer_id == Answer.id, Skip.labeler_id == labeler_id)
        flagged = exists().where(Flag.answer_id == Answer.id, Flag.labeler_id == labeler_id)
        return rated | skipped | flagged

    def _open_answers(self, s: Session, labeler_id: int, project_id: int, limit: int | None = None) -> list[Any]:
        """(answer, item) rows still to do in this labeler's assigned items: items in claim order, each
        item's answers in this labeler's own order (`shown_order`)."""
        query = (
            select(Answer, Item)
            .join(Item, Answer.item_id == Item.id)
            .join(Assignment, and_(Assignment.item_id == Item.id, Assignment.labeler_id == labeler_id))
            .where(Assignment.project_id == project_id, ~self._done(labeler_id))
            .order_by(Assignment.id, Answer.position)
        )
        rows = list(s.execute(query).tuples())  # a labeler's queue is an item or two: sorting here is cheap
        item_rank = {item_id: n for n, item_id in enumerate(dict.fromkeys(item.id for _, item in rows))}
        answer_rank = {a: n for n, a in enumerate(shown_order(labeler_id, [answer.id for answer, _ in rows]))}
        rows.sort(key=lambda row: (item_rank[row[1].id], answer_rank[row[0].id]))
        return rows[:limit]

    def _shown_position(self, s: Session, labeler_id: int, answer: Answer) -> int:
        """Where Rate mode shows this answer to this labeler: 1-based place in their order of the item's answers."""
        siblings = s.scalars(select(Answer.id).where(Answer.item_id == answer.item_id))
        return shown_order(labeler_id, siblings).index(answer.id) + 1

    def _settle(self, s: Session, labeler_id: int, item_id: int) -> None:
        """Once the labeler has done every answer of the item, their claim no longer expires."""
        left = select(func.count(Answer.id)).where(Answer.item_id == item_id, ~self._done(labeler_id))
        if not s.scalar(left):
            s.execute(
                update(Assignment)
                .where(Assignment.item_id == item_id, Assignment.labeler_id == labeler_id)
                .values(expires_at=None)
                .execution_options(synchronize_session=False)
            )

    def _release_expired(self, s: Session, project: Project) -> int:
        """Give back the slots of expired, unfinished claims in this project; returns how many were freed.

        The assignment stays (the item remains in that labeler's queue); only the item's slot count
        drops, so another labeler can claim it. Run before any claim in a transaction: it locks item
        rows, which a claim holding an item with SKIP LOCKED must not wait for.
        """
        now = self.clock()
        expired = (
            select(Assignment.id, Assignment.item_id, Assignment.labeler_id)
            .where(Assignment.project_id == project.id, Assignment.expires_at < now, Assignment.released_at.is_(None))
            .order_by(Assignment.id)  # one lock order for every releaser: no deadlock between them
        )
        freed = 0
        for assignment_id, item_id, labeler_id in s.execute(expired).all():
            # Lock the item first (one order for all): a concurrent releaser of the same claim waits here.
            s.execute(select(Item.id).where(Item.id == item_id).with_for_update())
            if not s.scalar(select(func.count(Answer.id)).where(Answer.item_id == item_id, ~self._done(labeler_id))):
                self._settle(s, labeler_id, item_id)  # finished after all (e.g. a claim from before expiry)
                continue
            # Conditional, so it re-checks the row it waited for: a claim another releaser freed, or that its
            # labeler finished (settled) meanwhile, is left alone and the slot count is not touched.
            released = s.execute(
                update(Assignment)
                .where(Assignment.id == assignment_id, Assignment.released_at.is_(None), Assignment.expires_at < now)
                .values(released_at=now)
                .execution_options(synchronize_session=False)
            )
            if not cast("CursorResult[Any]", released).rowcount:
                continue
            s.execute(
                update(Item)
                .where(Item.id == item_id)
                .values(claims=Item.claims - 1)
                .execution_options(synchronize_session=False)
            )
            freed += 1
        return freed

    def _claim(self, s: Session, labeler_id: int, project: Project, min_answers: int = 1) -> int | None:
        """Assign the next item with a free slot that this labeler lacks; returns its id (None: none left)."""
        mine = exists().where(Assignment.item_id == Item.id, Assignment.labeler_id == labeler_id)
        n_answers = select(func.count(Answer.id)).where(Answer.item_id == Item.id).scalar_subquery()
        query = (
            select(Item)
            .where(Item.project_id == project.id, Item.claims < project.overlap, ~mine, n_answers >= min_answers)
            .order_by(Item.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Item)
        )
        # On PostgreSQL a row re-checked after a concurrent claim can drop out of a LIMIT 1
        # SKIP LOCKED result although other items are free: look again before giving up.
        for _ in range(3):
            item = s.scalar(query)
            if item is not None:
                item.claims = Item.claims + 1  # in SQL: the row is locked, and this session may hold a stale copy
                due = self.clock() + timedelta(hours=project.claim_hours)
                s.add(Assignment(project_id=project.id, item_id=item.id, labeler_id=labeler_id, expires_at=due))
                s.flush()
                return item.id
            if self.dialect != "postgresql":
                break
        return None

    def next_rating_task(self, labeler_id: int, project: str) -> RatingTask | None:
        """The next answer for this labeler to rate (claiming a new item when needed); None when all done."""
        with self._session() as s:
            proj = self._project(s, project)
            self._labeler(s, labeler_id)
            rows = self._open_answers(s, labeler_id, proj.id, limit=1)
        if not rows:
            with self._session(write=True) as s:
                self._labeler(s, labeler_id, lock=True)
                rows = self._open_answers(s, labeler_id, proj.id, limit=1)
                if not rows:
                    self._release_expired(s, proj)
                    if self._claim(s, labeler_id, proj) is not None:
                        rows = self._open_answers(s, labeler_id, proj.id, limit=1)
        if not rows:
            return None
        answer, item = rows[0]
        with self._session() as s:
            n_answers = s.scalar(select(func.count(Answer.id)).where(Answer.item_id == item.id)) or 0
            shown = self._shown_position(s, labeler_id, answer)
        return RatingTask(item.id, item.prompt, answer.id, answer.text, answer.position + 1, n_answers, shown)

    def next_compare_task(self, labeler_id: int, project: str) -> CompareTask | None:
        """Two answers of one prompt for this labeler, at least one not yet rated by them, in random order.

        Items with a single answer never come up here (they stay in rate mode). When only
        one answer of an item is left, it is paired with one the labeler already rated,
        whose new rating then supersedes the old one (the old one stays in the history).
        """
        with self._session() as s:
            proj = self._project(s, project)
            self._labeler(s, labeler_id)
            task = self._compare_from_open(s, labeler_id, proj.id)
        if task is None:
            with self._session(write=True) as s:
                self._labeler(s, labeler_id, lock=True)
                task = self._compare_from_open(s, labeler_id, proj.id)
                if task is None:
                    self._release_expired(s, proj)
                while task is None and self._claim(s, labeler_id, proj, min_answers=2) is not None:
                    task = self._compare_from_open(s, labeler_id, proj.id)
        return task

    def _compare_from_open(self, s: Session, labeler_id: int, project_id: int) -> CompareTask | None:
        open_by_item: dict[int, list[Answer]] = {}
        items: dict[int, Item] = {}
        for answer, item in self._open_answers(s, labeler_id, project_id):
            open_by_item.setdefault(item.id, []).append(answer)
            items[item.id] = item
        for item_id, open_answers in open_by_item.items():
            all_answers = list(s.scalars(select(Answer).where(Answer.item_id == item_id).order_by(Answer.position)))
            if len(all_answers) < 2:
                continue
            first = open_answers[0]
            second = open_answers[1] if len(open_answers) > 1 else next(a for a in all_answers if a.id != first.id)
            pair = sorted([first, second], key=lambda a: a.position)
            swapped = random.SystemRandom().random() < 0.5
            left, right = (pair[1], pair[0]) if swapped else (pair[0], pair[1])
            return CompareTask(item_id, items[item_id].prompt, left.id, left.text, right.id, right.text, swapped)
        return None

    def _assigned_answer(self, s: Session, labeler_id: int, answer_id: int) -> Answer:
        """The answer, if it belongs to an item assigned to this labeler (else CurateError)."""
        answer = s.get(Answer, answer_id) if isinstance(answer_id, int) else None
        if answer is None:
            raise CurateError(f"no answer with id {answer_id!r}")
        assigned = s.scalar(
            select(Assignment.id).where(Assignment.item_id == answer.item_id, Assignment.labeler_id == labeler_id)
        )
        if assigned is None:
            raise CurateError(f"answer {answer_id} is not assigned to this labeler")
        return answer

    # --- writes --------------------------------------------------------------------------------

    def _rate(
        self,
        s: Session,
        labeler_id: int,
        answer_id: int,
        value: int,
        comment: str | None,
        seconds: float,
        mode: str = "rate",
        comparison_id: int | None = None,
        shown_position: int | None = None,
    ) -> int:
        """Insert a rating; an earlier current rating of the same answer by this labeler is superseded."""
        previous = s.scalar(
            select(Rating).where(
                Rating.labeler_id == labeler_id, Rating.answer_id == answer_id, Rating.superseded_at.is_(None)
            )
        )
        if previous is not None:
            previous.superseded_at = utcnow()
            s.flush()  # free the "one current rating" slot before the new row takes it
        rating = Rating(
            labeler_id=labeler_id,
            answer_id=answer_id,
            value=value,
            comment=comment,
            seconds_spent=seconds,
            mode=mode,
            comparison_id=comparison_id,
            shown_position=shown_position,
        )
        s.add(rating)
        s.flush()
        if previous is not None:
            previous.superseded_by_id = rating.id
        return rating.id

    def submit_rating(self, labeler_id: int, answer_id: int, rating: int, comment: str | None, seconds: float) -> int:
        """Record a 1-10 rating (an edit keeps the old one as history); returns the new rating's id.

        `comment` is stored verbatim (the app shows it as plain text); `seconds` is how long
        the labeler looked at the answer.
        """
        value = check_rating(rating)
        spent = _seconds(seconds)
        if comment is not None and not isinstance(comment, str):
            raise CurateError(f"a comment must be text, got {type(comment).__name__}")
        if comment is not None and len(comment) > MAX_COMMENT:
            raise CurateError(f"a comment can be at most {MAX_COMMENT} characters (got {len(comment)})")
        with self._session(write=True) as s:
            self._labeler(s, labeler_id, lock=True)
            answer = self._assigned_answer(s, labeler_id, answer_id)
            shown = self._shown_position(s, labeler_id, answer)
            rating_id = self._rate(s, labeler_id, answer_id, value, comment or None, spent, shown_position=shown)
            self._settle(s, labeler_id, answer.item_id)
            return rating_id

    def submit_comparison(
        self, labeler_id: int, task: CompareTask, left_rating: int, right_rating: int, seconds: float
    ) -> int:
        """Record both ratings of a side-by-side comparison and the preference they imply; returns its id.

        Each rating gets half of `seconds`, so time per rating adds up to time spent.
        """
        left, right = check_rating(left_rating), check_rating(right_rating)
        spent = _seconds(seconds)
        with self._session(write=True) as s:
            self._labeler(s, labeler_id, lock=True)
            for answer_id in (task.left_answer_id, task.right_answer_id):
                if self._assigned_answer(s, labeler_id, answer_id).item_id != task.item_id:
                    raise CurateError(f"answer {answer_id} does not belong to item {task.item_id}")
            preferred = "left" if left > right else "right" if right > left else "tie"
            comparison = Comparison(
                labeler_id=labeler_id,
                item_id=task.item_id,
                left_answer_id=task.left_answer_id,
                right_answer_id=task.right_answer_id,
                swapped=task.swapped,
                preferred=preferred,
                seconds_spent=spent,
            )
            s.add(comparison)
            s.flush()
            sides = ((task.left_answer_id, left, 1), (task.right_answer_id, right, 2))  # 1 = A (left), 2 = B
            for answer_id, value, shown in sides:
                self._rate(s, labeler_id, answer_id, value, None, spent / 2, "compare", comparison.id, shown)
            self._settle(s, labeler_id, task.item_id)
            return comparison.id

    def skip(self, labeler_id: int, answer_id: int) -> None:
        """Take an answer out of this labeler's queue without rating it."""
        with self._session(write=True) as s:
            self._labeler(s, labeler_id, lock=True)
            answer = self._assigned_answer(s, labeler_id, answer_id)
            if s.scalar(select(Skip.id).where(Skip.labeler_id == labeler_id, Skip.answer_id == answer_id)) is None:
                s.add(Skip(labeler_id=labeler_id, answer_id=answer_id))
            self._settle(s, labeler_id, answer.item_id)

    def flag(self, labeler_id: int, answer_id: int, reason: str) -> None:
        """Flag an answer for an admin (reason required); it leaves the queue and every export."""
        if not isinstance(reason, str) or not reason.strip():
            raise CurateError("a flag needs a reason (e.g. 'prompt is unclear', 'unsafe answer')")
        if len(reason) > MAX_REASON:
            raise CurateError(f"a flag reason can be at most {MAX_REASON} characters (got {len(reason)})")
        with self._session(write=True) as s:
            self._labeler(s, labeler_id, lock=True)
            answer = self._assigned_answer(s, labeler_id, answer_id)
            s.add(Flag(labeler_id=labeler_id, answer_id=answer_id, reason=reason.strip()))
            self._settle(s, labeler_id, answer.item_id)

    def clear_flag(self, admin_id: int, flag_id: int) -> None:
        """An admin clears (resolves) a flag: its answer counts again in exports; the flag row stays as history.

        The flagging labeler's queue is unchanged: flagging was their judgement of that answer.
        """
        self._require_admin(admin_id, "clear a flag")
        with self._session(write=True) as s:
            flag = (
                s.scalar(select(Flag).where(Flag.id == flag_id).with_for_update()) if isinstance(flag_id, int) else None
            )
            if flag is None:
                raise CurateError(f"no flag with id {flag_id!r}")
            if flag.cleared_at is not None:
                by = s.get(Labeler, flag.cleared_by_id) if flag.cleared_by_id is not None else None
                who = by.name if by is not None else "a removed admin"
                raise CurateError(
                    f"flag {flag_id} was already cleared by {who} at {flag.cleared_at:%Y-%m-%d %H:%M} UTC"
                )
            flag.cleared_at, flag.cleared_by_id = self.clock(), admin_id

    # --- reads for the admin page and exports --------------------------------------------------

    def progress(self, labeler_id: int, project: str) -> tuple[int, int]:
        """(done, assigned) answers for this labeler: done = rated, skipped or flagged; assigned = every answer
        of the items handed to them so far. Answers they might still get are `claimable`, not assigned."""
        with self._session() as s:
            proj = self._project(s, project)
            mine = exists().where(Assignment.item_id == Item.id, Assignment.labeler_id == labeler_id)
            base = select(func.count(Answer.id)).join(Item, Answer.item_id == Item.id)
            base = base.where(Item.project_id == proj.id, mine)
            done = s.scalar(base.where(self._done(labeler_id))) or 0
            assigned = s.scalar(base) or 0
        return done, assigned

    def claimable(self, labeler_id: int, project: str) -> int:
        """Answers in items this labeler does not hold that have a free slot now (expired claims count as
        free): the most they may still get, shared with every other labeler."""
        with self._session() as s:
            proj = self._project(s, project)
            mine = exists().where(Assignment.item_id == Item.id, Assignment.labeler_id == labeler_id)
            expired = (
                select(func.count(Assignment.id))
                .where(
                    Assignment.item_id == Item.id,
                    Assignment.released_at.is_(None),
                    Assignment.expires_at < self.clock(),
                )
                .scalar_subquery()
            )
            query = (
                select(func.count(Answer.id))
                .join(Item, Answer.item_id == Item.id)
                .where(Item.project_id == proj.id, ~mine, Item.claims - expired < proj.overlap)
            )
            return s.scalar(query) or 0

    def progress_all(self, project: str, *, actor: int | None = None) -> dict[int, tuple[int, int]]:
        """`progress` of every labeler at once (labeler id -> (done, assigned)), in two grouped queries."""
        self._require_admin(actor, "see everyone's progress")
        with self._session() as s:
            proj = self._project(s, project)
            held = (
                select(Assignment.labeler_id, func.count(Answer.id))
                .join(Answer, Answer.item_id == Assignment.item_id)
                .where(Assignment.project_id == proj.id)
                .group_by(Assignment.labeler_id)
            )
            done = dict(s.execute(held.where(self._done(Assignment.labeler_id))).tuples().all())
            assigned = dict(s.execute(held).tuples().all())
            ids = list(s.scalars(select(Labeler.id)))
        return {i: (done.get(i, 0), assigned.get(i, 0)) for i in ids}

    def ratings_frame(
        self, project: str, labeler_id: int | None = None, history: bool = False, *, actor: int | None = None
    ) -> pd.DataFrame:
        """Current ratings of a project, one row each; `labeler_id` limits them to that labeler's own (blind
        rating: `actor` must be that labeler, or an admin); `history` adds superseded ratings (with
        `superseded_at`, `superseded_by_id`)."""
        if actor is None or actor != labeler_id:  # a labeler may read their own rows; anything more is an admin's
            self._require_admin(actor, "see other labelers' ratings")
        with self._session() as s:
            proj = self._project(s, project)
            query = (
                select(
                    Rating.id.label("rating_id"),
                    Item.id.label("item_id"),
                    Answer.id.label("answer_id"),
                    Item.prompt.label("prompt"),
                    Answer.text.label("response"),
                    Answer.model.label("model"),
                    Labeler.id.label("labeler_id"),
                    Labeler.name.label("labeler"),
                    Rating.value.label("rating"),
                    Rating.comment.label("comment"),
                    Rating.seconds_spent.label("seconds"),
                    Rating.mode.label("mode"),
                    Rating.comparison_id.label("comparison_id"),
                    Rating.shown_position.label("shown_position"),
                    Rating.created_at.label("created_at"),
                    Rating.superseded_at.label("superseded_at"),
                    Rating.superseded_by_id.label("superseded_by_id"),
                )
                .join(Answer, Rating.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .join(Labeler, Rating.labeler_id == Labeler.id)
                .where(Item.project_id == proj.id)
                .order_by(Rating.id)
            )
            if labeler_id is not None:
                query = query.where(Rating.labeler_id == labeler_id)
            if not history:
                query = query.where(Rating.superseded_at.is_(None))
            result = s.execute(query)
            frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        return frame if history else frame.drop(columns=["superseded_at", "superseded_by_id"])

    def flagged(self, project: str, history: bool = False, *, actor: int | None = None) -> pd.DataFrame:
        """Open flags in a project: which answer, by whom, why, when. `history` lists cleared flags too,
        with who cleared them and when (`cleared_by`, `cleared_at`; empty while open)."""
        self._require_admin(actor, "see the flagged items")
        clearer = aliased(Labeler)
        with self._session() as s:
            proj = self._project(s, project)
            query = (
                select(
                    Flag.id.label("flag_id"),
                    Item.id.label("item_id"),
                    Answer.id.label("answer_id"),
                    Item.prompt.label("prompt"),
                    Answer.text.label("response"),
                    Answer.model.label("model"),
                    Labeler.name.label("labeler"),
                    Flag.reason.label("reason"),
                    Flag.created_at.label("created_at"),
                    clearer.name.label("cleared_by"),
                    Flag.cleared_at.label("cleared_at"),
                )
                .join(Answer, Flag.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .join(Labeler, Flag.labeler_id == Labeler.id)
                .outerjoin(clearer, Flag.cleared_by_id == clearer.id)
                .where(Item.project_id == proj.id)
                .order_by(Flag.id)
            )
            if not history:
                query = query.where(Flag.cleared_at.is_(None))
            result = s.execute(query)
            frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        return frame if history else frame.drop(columns=["cleared_by", "cleared_at"])

    def labeler_stats(self, project: str, *, actor: int | None = None) -> pd.DataFrame:
        """Per labeler: done, assigned, time spent, pace, mean rating and bias (mean offset from the others).

        Columns: labeler_id, labeler, role, done, assigned, ratings, seconds_total,
        seconds_per_rating, ratings_per_hour, mean_rating, bias.
        """
        self._require_admin(actor, "see every labeler's stats")
        from curate.agreement import labeler_bias

        progress = self.progress_all(project, actor=actor)
        with self._session() as s:
            pid = self._project(s, project).id
            result = s.execute(
                select(
                    Labeler.name.label("labeler"),
                    Rating.labeler_id,
                    Rating.answer_id,
                    Rating.value,
                    Rating.seconds_spent,
                )
                .join(Answer, Rating.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .join(Labeler, Rating.labeler_id == Labeler.id)
                .where(Item.project_id == pid, Rating.superseded_at.is_(None))
            )
            ratings = pd.DataFrame(result.all(), columns=["labeler", "labeler_id", "answer_id", "rating", "seconds"])
        bias = labeler_bias(ratings).set_index("labeler") if len(ratings) else pd.DataFrame()
        by_labeler = dict(iter(ratings.groupby("labeler_id")))
        rows = []
        for labeler in self.labelers(actor=actor):
            done, assigned = progress.get(labeler.id, (0, 0))
            own = by_labeler.get(labeler.id, ratings.iloc[:0])
            if not done and own.empty and labeler.role == "admin":
                continue
            seconds = float(own.seconds.sum())
            rows.append(
                {
                    "labeler_id": labeler.id,
                    "labeler": labeler.name,
                    "role": labeler.role,
                    "done": done,
                    "assigned": assigned,
                    "ratings": len(own),
                    "seconds_total": seconds,
                    "seconds_per_rating": seconds / len(own) if len(own) else math.nan,
                    "ratings_per_hour": len(own) * 3600 / seconds if seconds else math.nan,
                    "mean_rating": float(own.rating.mean()) if len(own) else math.nan,
                    "bias": float(bias.loc[labeler.name, "bias"]) if labeler.name in bias.index else math.nan,
                }
            )
        columns = [
            "labeler_id",
            "labeler",
            "role",
            "done",
            "assigned",
            "ratings",
            "seconds_total",
            "seconds_per_rating",
            "ratings_per_hour",
            "mean_rating",
            "bias",
        ]
        return pd.DataFrame(rows, columns=columns)

    def rated_rows(self, project: str, *, actor: int | None = None) -> list[dict[str, Any]]:
        """Current ratings as rated records (prompt, response, rating, labeler, comment?, flag?) with ids."""
        self._require_admin(actor, "read everyone's ratings")
        ratings = self.ratings_frame(project, actor=actor)
        flags = (
            self.flagged(project, actor=actor).groupby("answer_id")["reason"].agg(lambda r: "; ".join(dict.fromkeys(r)))
        )
        rows = []
        for r in ratings.itertuples(index=False):
            row: dict[str, Any] = {
                "id": f"rating-{r.rating_id}",
                "prompt": r.prompt,
                "response": r.response,
                "rating": int(r.rating),
                "labeler": r.labeler,
            }
            if isinstance(r.comment, str) and r.comment:
                row["comment"] = r.comment
            if r.answer_id in flags.index:
                row["flag"] = flags[r.answer_id]
            rows.append(row)
        return rows

    def export(self, project: str, out: Path, kind: str, *, actor: int | None = None, **rules: Any) -> Path:
        """Write an export directory (like `curate build`) of `kind` sft | preference | reward | rated.

        `rules`: min_rating, min_gap, margin_scale, min_ratings (see curate.ratings), test_size,
        seed, quiet. The split is grouped by prompt, so no prompt straddles train and test.
        """
        self._require_admin(actor, "export ratings")
        from curate.ingest import Ingested
        from curate.pipeline import build
        from curate.recipe import recipe_from_dict
        from curate.schema import Kind, validate_row

        kinds = ("sft", "preference", "reward", "rated")
        if kind not in kinds:
            raise CurateError(f"unknown export kind {kind!r}: use one of {', '.join(kinds)}")
        rating_keys = ("min_rating", "min_gap", "margin_scale", "min_ratings")
        split_keys = ("test_size", "seed")
        unknown = set(rules) - set(rating_keys) - set(split_keys) - {"quiet"}
        if unknown:
            raise CurateError(f"unknown export rule(s): {', '.join(sorted(unknown))}")
        source = f"{self.display_url}#{project}"
        records = [
            validate_row(Kind.rated, dict(row), source, i)
            for i, row in enumerate(self.rated_rows(project, actor=actor), 1)
        ]
        if not records:
            raise CurateError(f"project {project!r} has no ratings yet: nothing to export")
        recipe = recipe_from_dict(
            {
                "name": Path(out).name,
                "inputs": [source],
                "out": str(out),
                "kind": "rated",
                "derive": None if kind == "rated" else kind,
                "ratings": {k: rules[k] for k in rating_keys if rules.get(k) is not None},
                "split": {"group_by": "prompt", **{k: rules[k] for k in split_keys if rules.get(k) is not None}},
            },
            "export rules",
        )
        build(recipe, quiet=bool(rules.get("quiet", True)), ingested=Ingested(Kind.rated, records, [], len(records)))
        return Path(out)
