"""Legal holds: keeping a confirmed match's evidence past retention, for a named case.

DESIGN.md invariant 5: only a confirmed match under a case can be kept longer
than retention allows, and the hold is itself audited. So:

- Only a *confirmed* match can be held (a candidate has not been checked by
  four eyes; a rejected or annulled one has no evidence left). A match made
  under an emergency use whose request is not filed yet cannot be held either:
  its results are annulled if the deadline passes, and a hold must not promise
  to keep what the law says must go.
- Every hold names a case reference; one event can be held for several cases.
- Placing (``hold.place``) and releasing (``hold.release``, with a reason) are
  appended to the audit trail in the same transaction.
- While any hold on it is active, retention deletes neither the event row nor
  its files (:mod:`safecity.governance.retention`). Once the last hold is
  released, the match's ordinary evidence period applies again, so evidence
  past it goes at the next retention run.
- Annulment wins over a hold: if a held match's authorisation is refused
  later, :func:`safecity.governance.authorisations.refuse` deletes its results
  anyway (the law requires it); the hold then keeps only the annulled row.

The event row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write
lock) before the hold is written, so a hold and a retention batch that would
delete the same event never both succeed.

>>> hold = place_hold(store, event_id, case_ref="CR-2026-117", by="carol")  # doctest: +SKIP
>>> release_hold(store, hold.id, by="dave", reason="case closed")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Exists

from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store
from safecity.store.schema import Authorisation, EventRecord, LegalHold

MAX_CASE_REF = 200


class HoldError(SafecityError):
    """A legal hold cannot be placed or released (no such match, not confirmed, no case)."""


@dataclass(frozen=True)
class HoldInfo:
    """One legal hold as a plain value."""

    id: int
    event_id: int
    case_ref: str
    placed_by: str
    placed_at: datetime
    released_by: str | None
    released_at: datetime | None

    @property
    def active(self) -> bool:
        return self.released_at is None

    @classmethod
    def from_row(cls, row: LegalHold) -> HoldInfo:
        return cls(
            row.id,
            row.event_id,
            row.case_ref,
            row.placed_by,
            row.placed_at,
            row.released_by,
            row.released_at,
        )


def _case_ref(case_ref: str) -> str:
    case_ref = (case_ref or "").strip()
    if not case_ref:
        raise HoldError("a legal hold needs the case reference it is kept for (--case)")
    if len(case_ref) > MAX_CASE_REF:
        raise HoldError(f"a case reference has at most {MAX_CASE_REF} characters")
    return case_ref


def place_hold(
    store: Store,
    event_id: int,
    *,
    case_ref: str,
    by: str,
    clock: Clock = SYSTEM_CLOCK,
) -> HoldInfo:
    """Hold a confirmed match's evidence for ``case_ref`` until released (audited)."""
    by = audit.check_actor(by)
    case_ref = _case_ref(case_ref)
    now = clock.now()
    with store.transaction(write=True) as session:
        event = session.get(EventRecord, event_id, with_for_update=True)
        if event is None:
            raise HoldError(f"there is no event {event_id} (it may have been deleted by retention)")
        if event.match_status != "confirmed":
            what = f"a {event.match_status} match" if event.match_status else "not a match"
            raise HoldError(
                f"event {event_id} is {what}; only a confirmed match can be held "
                "(two reviewers must confirm it first)"
            )
        _refuse_unfiled_emergency(session, event)
        same = session.scalar(
            select(LegalHold.id).where(
                LegalHold.event_id == event_id,
                LegalHold.case_ref == case_ref,
                LegalHold.released_at.is_(None),
            )
        )
        if same is not None:
            raise HoldError(f"event {event_id} is already held for case {case_ref} (hold {same})")
        row = LegalHold(event_id=event_id, case_ref=case_ref, placed_by=by, placed_at=now)
        session.add(row)
        session.flush()
        audit.append(
            session,
            at=now,
            actor=by,
            action="hold.place",
            object=f"event:{event_id}",
            details={"hold": row.id, "case_ref": case_ref, "event": event.uuid},
        )
        return HoldInfo.from_row(row)


def _refuse_unfiled_emergency(session: Session, event: EventRecord) -> None:
    if event.match_authorisation_id is None:
        return
    auth = session.get(Authorisation, event.match_authorisation_id)
    if (
        auth is not None
        and auth.emergency_deadline_at is not None
        and auth.request_filed_at is None
    ):
        raise HoldError(
            f"event {event.id} was matched under emergency use {auth.id}, whose request is not "
            "filed yet; file it first (its results are deleted if the deadline passes)"
        )


def release_hold(
    store: Store,
    hold_id: int,
    *,
    by: str,
    reason: str,
    clock: Clock = SYSTEM_CLOCK,
) -> HoldInfo:
    """Release a hold (audited, with a reason); retention applies again from the next run."""
    by = audit.check_actor(by)
    reason = (reason or "").strip()
    if not reason:
        raise HoldError("say why the hold is released (--reason)")
    now = clock.now()
    with store.transaction(write=True) as session:
        row = session.get(LegalHold, hold_id, with_for_update=True)
        if row is None:
            raise HoldError(f"there is no legal hold {hold_id}")
        if row.released_at is not None:
            raise HoldError(
                f"hold {hold_id} was already released by {row.released_by} "
                f"on {row.released_at.isoformat()}"
            )
        row.released_by = by
        row.released_at = now
        session.flush()
        audit.append(
            session,
            at=now,
            actor=by,
            action="hold.release",
            object=f"event:{row.event_id}",
            details={"hold": row.id, "case_ref": row.case_ref, "reason": reason},
        )
        return HoldInfo.from_row(row)


def list_holds(
    store: Store, *, include_released: bool = False, event_id: int | None = None
) -> list[HoldInfo]:
    """Legal holds, oldest first: the active ones, or all of them."""
    query = select(LegalHold).order_by(LegalHold.id)
    if not include_released:
        query = query.where(LegalHold.released_at.is_(None))
    if event_id is not None:
        query = query.where(LegalHold.event_id == event_id)
    with store.transaction() as session:
        return [HoldInfo.from_row(r) for r in session.scalars(query)]


def active_hold_exists() -> Exists:
    """SQL: the event (``EventRecord``) has at least one hold not released."""
    return (
        select(LegalHold.id)
        .where(LegalHold.event_id == EventRecord.id, LegalHold.released_at.is_(None))
        .exists()
    )


def held_event_ids(session: Session, event_ids: list[int]) -> set[int]:
    """Which of ``event_ids`` have an active hold (read inside the caller's transaction)."""
    if not event_ids:
        return set()
    return set(
        session.scalars(
            select(LegalHold.event_id).where(
                LegalHold.event_id.in_(event_ids), LegalHold.released_at.is_(None)
            )
        )
    )
