"""StoreSink is idempotent by event uuid: a retried or reproduced event is stored once.

The outbox retries a batch whose commit it could not confirm, and a camera restarted
from the start of a file reproduces its events; either way the store keeps one copy,
writes no second file and audits no second match.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from governance.governance_support import T0, add_person, authorised_watchlist, unit
from governance.governance_support import make_event as make_match_event
from sqlalchemy import func, select

from safecity.events import event_uuid, with_uuids
from safecity.governance.clock import ManualClock
from safecity.store import Store, StoreError
from safecity.store.schema import AuditRecordRow, EventRecord
from safecity.store.sink import StoreSink
from safecity.vision.types import Match


def _rows(store: Store) -> list[tuple[str, int]]:
    with store.transaction() as session:
        return [
            (r.uuid, r.track_id)
            for r in session.scalars(select(EventRecord).order_by(EventRecord.id))
        ]


def _audited(store: Store, action: str) -> int:
    with store.transaction() as session:
        return session.scalar(
            select(func.count(AuditRecordRow.id)).where(AuditRecordRow.action == action)
        )


def test_writing_the_same_events_twice_stores_one_copy(
    store: Store, portrait, make_event, media_files
) -> None:
    events = with_uuids([make_event(portrait, track_id=t) for t in (1, 2, 3)], "run-a")
    sink = StoreSink(store)
    ids = sink.write_many(events)
    files = media_files(store.media_dir)
    assert len(files) == 3

    # A retry of the middle one with a new one after it, and the whole batch again.
    again = sink.write_many([events[1], replace(events[0], uuid=event_uuid(events[0], "run-b"))])
    assert again[0] == ids[1] and again[1] not in ids
    assert sink.write_many(events) == ids

    rows = _rows(store)
    assert [u for u, _ in rows] == [e.uuid for e in events] + [event_uuid(events[0], "run-b")]
    assert len(media_files(store.media_dir)) == 4  # one file for the new event only


def test_a_uuid_twice_in_one_batch_is_stored_once(store: Store, portrait, make_event) -> None:
    event = with_uuids([make_event(portrait)], "run-a")[0]
    ids = StoreSink(store).write_many([event, event])
    assert ids[0] == ids[1]
    assert len(_rows(store)) == 1


def test_events_without_uuid_are_each_stored(store: Store, portrait, make_event) -> None:
    event = make_event(portrait)
    sink = StoreSink(store)
    assert sink.write(event) != sink.write(event)
    assert len({u for u, _ in _rows(store)}) == 2


def test_a_malformed_uuid_is_refused_before_anything_is_written(
    store: Store, portrait, make_event, media_files
) -> None:
    good, bad = make_event(portrait, track_id=1), make_event(portrait, track_id=2)
    with pytest.raises(StoreError, match="not 32 lowercase hex digits"):
        StoreSink(store).write_many([good, replace(bad, uuid="../../etc/passwd")])
    assert _rows(store) == [] and media_files(store.media_dir) == []


def test_a_stored_match_is_not_audited_again(store: Store, portrait) -> None:
    clock = ManualClock(T0)
    info = authorised_watchlist(store, clock)
    person = add_person(store, info.id, "Jane Doe", [unit(1)])
    match = Match(person, "Jane Doe", info.id, info.name, 0.97, 0.2)
    event = with_uuids([make_match_event(portrait, start=T0, match=match)], "r")[0]
    sink = StoreSink(store, clock)
    first = sink.write(event)
    assert _audited(store, "match") == 1
    assert sink.write(event) == first
    assert _audited(store, "match") == 1
    with store.transaction() as session:
        assert session.get(EventRecord, first).match_status == "candidate"
