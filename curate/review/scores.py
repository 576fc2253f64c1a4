"""The review store's part for reward-model scores (`store.scores`): `train score RUN --project P` writes them,
the Admin page shows them beside each answer (admins only; labelers never see a score)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import delete, select

from curate.errors import CurateError
from curate.review.database import Database
from curate.review.models import Answer, Item, ModelScore
from curate.review.queries import project_row
from curate.review.rights import Rights
from curate.review.types import check_name


class Scores:
    """Answers to score, and the scores reward models gave them, over the store's database and rights."""

    def __init__(self, db: Database, rights: Rights) -> None:
        self.db = db
        self.rights = rights

    def answers(self, project: str) -> pd.DataFrame:
        """Every answer of `project` to score: answer_id, prompt, response, model (item by item, import order)."""
        self.rights.require_operator("read every answer to score it")
        with self.db.session() as s:
            pid = project_row(s, project).id
            result = s.execute(
                select(Answer.id.label("answer_id"), Item.prompt, Answer.text.label("response"), Answer.model)
                .join(Item, Answer.item_id == Item.id)
                .where(Item.project_id == pid)
                .order_by(Item.id, Answer.position)
            )
            return pd.DataFrame(result.all(), columns=list(result.keys()))

    def record(self, project: str, source: str, scores: Iterable[tuple[int, float]]) -> int:
        """Store `source`'s (a run's name) score of each answer, replacing its earlier scores, in one transaction."""
        self.rights.require_operator("record model scores")
        check_name(source, "score source")
        rows = [(int(answer_id), float(score)) for answer_id, score in scores]
        if any(not math.isfinite(score) for _, score in rows):
            raise CurateError(f"{source}: a score is not a finite number")
        with self.db.session(write=True) as s:
            pid = project_row(s, project).id
            ours = select(Answer.id).join(Item, Answer.item_id == Item.id).where(Item.project_id == pid)
            known = set(s.scalars(ours))
            stray = [answer_id for answer_id, _ in rows if answer_id not in known]
            if stray:
                raise CurateError(f"answer {stray[0]} is not in project {project!r}")
            s.execute(delete(ModelScore).where(ModelScore.source == source, ModelScore.answer_id.in_(ours)))
            s.add_all(ModelScore(answer_id=answer_id, source=source, score=score) for answer_id, score in rows)
        return len(rows)

    def frame(self, project: str, *, actor: int | None = None) -> pd.DataFrame:
        """Every stored score of `project`'s answers: answer_id, prompt, response, model, source, score, created_at
        (admins only)."""
        self.rights.require_admin(actor, "see model scores")
        with self.db.session() as s:
            pid = project_row(s, project).id
            result = s.execute(
                select(
                    ModelScore.answer_id,
                    Item.prompt,
                    Answer.text.label("response"),
                    Answer.model,
                    ModelScore.source,
                    ModelScore.score,
                    ModelScore.created_at,
                )
                .join(Answer, ModelScore.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .where(Item.project_id == pid)
                .order_by(ModelScore.source, ModelScore.answer_id)
            )
            return pd.DataFrame(result.all(), columns=list(result.keys()))
