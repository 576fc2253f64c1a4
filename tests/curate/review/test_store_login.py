"""Login throttle: failed logins per name are counted in the database and lock the name for a while."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
from sqlalchemy import func, select
from store_helpers import run_at_once

from curate.review.models import Labeler, LoginThrottle, Setting
from curate.review.store import AuthError, LoginLimit, LoginLocked, ReviewStore

BAD_LOGIN = "unknown labeler or wrong password (an admin can add you or reset your password)"
LIMIT = LoginLimit(max_failures=3, window=timedelta(minutes=10), lockout=timedelta(minutes=15))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str, clock: Clock) -> ReviewStore:
    s = ReviewStore(db_url, password_rounds=4, login_limit=LIMIT, clock=clock)
    yield s
    s.close()


def _fail(store: ReviewStore, name: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(AuthError) as failed:
            store.accounts.authenticate(name, "not the password")
        assert str(failed.value) == BAD_LOGIN


def _own_password(store: ReviewStore, name: str) -> str:
    """Add a labeler who logged in once with their one-time password and chose their own; returns it."""
    labeler = store.accounts.authenticate(name, store.accounts.add_labeler(name))
    store.accounts.set_password(labeler.id, f"{name}-own-password")
    return f"{name}-own-password"


def _rows(store: ReviewStore) -> int:
    with store.db.session() as s:
        return s.scalar(select(func.count()).select_from(LoginThrottle)) or 0


def test_too_many_failures_lock_the_name_until_the_lockout_ends(store: ReviewStore, clock: Clock) -> None:
    password = _own_password(store, "ann")
    _fail(store, "ann", LIMIT.max_failures - 1)
    with pytest.raises(LoginLocked) as locked:
        store.accounts.authenticate("ann", "still wrong")  # the third failure within 10 minutes locks the name
    assert locked.value.until == clock.now + LIMIT.lockout
    assert str(locked.value).startswith(
        "too many failed logins with this name: try again after 12:15 UTC (in 15 minutes)"
    )

    clock.advance(minutes=14, seconds=30)
    with pytest.raises(LoginLocked, match=r"after 12:15 UTC \(in 1 minute\)"):
        store.accounts.authenticate("ann", password)  # even the right password waits for the lock to end
    clock.advance(seconds=31)
    assert store.accounts.authenticate("ann", password).name == "ann"
    assert _rows(store) == 0  # a successful login resets the count

    _fail(store, "ann", LIMIT.max_failures - 1)  # a fresh count: two more failures do not lock
    assert store.accounts.authenticate("ann", password).name == "ann"


def test_a_password_reset_lifts_the_lock(store: ReviewStore) -> None:
    store.accounts.add_labeler("ann")
    _fail(store, "ann", LIMIT.max_failures - 1)
    with pytest.raises(LoginLocked, match="or ask an admin to reset your password"):
        store.accounts.authenticate("ann", "x")
    new = store.accounts.reset_password("ann")  # the operator vouches for ann: she need not wait
    assert store.accounts.authenticate("ann", new).name == "ann"


def test_failures_outside_the_window_do_not_add_up(store: ReviewStore, clock: Clock) -> None:
    password = store.accounts.add_labeler("ann")
    _fail(store, "ann", LIMIT.max_failures - 1)
    clock.advance(minutes=11)  # the window has passed: the count starts again
    _fail(store, "ann", LIMIT.max_failures - 1)
    assert store.accounts.authenticate("ann", password).name == "ann"


def test_unknown_names_lock_alike_and_names_count_separately(store: ReviewStore, clock: Clock) -> None:
    password = store.accounts.add_labeler("ann")
    _fail(store, "ghost", LIMIT.max_failures - 1)
    _fail(store, "ann", LIMIT.max_failures - 1)
    with pytest.raises(LoginLocked) as ghost:
        store.accounts.authenticate("ghost", "x")
    with pytest.raises(LoginLocked) as ann:
        store.accounts.authenticate("ann", "x")
    assert str(ghost.value) == str(ann.value)  # a lock does not tell a real name from an unknown one
    store.accounts.add_labeler("ben")
    with pytest.raises(AuthError) as ben:
        store.accounts.authenticate("ben", "x")  # another name is not affected
    assert str(ben.value) == BAD_LOGIN
    # The name as typed is kept only as a hash; expired entries are swept by the next failure.
    with store.db.session() as s:
        keys = set(s.scalars(select(LoginThrottle.name_hash)))
    assert len(keys) == 3 and all(len(k) == 64 and "ghost" not in k for k in keys)
    clock.advance(minutes=16)
    _fail(store, "cat", 1)
    assert _rows(store) == 1
    assert store.accounts.authenticate("ann", password).name == "ann"


def test_the_count_is_shared_by_every_process_on_the_database(db_url: str, clock: Clock) -> None:
    """Two stores on one database (as two server processes): their failures add up to one lock."""
    first = ReviewStore(db_url, password_rounds=4, login_limit=LIMIT, clock=clock)
    second = ReviewStore(db_url, password_rounds=4, login_limit=LIMIT, clock=clock)
    password = first.accounts.add_labeler("ann")
    _fail(first, "ann", 1)
    _fail(second, "ann", 1)
    with pytest.raises(LoginLocked):
        first.accounts.authenticate("ann", "x")
    with pytest.raises(LoginLocked):
        second.accounts.authenticate("ann", password)
    first.close()
    second.close()


def test_default_limit_is_five_failures_in_fifteen_minutes_for_fifteen_minutes() -> None:
    assert LoginLimit() == LoginLimit(5, timedelta(minutes=15), timedelta(minutes=15))


def test_guesses_sent_at_once_get_at_most_the_limit_checked(
    store: ReviewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 parallel guesses (as 30 browser tabs): each attempt is counted before bcrypt runs, so only the
    first `max_failures` are checked and the rest are refused by the lock (before: all 30 were checked)."""
    password = _own_password(store, "ann")
    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(secret: bytes, hashed: bytes) -> bool:
        checked.append(secret)
        return real_checkpw(secret, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    outcomes: list[str] = []

    def guess(n: int) -> None:
        with pytest.raises(AuthError) as refused:
            store.accounts.authenticate("ann", f"guess-{n}")
        outcomes.append(type(refused.value).__name__)

    run_at_once(guess, list(range(30)))
    assert len(checked) == LIMIT.max_failures
    assert Counter(outcomes) == {"AuthError": LIMIT.max_failures - 1, "LoginLocked": 30 - (LIMIT.max_failures - 1)}
    with pytest.raises(LoginLocked):
        store.accounts.authenticate("ann", password)  # the right password, too late: the name is locked


def test_a_one_time_password_logs_in_once(store: ReviewStore) -> None:
    one_time = store.accounts.add_labeler("ann")
    ann = store.accounts.authenticate("ann", one_time)
    assert ann.password_temporary  # the app sends her to "Choose your password" in this session
    with pytest.raises(AuthError) as again:
        store.accounts.authenticate("ann", one_time)  # used up, although she has not chosen her own yet
    assert str(again.value) == BAD_LOGIN  # the same message as any wrong password
    store.accounts.set_password(ann.id, "ann-chose-this")
    assert not store.accounts.authenticate("ann", "ann-chose-this").password_temporary
    fresh = store.accounts.reset_password("ann")  # an admin's new one-time password works once too
    assert store.accounts.authenticate("ann", fresh).password_temporary
    with pytest.raises(AuthError):
        store.accounts.authenticate("ann", fresh)


def test_a_one_time_password_used_in_two_tabs_at_once_logs_in_one(store: ReviewStore) -> None:
    one_time = store.accounts.add_labeler("ann")
    outcomes: list[str] = []

    def log_in(_: int) -> None:
        try:
            outcomes.append(store.accounts.authenticate("ann", one_time).name)
        except AuthError as exc:
            outcomes.append(str(exc))

    run_at_once(log_in, [0, 1])
    assert sorted(outcomes) == ["ann", BAD_LOGIN]


def test_names_are_keyed_with_the_databases_own_secret(db_url: str, tmp_path, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """A password typed into the name field cannot be found by hashing a dictionary: the key needs the secret,
    which differs per database (made by migration 0004)."""
    typed = "hunter2-typed-as-name"
    keys, secrets = [], []
    for url in (db_url, f"sqlite:///{tmp_path / 'other.db'}"):
        store = ReviewStore(url, password_rounds=4, login_limit=LIMIT, clock=clock, migrate=True)
        _fail(store, typed, 1)
        with store.db.session() as s:
            keys.append(s.scalar(select(LoginThrottle.name_hash)))
            secrets.append(s.scalar(select(Setting.value).where(Setting.key == "login_key")))
            assert s.scalar(select(func.count()).select_from(Labeler)) == 0
        store.close()
    assert keys[0] != hashlib.sha256(typed.encode()).hexdigest()  # not the unsalted hash of what was typed
    assert keys[0] != keys[1] and secrets[0] != secrets[1] and len(secrets[0]) == 64
    assert keys[0] == hmac.new(bytes.fromhex(secrets[0]), typed.encode(), hashlib.sha256).hexdigest()
