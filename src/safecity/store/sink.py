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
The sink checks the authorisation once more: a match whose watchlist was not
authorised for that camera at that time is stored as a plain event *without
images* (they show the face unpixelated), and the refusal is audited.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.events import Event, Snapshot
from safecity.governance import audit
from safecity.governance.authorisations import allows_matching
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store, StoreError
from safecity.store.schema import Authorisation, AuthorisationCamera, EventRecord, Watchlist

log = logging.getLogger(__name__)


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
        events = list(events)
        if not events:
            return []
        written: list[str] = []
        dropped: list[str] = []
        try:
            records = [self._record(event, written) for event in events]
            with self.store.transaction(write=True) as session:
                session.add_all(records)
                session.flush()
                for event, record in zip(events, records, strict=True):
                    if event.match is not None:
                        dropped += self._bind_match(session, event, record)
                ids = [record.id for record in records]
        except BaseException:
            for relative in written:
                self.store.media.remove(relative)
            raise
        for relative in dropped:
            self.store.media.remove(relative)
        return ids

    def _record(self, event: Event, written: list[str]) -> EventRecord:
        """Write the event's snapshots (noting each in ``written``) and build its row."""
        name = uuid.uuid4().hex
        snapshot = self._snapshot(event, event.snapshot, name, written)
        match_snapshot = None
        if event.match_snapshot is not None:
            match_snapshot = self._snapshot(event, event.match_snapshot, f"{name}-match", written)
        match = event.match
        return EventRecord(
            uuid=name,
            camera=event.camera,
            track_id=int(event.track_id),
            label=event.label,
            started_at=event.started_at,
            ended_at=event.ended_at,
            best_score=float(event.best_score),
            frames=int(event.frames),
            snapshot_path=snapshot,
            match_snapshot_path=match_snapshot,
            match_person_id=match.person_id if match else None,
            match_watchlist_id=match.watchlist_id if match else None,
            match_score=float(match.score) if match else None,
            match_margin=float(match.margin) if match else None,
        )

    def _bind_match(self, session: Session, event: Event, record: EventRecord) -> list[str]:
        """Make the match a candidate under its authorisation, or drop it; audit either way.

        Returns the files to delete after the commit (those of a dropped match).
        """
        match = event.match
        assert match is not None
        at = event.match_snapshot.time if event.match_snapshot is not None else event.started_at
        found = session.execute(
            select(Watchlist.name, Authorisation)
            .join(Authorisation, Watchlist.authorisation_id == Authorisation.id)
            .where(Watchlist.id == match.watchlist_id)
        ).first()
        allowed = False
        if found is not None:
            name, auth = found
            scope = None
            if not auth.all_cameras:
                scope = list(
                    session.scalars(
                        select(AuthorisationCamera.camera).where(
                            AuthorisationCamera.authorisation_id == auth.id
                        )
                    )
                )
            allowed = allows_matching(
                auth.status,
                auth.valid_from,
                auth.valid_until,
                scope,
                auth.emergency_deadline_at,
                auth.request_filed_at,
                event.camera,
                at,
            )
        details = {
            "event": record.uuid,
            "camera": event.camera,
            "frame_time": at.isoformat(),
            "person": match.person_name,
            "watchlist": match.watchlist_name,
            "score": round(float(match.score), 4),
            "margin": round(float(match.margin), 4),
        }
        if not allowed:
            log.error(
                "camera %s: a match on watchlist %s was not authorised at %s; dropped",
                event.camera,
                match.watchlist_name,
                at.isoformat(),
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
                details={**details, "reason": "no authorisation allowed this match"},
            )
            return dropped
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
                **details,
                "reference_database": f"watchlist {name} (authorisation {auth.id}, "
                f"{auth.reference or 'emergency use'})",
                "input_snapshot": record.match_snapshot_path,
                "input_snapshot_sha256": snapshot_sha,
                "status": "candidate",
            },
        )
        return []

    def _snapshot(self, event: Event, snapshot: Snapshot, name: str, written: list[str]) -> str:
        try:
            relative = self.store.media.write_jpeg(
                snapshot.image, snapshot.redact_boxes, event.camera, event.started_at, name
            )
        except OSError as error:
            raise StoreError(
                f"cannot write a snapshot under {self.store.media_dir}: {error.strerror or error}"
            ) from error
        written.append(relative)
        return relative
