"""The store as an event sink: redacted snapshot files plus one row per event.

Media first, then the rows in one transaction; if the transaction fails, the
files just written are removed, so a failure leaves neither an orphan file nor a
half record. (A crash between the two steps can leave a file without a row; the
retention sweep removes files no row refers to.)

>>> sink = StoreSink(open_store(url, media_dir))  # doctest: +SKIP
>>> event_id = sink.write(event)                   # doctest: +SKIP
>>> ids = sink.write_many(events)                  # all or nothing  # doctest: +SKIP
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from safecity.events import Event, Snapshot
from safecity.store.db import Store, StoreError
from safecity.store.schema import EventRecord


class StoreSink:
    """Writes :class:`~safecity.events.Event` values to a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, event: Event) -> int:
        """Store one event; returns its id. Raises :class:`StoreError` on failure."""
        return self.write_many([event])[0]

    def write_many(self, events: Iterable[Event]) -> list[int]:
        """Store all events in one transaction, or none of them; returns their ids in order."""
        events = list(events)
        if not events:
            return []
        written: list[str] = []
        try:
            records = [self._record(event, written) for event in events]
            with self.store.transaction() as session:
                session.add_all(records)
                session.flush()
                return [record.id for record in records]
        except BaseException:
            for relative in written:
                self.store.media.remove(relative)
            raise

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
