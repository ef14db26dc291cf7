"""The audit trail: an append-only, hash-chained table, and signed chain heads.

Each record holds time, actor, action, object, purpose and details (canonical
JSON), the previous record's hash and its own SHA-256 over all of those, so
changing, inserting or deleting any record breaks every hash after it.
The database refuses UPDATE and DELETE on the table (triggers, migration
0002); :func:`verify` catches what bypassed them and names the first broken
record. A chain alone cannot show that its *tail* was cut off or rewritten
whole, so :class:`HeadSigner` periodically signs the newest record's hash with
a local Ed25519 key and appends it to a file outside the database; verify
checks the table against every signed head.

Appends are serialised (SQLite's write lock; a PostgreSQL advisory lock), and
happen inside the caller's transaction, so an action and its audit record are
stored together or not at all.

>>> with store.transaction(write=True) as session:  # doctest: +SKIP
...     append(session, at=clock.now(), actor="alice", action="watchlist.create",
...            object="watchlist:7", details={"name": "missing-persons"})
>>> verify(store).ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from safecity.errors import SafecityError
from safecity.governance.clock import SYSTEM_CLOCK, Clock, ManualClock
from safecity.store.db import Store
from safecity.store.schema import AuditPurge, AuditRecordRow

GENESIS = "0" * 64
#: Audit records are kept at least this long (EU AI Act Art. 19(1), 26(6): six months).
MIN_AUDIT_DAYS = 183

#: Where the actions of this process come from, stored (and hashed) with every record.
#: The actor is who says they act; the origin is what the machine knows about it
#: (the command line's login and host; the API's authenticated session and address).
ORIGIN: ContextVar[str] = ContextVar("safecity_audit_origin", default="")
#: The actor named for what safecity does on its own (matches, uses, retention runs).
SYSTEM_ACTOR = "safecity"
_PG_AUDIT_LOCK = 0x5AFEA0D17
MAX_ACTOR = 128


class AuditError(SafecityError):
    """The audit trail cannot be written, or its signing key cannot be used."""


def canonical_json(value: Any) -> str:
    """One fixed text for a JSON value: sorted keys, no spaces, UTF-8 kept.

    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    '{"a":[1.5,"é"],"b":1}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _time_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(
    record_id: int,
    at: datetime,
    actor: str,
    action: str,
    obj: str,
    purpose: str,
    details: str,
    prev_hash: str,
    origin: str = "",
) -> str:
    """SHA-256 (hex) of one record's canonical form; ``details`` is its stored JSON text."""
    body = canonical_json(
        {
            "id": record_id,
            "at": _time_text(at),
            "actor": actor,
            "action": action,
            "object": obj,
            "purpose": purpose,
            "details": details,
            "origin": origin,
            "prev": prev_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    object: str
    purpose: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    origin: str = ""  # where the action came from: "cli root@host-1", "api 10.0.0.5" …

    @classmethod
    def from_row(cls, row: AuditRecordRow) -> AuditRecord:
        try:
            details = json.loads(row.details)
        except ValueError:
            details = {"unreadable": row.details}
        return cls(
            row.id,
            row.at,
            row.actor,
            row.action,
            row.object,
            row.purpose,
            details,
            row.prev_hash,
            row.hash,
            row.origin,
        )

    def describe(self) -> str:
        return f"record {self.id} ({_time_text(self.at)}, {self.actor}, {self.action})"


def _anchor(session: Session) -> tuple[int, str]:
    """(id, hash) the next record chains to: the newest record, or the last purge."""
    last = session.execute(
        select(AuditRecordRow.id, AuditRecordRow.hash).order_by(AuditRecordRow.id.desc()).limit(1)
    ).first()
    if last is not None:
        return int(last[0]), str(last[1])
    purge = session.execute(
        select(AuditPurge.through_id, AuditPurge.through_hash)
        .order_by(AuditPurge.id.desc())
        .limit(1)
    ).first()
    if purge is not None:
        return int(purge[0]), str(purge[1])
    return 0, GENESIS


def check_actor(actor: str) -> str:
    """A user name fit for the audit trail, or :class:`AuditError`."""
    actor = (actor or "").strip()
    if not actor or len(actor) > MAX_ACTOR:
        raise AuditError(f"every audited action needs a user name of 1 to {MAX_ACTOR} characters")
    return actor


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    object: str = "",  # noqa: A002 - the audit field's name
    purpose: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Append one record inside ``session``'s (write) transaction and return it."""
    actor = check_actor(actor)
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    at = at.astimezone(UTC)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))
    last_id, prev = _anchor(session)
    text = canonical_json(dict(details or {}))
    origin = ORIGIN.get()
    record_id = last_id + 1
    digest = record_hash(record_id, at, actor, action, object, purpose, text, prev, origin)
    row = AuditRecordRow(
        id=record_id,
        at=at,
        actor=actor,
        action=action,
        object=object,
        purpose=purpose,
        details=text,
        origin=origin,
        prev_hash=prev,
        hash=digest,
    )
    session.add(row)
    session.flush()
    return AuditRecord(
        record_id, at, actor, action, object, purpose, dict(details or {}), prev, digest, origin
    )


