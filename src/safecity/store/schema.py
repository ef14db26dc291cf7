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
from sqlalchemy.sql.expression import false
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
    the config keeps its history).

    ``status`` (see :mod:`safecity.governance.authorisations`): ``proposed`` until a
    second user approves it (``active``) or refuses it (``refused``); ``emergency``
    for use started before approval, whose request must be filed by
    ``emergency_deadline_at``; ``revoked`` when stopped early. The legal fields
    of an emergency use are empty until its request is filed. ``evidence_days``
    is how long confirmed-match evidence may be kept; ``renews_id`` points at the
    authorisation this one extends.
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
    status: Mapped[str] = mapped_column(String(16), default="proposed", index=True)
    proposed_by: Mapped[str] = mapped_column(String(128), default="")
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # kept if revoked later
    decision_note: Mapped[str] = mapped_column(Text, default="")
    evidence_days: Mapped[int] = mapped_column(Integer, default=90)
    # No foreign key: SQLite could add one only by rebuilding this table, which
    # would cascade-delete camera scopes; the governance module keeps it valid.
    renews_id: Mapped[int | None] = mapped_column(Integer)
    emergency_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    request_filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    filed_by: Mapped[str | None] = mapped_column(String(128))
    templates_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    results_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

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
    # What it lists: "face" (persons with face templates) or "plate" (vehicles by
    # licence plate, as persons named by the listing's description).
    kind: Mapped[str] = mapped_column(String(8), default="face", server_default="face")

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
    enrolled_by: Mapped[str] = mapped_column(String(128), default="")  # may not review its matches
    # Removed from the watchlist while match evidence still refers to them: the
    # templates are gone (no more matching), the name stays for that evidence.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Erasure requested (its reference) but evidence under a legal hold was kept:
    # retention finishes the erasure once the hold is released.
    erasure_ref: Mapped[str | None] = mapped_column(String(128))

    watchlist: Mapped[Watchlist] = relationship(back_populates="persons")
    templates: Mapped[list[Template]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )
    plates: Mapped[list[ListedPlate]] = relationship(
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
    enrolled_by: Mapped[str] = mapped_column(String(128), default="")  # may not review matches
    # The enrolled face (a JPEG crop under the media folder) shown to reviewers beside
    # the probe; it goes with the template (retention sweeps it as an orphan after).
    photo_path: Mapped[str | None] = mapped_column(Text)

    person: Mapped[Person] = relationship(back_populates="templates")


class ListedPlate(Base):
    """A licence plate listed on a plate watchlist: the vehicle's "template".

    ``plate`` is normalised (:func:`safecity.events.plate_key`); the person row
    says what and why (e.g. "stolen silver Skoda, case 4411") and who listed it.
    Retention deletes it with the templates when its authorisation ends.
    """

    __tablename__ = "listed_plates"
    __table_args__ = (UniqueConstraint("person_id", "plate"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    plate: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enrolled_by: Mapped[str] = mapped_column(String(128), default="")  # may not review matches

    person: Mapped[Person] = relationship(back_populates="plates")


class EventRecord(Base):
    """One stored :class:`safecity.events.Event`.

    ``camera`` is the camera's name (not a key into ``cameras``) so events keep
    their history when a camera leaves the config. Snapshot paths are relative to
    the media directory. The match columns hold who matched, never a vector.
    """

    __tablename__ = "events"
    # camera+label+time: the console's most common filter, paged newest first.
    __table_args__ = (
        Index(None, "camera", "started_at"),
        Index(None, "camera", "label", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(32), unique=True)
    camera: Mapped[str] = mapped_column(String(128))  # indexed with started_at
    track_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    best_score: Mapped[float] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer)
    # A person seen only by the face (the object detector missed the body): the
    # snapshot is a head-and-shoulders crop around the face.
    face_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A vehicle's licence plate as read (normalised: upper case letters and digits), its
    # confidence and the plate's crop (relative to the media directory). Personal data:
    # searching by it is audited, and retention clears it (plates.retention_days).
    plate_text: Mapped[str | None] = mapped_column(String(16), index=True)
    plate_confidence: Mapped[float | None] = mapped_column(Float)
    plate_crop_path: Mapped[str | None] = mapped_column(Text)
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
    # Four-eyes review: candidate → confirmed | rejected; annulled (no lawful basis) or
    # erased (subject request) remove the match itself. None: no match.
    match_status: Mapped[str | None] = mapped_column(String(16), index=True)
    match_authorisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("authorisations.id", ondelete="SET NULL"), index=True
    )
    match_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    match_person: Mapped[Person | None] = relationship()
    match_watchlist: Mapped[Watchlist | None] = relationship()


class Review(Base):
    """One reviewer's decision on a candidate match (one per reviewer and event)."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("event_id", "reviewer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))  # confirm | reject
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LegalHold(Base):
    """Keeps a confirmed match's evidence past retention, for a case (until released)."""

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    case_ref: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(128))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdentificationUse(Base):
    """One watchlist searched on one camera, from ``started_at`` (frame time).

    ``ended_at`` is set when the use stops (authorisation ended, camera stopped);
    ``last_seen_at`` advances while it runs, so a crashed process still leaves
    a lower bound of its duration.
    """

    __tablename__ = "identification_uses"
    __table_args__ = (Index(None, "camera", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera: Mapped[str] = mapped_column(String(128))
    watchlist_id: Mapped[int | None] = mapped_column(
        ForeignKey("watchlists.id", ondelete="SET NULL")
    )
    watchlist_name: Mapped[str] = mapped_column(String(128))
    authorisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("authorisations.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditRecordRow(Base):
    """One link of the audit chain (append-only: the database refuses UPDATE/DELETE).

    ``hash`` is the SHA-256 of this record's canonical form, which includes
    ``prev_hash``; see :mod:`safecity.governance.audit`. ``id`` is assigned by
    the writer (previous id + 1) under a lock, never by the database.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object: Mapped[str] = mapped_column(Text, default="")
    purpose: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")
    origin: Mapped[str] = mapped_column(Text, default="")  # e.g. "cli root@host-1"
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPurge(Base):
    """Retention of the audit trail: records up to ``through_id`` were deleted.

    The only way the database lets audit rows go: a purge row must exist first
    (triggers check it), and verification resumes from ``through_hash``.
    """

    __tablename__ = "audit_purges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    through_id: Mapped[int] = mapped_column(Integer)
    through_hash: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    """Someone who signs in to the console or API (see :mod:`safecity.access`).

    ``password_hash`` is an argon2id hash. ``all_cameras`` or the rows of
    ``user_cameras`` say which cameras the user may see; an admin sees all.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    all_cameras: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who set the current password: the owner, or (provisional) an admin who created
    # or reset it. Only an owner-set password may take decisions (access.duties).
    password_set_by: Mapped[str] = mapped_column(String(128), default="")

    cameras: Mapped[list[UserCamera]] = relationship(cascade="all, delete-orphan")


class AccountSponsor(Base):
    """Who set up an account: its creator and everyone else who ever set its password.

    Append-only; ``reason`` is ``created``, ``bootstrap`` (the first admin, made on
    the command line when no admin existed; ``sponsor`` is then the OS login) or
    ``password``. The separation-of-duties rules (access.duties) read it.
    """

    __tablename__ = "account_sponsors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sponsor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserCamera(Base):
    """One camera granted to a user (by name, like events)."""

    __tablename__ = "user_cameras"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    camera: Mapped[str] = mapped_column(String(128), primary_key=True)


class LoginSession(Base):
    """A console session: the cookie holds a random token, the table its SHA-256.

    ``csrf_token`` must come back in the ``X-CSRF-Token`` header of every
    state-changing request made with the cookie.
    """

    __tablename__ = "login_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")


class ApiToken(Base):
    """A machine's API token: ``sc_<id>_<secret>``; only the secret's SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """A failed sign-in, kept for rate limiting (each is also in the audit trail)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "username", "at"), Index(None, "ip", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class CameraStatus(Base):
    """The last health figures a running pipeline reported for one camera."""

    __tablename__ = "camera_status"

    camera: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    frames_in: Mapped[int] = mapped_column(Integer, default=0)
    frames_analysed: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    detector_ms: Mapped[float] = mapped_column(Float, default=0.0)
    lag_s: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str] = mapped_column(String(256), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClusterStatus(Base):
    """What a cluster coordinator last reported: nodes, workers, cameras (one JSON document)."""

    __tablename__ = "cluster_status"

    coordinator: Mapped[str] = mapped_column(String(256), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(256), default="")
    document: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertCursor(Base):
    """How far one alert sink has been told about one stream (see :mod:`safecity.alerts`).

    ``stream`` is ``events`` (``last_id``: an ``events.id``) or ``matches`` (an
    ``audit_log.id`` of a confirmation). ``last_id`` moves only after the sink
    acknowledged; ``failed`` counts failed delivery attempts. The lease
    (``lease_owner`` until ``lease_until``) lets one dispatcher at a time send.
    """

    __tablename__ = "alert_cursors"

    sink: Mapped[str] = mapped_column(String(128), primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
