"""Position bias: Rate mode shows each labeler an item's answers in an order of their own, stable for them,
and every rating records where its answer was shown (Compare records A = 1, B = 2)."""

from __future__ import annotations

import pytest

from curate.review.store import ReviewStore, shown_order

ANSWERS = ["first", "second", "third", "fourth"]


@pytest.fixture
def store(db_url: str) -> ReviewStore:
    s = ReviewStore(db_url, password_rounds=4)
    s.create_project("qa", overlap=9)  # room for a ninth labeler
    s.import_items("qa", [{"prompt": "Which is best?", "answers": ANSWERS}])
    yield s
    s.close()


def seen_order(store: ReviewStore, labeler_id: int) -> list[str]:
    """Rate the item's answers in the order this labeler is shown them; returns that order."""
    seen = []
    while (task := store.next_rating_task(labeler_id, "qa")) is not None:
        assert task.shown_position == len(seen) + 1 and task.n_answers == len(ANSWERS)
        assert store.next_rating_task(labeler_id, "qa") == task  # asking again shows the same answer
        seen.append(task.answer)
        store.submit_rating(labeler_id, task.answer_id, 5, None, 1.0)
    return seen


def test_each_labeler_sees_their_own_stable_order_and_it_is_recorded(store: ReviewStore, db_url: str) -> None:
    ids = [store.accounts.authenticate(n, store.accounts.add_labeler(n)).id for n in (f"labeler-{i}" for i in range(8))]
    orders = {lid: seen_order(store, lid) for lid in ids}
    assert all(sorted(order) == sorted(ANSWERS) for order in orders.values())
    assert len({tuple(order) for order in orders.values()}) > 1  # labelers see different orders
    assert len({order[0] for order in orders.values()}) > 1  # so the imported first answer is not always first
    answer_ids = dict(zip(ANSWERS, range(1, len(ANSWERS) + 1), strict=True))
    ratings = store.reports.ratings_frame("qa")
    for lid, order in orders.items():
        # Stable: the order is a function of (labeler, answers), the same for any store handle or server.
        assert [answer_ids[a] for a in order] == shown_order(lid, answer_ids.values())
        mine = ratings[ratings.labeler_id == lid].set_index("response")
        assert [mine.loc[a, "shown_position"] for a in order] == [1, 2, 3, 4]  # where each answer was shown
    again = ReviewStore(db_url, password_rounds=4)
    late = again.accounts.authenticate("late", again.accounts.add_labeler("late")).id
    task = again.next_rating_task(late, "qa")
    assert task.answer_id == shown_order(late, answer_ids.values())[0]
    again.close()


def test_an_answer_imported_later_does_not_reshuffle_the_others() -> None:
    before = shown_order(7, [1, 2, 3])
    after = shown_order(7, [1, 2, 3, 4])
    assert [a for a in after if a != 4] == before


def test_compare_ratings_record_the_side_they_were_shown_on(store: ReviewStore) -> None:
    ann = store.accounts.authenticate("ann", store.accounts.add_labeler("ann")).id
    task = store.next_compare_task(ann, "qa")
    store.submit_comparison(ann, task, 9, 2, 4.0)
    ratings = store.reports.ratings_frame("qa").set_index("answer_id")
    assert ratings.loc[task.left_answer_id, "shown_position"] == 1  # A, left
    assert ratings.loc[task.right_answer_id, "shown_position"] == 2  # B, right
