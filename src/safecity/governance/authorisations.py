"""Authorisations: the legal basis of every identification, approved by two users.

Life of an authorisation (``status``):

- ``proposed`` by one user with every legal field (basis, issuing authority,
  reference, purpose, validity window, camera scope, evidence retention);
  nothing matches against its watchlists yet.
- ``active`` once a *different* user approves it; matching is allowed on the
  cameras in scope while ``valid_from <= frame time < valid_until``, and stops
  by itself at the end (:func:`allows_matching` is the single rule).
- ``refused`` by a reviewer of the request; nothing ever matched.
- ``emergency``: use started by one user before approval. Matching is allowed
  at once, but only until ``emergency_deadline_at`` (24 h by default); the
  request must be filed by then (:func:`file_request`), and after it only an
  approval (``active``) lets matching go on. The approver must be neither the
  user who started the use nor the one who filed the request. Refusal deletes
  the use's results (:func:`refuse`); a request not filed by the deadline
  makes retention delete them.
- ``revoked``: stopped early by any user.

A renewal is a new proposal with ``renews``; when approved, the watchlists of
the old authorisation move to it, so their templates are not deleted at the
old one's end (retention deletes templates a grace period after the end of
the authorisation they belong to).

Every step is appended to the audit trail in the same transaction.

>>> auth = propose(store, by="alice", legal_basis="Police Act s.12",  # doctest: +SKIP
...     authority="District Court", reference="2026/117", purpose="find missing persons",
...     valid_from=start, valid_until=end, cameras=["gate-1"], evidence_days=90)
>>> approve(store, auth.id, by="bob").status  # doctest: +SKIP
'active'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from safecity.errors import AuthorisationError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.governance.evidence import annul_results
from safecity.store.db import Store
from safecity.store.schema import Authorisation, AuthorisationCamera, Watchlist

CameraScope = Sequence[str] | Literal["all"] | None
STATUSES = ("proposed", "active", "refused", "emergency", "revoked")
_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # as CameraConfig.name


@dataclass(frozen=True)
class AuthorisationInfo:
    """An authorisation as a plain value (JSON-ready with ``dataclasses.asdict``)."""

    id: int
    status: str
    legal_basis: str
    authority: str
    reference: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    cameras: list[str] | None  # None: every camera
    evidence_days: int
    proposed_by: str
    decided_by: str | None
    decided_at: datetime | None
    approved_at: datetime | None
    decision_note: str
    renews_id: int | None
    emergency_deadline_at: datetime | None
    request_filed_at: datetime | None
    filed_by: str | None
    templates_deleted_at: datetime | None
    results_deleted_at: datetime | None
    created_at: datetime
    watchlists: list[str]

    def allows(self, camera: str, at: datetime) -> bool:
        """Whether watchlists under this authorisation may be matched on ``camera`` at ``at``."""
        return allows_matching(self, self.cameras, camera, at)

    def ended_at(self) -> datetime | None:
        """When matching under it ended for good (None while it may still match).

        ``proposed`` authorisations have not started; they end at ``valid_until``
        if nobody approves them by then.
        """
        if self.status in ("refused", "revoked"):
            return self.decided_at or self.created_at
        if self.status == "emergency":
            assert self.emergency_deadline_at is not None
            return min(self.emergency_deadline_at, self.valid_until)
        return self.valid_until


class Window(Protocol):
    """What decides matching: an authorisation row or value has these attributes."""

    status: str
    valid_from: datetime
    valid_until: datetime
    emergency_deadline_at: datetime | None
    request_filed_at: datetime | None


def allows_matching(
    auth: Window, cameras: Sequence[str] | None, camera: str | None, at: datetime
) -> bool:
    """The one rule deciding whether a watchlist may be searched (DESIGN.md invariant 1).

    ``cameras`` is the scope (None: every camera); ``camera=None`` asks about
    any camera in scope.
    """
    if not auth.valid_from <= at < auth.valid_until:
        return False
    if camera is not None and cameras is not None and camera not in cameras:
        return False
    if auth.status == "active":
        return True
    if auth.status == "emergency" and auth.emergency_deadline_at is not None:
        # Without approval, never past the deadline, filed or not.
        return at < auth.emergency_deadline_at
    return False


def camera_scopes(
    session: Session, authorisation_ids: Sequence[int] | None = None
) -> dict[int, list[str]]:
    """Camera names in scope per authorisation id (absent: none listed, i.e. all_cameras)."""
    query = select(AuthorisationCamera.authorisation_id, AuthorisationCamera.camera).order_by(
        AuthorisationCamera.camera
    )
    if authorisation_ids is not None:
        query = query.where(AuthorisationCamera.authorisation_id.in_(list(authorisation_ids)))
    scopes: dict[int, list[str]] = {}
    for auth_id, camera in session.execute(query):
        scopes.setdefault(auth_id, []).append(camera)
    return scopes


# -- validation -----------------------------------------------------------------------
def aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise AuthorisationError(
            f"{name} must be a date and time with a time zone, e.g. 2024-05-01T00:00:00+00:00"
        )
    return value.astimezone(UTC)


def camera_scope(cameras: CameraScope) -> list[str] | None:
    """Validated camera names, or None for every camera ('all' or None)."""
    if cameras is None or cameras == "all":
        return None
    if isinstance(cameras, str):
        raise AuthorisationError(
            f"camera scope {cameras!r} must be a list of camera names or 'all'"
        )
    names = sorted({c.strip() for c in cameras if c.strip()})
    if not names:
        raise AuthorisationError(
            "the camera scope is empty; list the cameras it covers, or give none for all cameras"
        )
    bad = [n for n in names if not _CAMERA_NAME.match(n)]
    if bad:
        raise AuthorisationError(f"invalid camera name(s) in the scope: {', '.join(bad)}")
    return names


def _required(fields: dict[str, str | None], what: str) -> dict[str, str]:
    missing = [label for label, value in fields.items() if not (value or "").strip()]
    if missing:
        raise AuthorisationError(f"{what} needs: {', '.join(missing)}")
    return {label: (value or "").strip() for label, value in fields.items()}


def _window(valid_from: datetime, valid_until: datetime) -> tuple[datetime, datetime]:
    start = aware("valid_from", valid_from)
    end = aware("valid_until", valid_until)
    if end <= start:
        raise AuthorisationError(
            f"an authorisation must end after it starts "
            f"(valid until {end.isoformat()} is not after {start.isoformat()})"
        )
    return start, end


def _evidence_days(days: int) -> int:
    if not isinstance(days, int) or days < 1:
        raise AuthorisationError("evidence retention must be a whole number of days, at least 1")
    return days


# -- reading --------------------------------------------------------------------------
def _infos(session: Session, where: object | None = None) -> list[AuthorisationInfo]:
    query = select(Authorisation).order_by(Authorisation.id)
    if where is not None:
        query = query.where(where)  # type: ignore[arg-type]
    rows = session.scalars(query).all()
    scopes = camera_scopes(session)
    names: dict[int, list[str]] = {}
    for auth_id, name in session.execute(
        select(Watchlist.authorisation_id, Watchlist.name).order_by(Watchlist.name)
    ):
        names.setdefault(auth_id, []).append(name)
    return [
        AuthorisationInfo(
            id=a.id,
            status=a.status,
            legal_basis=a.legal_basis,
            authority=a.authority,
            reference=a.reference,
            purpose=a.purpose,
            valid_from=a.valid_from,
            valid_until=a.valid_until,
            cameras=None if a.all_cameras else scopes.get(a.id, []),
            evidence_days=a.evidence_days,
            proposed_by=a.proposed_by,
            decided_by=a.decided_by,
            decided_at=a.decided_at,
            approved_at=a.approved_at,
            decision_note=a.decision_note,
            renews_id=a.renews_id,
            emergency_deadline_at=a.emergency_deadline_at,
            request_filed_at=a.request_filed_at,
            filed_by=a.filed_by,
            templates_deleted_at=a.templates_deleted_at,
            results_deleted_at=a.results_deleted_at,
            created_at=a.created_at,
            watchlists=names.get(a.id, []),
        )
        for a in rows
    ]


def list_authorisations(store: Store, status: str | None = None) -> list[AuthorisationInfo]:
    """Every authorisation (optionally of one status), oldest first."""
    where = Authorisation.status == status if status else None
    with store.transaction() as session:
        return _infos(session, where)


def get_authorisation(store: Store, authorisation_id: int) -> AuthorisationInfo:
    with store.transaction() as session:
        return _get(session, authorisation_id)


def _get(session: Session, authorisation_id: int) -> AuthorisationInfo:
    found = _infos(session, Authorisation.id == authorisation_id)
    if not found:
        raise AuthorisationError(f"there is no authorisation {authorisation_id}")
    return found[0]


def _row(session: Session, authorisation_id: int) -> Authorisation:
    row = session.get(Authorisation, authorisation_id, with_for_update=True)
    if row is None:
        raise AuthorisationError(f"there is no authorisation {authorisation_id}")
    return row


def _audit(
    session: Session, clock: Clock, by: str, action: str, row: Authorisation, **details: object
) -> None:
    audit.append(
        session,
        at=clock.now(),
        actor=by,
        action=f"authorisation.{action}",
        object=f"authorisation:{row.id}",
        details={"status": row.status, "reference": row.reference, **details},
    )


# -- the life cycle -------------------------------------------------------------------
def propose(
    store: Store,
    *,
    by: str,
    legal_basis: str,
    authority: str,
    reference: str,
    purpose: str,
    valid_from: datetime,
    valid_until: datetime,
    cameras: CameraScope,
    evidence_days: int = 90,
    renews: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AuthorisationInfo:
    """Record a proposed authorisation; a second user must approve it before any matching."""
    with store.transaction(write=True) as session:
        row = propose_in(
            session,
            by=by,
            legal_basis=legal_basis,
            authority=authority,
            reference=reference,
            purpose=purpose,
            valid_from=valid_from,
            valid_until=valid_until,
            cameras=cameras,
            evidence_days=evidence_days,
            renews=renews,
            clock=clock,
        )
        return _get(session, row.id)


def propose_in(
    session: Session,
    *,
    by: str,
    legal_basis: str,
    authority: str,
    reference: str,
    purpose: str,
    valid_from: datetime,
    valid_until: datetime,
    cameras: CameraScope,
    evidence_days: int = 90,
    renews: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Authorisation:
    """:func:`propose` inside the caller's write transaction (returns the new row)."""
    by = audit.check_actor(by)
    fields = _required(
        {
            "legal basis": legal_basis,
            "issuing authority": authority,
            "reference": reference,
            "purpose": purpose,
        },
        "an authorisation",
    )
    start, end = _window(valid_from, valid_until)
    scope = camera_scope(cameras)
    days = _evidence_days(evidence_days)
    if renews is not None:
        renewed = _row(session, renews)
        if renewed.status not in ("active", "emergency"):
            raise AuthorisationError(
                f"authorisation {renews} is {renewed.status}; only an active or emergency "
                "authorisation can be renewed"
            )
    row = Authorisation(
        legal_basis=fields["legal basis"],
        authority=fields["issuing authority"],
        reference=fields["reference"],
        purpose=fields["purpose"],
        valid_from=start,
        valid_until=end,
        all_cameras=scope is None,
        cameras=[AuthorisationCamera(camera=c) for c in scope or []],
        status="proposed",
        proposed_by=by,
        evidence_days=days,
        renews_id=renews,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    _audit(
        session,
        clock,
        by,
        "propose",
        row,
        legal_basis=row.legal_basis,
        authority=row.authority,
        purpose=row.purpose,
        valid_from=start.isoformat(),
        valid_until=end.isoformat(),
        cameras=scope or "all",
        evidence_days=days,
        renews=renews,
    )
    return row


def start_emergency(
    store: Store,
    *,
    by: str,
    purpose: str,
    reason: str,
    valid_until: datetime,
    cameras: CameraScope,
    deadline_h: float = 24.0,
    evidence_days: int = 90,
    clock: Clock = SYSTEM_CLOCK,
) -> AuthorisationInfo:
    """Start an emergency use now, before approval; its request must follow by the deadline."""
    by = audit.check_actor(by)
    fields = _required({"purpose": purpose, "reason for urgency": reason}, "an emergency use")
    now = clock.now()
    start, end = _window(now, valid_until)
    scope = camera_scope(cameras)
    days = _evidence_days(evidence_days)
    with store.transaction(write=True) as session:
        row = Authorisation(
            legal_basis="",
            authority="",
            reference="",
            purpose=fields["purpose"],
            valid_from=start,
            valid_until=end,
            all_cameras=scope is None,
            cameras=[AuthorisationCamera(camera=c) for c in scope or []],
            status="emergency",
            proposed_by=by,
            decision_note=fields["reason for urgency"],
            evidence_days=days,
            emergency_deadline_at=now + timedelta(hours=deadline_h),
            created_at=now,
        )
        session.add(row)
        session.flush()
        _audit(
            session,
            clock,
            by,
            "emergency",
            row,
            purpose=row.purpose,
            reason=row.decision_note,
            valid_until=end.isoformat(),
            cameras=scope or "all",
            request_deadline=row.emergency_deadline_at.isoformat(),
        )
        return _get(session, row.id)


def file_request(
    store: Store,
    authorisation_id: int,
    *,
    by: str,
    legal_basis: str,
    authority: str,
    reference: str,
    clock: Clock = SYSTEM_CLOCK,
) -> AuthorisationInfo:
    """File the authorisation request of an emergency use (before its deadline)."""
    by = audit.check_actor(by)
    fields = _required(
        {"legal basis": legal_basis, "issuing authority": authority, "reference": reference},
        "the authorisation request",
    )
    now = clock.now()
    with store.transaction(write=True) as session:
        row = _row(session, authorisation_id)
        if row.status != "emergency":
            raise AuthorisationError(
                f"authorisation {authorisation_id} is {row.status}, not an emergency use"
            )
        if row.request_filed_at is not None:
            raise AuthorisationError(
                f"the request of authorisation {authorisation_id} was already filed "
                f"on {row.request_filed_at.isoformat()}"
            )
        assert row.emergency_deadline_at is not None
        if now >= row.emergency_deadline_at:
            raise AuthorisationError(
                f"the deadline to file the request of emergency use {authorisation_id} passed "
                f"on {row.emergency_deadline_at.isoformat()}; the use has stopped and its "
                "results are deleted"
            )
        row.legal_basis = fields["legal basis"]
        row.authority = fields["issuing authority"]
        row.reference = fields["reference"]
        row.request_filed_at = now
        row.filed_by = by
        session.flush()
        _audit(
            session,
            clock,
            by,
            "file",
            row,
            legal_basis=row.legal_basis,
            authority=row.authority,
        )
        return _get(session, row.id)


def approve(
    store: Store,
    authorisation_id: int,
    *,
    by: str,
    note: str = "",
    clock: Clock = SYSTEM_CLOCK,
    vet: Callable[[Session, Authorisation], None] | None = None,
) -> AuthorisationInfo:
    """Approve a proposal (or a filed emergency request); the approver must be another user.

    ``vet(session, row)`` runs inside the transaction, with the row locked, before
    anything changes: the command line passes the separation-of-duties rules
    (:func:`safecity.access.duties.approve`) here.
    """
    by = audit.check_actor(by)
    now = clock.now()
    with store.transaction(write=True) as session:
        row = _row(session, authorisation_id)
        if row.status == "emergency":
            if row.request_filed_at is None:
                raise AuthorisationError(
                    f"emergency use {authorisation_id} has no filed request to approve; "
                    "file it first (safecity authorisation file)"
                )
        elif row.status != "proposed":
            raise AuthorisationError(
                f"authorisation {authorisation_id} is {row.status}; only a proposal can be approved"
            )
        if by == row.proposed_by:
            raise AuthorisationError(
                f"{by} proposed authorisation {authorisation_id}; a different user must approve it"
            )
        if by == row.filed_by:
            raise AuthorisationError(
                f"{by} filed the request of authorisation {authorisation_id}; "
                "a different user must approve it"
            )
        if vet is not None:
            vet(session, row)
        if row.renews_id is not None and now < row.valid_from:
            raise AuthorisationError(
                f"renewal {authorisation_id} starts on {row.valid_from.isoformat()}; approving "
                "it now would stop matching until then, so approve it once it has started"
            )
        if now >= row.valid_until:
            raise AuthorisationError(
                f"authorisation {authorisation_id} ended on {row.valid_until.isoformat()}; "
                "propose a new one"
            )
        row.status = "active"
        row.decided_by = by
        row.decided_at = now
        row.approved_at = now
        if note.strip():
            row.decision_note = (row.decision_note + "\n" + note.strip()).strip()
        moved: list[str] = []
        if row.renews_id is not None:
            moved = list(
                session.scalars(
                    select(Watchlist.name).where(Watchlist.authorisation_id == row.renews_id)
                )
            )
            session.execute(
                update(Watchlist)
                .where(Watchlist.authorisation_id == row.renews_id)
                .values(authorisation_id=row.id)
            )
        session.flush()
        _audit(session, clock, by, "approve", row, note=note.strip(), renewed_watchlists=moved)
        return _get(session, row.id)


def refuse(
    store: Store,
    authorisation_id: int,
    *,
    by: str,
    reason: str,
    clock: Clock = SYSTEM_CLOCK,
    vet: Callable[[Session, Authorisation], None] | None = None,
) -> AuthorisationInfo:
    """Refuse a proposal or an emergency request: the use stops and its results are deleted.

    ``vet(session, row)``: as for :func:`approve`.
    """
    by = audit.check_actor(by)
    reason = _required({"reason": reason}, "a refusal")["reason"]
    now = clock.now()
    with store.transaction(write=True) as session:
        row = _row(session, authorisation_id)
        if row.status not in ("proposed", "emergency"):
            raise AuthorisationError(
                f"authorisation {authorisation_id} is {row.status}; only a proposal or an "
                "emergency use can be refused"
            )
        if vet is not None:
            vet(session, row)
        was = row.status
        row.status = "refused"
        row.decided_by = by
        row.decided_at = now
        row.decision_note = (row.decision_note + "\n" + reason).strip()
        session.flush()
        files: list[str] = []
        annulled = 0
        if was == "emergency":
            annulled, files = annul_results(session, row.id, at=now, actor=by)
            row.results_deleted_at = now
        _audit(session, clock, by, "refuse", row, reason=reason, was=was, results_deleted=annulled)
        info = _get(session, row.id)
    for relative in files:  # after the commit: rows never point at missing files
        store.media.remove(relative)
    return info


def revoke(
    store: Store,
    authorisation_id: int,
    *,
    by: str,
    reason: str,
    clock: Clock = SYSTEM_CLOCK,
) -> AuthorisationInfo:
    """Stop an authorisation early (any user may); matching stops at once."""
    by = audit.check_actor(by)
    reason = _required({"reason": reason}, "a revocation")["reason"]
    with store.transaction(write=True) as session:
        row = _row(session, authorisation_id)
        if row.status not in ("proposed", "active", "emergency"):
            raise AuthorisationError(f"authorisation {authorisation_id} is already {row.status}")
        row.status = "revoked"
        row.decided_by = by
        row.decided_at = clock.now()
        row.decision_note = (row.decision_note + "\n" + reason).strip()
        session.flush()
        _audit(session, clock, by, "revoke", row, reason=reason)
        return _get(session, row.id)
