"""Alembic environment: the URL comes from the caller (``service.db.upgrade``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from streetwatch.service.db import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None, "service.db.upgrade sets sqlalchemy.url"
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=True)  # SQLite alters tables by copying them
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