def record(
    store: Store,
    *,
    actor: str,
    action: str,
    object: str = "",  # noqa: A002
    purpose: str = "",
    details: Mapping[str, Any] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AuditRecord:
    """Append one record in a transaction of its own (for actions that store nothing else)."""
    with store.transaction(write=True) as session:
        return append(
            session,
            at=clock.now(),
            actor=actor,
            action=action,
            object=object,
            purpose=purpose,
            details=details,
        )


def list_records(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    purpose: str | None = None,
    limit: int = 100,
    offset: int = 0,
    newest_first: bool = True,
) -> list[AuditRecord]:
    """Records filtered by time, actor, action (``match`` or a prefix like ``review.``)."""
    query = records_query(since=since, until=until, actor=actor, action=action, purpose=purpose)
    order = AuditRecordRow.id.desc() if newest_first else AuditRecordRow.id
    query = query.order_by(order).limit(max(1, min(limit, 10_000))).offset(max(0, offset))
    with store.transaction() as session:
        return [AuditRecord.from_row(r) for r in session.scalars(query)]


def records_query(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    purpose: str | None = None,
) -> Select[tuple[AuditRecordRow]]:
    """The filters of :func:`list_records`, for callers reading inside their own session."""
    query = select(AuditRecordRow)
    if since is not None:
        query = query.where(AuditRecordRow.at >= since)
    if until is not None:
        query = query.where(AuditRecordRow.at < until)
    if actor is not None:
        query = query.where(AuditRecordRow.actor == actor)
    if purpose is not None:
        query = query.where(AuditRecordRow.purpose == purpose)
    if action is not None:
        if action.endswith("."):
            query = query.where(AuditRecordRow.action.startswith(action, autoescape=True))
        else:
            query = query.where(AuditRecordRow.action == action)
    return query


# -- verification -------------------------------------------------------------------
@dataclass
class VerifyReport:
    ok: bool
    records: int
    first_id: int | None
    last_id: int | None
    heads_checked: int = 0
    broken_id: int | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        span = f"records {self.first_id}–{self.last_id}" if self.records else "no records"
        if self.ok:
            lines = [
                f"audit trail intact: {self.records} records ({span}), "
                f"{self.heads_checked} signed head(s) match"
            ]
        else:
            lines = [f"AUDIT TRAIL BROKEN: {self.problem}"]
        return "\n".join(lines + self.notes)


def verify(
    store: Store,
    heads_path: Path | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> VerifyReport:
    """Check the whole chain, then every signed head in ``heads_path``.

    The first problem found is reported with the id of the record it concerns:
    a record whose hash does not match its contents (edited), a record whose
    ``prev_hash`` is not its predecessor's hash or a gap in the ids (deleted or
    inserted), a signed head beyond the last record (truncated) or whose hash
    differs from the record's (rewritten).
    """
    with store.transaction() as session:
        purges = [
            (int(i), str(h))
            for i, h in session.execute(
                select(AuditPurge.through_id, AuditPurge.through_hash).order_by(AuditPurge.id)
            )
        ]
        purge = purges[-1] if purges else None
        expected_id, prev = (int(purge[0]) + 1, str(purge[1])) if purge else (1, GENESIS)
        report = VerifyReport(ok=True, records=0, first_id=None, last_id=None)
        if purge:
            report.notes.append(f"records up to {purge[0]} were purged by audit retention")
        hashes: dict[int, str] = {}
        rows = session.execute(select(AuditRecordRow).order_by(AuditRecordRow.id)).scalars()
        for row in rows:
            report.records += 1
            report.first_id = report.first_id if report.first_id is not None else row.id
            report.last_id = row.id
            described = AuditRecord.from_row(row).describe()
            if row.id != expected_id:
                return _broken(
                    report,
                    expected_id,
                    f"record {expected_id} is missing (the next record is {row.id}): "
                    "records were deleted or the ids rewritten",
                )
            if row.prev_hash != prev:
                return _broken(
                    report,
                    row.id,
                    f"{described} does not follow the record before it "
                    "(a record before it was changed, inserted or deleted)",
                )
            recomputed = record_hash(
                row.id,
                row.at,
                row.actor,
                row.action,
                row.object,
                row.purpose,
                row.details,
                prev,
                row.origin,
            )
            if recomputed != row.hash:
                return _broken(
                    report, row.id, f"{described} was altered: its contents do not match its hash"
                )
            hashes[row.id] = row.hash
            prev = row.hash
            expected_id += 1
    if heads_path is not None:
        return _check_heads(report, hashes, heads_path, public_key, purges)
    return report


def _parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)  # unreadable: never old enough


def _broken(report: VerifyReport, record_id: int | None, problem: str) -> VerifyReport:
    report.ok = False
    report.broken_id = record_id
    report.problem = problem
    return report


def _check_heads(
    report: VerifyReport,
    hashes: dict[int, str],
    heads_path: Path,
    public_key: Ed25519PublicKey | None,
    purges: list[tuple[int, str]],
) -> VerifyReport:
    heads = read_heads(heads_path)
    # A purge counts only where a signed purge entry vouches for its boundary, and
    # only for records at least MIN_AUDIT_DAYS old when it was signed.
    vouched = {
        (h.id, h.hash)
        for h in heads
        if h.kind == "purge"
        and (public_key is None or h.signed_by(public_key))
        and _parse_time(h.cutoff) <= _parse_time(h.at) - timedelta(days=MIN_AUDIT_DAYS)
    }
    for through_id, through_hash in purges:
        if (through_id, through_hash) not in vouched:
            return _broken(
                report,
                through_id,
                f"records up to {through_id} are gone, but no signed purge vouches for it: "
                "they were deleted outside audit retention",
            )
    heads = [h for h in heads if h.kind == "head"]
    if not heads:
        report.notes.append(f"no signed heads in {heads_path}: truncation cannot be ruled out")
        return report
    first = report.first_id or 1
    last = report.last_id or 0
    for head in heads:
        if public_key is not None and not head.signed_by(public_key):
            return _broken(
                report,
                head.id,
                f"the head signed at {head.at} (record {head.id}) does not carry a valid "
                "signature of this installation's key",
            )
        report.heads_checked += 1
        if head.id < first and head.id not in hashes:
            continue  # purged by retention, before the remaining records
        if head.id > last:
            return _broken(
                report,
                head.id,
                f"the log was truncated: a head signed at {head.at} covers record {head.id}, "
                f"but the log ends at record {last}",
            )
        if hashes.get(head.id) != head.hash:
            return _broken(
                report,
                head.id,
                f"record {head.id} differs from the head signed at {head.at}: "
                "the log was rewritten from there on",
            )
    return report


# -- signed heads ---------------------------------------------------------------------
@dataclass(frozen=True)
class SignedHead:
    """A signed chain head, or (``kind="purge"``) the signed boundary of an audit purge."""

    id: int
    hash: str
    at: str
    public_key: str  # base64 raw Ed25519 key
    signature: str  # base64
    kind: str = "head"
    cutoff: str = ""  # purges: records older than this went

    def payload(self) -> bytes:
        body: dict[str, Any] = {"id": self.id, "hash": self.hash, "at": self.at}
        if self.kind != "head":
            body.update(kind=self.kind, cutoff=self.cutoff)
        return canonical_json(body).encode()

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.signature), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> str:
        return canonical_json(self.__dict__)


