"""Admin rights are enforced by the store: everyone's ratings, flags, stats and exports need an active admin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curate.recipe import SplitConfig
from curate.review.store import AuthError, ReviewStore
from curate.review_export import export_ratings

ITEMS = [{"prompt": f"question {i}?", "answers": [f"answer {i}a", f"answer {i}b"]} for i in range(3)]

# Every operation that shows more than one labeler's own work, as the admin page and the CLI call them.
ADMIN_ONLY: dict[str, Callable[[ReviewStore, Path, Any], Any]] = {
    "ratings_frame": lambda store, tmp, actor: store.reports.ratings_frame("qa", actor=actor),
    "ratings_frame(history)": lambda store, tmp, actor: store.reports.ratings_frame("qa", history=True, actor=actor),
    "flagged": lambda store, tmp, actor: store.reports.flagged("qa", actor=actor),
    "labeler_stats": lambda store, tmp, actor: store.reports.labeler_stats("qa", actor=actor),
    "progress_all": lambda store, tmp, actor: store.reports.progress_all("qa", actor=actor),
    "labelers": lambda store, tmp, actor: store.accounts.labelers(actor=actor),
    "rated_rows": lambda store, tmp, actor: store.reports.rated_rows("qa", actor=actor),
    "export": lambda store, tmp, actor: export_ratings(
        store, "qa", tmp / "out", "rated", split=SplitConfig(test_size=0.0), actor=actor
    ),
}


class Team:
    """An operator's store with a rated project, the app's store on the same database, and who is who."""

    def __init__(self, url: str) -> None:
        self.operator = ReviewStore(url, password_rounds=4)
        self.operator.create_project("qa", overlap=2)
        self.operator.import_items("qa", ITEMS)
        self.ids = {
            name: self.operator.accounts.authenticate(name, self.operator.accounts.add_labeler(name, role)).id
            for name, role in (("ann", "labeler"), ("ben", "labeler"), ("boss", "admin"))
        }
        for name in ("ann", "ben"):
            task = self.operator.next_rating_task(self.ids[name], "qa")
            self.operator.submit_rating(self.ids[name], task.answer_id, 7, None, 1.0)
        self.operator.flag(self.ids["ann"], self.operator.next_rating_task(self.ids["ann"], "qa").answer_id, "unclear")
        self.app = ReviewStore(url, password_rounds=4, operator=False)  # as review_app/state.py opens it

    def close(self) -> None:
        self.operator.close()
        self.app.close()


@pytest.fixture
def team(db_url: str) -> Team:
    t = Team(db_url)
    yield t
    t.close()


@pytest.mark.parametrize("operation", ADMIN_ONLY)
def test_a_labeler_is_refused_and_an_admin_served(team: Team, tmp_path: Path, operation: str) -> None:
    call = ADMIN_ONLY[operation]
    for store in (team.app, team.operator):  # an acting labeler is refused on either store
        with pytest.raises(AuthError, match=r"only an admin may .*; 'ann' is a labeler"):
            call(store, tmp_path, team.ids["ann"])
    assert call(team.app, tmp_path, team.ids["boss"]) is not None


@pytest.mark.parametrize("operation", ADMIN_ONLY)
def test_a_deactivated_admin_is_refused(team: Team, tmp_path: Path, operation: str) -> None:
    team.operator.accounts.deactivate_labeler("boss")
    with pytest.raises(AuthError, match=r"only an active admin may .*; 'boss' is deactivated"):
        ADMIN_ONLY[operation](team.app, tmp_path, team.ids["boss"])


@pytest.mark.parametrize("operation", ADMIN_ONLY)
def test_the_apps_store_needs_an_actor_the_operators_does_not(team: Team, tmp_path: Path, operation: str) -> None:
    with pytest.raises(AuthError, match=r"the review app must say which admin asks"):
        ADMIN_ONLY[operation](team.app, tmp_path, None)
    assert ADMIN_ONLY[operation](team.operator, tmp_path, None) is not None  # the CLI's path
    with pytest.raises(AuthError, match="no labeler with id 999"):
        ADMIN_ONLY[operation](team.app, tmp_path, 999)


def test_admin_sees_everyone_and_a_labeler_only_their_own(team: Team) -> None:
    ann, ben, boss = team.ids["ann"], team.ids["ben"], team.ids["boss"]
    assert set(team.app.reports.ratings_frame("qa", actor=boss).labeler) == {"ann", "ben"}
    assert list(team.app.reports.ratings_frame("qa", labeler_id=ben, actor=boss).labeler) == ["ben"]
    assert list(team.app.reports.ratings_frame("qa", labeler_id=ann, actor=ann).labeler) == [
        "ann"
    ]  # blind: her own rows
    with pytest.raises(AuthError, match="'ann' is a labeler"):
        team.app.reports.ratings_frame("qa", labeler_id=ben, actor=ann)  # never another labeler's
    with pytest.raises(AuthError, match="the review app must say which admin asks"):
        team.app.reports.ratings_frame("qa", labeler_id=ann)  # the app always says who asks


def test_the_apps_store_cannot_set_up_projects_or_accounts(team: Team) -> None:
    for call, what in (
        (lambda: team.app.create_project("other"), "create projects"),
        (lambda: team.app.import_items("qa", ITEMS), "import items"),
        (lambda: team.app.accounts.add_labeler("mallory", "admin"), "add labelers"),
        (lambda: team.app.accounts.reset_password("boss"), "reset passwords"),
        (lambda: team.app.accounts.deactivate_labeler("boss"), "deactivate labelers"),
        (lambda: team.app.set_claim_hours("qa", 1), "change claim hours"),
    ):
        with pytest.raises(AuthError, match=f"only the operator may {what}, with `curate review`"):
            call()
    assert [lab.name for lab in team.operator.accounts.labelers()] == ["ann", "ben", "boss"]
    # What labelers do through the app still works on it.
    ben = team.ids["ben"]
    task = team.app.next_rating_task(ben, "qa")
    team.app.submit_rating(ben, task.answer_id, 4, None, 2.0)
    assert team.app.reports.progress(ben, "qa")[0] == 2
