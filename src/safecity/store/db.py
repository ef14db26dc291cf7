"""Opening the store: engine, sessions, and migration to the current schema.

>>> store = open_store("sqlite:////tmp/safecity.db", Path("/tmp/media"))  # doctest: +SKIP
>>> with store.transaction() as session:  # doctest: +SKIP
...     session.scalars(select(EventRecord)).all()

:func:`open_store` upgrades the database to the newest Alembic revision on every
open (an empty SQLite file or an empty PostgreSQL schema becomes a full store).
Any failure to reach or use the database becomes :class:`StoreError`, one sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from safecity.errors import SafecityError
from safecity.store.media import MediaStore

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same in every safecity process.
_PG_MIGRATION_LOCK = 0x5AFEC17


class StoreError(SafecityError):
    """The database or the media directory cannot be reached, opened or written."""


class StoreValueError(StoreError):
    """The database is fine but refused a value (too long, a NUL character …)."""


def _reason(error: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's SQL dump and links."""
    inner = getattr(error, "orig", None) or error
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


@dataclass
class Store:
    """An open store: the database engine and the media directory."""

    url: str  # with any password hidden, for messages
    engine: Engine
    media: MediaStore
    _sessions: sessionmaker[Session] = field(repr=False)
    _write_sessions: sessionmaker[Session] = field(repr=False)

    @property
    def media_dir(self) -> Path:
        return self.media.root

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error.

        ``write=True`` takes SQLite's write lock up front (BEGIN IMMEDIATE), so a
        read-then-write transaction waits for other writers instead of failing.
        Database failures become :class:`StoreError`.
        """
        session = (self._write_sessions if write else self._sessions)()
        try:
            with session.begin():
                yield session
        except exc.DataError as error:
            raise StoreValueError(f"the database refused a value: {_reason(error)}") from error
        except exc.DBAPIError as error:
            raise StoreError(f"the database at {self.url} failed: {_reason(error)}") from error
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, open SQLite transactions.

    Python's sqlite3 does not open a transaction before DDL, so a migration that
    fails half-way would leave half a schema; emitting BEGIN ourselves makes DDL
    transactional too (SQLAlchemy's documented recipe).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        # Deleted rows (a removed person's templates) are overwritten, not left
        # readable in the file's free pages.
        cursor.execute("PRAGMA secure_delete = ON")
        # Readers (audit verify, reports, the console) do not block the sink's
        # writes, nor the other way round.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "BEGIN")
        connection.exec_driver_sql(mode)


def _upgrade(connection: Connection) -> None:
    """Run every pending migration on ``connection`` (inside its transaction)."""
    if connection.dialect.name == "postgresql":
        # Several workers may open a fresh store at once; one migrates, the others wait.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def open_store(url: str, media_dir: Path, *, migrate: bool = True) -> Store:
    """Open (and by default migrate to the newest schema) the store at ``url``.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/to/safecity.db`` (the folder is
    created) or ``postgresql+psycopg://user@host/db``. Raises :class:`StoreError`
    with one sentence when the database cannot be reached, opened or migrated.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise StoreError(f"{url!r} is not a database URL (e.g. sqlite:///safecity.db)") from None
    shown = parsed.render_as_string(hide_password=True)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"cannot create the folder {folder} for {shown}: a file is in the way"
            ) from None
        except OSError as error:
            raise StoreError(
                f"cannot create the folder {folder} for {shown}: {error.strerror}"
            ) from None
    try:
        engine = create_engine(parsed, pool_pre_ping=not is_sqlite)
    except (exc.NoSuchModuleError, ImportError) as error:
        raise StoreError(
            f"no database driver for {shown} ({_reason(error)}); "
            "for PostgreSQL install safecity[postgres]"
        ) from None
    except exc.ArgumentError as error:
        raise StoreError(f"cannot use the database URL {shown}: {_reason(error)}") from None
    if is_sqlite:
        _sqlite_transactions(engine)
    try:
        if migrate:
            with engine.connect() as connection:
                immediate = connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                with immediate.begin():
                    _upgrade(immediate)
        else:
            with engine.connect():
                pass
    except exc.DBAPIError as error:
        engine.dispose()
        verb = "open" if is_sqlite else "reach"
        raise StoreError(f"cannot {verb} the database at {shown}: {_reason(error)}") from None
    except CommandError as error:
        engine.dispose()
        raise StoreError(
            f"cannot migrate the database at {shown} ({_reason(error)}); "
            "was it written by a newer safecity?"
        ) from None
    try:
        media = MediaStore(media_dir)
    except OSError as error:
        engine.dispose()
        raise StoreError(f"cannot use the media folder {media_dir}: {error.strerror}") from None
    write_engine = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
    return Store(
        url=shown,
        engine=engine,
        media=media,
        _sessions=sessionmaker(engine, expire_on_commit=False),
        _write_sessions=sessionmaker(write_engine, expire_on_commit=False),
    )
