"""LLM judges as raters (labelers.kind, judge_failures) and reward-model scores of answers (model_scores).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000

"""

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Every labeler so far is a person; the constant default fills existing rows.
    with op.batch_alter_table("labelers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="human", nullable=False))
        batch_op.create_check_constraint(batch_op.f("ck_labelers_kind_known"), "kind IN ('human', 'judge')")

    op.create_table(
        "judge_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("labeler_id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_judge_failures_answer_id_answers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["labeler_id"], ["labelers.id"], name=op.f("fk_judge_failures_labeler_id_labelers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_failures")),
    )
    op.create_index(op.f("ix_judge_failures_answer_id"), "judge_failures", ["answer_id"], unique=False)

    op.create_table(
        "model_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_model_scores_answer_id_answers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_scores")),
        sa.UniqueConstraint("answer_id", "source", name="uq_model_scores_answer_source"),
    )
    op.create_index(op.f("ix_model_scores_answer_id"), "model_scores", ["answer_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_model_scores_answer_id"), table_name="model_scores")
    op.drop_table("model_scores")
    op.drop_index(op.f("ix_judge_failures_answer_id"), table_name="judge_failures")
    op.drop_table("judge_failures")
    with op.batch_alter_table("labelers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_labelers_kind_known"), type_="check")
        batch_op.drop_column("kind")
