"""The review store: projects, items, assignment and the labelers' writes, for `review_app` and `curate review`.

Assignment: a labeler's queue holds the answers of the items assigned to them that
they have not yet rated, skipped or flagged. When it runs dry they claim the next item
that fewer than `overlap` labelers hold and they don't hold yet, in import order — so
each item goes to `overlap` labelers, nobody gets an item twice, and two labelers
claiming at once never take the same slot (SQLite: BEGIN IMMEDIATE; PostgreSQL:
SELECT ... FOR UPDATE SKIP LOCKED). A claim holds its slot for the project's
`claim_hours` (24 by default); if the labeler has not done every answer of the item by
then, the slot goes back to the pool for another labeler, while the item stays in the
first labeler's queue and their later ratings are kept like any other.

Position bias: Rate mode shows each labeler an item's answers in an order of their own
(`shown_order`, stable per labeler), and every rating records where its answer was shown.

`ReviewStore` is made of parts, each its own module: `db` (database: engine, sessions,
schema), `rights` (who may do what), `accounts` (labelers, passwords, login), `reports`
(progress, ratings, flags, stats), `judges` (LLM judges' ratings and failures) and `scores`
(reward-model scores of answers). Exports of ratings as datasets live outside the store,
in `curate.review_export`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from curate.errors import CurateError
from curate.review.accounts import Accounts, LoginLimit, LoginLocked
from curate.review.database import MIGRATIONS, Database
from curate.review.judges import Judges
from curate.review.models import (
    Answer,
    Assignment,
    Comparison,
    Flag,
    Item,
    Labeler,
    Project,
    Rating,
    Skip,
    utcnow,
)
from curate.review.queries import active_labeler_row, done_by, project_row
from curate.review.reports import Reports
from curate.review.rights import AuthError, Rights
from curate.review.scores import Scores
from curate.review.types import (
    DEFAULT_CLAIM_HOURS,
    DEFAULT_DB,
    ENV_DB,
    MODES,
    CompareTask,
    RatingTask,
    ReviewItem,
    check_claim_hours,
    check_name,
    check_rating,
    check_seconds,
    resolve_url,
    shown_order,
)

__all__ = [
    "DEFAULT_CLAIM_HOURS",
    "DEFAULT_DB",
    "ENV_DB",
    "MODES",
    "MIGRATIONS",
    "AuthError",
    "CompareTask",
    "LoginLimit",
    "LoginLocked",
    "RatingTask",
    "ReviewItem",
    "ReviewStore",
    "check_claim_hours",
    "check_name",
    "check_rating",
    "resolve_url",
    "shown_order",
]

MAX_COMMENT = 5000
MAX_REASON = 1000


class ReviewStore:
    """All reads and writes of the review app and `curate review`, over one database (`db`)."""

    def __init__(
        self,
        url: str,
        password_rounds: int = 12,
        busy_timeout: float = 30.0,
        *,
        login_limit: LoginLimit | None = None,
        operator: bool = True,
        clock: Callable[[], datetime] = utcnow,
        migrate: bool = False,
    ) -> None:
        """Open the store at `url` (a bare path means SQLite), which must be a review database at this code's
        schema revision; `migrate` (what `curate review init` does) creates or upgrades the schema first.

        `busy_timeout`: seconds a SQLite writer waits for the lock before "database is locked" is raised.
        `operator`: False for the review app's store, whose admin-only operations need an acting admin.
        `login_limit`: the failed-login lock (default `LoginLimit()`); `clock`: the current UTC time.
        """
        self.db = Database(url, busy_timeout, clock)
        self.db.open(migrate)
        self.rights = Rights(self.db, operator)
        self.accounts = Accounts(self.db, self.rights, password_rounds, login_limit)
        self.reports = Reports(self.db, self.rights)
        self.judges = Judges(self.db, self.rights)
        self.scores = Scores(self.db, self.rights)

    def close(self) -> None:
        """Release the connection pool."""
        self.db.close()

    # --- projects and items --------------------------------------------------------------------

    def create_project(
        self, name: str, overlap: int = 2, mode: str = "rate", claim_hours: float = DEFAULT_CLAIM_HOURS
    ) -> Project:
        """A new project whose items each go to `overlap` labelers; `mode` is rate or compare.

        `claim_hours`: how long a claimed item holds its slot before an unfinished claim frees it.
        """
        self.rights.require_operator("create projects")
        check_name(name, "project")
        hours = check_claim_hours(claim_hours)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1:
            raise CurateError(f"overlap must be a whole number >= 1 (labelers per item), got {overlap!r}")
        if mode not in MODES:
            raise CurateError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        with self.db.session(write=True) as s:
            if s.scalar(select(Project.id).where(Project.name == name)) is not None:
                raise CurateError(f"project {name!r} already exists")
            project = Project(name=name, overlap=overlap, mode=mode, claim_hours=hours)
            s.add(project)
        return project

    def set_claim_hours(self, project: str, hours: float) -> None:
        """Change how long a project's claims hold their slot; claims made from now on use it."""
        self.rights.require_operator("change claim hours")
        value = check_claim_hours(hours)
        with self.db.session(write=True) as s:
            project_row(s, project).claim_hours = value

    def projects(self) -> list[str]:
        """Names of all projects, oldest first."""
        with self.db.session() as s:
            return list(s.scalars(select(Project.name).order_by(Project.id)))

    def project(self, name: str) -> Project:
        """The project called `name` (CurateError when there is none)."""
        with self.db.session() as s:
            return project_row(s, name)

    def prompts(self, project: str) -> list[str]:
        """The prompts of `project`'s items, in import order."""
        self.rights.require_operator("list a project's prompts")
        with self.db.session() as s:
            pid = project_row(s, project).id
            return list(s.scalars(select(Item.prompt).where(Item.project_id == pid).order_by(Item.id)))

    def import_items(self, project: str, rows: Iterable[dict[str, Any]]) -> int:
        """Add prompts with their answers; returns the number of new answers.

        A prompt already in the project gets only the answers it does not have yet, so
        re-importing a file adds nothing and new model answers join their prompt's item.
        """
        self.rights.require_operator("import items")
        items = []
        for n, row in enumerate(rows, start=1):
            try:
                items.append(ReviewItem.model_validate(row))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"]) or "(row)"
                raise CurateError(f"item {n}: field '{loc}': {first['msg']}") from None
        added = 0
        with self.db.session(write=True) as s:
            pid = project_row(s, project, lock=True).id  # imports of one project run one at a time
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

    # --- assignment and tasks ------------------------------------------------------------------

    def _open_answers(self, s: Session, labeler_id: int, project_id: int, limit: int | None = None) -> list[Any]:
        """(answer, item) rows still to do in this labeler's assigned items: items in claim order, each
        item's answers in this labeler's own order (`shown_order`)."""
        query = (
            select(Answer, Item)
            .join(Item, Answer.item_id == Item.id)
            .join(Assignment, and_(Assignment.item_id == Item.id, Assignment.labeler_id == labeler_id))
            .where(Assignment.project_id == project_id, ~done_by(labeler_id))
            .order_by(Assignment.id, Answer.position)
        )
        rows = list(s.execute(query).tuples())  # a labeler's queue is an item or two: sorting here is cheap
        item_rank = {item_id: n for n, item_id in enumerate(dict.fromkeys(item.id for _, item in rows))}
        answer_rank = {a: n for n, a in enumerate(shown_order(labeler_id, [answer.id for answer, _ in rows]))}
        rows.sort(key=lambda row: (item_rank[row[1].id], answer_rank[row[0].id]))
        return rows[:limit]

    def _placement(self, s: Session, labeler_id: int, answer: Answer) -> tuple[int, int]:
        """(where Rate mode shows this answer to this labeler: 1-based place in their order of the item's
        answers, how many answers the item has)."""
        siblings = list(s.scalars(select(Answer.id).where(Answer.item_id == answer.item_id)))
        return shown_order(labeler_id, siblings).index(answer.id) + 1, len(siblings)

    def _settle(self, s: Session, labeler_id: int, item_id: int) -> bool:
        """Once the labeler has done every answer of the item, their claim no longer expires; returns whether
        it is settled (every answer done)."""
        left = select(func.count(Answer.id)).where(Answer.item_id == item_id, ~done_by(labeler_id))
        if s.scalar(left):
            return False
        s.execute(
            update(Assignment)
            .where(Assignment.item_id == item_id, Assignment.labeler_id == labeler_id)
            .values(expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return True

    def _release_expired(self, s: Session, project: Project) -> int:
        """Give back the slots of expired, unfinished claims in this project; returns how many were freed.

        The assignment stays (the item remains in that labeler's queue); only the item's slot count
        drops, so another labeler can claim it. Run before any claim in a transaction: it locks item
        rows, which a claim holding an item with SKIP LOCKED must not wait for.
        """
        now = self.db.clock()
        expired = (
            select(Assignment.id, Assignment.item_id, Assignment.labeler_id)
            .where(Assignment.project_id == project.id, Assignment.expires_at < now, Assignment.released_at.is_(None))
            .order_by(Assignment.id)  # one lock order for every releaser: no deadlock between them
        )
        freed = 0
        for assignment_id, item_id, labeler_id in s.execute(expired).all():
            # Lock the item first (one order for all): a concurrent releaser of the same claim waits here.
            s.execute(select(Item.id).where(Item.id == item_id).with_for_update())
            if self._settle(s, labeler_id, item_id):  # finished after all (e.g. a claim from before expiry)
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
                due = self.db.clock() + timedelta(hours=project.claim_hours)
                s.add(Assignment(project_id=project.id, item_id=item.id, labeler_id=labeler_id, expires_at=due))
                s.flush()
                return item.id
            if self.db.dialect != "postgresql":
                break
        return None

    def next_rating_task(self, labeler_id: int, project: str) -> RatingTask | None:
        """The next answer for this labeler to rate (claiming a new item when needed); None when all done."""
        with self.db.session() as s:
            proj = project_row(s, project)
            active_labeler_row(s, labeler_id)
            rows = self._open_answers(s, labeler_id, proj.id, limit=1)
        if not rows:
            with self.db.session(write=True) as s:
                active_labeler_row(s, labeler_id, lock=True)
                rows = self._open_answers(s, labeler_id, proj.id, limit=1)
                if not rows:
                    self._release_expired(s, proj)
                    if self._claim(s, labeler_id, proj) is not None:
                        rows = self._open_answers(s, labeler_id, proj.id, limit=1)
        if not rows:
            return None
        answer, item = rows[0]
        with self.db.session() as s:
            shown, n_answers = self._placement(s, labeler_id, answer)
        return RatingTask(item.id, item.prompt, answer.id, answer.text, answer.position + 1, n_answers, shown)

    def next_compare_task(self, labeler_id: int, project: str) -> CompareTask | None:
        """Two answers of one prompt for this labeler, at least one not yet rated by them, in random order.

        Items with a single answer never come up here (they stay in rate mode). When only
        one answer of an item is left, it is paired with one the labeler already rated,
        whose new rating then supersedes the old one (the old one stays in the history).
        """
        with self.db.session() as s:
            proj = project_row(s, project)
            active_labeler_row(s, labeler_id)
            task = self._compare_from_open(s, labeler_id, proj.id)
        if task is None:
            with self.db.session(write=True) as s:
                active_labeler_row(s, labeler_id, lock=True)
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
        spent = check_seconds(seconds)
        if comment is not None and not isinstance(comment, str):
            raise CurateError(f"a comment must be text, got {type(comment).__name__}")
        if comment is not None and len(comment) > MAX_COMMENT:
            raise CurateError(f"a comment can be at most {MAX_COMMENT} characters (got {len(comment)})")
        with self.db.session(write=True) as s:
            active_labeler_row(s, labeler_id, lock=True)
            answer = self._assigned_answer(s, labeler_id, answer_id)
            shown, _ = self._placement(s, labeler_id, answer)
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
        spent = check_seconds(seconds)
        with self.db.session(write=True) as s:
            active_labeler_row(s, labeler_id, lock=True)
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
        with self.db.session(write=True) as s:
            active_labeler_row(s, labeler_id, lock=True)
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
        with self.db.session(write=True) as s:
            active_labeler_row(s, labeler_id, lock=True)
            answer = self._assigned_answer(s, labeler_id, answer_id)
            s.add(Flag(labeler_id=labeler_id, answer_id=answer_id, reason=reason.strip()))
            self._settle(s, labeler_id, answer.item_id)

    def clear_flag(self, admin_id: int, flag_id: int) -> None:
        """An admin clears (resolves) a flag: its answer counts again in exports; the flag row stays as history.

        The flagging labeler's queue is unchanged: flagging was their judgement of that answer.
        """
        self.rights.require_admin(admin_id, "clear a flag")
        with self.db.session(write=True) as s:
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
            flag.cleared_at, flag.cleared_by_id = self.db.clock(), admin_id
