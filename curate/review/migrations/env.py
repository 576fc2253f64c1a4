"""Alembic environment of the review store. `ReviewStore` runs it on open (upgrade to head).

After changing curate/review/models.py, generate the next revision (then read and tidy it):
  python -c "from alembic import command; from alembic.config import Config; c = Config();
  c.set_main_option('script_location', 'curate:migrations'); c.set_main_option('sqlalchemy.url', 'sqlite:///x.db');
  command.upgrade(c, 'head'); command.revision(c, 'what changed', autogenerate=True, rev_id='0002')"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from curate.review.models import Base

config = context.config
target_metadata = Base.metadata


def run(connection: Connection) -> None:
    """Migrate over a connection; batch mode lets SQLite ALTER tables by copying them."""
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url") or "").begin() as conn:
        run(conn)
