"""Clearing a flag: an admin resolves it, its answer counts in exports again, and the flag stays as history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from store_helpers import labeler

from curate.errors import CurateError
from curate.recipe import SplitConfig
from curate.review.store import ReviewStore
from curate.review_export import export_ratings

ITEMS = [{"prompt": f"question {i}?", "answers": [f"answer {i}a", f"answer {i}b"]} for i in range(3)]


@pytest.fixture
def store(db_url: str) -> ReviewStore:
    s = ReviewStore(db_url, password_rounds=4)
    s.create_project("qa", overlap=2)
    s.import_items("qa", ITEMS)
    yield s
    s.close()


def reward_rows(store: ReviewStore, out: Path) -> pd.DataFrame:
    export_ratings(store, "qa", out, "reward", split=SplitConfig(test_size=0.0))
    return pd.read_parquet(out / "data/train-00000-of-00001.parquet")


def test_a_cleared_flag_puts_the_answer_back_into_exports_and_keeps_its_history(
    store: ReviewStore, tmp_path: Path
) -> None:
    ann, ben, boss = labeler(store, "ann"), labeler(store, "ben"), labeler(store, "boss", "admin")
    for lid, value in ((ann, 8), (ben, 6)):
        while (task := store.next_rating_task(lid, "qa")) is not None:
            store.submit_rating(lid, task.answer_id, value, None, 1.0)
    flagged_answer = int(store.reports.ratings_frame("qa").answer_id.min())
    store.flag(ann, flagged_answer, "looks <b>copied</b>")
    store.flag(ben, flagged_answer, "copied from the web")
    flags = store.reports.flagged("qa")
    assert list(flags.reason) == ["looks <b>copied</b>", "copied from the web"]
    before = reward_rows(store, tmp_path / "before")
    assert len(before) == 5  # 6 answers, the flagged one left out

    store.clear_flag(boss, int(flags.flag_id.iloc[0]))
    assert list(store.reports.flagged("qa").reason) == ["copied from the web"]  # another labeler's flag still holds it
    assert len(reward_rows(store, tmp_path / "one-cleared")) == 5
    store.clear_flag(boss, int(flags.flag_id.iloc[1]))
    assert store.reports.flagged("qa").empty
    after = reward_rows(store, tmp_path / "after")
    assert len(after) == 6  # back in the export, with both labelers' ratings
    assert after.set_index("response").loc["answer 0a", "n_ratings"] == 2

    history = store.reports.flagged("qa", history=True)
    assert history[["labeler", "reason", "cleared_by"]].values.tolist() == [
        ["ann", "looks <b>copied</b>", "boss"],
        ["ben", "copied from the web", "boss"],
    ]
    assert history.cleared_at.notna().all() and history.created_at.notna().all()
    # The flaggers' queues are unchanged: flagging was their judgement of that answer.
    assert store.next_rating_task(ann, "qa") is None and store.reports.progress(ann, "qa") == (6, 6)


def test_only_an_admin_clears_a_flag_and_only_once(store: ReviewStore) -> None:
    ann, boss = labeler(store, "ann"), labeler(store, "boss", "admin")
    task = store.next_rating_task(ann, "qa")
    store.flag(ann, task.answer_id, "unclear prompt")
    flag_id = int(store.reports.flagged("qa").flag_id.iloc[0])
    with pytest.raises(CurateError, match="only an admin may clear a flag"):
        store.clear_flag(ann, flag_id)
    with pytest.raises(CurateError, match="no flag with id 999"):
        store.clear_flag(boss, 999)
    with pytest.raises(CurateError, match="no labeler with id 12345"):
        store.clear_flag(12345, flag_id)
    assert len(store.reports.flagged("qa")) == 1  # nothing changed by the refusals
    store.clear_flag(boss, flag_id)
    with pytest.raises(CurateError, match=f"flag {flag_id} was already cleared by boss at "):
        store.clear_flag(boss, flag_id)
