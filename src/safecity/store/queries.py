"""Reading events back: filters, paging, and the matched person's names joined in.

>>> rows = list_events(store, camera="gate-1", label="person", since=yesterday)  # doctest: +SKIP
>>> rows[0].person_name, rows[0].snapshot_file  # doctest: +SKIP
('Jane Doe', PosixPath('/var/lib/safecity/media/gate-1/2024-05-01/3f2a….jpg'))
"""

from __future__ import annotations

import string
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, literal, select, tuple_, union_all

from safecity.events import PLATE_TEXT_MAX, plate_key
from safecity.store.db import Store, StoreError
from safecity.store.schema import EventRecord, Person, Review, UTCDateTime, Watchlist

MAX_LIMIT = 10_000


class QueryError(StoreError):
    """A query's arguments are invalid (negative offset, naive time …)."""


@dataclass(frozen=True)
class EventRow:
    """One stored event as a plain value (JSON-ready with ``dataclasses.asdict``)."""

    id: int
    uuid: str
    camera: str
    track_id: int
    label: str
    started_at: datetime
    ended_at: datetime
    best_score: float
    frames: int
    snapshot_path: str | None  # relative to the media folder
    snapshot_file: Path | None  # absolute
    match_snapshot_path: str | None
    person_id: int | None
    person_name: str | None
    watchlist_id: int | None
    watchlist_name: str | None
    match_score: float | None
    match_margin: float | None
    created_at: datetime
    match_status: str | None = None  # candidate (awaiting review) | confirmed | rejected | annulled
    face_only: bool = False  # seen by the face only: the object detector missed the body
    plate_text: str | None = None  # a vehicle's licence plate, normalised (BA123XY)
    plate_confidence: float | None = None
    plate_crop_path: str | None = None  # relative to the media folder


#: The characters a normalised plate is made of (what a one-edit neighbour may hold).
PLATE_ALPHABET = string.ascii_uppercase + string.digits


def plate_query(text: str) -> str:
    """A plate search's text, normalised as plates are stored; refuses one with nothing left.

    >>> plate_query(" ba-123 xy ")
    'BA123XY'
    """
    key = plate_key(text)
    if not key:
        raise QueryError(f"plate {text!r} has no letters or digits to search for")
    if len(key) > PLATE_TEXT_MAX:
        raise QueryError(f"plate {text!r} is longer than any plate ({PLATE_TEXT_MAX} characters)")
    return key


def plate_neighbours(key: str) -> set[str]:
    """Every plate at most one edit (a letter or digit changed, added or left out) from ``key``.

    Fuzzy search looks these up in the plate index rather than scoring every stored
    plate: at most 72 n + 37 strings for a plate of n characters (541 for 7), an
    indexed ``IN``.

    >>> {"AB", "A", "XAB", "AXB", "ABX", "XB", "AX"} <= plate_neighbours("AB")
    True
    >>> {"BA", "ABCD", "XY"} & plate_neighbours("AB")
    set()
    >>> len(plate_neighbours("BA123XY")) <= 72 * 7 + 37, "BA123XY" in plate_neighbours("BA123XY")
    (True, True)
    """
    found = {key}
    for i in range(len(key) + 1):
        for c in PLATE_ALPHABET:
            found.add(key[:i] + c + key[i:])  # one added
            if i < len(key):
                found.add(key[:i] + c + key[i + 1 :])  # one changed
        if i < len(key):
            found.add(key[:i] + key[i + 1 :])  # one left out
    found.discard("")
    return {p for p in found if len(p) <= PLATE_TEXT_MAX}


