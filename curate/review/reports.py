"""Review store reads for the labeling pages and the admin page (`Reports`, a part of `ReviewStore`).

Blind rating: a labeler's tasks and `ratings_frame(project, labeler_id)` hold only
their own work; only admin views (no labeler_id) see everyone's ratings.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from curate.review.database import Database
from curate.review.models import Answer, Assignment, Flag, Item, Labeler, Rating
from curate.review.queries import done_by, project_row
from curate.review.rights import Rights


class Reports:
    """Progress, ratings, flags, labeler stats of a project; everyone's work only for admins (see `rights`)."""

    def __init__(self, db: Database, rights: Rights) -> None:
        self.db = db
        self.rights = rights

    def progress(self, labeler_id: int, project: str) -> tuple[int, int]:
        """(done, assigned) answers for this labeler: done = rated, skipped or flagged; assigned = every answer
        of the items handed to them so far. Answers they might still get are `claimable`, not assigned."""
        with self.db.session() as s:
            proj = project_row(s, project)
            mine = exists().where(Assignment.item_id == Item.id, Assignment.labeler_id == labeler_id)
            base = select(func.count(Answer.id)).join(Item, Answer.item_id == Item.id)
            base = base.where(Item.project_id == proj.id, mine)
            done = s.scalar(base.where(done_by(labeler_id))) or 0
            assigned = s.scalar(base) or 0
        return done, assigned

    def claimable(self, labeler_id: int, project: str, min_answers: int = 1) -> int:
        """Answers in items this labeler does not hold that have a free slot now (expired claims count as
        free): the most they may still get, shared with every other labeler. Compare mode passes
        `min_answers=2`: it never hands out an item with a single answer."""
        with self.db.session() as s:
            proj = project_row(s, project)
            mine = exists().where(Assignment.item_id == Item.id, Assignment.labeler_id == labeler_id)
            expired = (
                select(func.count(Assignment.id))
                .where(
                    Assignment.item_id == Item.id,
                    Assignment.released_at.is_(None),
                    Assignment.expires_at < self.db.clock(),
                )
                .scalar_subquery()
            )
            query = (
                select(func.count(Answer.id))
                .join(Item, Answer.item_id == Item.id)
                .where(Item.project_id == proj.id, ~mine, Item.claims - expired < proj.overlap)
            )
            if min_answers > 1:
                enough = select(Answer.item_id).group_by(Answer.item_id).having(func.count(Answer.id) >= min_answers)
                query = query.where(Item.id.in_(enough))
            return s.scalar(query) or 0

    def progress_all(self, project: str, *, actor: int | None = None) -> dict[int, tuple[int, int]]:
        """`progress` of every labeler at once (labeler id -> (done, assigned)), in two grouped queries."""
        self.rights.require_admin(actor, "see everyone's progress")
        with self.db.session() as s:
            proj = project_row(s, project)
            held = (
                select(Assignment.labeler_id, func.count(Answer.id))
                .join(Answer, Answer.item_id == Assignment.item_id)
                .where(Assignment.project_id == proj.id)
                .group_by(Assignment.labeler_id)
            )
            done = dict(s.execute(held.where(done_by(Assignment.labeler_id))).tuples().all())
            assigned = dict(s.execute(held).tuples().all())
            ids = list(s.scalars(select(Labeler.id)))
        return {i: (done.get(i, 0), assigned.get(i, 0)) for i in ids}

    def ratings_frame(
        self, project: str, labeler_id: int | None = None, history: bool = False, *, actor: int | None = None
    ) -> pd.DataFrame:
        """Current ratings of a project, one row each; `labeler_id` limits them to that labeler's own (blind
        rating: `actor` must be that labeler, or an admin); `history` adds superseded ratings (with
        `superseded_at`, `superseded_by_id`)."""
        if actor is None or actor != labeler_id:  # a labeler may read their own rows; anything more is an admin's
            self.rights.require_admin(actor, "see other labelers' ratings")
        with self.db.session() as s:
            proj = project_row(s, project)
            query = (
                select(
                    Rating.id.label("rating_id"),
                    Item.id.label("item_id"),
                    Answer.id.label("answer_id"),
                    Item.prompt.label("prompt"),
                    Answer.text.label("response"),
                    Answer.model.label("model"),
                    Labeler.id.label("labeler_id"),
                    Labeler.name.label("labeler"),
                    Labeler.kind.label("labeler_kind"),
                    Rating.value.label("rating"),
                    Rating.comment.label("comment"),
                    Rating.seconds_spent.label("seconds"),
                    Rating.mode.label("mode"),
                    Rating.comparison_id.label("comparison_id"),
                    Rating.shown_position.label("shown_position"),
                    Rating.created_at.label("created_at"),
                    Rating.superseded_at.label("superseded_at"),
                    Rating.superseded_by_id.label("superseded_by_id"),
                )
                .join(Answer, Rating.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .join(Labeler, Rating.labeler_id == Labeler.id)
                .where(Item.project_id == proj.id)
                .order_by(Rating.id)
            )
            if labeler_id is not None:
                query = query.where(Rating.labeler_id == labeler_id)
            if not history:
                query = query.where(Rating.superseded_at.is_(None))
            result = s.execute(query)
            frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        return frame if history else frame.drop(columns=["superseded_at", "superseded_by_id"])

    def flagged(self, project: str, history: bool = False, *, actor: int | None = None) -> pd.DataFrame:
        """Open flags in a project: which answer, by whom, why, when. `history` lists cleared flags too,
        with who cleared them and when (`cleared_by`, `cleared_at`; empty while open)."""
        self.rights.require_admin(actor, "see the flagged items")
        clearer = aliased(Labeler)
        with self.db.session() as s:
            proj = project_row(s, project)
            query = (
                select(
                    Flag.id.label("flag_id"),
                    Item.id.label("item_id"),
                    Answer.id.label("answer_id"),
                    Item.prompt.label("prompt"),
                    Answer.text.label("response"),
                    Answer.model.label("model"),
                    Labeler.name.label("labeler"),
                    Flag.reason.label("reason"),
                    Flag.created_at.label("created_at"),
                    clearer.name.label("cleared_by"),
                    Flag.cleared_at.label("cleared_at"),
                )
                .join(Answer, Flag.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .join(Labeler, Flag.labeler_id == Labeler.id)
                .outerjoin(clearer, Flag.cleared_by_id == clearer.id)
                .where(Item.project_id == proj.id)
                .order_by(Flag.id)
            )
            if not history:
                query = query.where(Flag.cleared_at.is_(None))
            result = s.execute(query)
            frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        return frame if history else frame.drop(columns=["cleared_by", "cleared_at"])

    def labeler_stats(self, project: str, *, actor: int | None = None) -> pd.DataFrame:
        """Per labeler: done, assigned, time spent, pace, mean rating and bias (mean offset from the other people;
        an LLM judge's lean is its `mean_offset` in `agreement.judges_vs_humans`, and it does not move the people's).

        Columns: labeler_id, labeler, role, kind, done, assigned, ratings, seconds_total,
        seconds_per_rating, ratings_per_hour, mean_rating, bias.
        """
        self.rights.require_admin(actor, "see every labeler's stats")
        from curate.review.agreement import labeler_bias

        progress = self.progress_all(project, actor=actor)
        with self.db.session() as s:
            pid = project_row(s, project).id
            labelers = list(s.scalars(select(Labeler).order_by(Labeler.id)))
            result = s.execute(
                select(
                    Labeler.name.label("labeler"),
                    Labeler.kind,
                    Rating.labeler_id,
                    Rating.answer_id,
                    Rating.value,
                    Rating.seconds_spent,
                )
                .join(Answer, Rating.answer_id == Answer.id)
                .join(Item, Answer.item_id == Item.id)
                .join(Labeler, Rating.labeler_id == Labeler.id)
                .where(Item.project_id == pid, Rating.superseded_at.is_(None))
            )
            columns = ["labeler", "kind", "labeler_id", "answer_id", "rating", "seconds"]
            ratings = pd.DataFrame(result.all(), columns=columns)
        people = ratings[ratings.kind != "judge"]
        bias = labeler_bias(people).set_index("labeler") if len(people) else pd.DataFrame()
        by_labeler = dict(iter(ratings.groupby("labeler_id")))
        rows = []
        for labeler in labelers:
            done, assigned = progress.get(labeler.id, (0, 0))
            own = by_labeler.get(labeler.id, ratings.iloc[:0])
            if not done and own.empty and labeler.role == "admin":
                continue
            seconds = float(own.seconds.sum())
            rows.append(
                {
                    "labeler_id": labeler.id,
                    "labeler": labeler.name,
                    "role": labeler.role,
                    "kind": labeler.kind,
                    "done": done,
                    "assigned": assigned,
                    "ratings": len(own),
                    "seconds_total": seconds,
                    "seconds_per_rating": seconds / len(own) if len(own) else math.nan,
                    "ratings_per_hour": len(own) * 3600 / seconds if seconds else math.nan,
                    "mean_rating": float(own.rating.mean()) if len(own) else math.nan,
                    "bias": float(bias.loc[labeler.name, "bias"]) if labeler.name in bias.index else math.nan,
                }
            )
        columns = [
            "labeler_id",
            "labeler",
            "role",
            "kind",
            "done",
            "assigned",
            "ratings",
            "seconds_total",
            "seconds_per_rating",
            "ratings_per_hour",
            "mean_rating",
            "bias",
        ]
        return pd.DataFrame(rows, columns=columns)

    def rated_rows(self, project: str, *, actor: int | None = None) -> list[dict[str, Any]]:
        """Current ratings as rated records (prompt, response, rating, labeler, labeler_kind?, comment?, flag?) with
        ids; `labeler_kind` is given for an LLM judge's ratings (`judge`), so exports can gate and tag them."""
        self.rights.require_admin(actor, "read everyone's ratings")
        ratings = self.ratings_frame(project, actor=actor)
        flags = (
            self.flagged(project, actor=actor).groupby("answer_id")["reason"].agg(lambda r: "; ".join(dict.fromkeys(r)))
        )
        rows = []
        for r in ratings.itertuples(index=False):
            row: dict[str, Any] = {
                "id": f"rating-{r.rating_id}",
                "prompt": r.prompt,
                "response": r.response,
                "rating": int(r.rating),
                "labeler": r.labeler,
            }
            if r.labeler_kind == "judge":
                row["labeler_kind"] = "judge"
            if isinstance(r.comment, str) and r.comment:
                row["comment"] = r.comment
            if r.answer_id in flags.index:
                row["flag"] = flags[r.answer_id]
            rows.append(row)
        return rows
