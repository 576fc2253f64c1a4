"""The review store's tables (SQLAlchemy 2 ORM). Schema changes go through Alembic (curate/review/migrations).

A rating row is never updated in place except to mark it superseded: an edit inserts a
new row and points the old one at it, so the full history of every judgement stays.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can alter them on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timestamps are stored in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Project(Base):
    """A set of items to rate; each item goes to `overlap` labelers."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("mode IN ('rate', 'compare')", name="mode_known"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    overlap: Mapped[int] = mapped_column(Integer, default=2)
    mode: Mapped[str] = mapped_column(String(16), default="rate")
    # Hours an unfinished claim holds one of the `overlap` slots before another labeler may take it.
    claim_hours: Mapped[float] = mapped_column(Float, default=24.0, server_default="24")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Item(Base):
    """One prompt to be judged, with its candidate answers; `claims` counts its assignments still holding a slot."""

    __tablename__ = "items"
    __table_args__ = (Index("ix_items_project_claims", "project_id", "claims", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    prompt: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(500))
    claims: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Answer(Base):
    """A candidate answer to an item's prompt, and which model (or person) wrote it."""

    __tablename__ = "answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))


class Labeler(Base):
    """A person who rates (`labeler`) or also sees everyone's work (`admin`); password stored as bcrypt.

    `kind` `judge` (revision 0005): an LLM judge (`curate review judge`, named after its model) whose ratings
    are one more rater's; it never logs in (its password is a random hash nobody is shown) nor claims items.
    """

    __tablename__ = "labelers"
    __table_args__ = (
        CheckConstraint("role IN ('labeler', 'admin')", name="role_known"),
        CheckConstraint("kind IN ('human', 'judge')", name="kind_known"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="labeler")
    kind: Mapped[str] = mapped_column(String(16), default="human", server_default="human")
    password_hash: Mapped[str] = mapped_column(String(100))
    password_temporary: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Assignment(Base):
    """An item handed to a labeler; (item, labeler) is unique so nobody gets an item twice.

    `expires_at`: when an unfinished claim stops holding its slot (NULL once the labeler has done every
    answer); `released_at`: when an expired claim gave its slot back. The row itself stays, so the
    labeler can still finish the item and their ratings are kept.
    """

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "labeler_id", name="uq_assignments_item_labeler"),
        Index("ix_assignments_labeler_project", "labeler_id", "project_id"),
        Index("ix_assignments_project_expires", "project_id", "expires_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    labeler_id: Mapped[int] = mapped_column(ForeignKey("labelers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Comparison(Base):
    """Two answers shown side by side; `swapped` records that the left one comes later in the item."""

    __tablename__ = "comparisons"
    __table_args__ = (CheckConstraint("preferred IN ('left', 'right', 'tie')", name="preferred_known"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("labelers.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    left_answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"))
    right_answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"))
    swapped: Mapped[bool] = mapped_column(Boolean)
    preferred: Mapped[str] = mapped_column(String(8))
    seconds_spent: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rating(Base):
    """A labeler's 1-10 rating of an answer. Only rows with `superseded_at` NULL are current."""

    __tablename__ = "ratings"
    __table_args__ = (
        CheckConstraint("value >= 1 AND value <= 10", name="value_1_to_10"),
        CheckConstraint("seconds_spent >= 0", name="seconds_non_negative"),
        # At most one current rating per labeler and answer: a concurrent double submit cannot duplicate.
        Index(
            "uq_ratings_current",
            "labeler_id",
            "answer_id",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("labelers.id", ondelete="CASCADE"))
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)
    value: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    seconds_spent: Mapped[float] = mapped_column(Float, default=0.0)
    mode: Mapped[str] = mapped_column(String(16), default="rate")
    comparison_id: Mapped[int | None] = mapped_column(ForeignKey("comparisons.id", ondelete="SET NULL"))
    # Where the answer was on screen: rate mode, 1-based place in this labeler's order of the item's
    # answers; compare mode, 1 = A (left), 2 = B (right). NULL for ratings stored before it was recorded.
    shown_position: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id", ondelete="SET NULL"))


class Skip(Base):
    """A labeler passed on an answer; it leaves their queue."""

    __tablename__ = "skips"
    id: Mapped[int] = mapped_column(primary_key=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("labelers.id", ondelete="CASCADE"), index=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Flag(Base):
    """A labeler marked an answer for an admin to look at (with a reason); flagged answers stay out of exports.

    An admin clears a flag by setting `cleared_at` / `cleared_by_id` (the row stays as history); a cleared
    flag no longer keeps the answer out.
    """

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("labelers.id", ondelete="CASCADE"), index=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_by_id: Mapped[int | None] = mapped_column(ForeignKey("labelers.id", ondelete="SET NULL"))


class JudgeFailure(Base):
    """A judge's reply that never parsed as a score (after its retries), kept as it was: that answer has no
    rating from this judge, and `curate review judge` does not ask again unless told to (--retry-failed)."""

    __tablename__ = "judge_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("labelers.id", ondelete="CASCADE"))
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    reply: Mapped[str] = mapped_column(Text)
    tries: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelScore(Base):
    """A reward model's score of an answer (`train score RUN --project P`), which admins see beside the answer;
    `source` names the run. Scoring again with the same run replaces its scores."""

    __tablename__ = "model_scores"
    __table_args__ = (UniqueConstraint("answer_id", "source", name="uq_model_scores_answer_source"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginThrottle(Base):
    """Login attempts per typed name, shared by every server process; a name that fails too often is locked a while.

    The key is an HMAC-SHA256 of the name as typed, keyed with this database's `login_key` setting, so
    unknown names count (and lock) exactly like real ones, and a password typed into the name field can
    not be recovered from the table by hashing guesses (not without the database's secret as well).
    """

    __tablename__ = "login_throttle"
    name_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Setting(Base):
    """Facts about this database (revision 0004): `app` says it is a curatrain review database, `login_key` is
    the secret the login throttle keys typed names with (random per database, made by the migration)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
