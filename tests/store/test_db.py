"""open_store: migrations on both backends, schema = models, one-sentence failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import LargeBinary, exc, inspect, select, text

from safecity.store import Store, StoreError, open_store
from safecity.store.schema import Base, Camera, binary_columns

TABLES = {
    "alembic_version",
    "cameras",
    "authorisations",
    "authorisation_cameras",
    "watchlists",
    "persons",
    "templates",
    "events",
    "reviews",
    "legal_holds",
    "identification_uses",
    "audit_log",
    "audit_purges",
    "users",
    "user_cameras",
    "login_sessions",
    "api_tokens",
    "login_failures",
    "camera_status",
    "account_sponsors",
    "cluster_status",
    "alert_cursors",
    "listed_plates",
}


def test_migrations_create_the_schema_on_an_empty_database(store: Store) -> None:
    inspector = inspect(store.engine)
    assert set(inspector.get_table_names()) == TABLES
    event_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("events")}
    assert {("camera", "started_at"), ("label",), ("started_at",)} <= event_indexes
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "0010"
        )


def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_reopening_a_migrated_database_keeps_its_rows(backend_url: str, tmp_path: Path) -> None:
    first = open_store(backend_url, tmp_path / "media")
    with first.transaction() as session:
        session.add(Camera(name="gate-1", url="rtsp://cam/1", location="north gate"))
    first.close()
    again = open_store(backend_url, tmp_path / "media")
    with again.transaction() as session:
        assert [c.name for c in session.scalars(select(Camera))] == ["gate-1"]
    again.close()


def test_times_are_timezone_aware_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    with store.transaction() as session:
        session.add(Camera(name="c", created_at=datetime(2024, 5, 1, 14, 0, tzinfo=paris)))
    with store.transaction() as session:
        created = session.scalars(select(Camera.created_at)).one()
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert created == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(exc.StatementError, match="naive datetime"), store.transaction() as session:
        session.add(Camera(name="c", created_at=datetime(2024, 5, 1, 12, 0)))
        session.flush()


def test_only_templates_hold_bytes(store: Store) -> None:
    assert binary_columns() == [("templates", "vector")]
    inspector = inspect(store.engine)
    live = [
        (table, column["name"])
        for table in inspector.get_table_names()
        for column in inspector.get_columns(table)
        if isinstance(column["type"], LargeBinary)
    ]
    assert live == [("templates", "vector")]


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "media")
    with pytest.raises(StoreError, match="FOREIGN KEY"), store.transaction() as session:
        session.execute(
            text("INSERT INTO persons (name, watchlist_id, created_at) VALUES ('x', 99, '2024')")
        )
    store.close()


def _one_sentence(error: StoreError) -> str:
    message = str(error)
    assert "\n" not in message and "Traceback" not in message and len(message) < 300
    return message


def test_unreachable_postgres_is_one_sentence(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        open_store(url, tmp_path / "media")
    assert _one_sentence(caught.value).startswith("cannot reach the database at postgresql")


def test_password_is_not_shown(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        open_store(url, tmp_path / "media")
    assert "hunter2" not in str(caught.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{bogus}", tmp_path / "media")
    assert "not a database" in _one_sentence(caught.value)


def test_a_database_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{tmp_path / 'file' / 'safecity.db'}", tmp_path / "media")
    _one_sentence(caught.value)


def test_not_a_url(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("safecity.db", tmp_path / "media")


def test_a_database_from_a_newer_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    open_store(url, tmp_path / "media").close()
    store = open_store(url, tmp_path / "media", migrate=False)
    with store.transaction() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(StoreError, match="newer safecity"):
        open_store(url, tmp_path / "media")


def test_a_database_that_went_away(tmp_path: Path) -> None:
    """Dropping a table under a running store gives a StoreError, not a traceback."""
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "media")
    with store.transaction() as session:
        session.execute(text("DROP TABLE cameras"))
    with pytest.raises(StoreError) as caught, store.transaction() as session:
        session.scalars(select(Camera)).all()
    assert "no such table" in _one_sentence(caught.value)
    store.close()


def test_upgrading_a_0001_store_keeps_rows_and_asks_for_approval(
    backend_url: str, tmp_path: Path
) -> None:
    """Authorisations from before two-user approval arrive as proposals (nothing matches
    until someone approves them); stored matches become candidates for review; camera
    scopes survive the upgrade."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from safecity.store.db import MIGRATIONS_DIR

    (tmp_path / "db").mkdir(exist_ok=True)
    engine = create_engine(backend_url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        t = "2026-01-01 00:00:00"
        for statement in (
            "INSERT INTO authorisations (id, legal_basis, authority, reference, purpose, "
            f"valid_from, valid_until, all_cameras, created_at) VALUES (1, 'a', 'b', 'c', 'd', "
            f"'{t}', '2099-01-01 00:00:00', false, '{t}')",
            "INSERT INTO authorisation_cameras (authorisation_id, camera) VALUES (1, 'gate-1')",
            "INSERT INTO watchlists (id, name, authorisation_id, created_at) "
            f"VALUES (1, 'w', 1, '{t}')",
            f"INSERT INTO persons (id, name, watchlist_id, created_at) VALUES (1, 'p', 1, '{t}')",
            "INSERT INTO events (uuid, camera, track_id, label, started_at, ended_at, best_score, "
            "frames, match_person_id, match_watchlist_id, match_score, created_at) VALUES "
            f"('u1', 'gate-1', 1, 'person', '{t}', '{t}', 0.9, 5, 1, 1, 0.95, '{t}')",
        ):
            connection.execute(text(statement))
    engine.dispose()

    store = open_store(backend_url, tmp_path / "media")
    with store.transaction() as session:
        status, scope = session.execute(
            text(
                "SELECT a.status, c.camera FROM authorisations a "
                "JOIN authorisation_cameras c ON c.authorisation_id = a.id"
            )
        ).one()
        match_status = session.execute(text("SELECT match_status FROM events")).scalar_one()
    assert (status, scope, match_status) == ("proposed", "gate-1", "candidate")
    store.close()


def test_a_value_the_database_refuses_is_a_value_error_not_an_outage(store: Store) -> None:
    from safecity.store.db import StoreValueError
    from safecity.store.schema import LoginFailure

    too_long = "x" * 200  # the column holds 128 (PostgreSQL checks; SQLite keeps it)
    for name in ("nul\x00byte", too_long):
        try:
            with store.transaction(write=True) as session:
                session.add(LoginFailure(username=name, ip="1.2.3.4", at=datetime.now(UTC)))
        except StoreValueError as error:
            assert store.engine.dialect.name == "postgresql"
            assert str(error).startswith("the database refused a value")
            assert "127.0.0.1" not in str(error)
        else:
            assert store.engine.dialect.name == "sqlite"