def read_heads(path: Path) -> list[SignedHead]:
    """Every signed head in the file, oldest first ([] if the file is absent)."""
    if not path.exists():
        return []
    heads = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            heads.append(SignedHead(**json.loads(line)))
        except (ValueError, TypeError):
            raise AuditError(f"line {number} of {path} is not a signed head") from None
    return heads


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class HeadSigner:
    """Signs the chain head with a local Ed25519 key and appends it to a file.

    The key is created on first use (mode 0600). Keep a copy of the public key
    (:meth:`public_key_pem`) away from this machine: someone who controls the
    machine, the database *and* this key can still forge everything.
    """

    def __init__(self, key_path: Path, heads_path: Path) -> None:
        self.key_path = Path(key_path)
        self.heads_path = Path(heads_path)

    def private_key(self) -> Ed25519PrivateKey:
        try:
            if self.key_path.exists():
                key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
                if not isinstance(key, Ed25519PrivateKey):
                    raise AuditError(f"{self.key_path} is not an Ed25519 private key")
                return key
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.key_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            return key
        except ValueError:
            raise AuditError(f"{self.key_path} is not a readable PEM private key") from None
        except OSError as error:
            raise AuditError(
                f"cannot use the audit signing key {self.key_path}: {error.strerror}"
            ) from None

    def public_key(self) -> Ed25519PublicKey:
        return self.private_key().public_key()

    def public_key_pem(self) -> str:
        return (
            self.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, store: Store, clock: Clock = SYSTEM_CLOCK) -> SignedHead | None:
        """Sign the newest record now (None with an empty log; no new line if unchanged)."""
        with store.transaction() as session:
            last = session.execute(
                select(AuditRecordRow.id, AuditRecordRow.hash)
                .order_by(AuditRecordRow.id.desc())
                .limit(1)
            ).first()
        if last is None:
            return None
        heads = read_heads(self.heads_path)
        if heads and heads[-1].id == last[0] and heads[-1].hash == last[1]:
            return heads[-1]
        return self.sign_record(int(last[0]), str(last[1]), clock)

    def sign_record(
        self,
        record_id: int,
        digest: str,
        clock: Clock = SYSTEM_CLOCK,
        *,
        purge_cutoff: datetime | None = None,
    ) -> SignedHead:
        """Sign one record's hash (or, with ``purge_cutoff``, a purge boundary) into the file."""
        key = self.private_key()
        kind, cutoff = ("purge", _time_text(purge_cutoff)) if purge_cutoff else ("head", "")
        unsigned = SignedHead(record_id, digest, _time_text(clock.now()), "", "", kind, cutoff)
        head = SignedHead(
            unsigned.id,
            unsigned.hash,
            unsigned.at,
            public_key_text(key.public_key()),
            base64.b64encode(key.sign(unsigned.payload())).decode(),
            kind,
            cutoff,
        )
        try:
            self.heads_path.parent.mkdir(parents=True, exist_ok=True)
            with self.heads_path.open("a") as handle:
                handle.write(head.to_json() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise AuditError(f"cannot write {self.heads_path}: {error.strerror}") from None
        return head

    def verify(self, store: Store) -> VerifyReport:
        """:func:`verify` against this signer's heads and public key."""
        if not self.key_path.exists():
            report = verify(store, self.heads_path, None)
            if read_heads(self.heads_path):
                return _broken(
                    report,
                    None,
                    f"signed heads exist but the signing key {self.key_path} is gone",
                )
            return report
        return verify(store, self.heads_path, self.public_key())


def purge_before(
    session: Session,
    cutoff: datetime,
    *,
    actor: str,
    at: datetime,
    signer: HeadSigner | None,
) -> int:
    """Audit retention: delete the records older than ``cutoff`` (never the newest).

    The last record to go is signed first (``signer``): :func:`verify` accepts
    a purge only where a signed head vouches for its boundary, so a purge row
    inserted by hand, without the key, shows as deleted records. Then a purge
    row (the triggers allow deleting only what it covers, and verification
    resumes from its hash); the purge is itself audited. Returns how many
    records were deleted.
    """
    newest = session.scalar(select(func.max(AuditRecordRow.id)))
    if newest is None:
        return 0
    through = session.execute(
        select(AuditRecordRow.id, AuditRecordRow.hash)
        .where(AuditRecordRow.at < cutoff, AuditRecordRow.id < newest)
        .order_by(AuditRecordRow.id.desc())
        .limit(1)
    ).first()
    if through is None:
        return 0
    through_id, through_hash = int(through[0]), str(through[1])
    if signer is not None:
        signer.sign_record(through_id, through_hash, ManualClock(at), purge_cutoff=cutoff)
    rows = (
        session.scalar(select(func.count(AuditRecordRow.id)).where(AuditRecordRow.id <= through_id))
        or 0
    )
    session.add(
        AuditPurge(
            through_id=through_id, through_hash=through_hash, rows=rows, actor=actor, purged_at=at
        )
    )
    session.flush()
    session.execute(delete(AuditRecordRow).where(AuditRecordRow.id <= through_id))
    append(
        session,
        at=at,
        actor=actor,
        action="audit.purge",
        object=f"audit:..{through_id}",
        details={"records": rows, "through_id": through_id, "older_than": _time_text(cutoff)},
    )
    return int(rows)
