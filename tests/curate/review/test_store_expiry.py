"""Claimed items expire: an unfinished claim frees its overlap slot after the project's claim_hours, the
first labeler keeps the item and their late ratings, and freeing is safe with labelers claiming at once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from store_helpers import labeler, run_at_once

from curate.errors import CurateError
from curate.review.models import utcnow
from curate.review.store import ReviewStore

TWO_ANSWERS = [{"prompt": "question?", "answers": ["answer a", "answer b"]}]


def open_store(url: str, hours_later: float = 0.0) -> ReviewStore:
    """A store handle whose clock runs `hours_later` ahead: the claims it sees have aged that much."""

    def clock() -> datetime:
        return utcnow() + timedelta(hours=hours_later)

    return ReviewStore(url, password_rounds=4, clock=clock)


def claims(store: ReviewStore) -> list[tuple[int, int, bool]]:
    """(item, labeler, released) for every assignment row."""
    with store.db.session() as s:
        rows = s.execute(text("SELECT item_id, labeler_id, released_at FROM assignments ORDER BY id")).all()
    return [(item, who, released is not None) for item, who, released in rows]


def item_claims(store: ReviewStore) -> list[int]:
    with store.db.session() as s:
        return list(s.scalars(text("SELECT claims FROM items ORDER BY id")))


def test_an_expired_claim_frees_the_slot_and_the_first_labeler_keeps_their_late_rating(db_url: str) -> None:
    store = open_store(db_url)
    store.create_project("qa", overlap=1, claim_hours=2)
    store.import_items("qa", TWO_ANSWERS)
    ann, ben = labeler(store, "ann"), labeler(store, "ben")
    first = store.next_rating_task(ann, "qa")
    store.submit_rating(ann, first.answer_id, 7, None, 1.0)  # one of two answers done, then ann walks away
    assert store.next_rating_task(ben, "qa") is None and store.reports.claimable(ben, "qa") == 0  # overlap 1: taken

    soon = open_store(db_url, hours_later=1.9)  # not yet expired: the slot stays ann's
    assert soon.next_rating_task(ben, "qa") is None and soon.reports.claimable(ben, "qa") == 0
    assert claims(soon) == [(first.item_id, ann, False)]

    later = open_store(db_url, hours_later=2.1)
    assert later.reports.claimable(ben, "qa") == 2  # the expired claim counts as a free slot before anyone claims
    ben_task = later.next_rating_task(ben, "qa")
    assert ben_task is not None and ben_task.item_id == first.item_id
    assert claims(later) == [(first.item_id, ann, True), (first.item_id, ben, False)]  # ann's row stays
    assert item_claims(later) == [1]

    # ann comes back: the item is still in her queue, and her rating is stored like any other.
    back = later.next_rating_task(ann, "qa")
    assert back is not None and back.item_id == first.item_id and back.answer_id != first.answer_id
    later.submit_rating(ann, back.answer_id, 4, "late but counted", 1.0)
    later.submit_rating(ben, ben_task.answer_id, 6, None, 1.0)
    ratings = later.reports.ratings_frame("qa")
    assert sorted(zip(ratings.labeler, ratings.rating, strict=True)) == [("ann", 4), ("ann", 7), ("ben", 6)]
    assert later.reports.progress(ann, "qa") == (2, 2) and later.reports.progress(ben, "qa") == (1, 2)
    for handle in (store, soon, later):
        handle.close()


def test_a_finished_claim_never_expires(db_url: str) -> None:
    store = open_store(db_url)
    store.create_project("qa", overlap=1, claim_hours=1)
    store.import_items("qa", TWO_ANSWERS)
    ann, ben = labeler(store, "ann"), labeler(store, "ben")
    while (task := store.next_rating_task(ann, "qa")) is not None:  # one answer skipped, one rated: finished
        if task.shown_position == 1:
            store.skip(ann, task.answer_id)
        else:
            store.submit_rating(ann, task.answer_id, 5, None, 1.0)
    much_later = open_store(db_url, hours_later=1000)
    assert much_later.next_rating_task(ben, "qa") is None and much_later.reports.claimable(ben, "qa") == 0
    assert claims(much_later) == [(1, ann, False)] and item_claims(much_later) == [1]
    store.close()
    much_later.close()


def test_claim_hours_is_set_per_project_and_checked(db_url: str) -> None:
    store = open_store(db_url)
    assert store.create_project("default").claim_hours == 24
    store.create_project("fast", claim_hours=0.5)
    store.set_claim_hours("default", 6)
    assert store.project("default").claim_hours == 6 and store.project("fast").claim_hours == 0.5
    for bad in (0, -1, float("nan"), "12", True):
        with pytest.raises(CurateError, match="claim hours must be a number > 0"):
            store.create_project(f"bad-{bad}", claim_hours=bad)  # type: ignore[arg-type]
    with pytest.raises(CurateError, match="no project named 'nope'"):
        store.set_claim_hours("nope", 3)
    store.close()


def test_labelers_racing_for_one_freed_slot_get_it_once(db_url: str) -> None:
    """Eight labelers ask for work at once when the only slot has just expired: exactly one gets it."""
    setup = open_store(db_url)
    setup.create_project("qa", overlap=1, claim_hours=1)
    setup.import_items("qa", TWO_ANSWERS)
    ann = labeler(setup, "ann")
    assert setup.next_rating_task(ann, "qa") is not None  # claimed, never touched
    racers = [labeler(setup, f"racer-{i}") for i in range(8)]
    later = open_store(db_url, hours_later=2)  # one shared engine, a session per call, as the app runs
    got: dict[int, object] = {}

    def race(lid: int) -> None:
        got[lid] = later.next_rating_task(lid, "qa")

    run_at_once(race, racers)
    winners = [lid for lid, task in got.items() if task is not None]
    assert len(winners) == 1
    assert claims(later) == [(1, ann, True), (1, winners[0], False)]  # released once, claimed once
    assert item_claims(later) == [1]
    setup.close()
    later.close()
