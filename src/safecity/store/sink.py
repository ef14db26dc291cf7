"""The store as an event sink: redacted snapshot files plus one row per event.

Media first, then the rows in one transaction; if the transaction fails, the
files just written are removed, so a failure leaves neither an orphan file nor a
half record. (A crash between the two steps can leave a file without a row; the
retention sweep removes files no row refers to.)

>>> sink = StoreSink(open_store(url, media_dir))  # doctest: +SKIP
>>> event_id = sink.write(event)                   # doctest: +SKIP
>>> ids = sink.write_many(events)                  # all or nothing  # doctest: +SKIP

A matched event is stored as a *candidate* for four-eyes review, bound to the
authorisation that allowed it, and its match is appended to the audit trail in
the same transaction (reference database, the input snapshot's sha256, score).
The sink checks the authorisation once more, at the frame's time *and* now: a
match it does not allow (or whose person was removed meanwhile) is stored as a
plain event *without images* (they show the face unpixelated, so they are not
even written), and the refusal is audited.

Idempotent by event uuid (:func:`safecity.events.event_uuid`): an event whose uuid
is already stored is not written again (no file, no audit record) and its
existing id is returned, so an outbox that retries a batch the database did
commit, or a restarted camera that reproduces its events, leaves one copy. Two
writers racing on the same uuid: the unique column refuses the second
transaction (a :class:`StoreError`, nothing of it kept) and its retry finds the
first one's row.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.events import PLATE_TEXT_MAX, VEHICLE_LABELS, Event, Snapshot, plate_key
from safecity.governance import audit
from safecity.governance.authorisations import allows_matching, camera_scopes
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store, StoreError, StoreValueError
from safecity.store.schema import (
    Authorisation,
    EventRecord,
    Person,
    Watchlist,
)

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{32}$")
#: Uuids looked up per query (well under every backend's bound-parameter limit).
_LOOKUP_CHUNK = 500


def check_plate(event: Event) -> None:
    """Refuse an event's plate that the store cannot keep as it is: one on an event that
    is no vehicle's, or a text that is empty, too long or not normalised."""
    plate = event.plate
    assert plate is not None
    if event.label not in VEHICLE_LABELS:
        raise StoreValueError(
            f"a {event.label} event cannot carry a licence plate (only {sorted(VEHICLE_LABELS)})"
        )
    if not plate.text or plate.text != plate_key(plate.text) or len(plate.text) > PLATE_TEXT_MAX:
        raise StoreValueError(
            f"plate text {plate.text!r} is not a normalised plate (1 to {PLATE_TEXT_MAX} "
            "upper case letters and digits)"
        )
    if not 0.0 <= float(plate.confidence) <= 1.0:
        raise StoreValueError(f"plate confidence {plate.confidence} is not between 0 and 1")


