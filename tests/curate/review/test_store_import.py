"""Imports running at once (two operators, or a retried job) never create the same item twice."""

from __future__ import annotations

from sqlalchemy import func, select
from store_helpers import run_at_once

from curate.review.models import Answer, Item
from curate.review.store import ReviewStore

ITEMS = [{"prompt": f"question {i}?", "answers": [f"answer {i}a", f"answer {i}b"]} for i in range(40)]


def test_simultaneous_imports_of_one_file_add_each_item_once(db_url: str) -> None:
    setup = ReviewStore(db_url, password_rounds=4)
    setup.create_project("qa", overlap=2)
    stores = [ReviewStore(db_url, password_rounds=4) for _ in range(4)]  # one engine per importing process
    added: list[int] = []
    run_at_once(lambda store: added.append(store.import_items("qa", ITEMS)), stores)
    assert sorted(added) == [0, 0, 0, 80]  # one import added everything, the others found it there
    with setup.db.session() as s:
        assert s.scalar(select(func.count(Item.id))) == 40
        assert s.scalar(select(func.count(Answer.id))) == 80
    for store in [setup, *stores]:
        store.close()
