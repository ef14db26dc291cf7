"""Deleting the evidence of a match: shared by review, refusal, retention and erasure.

A matched event has two snapshots: the match snapshot, the frame the face was
matched on with that face unpixelated (for review), and the event's ordinary
snapshot, in which the sink's contract (:class:`safecity.events.Snapshot`)
lets the matched face show too (the pipeline hides it there). What becomes of
them depends on what the match turns out to be:

- **rejected** (a false match): the event is what it always was, an ordinary
  event of a person who matched nothing. The match snapshot is deleted and the
  ordinary snapshot is rewritten with the formerly matched person's head and
  face pixelated as for anyone unmatched (:func:`pixelate_snapshot`), written
  atomically *before* the caller commits, so a crash never leaves a row
  pointing at a visible face of a rejected person (a failed commit leaves a
  pixelated file, which is harmless). The snapshot then lives as long as any
  ordinary event's (``retention.snapshots_h``), so nobody who may not see
  identities can tell the event from an ordinary one. A snapshot that cannot
  be pixelated (missing, corrupt) is deleted instead.
- **expired** (nobody reviewed it in time): handled alike, but expiry comes
  only once the snapshot period is over, when an ordinary event of the same
  age has no snapshot left either; so both files are deleted.
- **annulled** (no lawful basis) or **erased** (the person's request): both
  snapshot files are deleted and the person unlinked.

Rows are changed inside the caller's transaction; the files to delete are
returned so the caller removes them *after* the commit (a failed commit then
leaves files, never rows pointing at missing files; retention sweeps files no
row refers to).

Every change of a match's outcome outside review (``match.expired``,
``match.annulled``, ``match.erased``) is audited per event, like the review
decisions, so reports count outcomes from the audit trail, which outlives the
event rows that retention deletes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import cv2
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.store.media import MediaStore
from safecity.store.schema import EventRecord, Review
from safecity.vision.redact import head_band

if TYPE_CHECKING:
    from safecity.vision.redact import FaceRedactor

log = logging.getLogger(__name__)


def event_files(event: EventRecord) -> list[str]:
    """The media files (relative paths) an event row refers to."""
    return [p for p in (event.snapshot_path, event.match_snapshot_path) if p]


def drop_snapshots(event: EventRecord) -> list[str]:
    """Unlink the event's snapshot files from its row; returns them for removal."""
    files = event_files(event)
    event.snapshot_path = None
    event.match_snapshot_path = None
    return files


def pixelate_snapshot(
    media: MediaStore, relative: str, redactor: FaceRedactor | None = None
) -> bool:
    """Rewrite a stored snapshot with every head and face in it pixelated; False if it can't be.

    What the pipeline hides in an unmatched person's snapshot: the person's head
    (the crop's top, :func:`~safecity.vision.redact.head_band`, since the
    person's box is not stored) and every face the redaction detector finds,
    twice (:meth:`~safecity.vision.redact.FaceRedactor.hide`). The file is
    replaced atomically. ``redactor`` defaults to a new one (not shared between
    threads).
    """
    try:
        image = media.read_image(relative)
        if redactor is None:
            from safecity.vision.redact import FaceRedactor

            redactor = FaceRedactor()
        height, width = image.shape[:2]
        media.rewrite_jpeg(relative, image, redactor.hide(image, head_band(height, width)))
    except (OSError, ValueError, SafecityError, cv2.error) as error:
        log.warning("snapshot %s cannot be pixelated (%s); it is deleted instead", relative, error)
        return False
    return True


def reject_match(
    event: EventRecord,
    at: datetime,
    status: str = "rejected",
    *,
    media: MediaStore | None = None,
    redactor: FaceRedactor | None = None,
) -> list[str]:
    """Mark a false match: keep the counts (watchlist, score), drop person and match image.

    With ``media`` the event's ordinary snapshot is kept, rewritten there with
    the formerly matched person pixelated (:func:`pixelate_snapshot`), before the
    caller commits; it is deleted when that fails, and without ``media``.
    Returns the files to delete after the commit.

    ``status="expired"``: nobody reviewed it in time; handled the same, but not
    counted as a false match.
    """
    event.match_status = status
    event.match_decided_at = at
    event.match_person_id = None
    files = [event.match_snapshot_path] if event.match_snapshot_path else []
    event.match_snapshot_path = None
    if event.snapshot_path and (
        media is None or not pixelate_snapshot(media, event.snapshot_path, redactor)
    ):
        files.append(event.snapshot_path)
        event.snapshot_path = None
    return files


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
    """Close a candidate nobody reviewed in time (not a false match); audited.

    Both snapshots are deleted: a candidate expires once the snapshot period is
    over, when an ordinary event of its age keeps no snapshot either.
    """
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