class StoreSink:
    """Writes :class:`~safecity.events.Event` values to a :class:`Store`."""

    def __init__(self, store: Store, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.clock = clock

    def write(self, event: Event) -> int:
        """Store one event; returns its id. Raises :class:`StoreError` on failure."""
        return self.write_many([event])[0]

    def write_many(self, events: Iterable[Event]) -> list[int]:
        """Store all events in one transaction, or none of them; returns their ids in order."""
        given = list(events)
        if not given:
            return []
        names = [self._name(event) for event in given]
        first = {name: i for i, name in reversed(list(enumerate(names)))}
        # Decide before any file is written: what is stored already is skipped, and a
        # refused match's snapshots show its face unpixelated, so they are never written.
        with self.store.transaction() as session:
            stored = self._stored_ids(session, names)
            todo = [i for i, name in enumerate(names) if name not in stored and first[name] == i]
            events = [given[i] for i in todo]
            refusals = [self._refusal(session, e) if e.match else None for e in events]
        if not events:
            return [stored[name] for name in names]
        written: list[str] = []
        dropped: list[str] = []
        try:
            records = [
                self._record(event, names[i], written, images=refusal is None)
                for i, event, refusal in zip(todo, events, refusals, strict=True)
            ]
            with self.store.transaction(write=True) as session:
                session.add_all(records)
                session.flush()
                for event, record, refusal in zip(events, records, refusals, strict=True):
                    if event.match is None:
                        continue
                    # Checked again under the write lock: it may have changed meanwhile.
                    refusal = refusal or self._refusal(session, event, lock=True)
                    if refusal is None:
                        self._candidate(session, event, record)
                    else:
                        dropped += self._refuse(session, event, record, refusal)
                stored.update((record.uuid, record.id) for record in records)
        except BaseException:
            for relative in written:
                self.store.media.remove(relative)
            raise
        for relative in dropped:
            self.store.media.remove(relative)
        return [stored[name] for name in names]

    @staticmethod
    def _name(event: Event) -> str:
        """The event's uuid (a random one when it has none); refuses a malformed one
        and a plate that cannot be stored (on no vehicle, or not normalised)."""
        if event.plate is not None:
            check_plate(event)
        if not event.uuid:
            return uuid.uuid4().hex
        if not _UUID.match(event.uuid):
            raise StoreValueError(f"event uuid {event.uuid!r} is not 32 lowercase hex digits")
        return event.uuid

    @staticmethod
    def _stored_ids(session: Session, names: list[str]) -> dict[str, int]:
        """Uuid → id of those of ``names`` that are stored already."""
        found: dict[str, int] = {}
        unique = sorted(set(names))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            rows = session.execute(
                select(EventRecord.uuid, EventRecord.id).where(EventRecord.uuid.in_(chunk))
            )
            found.update((row.uuid, row.id) for row in rows)
        return found

    def _record(self, event: Event, name: str, written: list[str], *, images: bool) -> EventRecord:
        """Write the event's snapshots (noting each in ``written``) and build its row.

        ``name`` is its uuid. ``images=False`` (a refused match) writes no file and no match.
        """
        snapshot = match_snapshot = None
        if images:
            snapshot = self._snapshot(event, event.snapshot, name, written)
            if event.match_snapshot is not None:
                match_snapshot = self._snapshot(
                    event, event.match_snapshot, f"{name}-match", written
                )
        match = event.match if images else None
        plate = event.plate
        plate_crop = None
        if plate is not None:
            plate_crop = self._image(event, plate.crop, np.empty((0, 4)), f"{name}-plate", written)
        return EventRecord(
            uuid=name,
            camera=event.camera,
            track_id=int(event.track_id),
            label=event.label,
            started_at=event.started_at,
            ended_at=event.ended_at,
            best_score=float(event.best_score),
            frames=int(event.frames),
            face_only=bool(event.face_only),
            plate_text=plate.text if plate else None,
            plate_confidence=float(plate.confidence) if plate else None,
            plate_crop_path=plate_crop,
            snapshot_path=snapshot,
            match_snapshot_path=match_snapshot,
            match_person_id=match.person_id if match else None,
            match_watchlist_id=match.watchlist_id if match else None,
            match_score=float(match.score) if match else None,
            match_margin=float(match.margin) if match else None,
        )

    @staticmethod
    def _match_time(event: Event):
        return event.match_snapshot.time if event.match_snapshot is not None else event.started_at

    def _authorisation(
        self, session: Session, event: Event, lock: bool = False
    ) -> Authorisation | None:
        """The authorisation of the matched watchlist; ``lock``: a revocation waits for us."""
        assert event.match is not None
        query = (
            select(Authorisation)
            .join(Watchlist, Watchlist.authorisation_id == Authorisation.id)
            .where(Watchlist.id == event.match.watchlist_id)
        )
        if lock:
            query = query.with_for_update(read=True, of=Authorisation)
        return session.scalar(query)

    def _refusal(self, session: Session, event: Event, lock: bool = False) -> str | None:
        """Why this match may not be stored, or None when it may.

        The authorisation must allow the camera both at the frame's time and now,
        when the match is stored: an operator-given start time cannot reach back
        into an ended window or forward into one not yet started.
        """
        match = event.match
        assert match is not None
        auth = self._authorisation(session, event, lock)
        if auth is None:
            return "the watchlist no longer exists"
        if session.get(Person, match.person_id) is None:
            return "the person was removed from the watchlist"
        scope = None if auth.all_cameras else camera_scopes(session, [auth.id]).get(auth.id, [])
        for label, at in (
            ("at the frame's time", self._match_time(event)),
            ("now", self.clock.now()),
        ):
            allowed = allows_matching(auth, scope, event.camera, at)
            if not allowed:
                return f"authorisation {auth.id} ({auth.status}) does not allow it {label}"
        return None

    def _details(self, event: Event, record: EventRecord) -> dict:
        match = event.match
        assert match is not None
        # No person: the audit trail outlives rejection and erasure of the match.
        return {
            "event": record.uuid,
            "camera": event.camera,
            "frame_time": self._match_time(event).isoformat(),
            "watchlist": match.watchlist_name,
            "score": round(float(match.score), 4),
            "margin": round(float(match.margin), 4),
        }

    def _refuse(
        self, session: Session, event: Event, record: EventRecord, reason: str
    ) -> list[str]:
        """Store the event without its match or images; audit the refusal.

        Returns files already written for it, to delete after the commit.
        """
        assert event.match is not None
        log.error(
            "camera %s: a match on watchlist %s was refused (%s); stored without it",
            event.camera,
            event.match.watchlist_name,
            reason,
        )
        dropped = [p for p in (record.snapshot_path, record.match_snapshot_path) if p]
        record.snapshot_path = record.match_snapshot_path = None
        record.match_person_id = record.match_watchlist_id = None
        record.match_score = record.match_margin = None
        audit.append(
            session,
            at=self.clock.now(),
            actor=audit.SYSTEM_ACTOR,
            action="match.refused",
            object=f"event:{record.id}",
            details={**self._details(event, record), "reason": reason},
        )
        return dropped

    def _candidate(self, session: Session, event: Event, record: EventRecord) -> None:
        """Bind the match to its authorisation as a candidate for review, and audit it."""
        auth = self._authorisation(session, event)
        assert auth is not None
        record.match_status = "candidate"
        record.match_authorisation_id = auth.id
        snapshot_sha = None
        if record.match_snapshot_path:
            snapshot_sha = hashlib.sha256(
                self.store.media.path(record.match_snapshot_path).read_bytes()
            ).hexdigest()
        audit.append(
            session,
            at=self.clock.now(),
            actor=audit.SYSTEM_ACTOR,
            action="match",
            object=f"event:{record.id}",
            details={
                **self._details(event, record),
                "reference_database": f"watchlist {event.match.watchlist_name} "
                f"(authorisation {auth.id}, {auth.reference or 'emergency use'})",
                "input_snapshot": record.match_snapshot_path,
                "input_snapshot_sha256": snapshot_sha,
                "status": "candidate",
            },
        )

    def _snapshot(self, event: Event, snapshot: Snapshot, name: str, written: list[str]) -> str:
        return self._image(event, snapshot.image, snapshot.redact_boxes, name, written)

    def _image(
        self,
        event: Event,
        image: np.ndarray,
        redact_boxes: np.ndarray,
        name: str,
        written: list[str],
    ) -> str:
        try:
            relative = self.store.media.write_jpeg(
                image, redact_boxes, event.camera, event.started_at, name
            )
        except OSError as error:
            raise StoreError(
                f"cannot write a snapshot under {self.store.media_dir}: {error.strerror or error}"
            ) from error
        written.append(relative)
        return relative
