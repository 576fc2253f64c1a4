"""Review accounts: labelers, passwords and login with its failed-login lock (`Accounts`, a part of `ReviewStore`).

Login throttle: `LoginLimit.max_failures` failed logins with one name within `window`
lock that name for `lockout` (default 5 in 15 min -> 15 min), counted in the database so
every server process shares the count; unknown names count and lock exactly like real ones.
Each attempt is counted (reserved) before its password is checked, so guesses sent at once
cannot outrun the count: at most `max_failures` of them are ever checked. Names are stored
only as an HMAC keyed with the database's own secret (`settings.login_key`).

One-time passwords (from `add_labeler` / `reset_password`) log in once: that login uses them
up, and the labeler chooses their own password in that session (`set_password`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import bcrypt
from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult

from curate.errors import CurateError
from curate.review.database import Database
from curate.review.models import Answer, Assignment, Item, Labeler, LoginThrottle, Setting
from curate.review.queries import active_labeler_row, done_by
from curate.review.rights import AuthError, Rights
from curate.review.types import check_name

ROLES = ("labeler", "admin")
BAD_LOGIN = "unknown labeler or wrong password (an admin can add you or reset your password)"
USED_UP = "!"  # the password hash of a used one-time password: like "!" in /etc/shadow, no password matches it


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


def _aware(moment: datetime) -> datetime:
    """A stored timestamp in UTC: SQLite hands back naive datetimes, PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Accounts:
    """Labelers, passwords, `authenticate` with its failed-login lock, over the store's database and rights."""

    def __init__(
        self, db: Database, rights: Rights, password_rounds: int = 12, login_limit: LoginLimit | None = None
    ) -> None:
        """`password_rounds`: bcrypt cost; `login_limit`: the failed-login lock (default `LoginLimit()`)."""
        self.db = db
        self.rights = rights
        self.password_rounds = password_rounds
        self.login_limit = login_limit or LoginLimit()
        self._login_key: bytes | None = None

    def add_labeler(self, name: str, role: str = "labeler") -> str:
        """Create a labeler (or admin); returns their one-time password (only its bcrypt hash is stored)."""
        self.rights.require_operator("add labelers")
        check_name(name, "labeler")
        if role not in ROLES:
            raise CurateError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        password = secrets.token_urlsafe(12)
        with self.db.session(write=True) as s:
            if s.scalar(select(Labeler.id).where(Labeler.name == name)) is not None:
                raise CurateError(f"labeler {name!r} already exists (give them a new password with --reset)")
            s.add(Labeler(name=name, role=role, password_hash=self._hash(password), password_temporary=True))
        return password

    def reset_password(self, name: str) -> str:
        """A new one-time password for an existing labeler; it also lifts a failed-login lock on their name."""
        self.rights.require_operator("reset passwords")
        password = secrets.token_urlsafe(12)
        with self.db.session(write=True) as s:
            labeler = s.scalar(select(Labeler).where(Labeler.name == name))
            if labeler is None:
                raise CurateError(f"no labeler named {name!r}")
            if labeler.kind == "judge":
                raise CurateError(f"{name!r} is an LLM judge: it rates through `curate review judge` and never logs in")
            labeler.password_hash = self._hash(password)
            labeler.password_temporary = True
            s.execute(delete(LoginThrottle).where(LoginThrottle.name_hash == self._name_key(name)))
        return password

    def set_password(self, labeler_id: int, password: str) -> None:
        """Replace a labeler's password with one they chose (8-72 bytes)."""
        if not isinstance(password, str) or not 8 <= len(password.encode()) <= 72:
            raise CurateError("a password must be 8 to 72 bytes long")
        with self.db.session(write=True) as s:
            labeler = active_labeler_row(s, labeler_id)
            labeler.password_hash = self._hash(password)
            labeler.password_temporary = False

    def deactivate_labeler(self, name: str) -> int:
        """Lock a labeler out (their ratings stay); items they claimed but never touched go back to the pool.

        Returns the number of items released.
        """
        self.rights.require_operator("deactivate labelers")
        with self.db.session(write=True) as s:
            labeler = s.scalar(select(Labeler).where(Labeler.name == name).with_for_update())
            if labeler is None:
                raise CurateError(f"no labeler named {name!r}")
            labeler.active = False
            touched = exists().where(Answer.item_id == Assignment.item_id, done_by(labeler.id))
            idle = list(s.scalars(select(Assignment).where(Assignment.labeler_id == labeler.id, ~touched)))
            for assignment in idle:
                item = s.scalar(select(Item).where(Item.id == assignment.item_id).with_for_update())
                if item is not None and assignment.released_at is None:  # an expired claim gave its slot back already
                    item.claims -= 1
                s.delete(assignment)
            return len(idle)

    def _hash(self, password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=self.password_rounds)).decode()

    def _name_key(self, name: Any) -> str:
        """The login throttle's key for a typed name: HMAC-SHA256 with this database's secret, so neither the
        name nor a password typed into the name field can be recovered from the table by hashing guesses."""
        if self._login_key is None:
            with self.db.session() as s:
                secret = s.scalar(select(Setting.value).where(Setting.key == "login_key"))
            if secret is None:
                raise CurateError(f"{self.db.display_url} has no login key: run `{self.db.init_hint}`")
            self._login_key = bytes.fromhex(secret)
        return hmac.new(self._login_key, str(name).encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def authenticate(self, name: str, password: str) -> Labeler:
        """The labeler with this name and password, or AuthError (LoginLocked after too many failures).

        An unknown name and a wrong password get the same message, the same bcrypt work and the
        same failure count, so the login form does not tell which labeler names exist. A one-time
        password is used up by this login (the labeler must choose their own in this session).
        """
        key = self._name_key(name)
        tipped = self._reserve_attempt(key)  # LoginLocked here, before bcrypt: guessing costs the server nothing
        failed = LoginLocked(tipped, self.db.clock()) if tipped is not None else AuthError(BAD_LOGIN)
        with self.db.session() as s:
            labeler = s.scalar(select(Labeler).where(Labeler.name == name))
        secret = password.encode() if isinstance(password, str) else b""
        if labeler is None or labeler.password_hash == USED_UP:
            self._hash("unknown labeler")  # the same bcrypt cost as a check: timing does not tell either
            raise failed
        # bcrypt only reads 72 bytes (bcrypt 5 raises on more); no password we issue is that long.
        if not secret or len(secret) > 72 or not bcrypt.checkpw(secret, labeler.password_hash.encode()):
            raise failed
        if labeler.password_temporary and not self._use_up(labeler):
            raise failed  # another login used this one-time password a moment ago
        with self.db.session(write=True) as s:
            s.execute(delete(LoginThrottle).where(LoginThrottle.name_hash == key))  # success resets the count
        if not labeler.active:
            raise AuthError(f"labeler {name!r} is deactivated: ask an admin")
        return labeler

    def _reserve_attempt(self, key: str) -> datetime | None:
        """Count a login attempt with this name as failed until it succeeds, before its password is checked;
        LoginLocked while the name is locked. Returns when the lock ends if this attempt is the last one allowed
        (it locks the name), else None."""
        limit, now = self.login_limit, self.db.clock()
        insert = postgresql_insert if self.db.dialect == "postgresql" else sqlite_insert
        with self.db.session(write=True) as s:
            # Forget names whose window and lock are over, so guessed names do not pile up.
            s.execute(
                delete(LoginThrottle).where(
                    LoginThrottle.window_started_at < now - limit.window,
                    (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
                )
            )
            fresh = {"name_hash": key, "failures": 0, "window_started_at": now}
            s.execute(insert(LoginThrottle).values(**fresh).on_conflict_do_nothing())
            # The row lock makes attempts with one name take their turn, across processes.
            row = s.scalar(select(LoginThrottle).where(LoginThrottle.name_hash == key).with_for_update())
            assert row is not None  # inserted above unless it was there
            if row.locked_until is not None and _aware(row.locked_until) > now:
                raise LoginLocked(_aware(row.locked_until), now)
            if row.locked_until is not None or _aware(row.window_started_at) <= now - limit.window:
                row.failures, row.window_started_at, row.locked_until = 0, now, None  # a new window
            row.failures += 1
            if row.failures < limit.max_failures:
                return None
            row.failures, row.locked_until = 0, now + limit.lockout
            return row.locked_until

    def _use_up(self, labeler: Labeler) -> bool:
        """Mark this labeler's one-time password used; False when another login used it first."""
        with self.db.session(write=True) as s:
            used = s.execute(
                update(Labeler)
                .where(Labeler.id == labeler.id, Labeler.password_hash == labeler.password_hash)
                .values(password_hash=USED_UP)
                .execution_options(synchronize_session=False)
            )
            return bool(cast("CursorResult[Any]", used).rowcount)

    def active_labeler(self, labeler_id: int) -> Labeler:
        """This labeler while their account is active, else CurateError (the app re-checks its user on every page)."""
        with self.db.session() as s:
            return active_labeler_row(s, labeler_id)

    def labelers(self, *, actor: int | None = None) -> list[Labeler]:
        """Every labeler and admin, oldest first."""
        self.rights.require_admin(actor, "list every labeler")
        with self.db.session() as s:
            return list(s.scalars(select(Labeler).order_by(Labeler.id)))
