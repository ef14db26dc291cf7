"""What the database holds for a sink to be told, in order, past its cursor.

Two streams, each ordered by an id the dispatcher keeps as its cursor:

- ``events``: stored events by ``events.id`` (finished events reach the table
  through the durable outbox). Each gives an ``event`` and a ``count`` message,
  and a ``review`` request while its match is still a candidate.
- ``matches``: confirmations by ``audit_log.id`` — the ``review.confirm`` record
  whose decision made the match ``confirmed`` (written in the same transaction as
  the status). Audit ids are handed out under a lock held until commit, so they
  become visible in id order and nothing is skipped. A confirmation gives a
  ``match`` message only to a sink bound to the match's authorisation, and only
  while the match is still confirmed (not annulled or erased since).

Event ids on PostgreSQL come from a sequence: a transaction that took a lower id
may commit after a higher one. An id missing below a newer event is therefore
waited for (``GAP_WAIT``) before it is taken as rolled back and passed over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.alerts.payloads import (
    COUNT_WINDOW,
    Message,
    count_message,
    event_message,
    match_message,
    review_message,
)
from safecity.store.schema import AuditRecordRow, EventRecord, Person, Watchlist

STREAMS = ("events", "matches")
#: How long an id missing below a newer event may still be an open transaction.
GAP_WAIT = timedelta(seconds=30)
CONFIRM_ACTION = "review.confirm"


@dataclass
class Item:
    """One source row (an event, a confirmation) and what it gives this sink."""

    source_id: int
    messages: list[Message] = field(default_factory=list)


def streams_for(authorisations: list[int]) -> tuple[str, ...]:
    """A sink bound to no authorisation is never told of confirmed matches."""
    return STREAMS if authorisations else ("events",)


def head(session: Session, stream: str) -> int:
    """The newest id of the stream: where a new sink's cursor starts (alerts are from now on)."""
    column = EventRecord.id if stream == "events" else AuditRecordRow.id
    return int(session.scalar(select(func.max(column))) or 0)


def _event_id(row: AuditRecordRow) -> int | None:
    kind, _, value = row.object.partition(":")
    return int(value) if kind == "event" and value.isdigit() else None


def _confirmations(
    session: Session, after: int, limit: int | None, upto: int | None = None
) -> list[AuditRecordRow]:
    query = (
        select(AuditRecordRow)
        .where(AuditRecordRow.id > after, AuditRecordRow.action == CONFIRM_ACTION)
        .order_by(AuditRecordRow.id)
    )
    if upto is not None:
        query = query.where(AuditRecordRow.id <= upto)
    return list(session.scalars(query.limit(limit) if limit else query).all())


def _bound_match(session: Session, row: AuditRecordRow, authorisations: list[int]):
    """The confirmed event of this record if this sink may carry its identity, else None."""
    if json.loads(row.details or "{}").get("status") != "confirmed":
        return None  # a first confirmation: the match was still a candidate
    event_id = _event_id(row)
    event = session.get(EventRecord, event_id) if event_id is not None else None
    if event is None or event.match_status != "confirmed":
        return None
    if event.match_authorisation_id not in authorisations:
        return None
    return event


def pending_count(session: Session, stream: str, after: int, authorisations: list[int]) -> int:
    """How many source rows past ``after`` still have something for this sink."""
    if stream == "events":
        return int(session.scalar(select(func.count()).where(EventRecord.id > after)) or 0)
    rows = _confirmations(session, after, None)
    return sum(1 for r in rows if _bound_match(session, r, authorisations) is not None)


def _count(session: Session, event: EventRecord) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                EventRecord.camera == event.camera,
                EventRecord.label == event.label,
                EventRecord.started_at > event.ended_at - COUNT_WINDOW,
                EventRecord.started_at <= event.ended_at,
                EventRecord.id <= event.id,
            )
        )
        or 0
    )


def event_items(
    session: Session, after: int, limit: int, public_url: str, now: datetime
) -> tuple[list[Item], int]:
    """Events past ``after`` in id order, stopping at a gap younger than ``GAP_WAIT``;
    and the id the cursor may reach once they are all sent."""
    rows = session.scalars(
        select(EventRecord).where(EventRecord.id > after).order_by(EventRecord.id).limit(limit)
    ).all()
    items: list[Item] = []
    expected = after + 1
    for event in rows:
        if event.id != expected and now - event.created_at < GAP_WAIT:
            break  # an earlier id may still be committing
        messages = [event_message(event, public_url), count_message(event, _count(session, event))]
        if event.match_status == "candidate":
            messages.append(review_message(event))
        items.append(Item(event.id, messages))
        expected = event.id + 1
    return items, (items[-1].source_id if items else after)


def match_items(
    session: Session, after: int, limit: int, authorisations: list[int], public_url: str
) -> tuple[list[Item], int]:
    """Confirmations past ``after`` (those this sink may not carry give no message); and
    the id the cursor may reach once they are sent: past every other audit record too."""
    # The head first: each statement may see newer commits (read committed), and the
    # cursor must not pass a confirmation committed between the two reads.
    newest = head(session, "matches")
    rows = _confirmations(session, after, limit, upto=newest)
    watermark = rows[-1].id if len(rows) >= limit else max(after, newest)
    items: list[Item] = []
    for row in rows:
        event = _bound_match(session, row, authorisations)
        if event is None:
            items.append(Item(row.id))
            continue
        person = session.get(Person, event.match_person_id) if event.match_person_id else None
        watchlist = (
            session.get(Watchlist, event.match_watchlist_id) if event.match_watchlist_id else None
        )
        message = match_message(
            event,
            person=person.name if person else "",
            watchlist=watchlist.name if watchlist else "",
            confirmed_at=event.match_decided_at or row.at,
            public_url=public_url,
        )
        items.append(Item(row.id, [message]))
    return items, watermark
