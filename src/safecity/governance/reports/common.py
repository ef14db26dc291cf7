"""Figures both reports compute from the store: identification time, match outcomes.

Every function reads inside the caller's session and returns plain values, so
the DPIA (all time) and the transparency report (one window) count alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.errors import SafecityError
from safecity.governance.audit import AuditRecord, records_query
from safecity.store.schema import AuditRecordRow, EventRecord, IdentificationUse

OUTCOMES = ("candidate", "confirmed", "rejected", "expired", "annulled", "erased")


class ReportError(SafecityError):
    """A report cannot be produced as asked (a bad time window)."""


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` as given, or :class:`ReportError` (naive times, empty window)."""
    for name, value in (("--from", start), ("--to", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ReportError(f"{name} must be a time with a time zone, e.g. 2026-11-01T00:00Z")
    if end <= start:
        raise ReportError(
            f"the report window is empty: --to {end.isoformat()} is not after "
            f"--from {start.isoformat()}"
        )
    return start, end


def union_seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    """Seconds covered by at least one interval (overlaps counted once).

    >>> from datetime import UTC, datetime as dt
    >>> t = lambda h, m=0: dt(2026, 1, 1, h, m, tzinfo=UTC)
    >>> union_seconds([(t(8), t(9)), (t(8, 30), t(10)), (t(11), t(11, 15))])
    8100.0
    """
    total, current = 0.0, None
    for a, b in sorted((a, b) for a, b in intervals if b > a):
        if current is None or a > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = [a, b]
        else:
            current[1] = max(current[1], b)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


@dataclass(frozen=True)
class UseSpan:
    """One identification use clipped to a window (end: ``ended_at``, else last seen)."""

    camera: str
    watchlist: str
    authorisation_id: int | None
    start: datetime
    end: datetime
    open: bool  # not ended yet (or its process died): the end is its last heartbeat


def use_spans(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> list[UseSpan]:
    """Every identification use overlapping ``[start, end)``, clipped to it."""
    query = select(IdentificationUse).order_by(IdentificationUse.id)
    if end is not None:
        query = query.where(IdentificationUse.started_at < end)
    spans = []
    for use in session.scalars(query):
        stop = use.ended_at or use.last_seen_at
        a = max(use.started_at, start) if start is not None else use.started_at
        b = min(stop, end) if end is not None else stop
        if b < a or (b == a and stop > use.started_at):
            continue  # outside the window (a use of zero length inside it still counts)
        spans.append(
            UseSpan(
                use.camera, use.watchlist_name, use.authorisation_id, a, b, use.ended_at is None
            )
        )
    return spans


#: Audit actions that settle a match's outcome (a confirmation only once it is the last).
OUTCOME_ACTIONS = {
    "review.confirm": "confirmed",
    "review.reject": "rejected",
    "match.expired": "expired",
    "match.annulled": "annulled",
    "match.erased": "erased",
}


@dataclass(frozen=True)
class MatchOutcome:
    event_id: int
    camera: str
    frame_time: datetime
    outcome: str  # one of OUTCOMES


def match_outcomes(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> list[MatchOutcome]:
    """Every match made (by frame time) in ``[start, end)`` and its outcome now.

    Read from the audit trail (``match`` records and the decisions on each
    event), not from event rows: retention deletes those after 30 days, the
    trail keeps its records for years, so a past period's figures do not drift.
    """
    made: dict[int, tuple[str, datetime]] = {}
    for obj, details in session.execute(
        select(AuditRecordRow.object, AuditRecordRow.details).where(
            AuditRecordRow.action == "match"
        )
    ):
        d = json.loads(details)
        at = datetime.fromisoformat(d["frame_time"])
        if (start is None or at >= start) and (end is None or at < end):
            made[_event_id(obj)] = (str(d.get("camera", "")), at)
    outcome: dict[int, str] = {}
    for obj, action, details in session.execute(
        select(AuditRecordRow.object, AuditRecordRow.action, AuditRecordRow.details)
        .where(AuditRecordRow.action.in_(list(OUTCOME_ACTIONS)))
        .order_by(AuditRecordRow.id)
    ):
        event_id = _event_id(obj)
        if event_id not in made:
            continue
        if action == "review.confirm" and json.loads(details).get("status") != "confirmed":
            continue  # one confirmation of several: still a candidate
        outcome[event_id] = OUTCOME_ACTIONS[action]
    return [
        MatchOutcome(event_id, camera, at, outcome.get(event_id, "candidate"))
        for event_id, (camera, at) in sorted(made.items())
    ]


def _event_id(obj: str) -> int:
    try:
        return int(obj.split(":", 1)[1])
    except (IndexError, ValueError):
        return -1


def match_counts(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> dict[tuple[str, str], int]:
    """``{(camera, outcome): n}`` of the matches :func:`match_outcomes` finds."""
    counts: dict[tuple[str, str], int] = {}
    for m in match_outcomes(session, start, end):
        counts[(m.camera, m.outcome)] = counts.get((m.camera, m.outcome), 0) + 1
    return counts


def event_counts(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> dict[str, int]:
    """``{camera: n}`` of every event (matched or not) started in ``[start, end)``."""
    query = select(EventRecord.camera, func.count(EventRecord.id))
    query = _bounded(query, EventRecord.started_at, start, end).group_by(EventRecord.camera)
    return {camera: int(n) for camera, n in session.execute(query)}


def false_match_rate(confirmed: int, rejected: int) -> float | None:
    """Observed false-match rate: rejected / decided (None when nothing was decided).

    >>> false_match_rate(3, 1), false_match_rate(0, 0)
    (0.25, None)
    """
    decided = confirmed + rejected
    return rejected / decided if decided else None


def audit_items(
    session: Session,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    action: str | None = None,
    purpose: str | None = None,
) -> list[AuditRecord]:
    """Audit records (oldest first) in ``[start, end)`` of one action and/or purpose, unpaged."""
    query = records_query(since=start, until=end, action=action, purpose=purpose)
    return [AuditRecord.from_row(row) for row in session.scalars(query.order_by(AuditRecordRow.id))]


def jsonable(value: Any) -> Any:
    """Dataclass fields (after ``asdict``) as JSON values: times in ISO 8601."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _bounded(query, column, start: datetime | None, end: datetime | None):
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column < end)
    return query
