"""Storage: SQL rows (SQLite by default, PostgreSQL at scale) and redacted media files.

Entry point: :func:`open_store` (migrates on open). Writing events:
:class:`safecity.store.sink.StoreSink`; reading them:
:func:`safecity.store.queries.list_events`.
"""

from safecity.store.db import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
