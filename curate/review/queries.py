"""Small queries the store's parts share, as plain functions over a `Session`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from curate.errors import CurateError
from curate.review.models import Answer, Flag, Labeler, Project, Rating, Skip


def done_by(labeler_id: Any) -> ColumnElement[bool]:
    """SQL condition: this labeler (an id, or a column to correlate with) rated, skipped or flagged the answer."""
    rated = exists().where(
        Rating.answer_id == Answer.id, Rating.labeler_id == labeler_id, Rating.superseded_at.is_(None)
    )
    skipped = exists().where(Skip.answer_id == Answer.id, Skip.labeler_id == labeler_id)
    flagged = exists().where(Flag.answer_id == Answer.id, Flag.labeler_id == labeler_id)
    return rated | skipped | flagged


def project_row(s: Session, name: str, lock: bool = False) -> Project:
    """The project row; `lock` holds it (FOR UPDATE on PostgreSQL; SQLite's writes already run one at a time)."""
    query = select(Project).where(Project.name == name)
    project = s.scalar(query.with_for_update() if lock else query)
    if project is None:
        raise CurateError(f"no project named {name!r}: create it with `curate review init --project NAME`")
    return project


def active_labeler_row(s: Session, labeler_id: int, lock: bool = False) -> Labeler:
    """The labeler row while the account is active (else CurateError); `lock` serializes one labeler's writes."""
    query = select(Labeler).where(Labeler.id == labeler_id)
    # Locking the labeler row serializes one labeler's own writes (two tabs) on PostgreSQL.
    labeler = s.scalar(query.with_for_update() if lock else query)
    if labeler is None:
        raise CurateError(f"unknown labeler id {labeler_id!r}")
    if not labeler.active:
        raise CurateError(f"labeler {labeler.name!r} is deactivated")
    return labeler
