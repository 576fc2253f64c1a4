"""Settings (which app wrote this database, the login throttle's secret); the throttle keys names with an HMAC.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:12:03.114201

"""

import secrets
from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Frozen here as this revision wrote them (the code reads them from curate/review/database.py).
APP_MARKER = "curatrain-review"


def upgrade() -> None:
    """Upgrade schema."""
    settings = op.create_table(
        "settings",
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.bulk_insert(
        settings, [{"key": "app", "value": APP_MARKER}, {"key": "login_key", "value": secrets.token_hex(32)}]
    )
    # The rows of 0002 are keyed with a plain SHA-256 of the typed name, which a dictionary reverses. They are
    # short-lived counters: dropping them only forgets failures of the last few minutes.
    op.execute(sa.text("DELETE FROM login_throttle"))


def downgrade() -> None:
    """Downgrade schema."""
    op.execute(sa.text("DELETE FROM login_throttle"))
    op.drop_table("settings")
