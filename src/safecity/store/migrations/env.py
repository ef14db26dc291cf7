"""Alembic environment for safecity's store.

safecity runs it programmatically (:func:`safecity.store.db.open_store` passes an
open connection in ``config.attributes["connection"]``). Developers can also run
the ``alembic`` command with the ``alembic.ini`` beside this file, e.g.::

    alembic -c src/safecity/store/migrations/alembic.ini -x url=sqlite:///dev.db \
        revision --autogenerate -m "what changed"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from safecity.store.schema import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database with: alembic -x url=sqlite:///path.db ...")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


# Alembic's context exists only while Alembic runs this file; importing it
# elsewhere (doctest collection, linters) must do nothing.
if getattr(context, "config", None) is not None:
    _main()
