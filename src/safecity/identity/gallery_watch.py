"""Hearing, within a second, that what a camera may match has changed.

A revoked authorisation or a new watchlist must reach every analysing process
at once, not at its next poll. :class:`GalleryWatch` is a daemon thread that
calls ``on_change`` whenever the gallery may have changed:

- PostgreSQL: its own connection does ``LISTEN safecity_gallery``; the triggers
  of migration 0005 notify that channel, and PostgreSQL delivers a notice only
  when its transaction commits, so a process that re-reads on hearing it sees
  the change. Notices from other schemas of the same database are ignored.
- SQLite (one machine only): its own connection reads ``PRAGMA data_version``
  every ``poll_s`` seconds; the number changes whenever another connection
  commits (any table, so this may call more often than needed, never less).

When the database goes away the thread logs it once and reconnects with
backoff; after every (re)connection it calls ``on_change`` once, since notices
sent while nobody listened are lost. It never raises: errors of ``on_change``
are logged too.

>>> watch = watch_gallery(store, cache.mark_changed)  # doctest: +SKIP
>>> watch.close()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine

log = logging.getLogger(__name__)

CHANNEL = "safecity_gallery"  # as migration 0005's triggers


class _Source(Protocol):
    """One connection that tells whether the gallery tables changed."""

    def open(self) -> None: ...

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait up to ``timeout`` seconds; True when something changed."""
        ...

    def close(self) -> None: ...


class GalleryWatch:
    """A daemon thread calling ``on_change`` when the gallery may have changed."""

    def __init__(
        self,
        source: _Source,
        on_change: Callable[[], None],
        *,
        what: str,
        poll_s: float = 0.5,
        first_retry_s: float = 0.2,
        max_retry_s: float = 5.0,
    ) -> None:
        self.what = what  # for log lines: "PostgreSQL at …"
        self.poll_s = poll_s
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        # Set while changes are heard and all before was handed to on_change.
        self.listening = threading.Event()
        self._source = source
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gallery-watch", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening and close the connection (waits up to ``timeout`` seconds)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        retry_s = self.first_retry_s
        out = False  # an outage was logged and has not ended yet
        while not self._stop.is_set():
            try:
                self._source.open()
            except Exception as exc:  # the driver's errors, OSError …: all mean "not now"
                out = self._outage(out, exc)
                self._stop.wait(retry_s)
                retry_s = min(2 * retry_s, self.max_retry_s)
                continue
            if out:
                log.warning("watchlist changes are heard again from %s", self.what)
                out = False
            retry_s = self.first_retry_s
            try:
                self._call()  # whatever happened while nobody listened
                self.listening.set()
                while not self._stop.is_set():
                    if self._source.wait(self.poll_s, self._stop):
                        self._call()
            except Exception as exc:
                out = self._outage(out, exc)
            finally:
                self.listening.clear()
                self._close_source()

    def _outage(self, already_logged: bool, exc: Exception) -> bool:
        if not already_logged:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning(
                "watchlist changes are not heard from %s (reconnecting): %s",
                self.what,
                reason,
            )
        return True

    def _call(self) -> None:
        try:
            self._on_change()
        except Exception as exc:
            log.error("a watchlist change was heard but not applied: %s", exc)

    def _close_source(self) -> None:
        with contextlib.suppress(Exception):  # already broken: nothing left to release
            self._source.close()


class _PostgresNotices:
    """``LISTEN safecity_gallery`` on a dedicated autocommit psycopg connection."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection = None
        self._schema = ""

    def open(self) -> None:
        import psycopg

        # The same host, database, user and search_path as the store's engine.
        args, params = self._engine.dialect.create_connect_args(self._engine.url)
        params = {"connect_timeout": 3, **params, "autocommit": True}
        connection = psycopg.connect(*args, **params)
        try:
            row = connection.execute("SELECT current_schema()").fetchone()
            self._schema = row[0] if row and row[0] else "public"
            connection.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        assert self._connection is not None
        changed = False
        # The first notice ends the wait; any sent with it come along.
        for notice in self._connection.notifies(timeout=timeout, stop_after=1):
            changed |= self._ours(notice.payload)
        for notice in self._connection.notifies(timeout=0.01):
            changed |= self._ours(notice.payload)
        return changed

    def _ours(self, payload: str) -> bool:
        schema, _, _table = payload.rpartition(".")
        return not schema or schema == self._schema

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _SqliteDataVersion:
    """``PRAGMA data_version`` on a connection of its own (changes on others' commits)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._version = 0

    def open(self) -> None:
        # mode=rw: a database file that went away is an outage, not a new empty file.
        uri = f"{Path(self._path).absolute().as_uri()}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=1.0)
        try:
            self._version = self._read(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    @staticmethod
    def _read(connection: sqlite3.Connection) -> int:
        return int(connection.execute("PRAGMA data_version").fetchone()[0])

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        assert self._connection is not None
        if stop.wait(timeout):
            return False
        version = self._read(self._connection)
        changed, self._version = version != self._version, version
        return changed

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def watch_gallery(store, on_change: Callable[[], None], **options) -> GalleryWatch | None:
    """Start watching ``store`` for gallery changes; None when it cannot be watched.

    An in-memory SQLite database (tests) lives in one connection of one process:
    nobody else can change it, so there is nothing to watch.
    """
    engine: Engine = store.engine
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        return GalleryWatch(_PostgresNotices(engine), on_change, what=store.url, **options)
    database = engine.url.database
    if backend == "sqlite" and database and database != ":memory:":
        return GalleryWatch(_SqliteDataVersion(database), on_change, what=store.url, **options)
    return None
