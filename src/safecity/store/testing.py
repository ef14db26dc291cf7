"""Throwaway PostgreSQL schemas for tests (the store's own and other modules').

>>> with scratch_postgres_schema() as url:  # doctest: +SKIP
...     store = open_store(url, tmp_path / "media")

The server comes from ``SAFECITY_TEST_POSTGRES`` (default: trust auth on
127.0.0.1:5432, user ``postgres``, database ``test``). Each call creates its own
schema ``safecity_test_<random>`` and points the yielded URL's ``search_path``
at it, so runs in parallel never see each other; the schema is dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from safecity.store.db import StoreError

DEFAULT_TEST_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_test_url() -> str:
    return os.environ.get("SAFECITY_TEST_POSTGRES", DEFAULT_TEST_POSTGRES)


@contextmanager
def scratch_postgres_schema(base_url: str | None = None) -> Iterator[str]:
    """Yield a URL whose default schema is a fresh, empty one; drop it afterwards.

    Raises :class:`StoreError` when the server cannot be reached (callers skip).
    """
    url = make_url(base_url or postgres_test_url())
    engine = create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    schema = f"safecity_test_{uuid.uuid4().hex[:12]}"
    shown = url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except (exc.DBAPIError, ImportError) as error:
        engine.dispose()
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise StoreError(f"cannot reach PostgreSQL at {shown}: {reason}") from None
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()