def _check_time(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise QueryError(f"{name} must be a timezone-aware time, e.g. 2024-05-01T12:00:00+00:00")


def _filtered(
    query: Select[Any],
    *,
    camera: str | None,
    label: str | None,
    since: datetime | None,
    until: datetime | None,
    person: int | str | None,
    watchlist: str | None,
    matched: bool | None,
    ids: Sequence[int] | None,
    cameras: Collection[str] | None = None,
    status: str | None = None,
    plate: str | None = None,
    fuzzy: bool = False,
) -> Select[Any]:
    _check_time("since", since)
    if plate is not None:
        key = plate_query(plate)
        if fuzzy:
            query = query.where(EventRecord.plate_text.in_(sorted(plate_neighbours(key))))
        else:
            query = query.where(EventRecord.plate_text == key)
    _check_time("until", until)
    if camera is not None:
        query = query.where(EventRecord.camera == camera)
    if cameras is not None:
        query = query.where(EventRecord.camera.in_(sorted(cameras)))
    if status is not None:
        query = query.where(EventRecord.match_status == status)
    if label is not None:
        query = query.where(EventRecord.label == label)
    if since is not None:
        query = query.where(EventRecord.started_at >= since)
    if until is not None:
        query = query.where(EventRecord.started_at < until)
    if isinstance(person, int):
        query = query.where(EventRecord.match_person_id == person)
    elif person is not None:
        query = query.where(Person.name == person)
    if watchlist is not None:
        query = query.where(Watchlist.name == watchlist)
    if matched is not None:
        has_match = EventRecord.match_person_id.is_not(None)
        query = query.where(has_match if matched else EventRecord.match_person_id.is_(None))
    if ids is not None:
        query = query.where(EventRecord.id.in_([int(i) for i in ids]))
    return query


def _joined(query: Select[Any]) -> Select[Any]:
    return query.outerjoin(Person, EventRecord.match_person_id == Person.id).outerjoin(
        Watchlist, EventRecord.match_watchlist_id == Watchlist.id
    )


def _keyset(query: Select[Any], before: tuple[datetime, int] | None) -> Select[Any]:
    """Keep the events after ``before`` = ``(started_at, id)`` in newest-first order."""
    if before is None:
        return query
    at, last_id = before
    _check_time("before", at)
    key = tuple_(literal(at, UTCDateTime()), literal(int(last_id)))
    return query.where(tuple_(EventRecord.started_at, EventRecord.id) < key)


def list_events(
    store: Store,
    camera: str | None = None,
    label: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    person: int | str | None = None,
    *,
    watchlist: str | None = None,
    matched: bool | None = None,
    ids: Sequence[int] | None = None,
    cameras: Collection[str] | None = None,
    status: str | None = None,
    plate: str | None = None,
    fuzzy: bool = False,
    before: tuple[datetime, int] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[EventRow]:
    """Events newest first (by start time, then id), filtered and paged.

    ``since``/``until`` bound the start time (``since <= started_at < until``);
    ``person`` is a person id or name; ``matched`` keeps only events with (True)
    or without (False) a match; ``ids`` keeps the given event ids; ``cameras``
    keeps events of those cameras only (a user's grants; empty: none);
    ``status`` keeps one match status (``candidate``, ``confirmed`` …);
    ``plate`` keeps vehicles whose plate reads as that text once normalised
    (:func:`plate_query`), or with ``fuzzy`` one edit away from it at most.

    ``before`` pages by key instead of offset: pass ``(started_at, id)`` of the
    last event of the previous page to get the events after it in this order.
    It costs the same on every page (an index range), where an offset makes
    the database walk all the skipped rows.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise QueryError(f"offset must be 0 or more, got {offset}")
    filters: dict[str, Any] = {
        "label": label,
        "since": since,
        "until": until,
        "person": person,
        "watchlist": watchlist,
        "matched": matched,
        "ids": ids,
        "status": status,
        "plate": plate,
        "fuzzy": fuzzy,
    }
    newest_first = (EventRecord.started_at.desc(), EventRecord.id.desc())
    if camera is None and cameras is not None and len(cameras) > 1:
        # One index range per camera, merged: an IN over several cameras would make
        # the database sort every event of those cameras to find the newest few.
        parts = [
            _keyset(_filtered(_joined(select(EventRecord.id)), camera=name, **filters), before)
            .order_by(*newest_first)
            .limit(limit + offset)
            .subquery()
            for name in sorted(set(cameras))
        ]
        picked = union_all(*(select(part.c.id) for part in parts)).subquery()
        query = _joined(
            select(EventRecord, Person.name, Watchlist.name).join(
                picked, picked.c.id == EventRecord.id
            )
        )
    else:
        query = _keyset(
            _filtered(
                _joined(select(EventRecord, Person.name, Watchlist.name)),
                camera=camera,
                cameras=cameras,
                **filters,
            ),
            before,
        )
    query = query.order_by(*newest_first).limit(limit).offset(offset)
    with store.transaction() as session:
        found = session.execute(query).all()
    return [
        _row(store, record, person_name, watchlist_name)
        for record, person_name, watchlist_name in found
    ]


def count_events(
    store: Store,
    camera: str | None = None,
    label: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    person: int | str | None = None,
    *,
    watchlist: str | None = None,
    matched: bool | None = None,
    cameras: Collection[str] | None = None,
    status: str | None = None,
    plate: str | None = None,
    fuzzy: bool = False,
) -> int:
    """How many events :func:`list_events` would find without paging."""
    query = _filtered(
        _joined(select(func.count(EventRecord.id))),
        camera=camera,
        label=label,
        since=since,
        until=until,
        person=person,
        watchlist=watchlist,
        matched=matched,
        ids=None,
        cameras=cameras,
        status=status,
        plate=plate,
        fuzzy=fuzzy,
    )
    with store.transaction() as session:
        return int(session.execute(query).scalar_one())


def get_event(store: Store, event_id: int) -> EventRow | None:
    """One event by id, or None."""
    rows = list_events(store, ids=[event_id], limit=1)
    return rows[0] if rows else None


def events_after(
    store: Store, after_id: int, *, cameras: Collection[str] | None = None, limit: int = 100
) -> list[EventRow]:
    """Events stored after event ``after_id`` (id order, oldest first): what is new.

    ``cameras`` keeps those cameras' events only (None: all). For a live feed:
    remember the last id seen and ask again.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    query = _joined(select(EventRecord, Person.name, Watchlist.name)).where(
        EventRecord.id > int(after_id)
    )
    if cameras is not None:
        query = query.where(EventRecord.camera.in_(sorted(cameras)))
    # A range of the primary key: SQLite would otherwise pick the camera index and
    # sort every event of the camera (it keeps no statistics to know better).
    query = query.with_hint(EventRecord, "NOT INDEXED", "sqlite")
    query = query.order_by(EventRecord.id).limit(limit)
    with store.transaction() as session:
        found = session.execute(query).all()
    return [_row(store, record, person, watchlist) for record, person, watchlist in found]


def latest_event_id(store: Store) -> int:
    """The id of the newest stored event, 0 when there is none."""
    with store.transaction() as session:
        return int(session.execute(select(func.max(EventRecord.id))).scalar_one() or 0)


@dataclass(frozen=True)
class ReviewRow:
    """One reviewer's decision on an event's match."""

    event_id: int
    reviewer: str
    decision: str  # confirm | reject
    note: str
    at: datetime


def event_reviews(store: Store, event_ids: Collection[int]) -> dict[int, list[ReviewRow]]:
    """The review decisions of each of ``event_ids``, oldest first (absent: none)."""
    ids = sorted({int(i) for i in event_ids})
    if not ids:
        return {}
    query = select(Review).where(Review.event_id.in_(ids)).order_by(Review.created_at, Review.id)
    found: dict[int, list[ReviewRow]] = {}
    with store.transaction() as session:
        for r in session.scalars(query):
            row = ReviewRow(r.event_id, r.reviewer, r.decision, r.note, r.created_at)
            found.setdefault(r.event_id, []).append(row)
    return found


def match_authorisation(store: Store, event_id: int) -> int | None:
    """The authorisation an event's match was made under, or None."""
    query = select(EventRecord.match_authorisation_id).where(EventRecord.id == int(event_id))
    with store.transaction() as session:
        return session.execute(query).scalar_one_or_none()


def _row(
    store: Store, record: EventRecord, person_name: str | None, watchlist_name: str | None
) -> EventRow:
    return EventRow(
        id=record.id,
        uuid=record.uuid,
        camera=record.camera,
        track_id=record.track_id,
        label=record.label,
        started_at=record.started_at,
        ended_at=record.ended_at,
        best_score=record.best_score,
        frames=record.frames,
        snapshot_path=record.snapshot_path,
        snapshot_file=store.media.path(record.snapshot_path) if record.snapshot_path else None,
        match_snapshot_path=record.match_snapshot_path,
        person_id=record.match_person_id,
        person_name=person_name,
        watchlist_id=record.match_watchlist_id,
        watchlist_name=watchlist_name,
        match_score=record.match_score,
        match_margin=record.match_margin,
        created_at=record.created_at,
        match_status=record.match_status,
        face_only=bool(record.face_only),
        plate_text=record.plate_text,
        plate_confidence=record.plate_confidence,
        plate_crop_path=record.plate_crop_path,
    )
