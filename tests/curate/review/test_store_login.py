"""Login throttle: failed logins per name are counted in the database and lock the name for a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from curate.review.models import LoginThrottle
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


def _rows(store: ReviewStore) -> int:
    with store.db.session() as s:
        return s.scalar(select(func.count()).select_from(LoginThrottle)) or 0


def test_too_many_failures_lock_the_name_until_the_lockout_ends(store: ReviewStore, clock: Clock) -> None:
    password = store.accounts.add_labeler("ann")
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
