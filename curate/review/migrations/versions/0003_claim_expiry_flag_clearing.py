"""Claim expiry (projects.claim_hours, assignments.expires_at/released_at), clearable flags, shown position of ratings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:42:13.718394

"""

from collections.abc import Sequence
from datetime import timedelta
from typing import Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

DEFAULT_CLAIM_HOURS = 24


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_assignments_project_expires", ["project_id", "expires_at"], unique=False)

    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cleared_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_flags_cleared_by_id_labelers"), "labelers", ["cleared_by_id"], ["id"], ondelete="SET NULL"
        )

    # A constant default (not an expression) lets SQLite add the column in place instead of rebuilding the table.
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claim_hours", sa.Float(), server_default=str(DEFAULT_CLAIM_HOURS), nullable=False)
        )

    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shown_position", sa.Integer(), nullable=True))

    # Claims made before this revision expire a day after they were made, like new ones; the store
    # marks the finished ones as kept (expires_at NULL) the first time it looks at them.
    assignments = sa.table(
        "assignments",
        sa.column("id", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(assignments.c.id, assignments.c.created_at)).all()
    if rows:
        conn.execute(
            assignments.update().where(assignments.c.id == sa.bindparam("aid")).values(expires_at=sa.bindparam("due")),
            [{"aid": aid, "due": created + timedelta(hours=DEFAULT_CLAIM_HOURS)} for aid, created in rows],
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_column("shown_position")

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("claim_hours")

    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_flags_cleared_by_id_labelers"), type_="foreignkey")
        batch_op.drop_column("cleared_by_id")
        batch_op.drop_column("cleared_at")

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_project_expires")
        batch_op.drop_column("released_at")
        batch_op.drop_column("expires_at")
