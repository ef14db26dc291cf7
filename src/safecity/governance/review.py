"""Four-eyes review: a match is a *candidate* until enough different reviewers confirm it.

- ``required`` different users (2 by default) must confirm; the same user
  confirming twice counts once.
- One rejection marks it a false match: its evidence (the match snapshot, the
  person link) is deleted at once, the watchlist and score stay for the
  statistics, and the event becomes an ordinary one: its snapshot is kept with
  the formerly matched person pixelated, for as long as any event's
  (:func:`safecity.governance.evidence.reject_match`).
- Nobody reviews a match of a person they enrolled.

Every decision is audited with the reviewer's name, in the same transaction.

>>> review_match(store, event_id, by="carol", decision="confirm").status  # doctest: +SKIP
'candidate'
>>> review_match(store, event_id, by="dave", decision="confirm").status  # doctest: +SKIP
'confirmed'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.governance.evidence import reject_match
from safecity.store.db import Store
from safecity.store.schema import (
    EventRecord,
    ListedPlate,
    Person,
    Review,
    Template,
    Watchlist,
)

Decision = Literal["confirm", "reject"]


class ReviewError(SafecityError):
    """A review cannot be recorded (no such candidate, own enrolment, already decided)."""


@dataclass(frozen=True)
class ReviewState:
    event_id: int
    status: str  # candidate | confirmed | rejected
    confirmed_by: list[str]
    rejected_by: str | None
    required: int
    counted: bool  # False when this reviewer's confirmation was already counted

    def describe(self) -> str:
        if self.status == "candidate":
            return (
                f"candidate match: {len(self.confirmed_by)} of {self.required} confirmations "
                f"({', '.join(self.confirmed_by) or 'none yet'})"
            )
        if self.status == "rejected":
            return f"rejected as a false match by {self.rejected_by}; its evidence was deleted"
        return f"confirmed by {', '.join(self.confirmed_by)}"


@dataclass(frozen=True)
class Candidate:
    """A match awaiting review, as the review queue shows it."""

    event_id: int
    camera: str
    started_at: datetime
    person_id: int | None
    person_name: str | None
    enrolled_by: str | None
    watchlist_name: str | None
    score: float | None
    margin: float | None
    snapshot_path: str | None
    match_snapshot_path: str | None
    confirmed_by: list[str]
    # A plate watchlist's hit: the read (its crop) beside the plate(s) listed.
    plate_text: str | None = None
    plate_crop_path: str | None = None
    listed_plates: tuple[str, ...] = ()
    plate_confidence: float | None = None
    watchlist_kind: str = "face"  # or "plate": what the matched watchlist lists
    authorisation_id: int | None = None  # the authorisation the match was made under


def enrollers_of(session: Session, person_ids: Iterable[int]) -> dict[int, set[str]]:
    """Per person: everyone who enrolled them, added a photo of them or listed a plate
    of theirs (a listed vehicle, :mod:`safecity.identity.plate_lists`), in one query."""
    ids = sorted(set(person_ids))
    found: dict[int, set[str]] = {i: set() for i in ids}
    if ids:
        query = union(
            select(Person.id, Person.enrolled_by).where(Person.id.in_(ids)),
            select(Template.person_id, Template.enrolled_by).where(Template.person_id.in_(ids)),
            select(ListedPlate.person_id, ListedPlate.enrolled_by).where(
                ListedPlate.person_id.in_(ids)
            ),
        )
        for person_id, by in session.execute(query):
            if by:
                found[person_id].add(by)
    return found


def _enrollers(session: Session, person: Person) -> set[str]:
    """Everyone who enrolled this person, added a photo of them or listed a plate of theirs."""
    return enrollers_of(session, [person.id])[person.id]


def _confirmations_of(session: Session, event_ids: list[int]) -> dict[int, list[str]]:
    """Who confirmed each of these events, in order (one query for a whole page)."""
    found: dict[int, list[str]] = {}
    for event_id, reviewer in session.execute(
        select(Review.event_id, Review.reviewer)
        .where(Review.event_id.in_(event_ids), Review.decision == "confirm")
        .order_by(Review.created_at, Review.id)
    ):
        found.setdefault(event_id, []).append(reviewer)
    return found


def _confirmations(session: Session, event_id: int) -> list[str]:
    return _confirmations_of(session, [event_id]).get(event_id, [])


def review_match(
    store: Store,
    event_id: int,
    *,
    by: str,
    decision: Decision,
    note: str = "",
    required: int = 2,
    clock: Clock = SYSTEM_CLOCK,
    vet: Callable[[Session, list[str]], None] | None = None,
) -> ReviewState:
    """Record one reviewer's decision on a candidate match and return where it stands.

    ``vet(session, confirmed_by)`` runs inside the transaction, with the event locked,
    before anything is written: the command line and the API pass the
    separation-of-duties rules (:func:`safecity.access.duties.review`) here.
    """
    by = audit.check_actor(by)
    if decision not in ("confirm", "reject"):
        raise ReviewError(f"a review decision is 'confirm' or 'reject', not {decision!r}")
    now = clock.now()
    files: list[str] = []
    with store.transaction(write=True) as session:
        event = session.get(EventRecord, event_id, with_for_update=True)
        if event is None or event.match_status is None:
            raise ReviewError(f"event {event_id} is not a match; there is nothing to review")
        if event.match_status != "candidate":
            raise ReviewError(f"the match of event {event_id} is already {event.match_status}")
        person = session.get(Person, event.match_person_id) if event.match_person_id else None
        if (person is None or person.removed_at is not None) and decision == "confirm":
            raise ReviewError(
                f"the person matched in event {event_id} was removed from the watchlist; "
                "the match can only be rejected"
            )
        if person is not None and by in _enrollers(session, person):
            raise ReviewError(
                f"{by} enrolled {person.name}; a match of someone you enrolled must be "
                "reviewed by others"
            )
        previous = session.scalar(
            select(Review).where(Review.event_id == event_id, Review.reviewer == by)
        )
        confirmed = _confirmations(session, event_id)
        if vet is not None:
            vet(session, confirmed)
        if previous is not None:
            if previous.decision != decision:
                raise ReviewError(
                    f"{by} already {previous.decision}ed the match of event {event_id}"
                )
            return ReviewState(event_id, event.match_status, confirmed, None, required, False)
        session.add(
            Review(
                event_id=event_id, reviewer=by, decision=decision, note=note.strip(), created_at=now
            )
        )
        session.flush()
        watchlist = (
            session.get(Watchlist, event.match_watchlist_id) if event.match_watchlist_id else None
        )
        details = {
            "event": event.uuid,
            "camera": event.camera,
            "watchlist": watchlist.name if watchlist else None,
            "score": event.match_score,
            # The note stays with the review (deleted with the event); the trail
            # keeps only its fingerprint, since notes may name people.
            "note_sha256": hashlib.sha256(note.strip().encode()).hexdigest()
            if note.strip()
            else None,
        }
        rejected_by = None
        if decision == "reject":
            # The snapshot is pixelated here, before the commit; the files go after it.
            files = reject_match(event, now, media=store.media)
            rejected_by = by
            details["evidence_deleted"] = len(files)
            details["snapshot_pixelated"] = event.snapshot_path is not None
        else:
            confirmed.append(by)
            if len(confirmed) >= required:
                event.match_status = "confirmed"
                event.match_decided_at = now
        details.update(status=event.match_status, confirmations=len(confirmed), required=required)
        audit.append(
            session,
            at=now,
            actor=by,
            action=f"review.{decision}",
            object=f"event:{event_id}",
            details=details,
        )
        state = ReviewState(event_id, event.match_status, confirmed, rejected_by, required, True)
    for relative in files:
        store.media.remove(relative)
    return state


def review_queue(store: Store, *, limit: int = 100, offset: int = 0) -> list[Candidate]:
    """Candidate matches, oldest first, with who has confirmed each so far."""
    query = (
        select(EventRecord, Person.name, Person.enrolled_by, Watchlist.name, Watchlist.kind)
        .outerjoin(Person, EventRecord.match_person_id == Person.id)
        .outerjoin(Watchlist, EventRecord.match_watchlist_id == Watchlist.id)
        .where(EventRecord.match_status == "candidate")
        .order_by(EventRecord.started_at, EventRecord.id)
        .limit(max(1, min(limit, 10_000)))
        .offset(max(0, offset))
    )
    with store.transaction() as session:
        rows = session.execute(query).all()
        confirmed = _confirmations_of(session, [e.id for e, *_ in rows])
        listed: dict[int, list[str]] = {}
        for person_id, plate in session.execute(
            select(ListedPlate.person_id, ListedPlate.plate)
            .where(ListedPlate.person_id.in_({e.match_person_id for e, *_ in rows}))
            .order_by(ListedPlate.id)
        ):
            listed.setdefault(person_id, []).append(plate)
        return [
            Candidate(
                event_id=e.id,
                camera=e.camera,
                started_at=e.started_at,
                person_id=e.match_person_id,
                person_name=person_name,
                enrolled_by=enrolled_by,
                watchlist_name=watchlist_name,
                score=e.match_score,
                margin=e.match_margin,
                snapshot_path=e.snapshot_path,
                match_snapshot_path=e.match_snapshot_path,
                confirmed_by=confirmed.get(e.id, []),
                plate_text=e.plate_text,
                plate_crop_path=e.plate_crop_path,
                listed_plates=tuple(listed.get(e.match_person_id, ())),
                plate_confidence=e.plate_confidence,
                watchlist_kind=kind or "face",
                authorisation_id=e.match_authorisation_id,
            )
            for e, person_name, enrolled_by, watchlist_name, kind in rows
        ]
