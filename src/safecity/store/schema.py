"""The database schema: SQLAlchemy 2 declarative tables.

The same models serve SQLite (default) and PostgreSQL. Every timestamp is a
timezone-aware UTC ``datetime`` in Python, whatever the backend stores.

Privacy (DESIGN.md invariant 2): the only column that holds a face vector is
``templates.vector``, and a template exists only for a person enrolled on a
watchlist. Events carry the *identity* of a match (ids, score), never a vector.
:func:`binary_columns` lists every column that can hold raw bytes, so a privacy
check can scan exactly those.

The migrations in ``safecity/store/migrations`` create this schema; a test keeps
the two identical.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so later migrations (and SQLite batch mode) can
# refer to them by name on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is
    stored as naive UTC and made aware again on the way out. Naive datetimes are
    refused: their meaning depends on the machine's clock settings.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Camera(Base):
    """A camera known to the store (kept in step with the config's cameras)."""

    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    url: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Authorisation(Base):
    """The legal basis that allows one watchlist to be matched (invariant 1).

    Camera scope: ``all_cameras`` true means every camera; otherwise exactly the
    cameras listed in ``authorisation_cameras`` (by name, so a camera removed from
    the config keeps its history). Approval (four-eyes) and the audit chain are
    added by a later migration.
    """

    __tablename__ = "authorisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    legal_basis: Mapped[str] = mapped_column(Text)
    authority: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    all_cameras: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    cameras: Mapped[list[AuthorisationCamera]] = relationship(
        back_populates="authorisation", cascade="all, delete-orphan"
    )


class AuthorisationCamera(Base):
    """One camera in an authorisation's scope."""

    __tablename__ = "authorisation_cameras"

    authorisation_id: Mapped[int] = mapped_column(
        ForeignKey("authorisations.id", ondelete="CASCADE"), primary_key=True
    )
    camera: Mapped[str] = mapped_column(String(128), primary_key=True)

    authorisation: Mapped[Authorisation] = relationship(back_populates="cameras")


class Watchlist(Base):
    __tablename__ = "watchlists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    authorisation_id: Mapped[int] = mapped_column(ForeignKey("authorisations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    authorisation: Mapped[Authorisation] = relationship()
    persons: Mapped[list[Person]] = relationship(
        back_populates="watchlist", cascade="all, delete-orphan"
    )


class Person(Base):
    """Someone enrolled on a watchlist (a name is unique within its watchlist)."""

    __tablename__ = "persons"
    __table_args__ = (UniqueConstraint("watchlist_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    watchlist_id: Mapped[int] = mapped_column(
        ForeignKey("watchlists.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    watchlist: Mapped[Watchlist] = relationship(back_populates="persons")
    templates: Mapped[list[Template]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )


class Template(Base):
    """One face vector of an ENROLLED person (the only vectors ever stored).

    ``vector`` is ``dim`` little-endian float32 values (a unit vector);
    ``source_sha256`` identifies the enrolment photo without keeping it.
    """

    __tablename__ = "templates"
    __table_args__ = (Index(None, "person_id", "embedder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    embedder: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    source_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    person: Mapped[Person] = relationship(back_populates="templates")


class EventRecord(Base):
    """One stored :class:`safecity.events.Event`.

    ``camera`` is the camera's name (not a key into ``cameras``) so events keep
    their history when a camera leaves the config. Snapshot paths are relative to
    the media directory. The match columns hold who matched, never a vector.
    """

    __tablename__ = "events"
    __table_args__ = (Index(None, "camera", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(32), unique=True)
    camera: Mapped[str] = mapped_column(String(128))  # indexed with started_at
    track_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    best_score: Mapped[float] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer)
    snapshot_path: Mapped[str | None] = mapped_column(Text)
    match_snapshot_path: Mapped[str | None] = mapped_column(Text)
    match_person_id: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL"), index=True
    )
    match_watchlist_id: Mapped[int | None] = mapped_column(
        ForeignKey("watchlists.id", ondelete="SET NULL"), index=True
    )
    match_score: Mapped[float | None] = mapped_column(Float)
    match_margin: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    match_person: Mapped[Person | None] = relationship()
    match_watchlist: Mapped[Watchlist | None] = relationship()


def binary_columns() -> list[tuple[str, str]]:
    """Every ``(table, column)`` of the schema whose type can hold raw bytes.

    >>> binary_columns()
    [('templates', 'vector')]
    """
    return [
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    ]
