"""Deleting the evidence of a match: shared by review, refusal, retention and erasure.

A matched event's snapshots show the matched face unpixelated, so deleting a
match's evidence deletes both snapshot files and unlinks the person. Rows are
changed inside the caller's transaction; the files are returned so the caller
removes them *after* the commit (a failed commit then leaves files, never rows
pointing at missing files; retention sweeps files no row refers to).

Every change of a match's outcome outside review (``match.expired``,
``match.annulled``, ``match.erased``) is audited per event, like the review
decisions, so reports count outcomes from the audit trail, which outlives the
event rows that retention deletes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from safecity.governance import audit
from safecity.store.schema import EventRecord, Review


def event_files(event: EventRecord) -> list[str]:
    """The media files (relative paths) an event row refers to."""
    return [p for p in (event.snapshot_path, event.match_snapshot_path) if p]


def drop_snapshots(event: EventRecord) -> list[str]:
    """Unlink the event's snapshot files from its row; returns them for removal."""
    files = event_files(event)
    event.snapshot_path = None
    event.match_snapshot_path = None
    return files


def reject_match(event: EventRecord, at: datetime, status: str = "rejected") -> list[str]:
    """Mark a false match: keep the counts (watchlist, score), drop person and images.

    ``status="expired"``: nobody reviewed it in time; handled the same, but not
    counted as a false match.
    """
    event.match_status = status
    event.match_decided_at = at
    event.match_person_id = None
    return drop_snapshots(event)


def _audit_outcome(
    session: Session, event: EventRecord, at: datetime, actor: str, purpose: str = ""
) -> None:
    audit.append(
        session,
        at=at,
        actor=actor,
        action=f"match.{event.match_status}",
        object=f"event:{event.id}",
        purpose=purpose,
        details={"event": event.uuid, "camera": event.camera},
    )


def expire_match(session: Session, event: EventRecord, at: datetime) -> list[str]:
    """Close a candidate nobody reviewed in time (not a false match); audited."""
    files = reject_match(event, at, status="expired")
    _audit_outcome(session, event, at, audit.SYSTEM_ACTOR)
    return files


def annul_match(
    session: Session,
    event: EventRecord,
    at: datetime,
    status: str = "annulled",
    *,
    actor: str = audit.SYSTEM_ACTOR,
    purpose: str = "",
) -> list[str]:
    """Remove a match entirely: no person, no score, no review, no images.

    ``annulled``: made without a lawful basis (refused or lapsed emergency use);
    ``erased``: deleted at the request of the person concerned.
    """
    event.match_status = status
    event.match_decided_at = at
    event.match_person_id = None
    event.match_score = None
    event.match_margin = None
    session.execute(delete(Review).where(Review.event_id == event.id))
    _audit_outcome(session, event, at, actor, purpose)
    return drop_snapshots(event)


def annul_results(
    session: Session, authorisation_id: int, *, at: datetime, actor: str = audit.SYSTEM_ACTOR
) -> tuple[int, list[str]]:
    """Annul every match made under an authorisation (refused or lapsed emergency use)."""
    events = session.scalars(
        select(EventRecord).where(
            EventRecord.match_authorisation_id == authorisation_id,
            EventRecord.match_status.is_not(None),
            EventRecord.match_status.not_in(("annulled", "erased")),
        )
    ).all()
    files: list[str] = []
    for event in events:
        files += annul_match(session, event, at, actor=actor)
    session.flush()
    return len(events), files
