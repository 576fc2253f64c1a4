"""The review store's part for LLM judges (`store.judges`): judge labelers, what is left to judge, the verdicts.

A judge is a labeler of kind `judge` named after its model: its ratings are ordinary ratings, so every
export, the agreement figures and the Admin page see them tagged by `labeler_kind`; labelers never do
(they only ever see their own ratings). It never logs in (its password hash is random and never shown)
and never claims items, so it takes no slot from the people an item is assigned to. A reply that never
parsed is kept in `judge_failures` with the reply, never turned into a score.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import bcrypt
import pandas as pd
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from curate.errors import CurateError
from curate.review.database import Database
from curate.review.models import Answer, Item, JudgeFailure, Labeler, Rating
from curate.review.queries import project_row
from curate.review.rights import Rights
from curate.review.types import MODES, check_name, check_rating

MAX_REPLY = 2000  # characters of a judge's reply kept with its rating or failure


@dataclass(frozen=True)
class JudgeTask:
    """An answer for the judge: its item (prompt), where it sits among the item's answers, whether it is rated."""

    item_id: int
    prompt: str
    answer_id: int
    answer: str
    position: int
    todo: bool = True  # to be judged now (False: listed only with `whole_items`, for compare mode)


@dataclass(frozen=True)
class JudgeVerdict:
    """What the judge said about one answer: a 1-10 score, or None when its reply never parsed."""

    answer_id: int
    score: int | None
    reply: str
    tries: int = 1


class Judges:
    """Judge labelers and their work, over the store's database and rights."""

    def __init__(self, db: Database, rights: Rights) -> None:
        self.db = db
        self.rights = rights

    def labeler(self, name: str) -> int:
        """The id of the judge called `name` (its model), created on first use; a person of that name is refused."""
        self.rights.require_operator("add a judge")
        check_name(name, "judge")
        with self.db.session(write=True) as s:
            row = s.scalar(select(Labeler).where(Labeler.name == name))
            if row is not None and row.kind != "judge":
                raise CurateError(f"{name!r} is a person's labeler name: a judge needs a name of its own (--name)")
            if row is None:
                unusable = bcrypt.hashpw(secrets.token_bytes(32), bcrypt.gensalt(rounds=4)).decode()
                row = Labeler(name=name, role="labeler", kind="judge", password_hash=unusable, password_temporary=False)
                s.add(row)
                s.flush()
            if not row.active:
                raise CurateError(f"judge {name!r} is deactivated")
            return row.id

    def to_judge(
        self, project: str, judge_id: int, retry_failed: bool = False, whole_items: bool = False
    ) -> list[JudgeTask]:
        """Answers of `project` this judge has not rated yet, item by item in import order; answers whose reply
        never parsed are left out unless `retry_failed`. Re-running a judge rates only what is missing.

        `whole_items` (compare mode, which asks about an item's answers side by side): every answer of each item
        that has one to judge, the others marked `todo=False`.
        """
        with self.db.session() as s:
            pid = project_row(s, project).id
            rated = exists().where(
                Rating.answer_id == Answer.id, Rating.labeler_id == judge_id, Rating.superseded_at.is_(None)
            )
            failed = exists().where(JudgeFailure.answer_id == Answer.id, JudgeFailure.labeler_id == judge_id)
            wanted = ~rated if retry_failed else ~rated & ~failed
            query = (
                select(Item.id, Item.prompt, Answer.id, Answer.text, Answer.position, wanted)
                .join(Item, Answer.item_id == Item.id)
                .where(Item.project_id == pid)
                .order_by(Item.id, Answer.position)
            )
            if whole_items:
                items = (
                    select(Answer.item_id).join(Item, Answer.item_id == Item.id).where(Item.project_id == pid, wanted)
                )
                query = query.where(Answer.item_id.in_(items))
            else:
                query = query.where(wanted)
            return [JudgeTask(*row) for row in s.execute(query).tuples()]

    def record(self, judge_id: int, verdicts: Iterable[JudgeVerdict], mode: str = "rate") -> tuple[int, int]:
        """Store one batch of verdicts in one transaction: a score as the judge's rating (its reply as the comment),
        an unparseable reply as a failure. Returns (rated, failed); an answer rated meanwhile is not rated twice."""
        self.rights.require_operator("record a judge's ratings")
        if mode not in MODES:
            raise CurateError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        rated = failed = 0
        with self.db.session(write=True) as s:
            judge = s.get(Labeler, judge_id)
            if judge is None or judge.kind != "judge":
                raise CurateError(f"labeler id {judge_id!r} is not a judge")
            for verdict in verdicts:
                reply = verdict.reply[:MAX_REPLY]
                if verdict.score is None:
                    s.add(
                        JudgeFailure(
                            labeler_id=judge_id,
                            answer_id=verdict.answer_id,
                            mode=mode,
                            reply=reply,
                            tries=verdict.tries,
                        )
                    )
                    failed += 1
                    continue
                value = check_rating(verdict.score)
                try:
                    with s.begin_nested():  # the one-current-rating index refuses a second, concurrent rating
                        s.add(
                            Rating(
                                labeler_id=judge_id,
                                answer_id=verdict.answer_id,
                                value=value,
                                comment=reply,
                                seconds_spent=0.0,
                                mode=mode,
                            )
                        )
                    rated += 1
                except IntegrityError:
                    continue
        return rated, failed

    def failures(self, project: str, *, actor: int | None = None) -> pd.DataFrame:
        """Replies that never parsed: judge, answer, prompt, response, mode, reply, tries, created_at."""
        self.rights.require_admin(actor, "see the judges' failures")
        with self.db.session() as s:
            pid = project_row(s, project).id
            result = s.execute(
                select(
                    Labeler.name.label("judge"),
                    Answer.id.label("answer_id"),
                    Item.prompt.label("prompt"),
                    Answer.text.label("response"),
                    JudgeFailure.mode,
                    JudgeFailure.reply,
                    JudgeFailure.tries,
                    JudgeFailure.created_at,
                )
                .join(Answer, JudgeFailure.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .join(Labeler, JudgeFailure.labeler_id == Labeler.id)
                .where(Item.project_id == pid)
                .order_by(JudgeFailure.id)
            )
            return pd.DataFrame(result.all(), columns=list(result.keys()))
