"""Events: the list (filtered, newest first, paged by key), one event, its snapshots.

Every role sees the events of its granted cameras; only roles that see faces see
who matched (a viewer gets ``match: null``, no reviews, and snapshots with every
face pixelated). A search by person is audited, like ``safecity events --person``,
and so is every page or event that shows who matched.

A licence plate is an identity too: only roles that see faces see a vehicle's
plate (text and crop) or search by it (``plate=``, exact or with ``fuzzy=true``
one character off), and every plate search is audited with the plate searched.

A viewer cannot tell a matched event from an ordinary one: viewers see the stored
snapshot of any event only while an ordinary event keeps one
(``retention.snapshots_h`` after it started), though a confirmed match keeps
its images longer; a rejected match keeps its snapshot, with the formerly
matched person pixelated, as an ordinary event does
(:func:`safecity.governance.evidence.reject_match`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi import Path as PathParam

from safecity.access.roles import Permission, Principal
from safecity.api.context import ApiContext
from safecity.api.deps import Context, Page, check_camera, parse_id, require
from safecity.api.errors import NotFound
from safecity.api.imaging import viewer_snapshot
from safecity.api.schemas.common import JPEG_RESPONSE
from safecity.api.schemas.common import Page as PageOf
from safecity.api.schemas.events import (
    Event,
    EventDetail,
    EventReview,
    Match,
    MatchStatus,
    Plate,
)
from safecity.governance.audit import record
from safecity.store.queries import (
    EventRow,
    QueryError,
    event_reviews,
    get_event,
    list_events,
    match_authorisation,
    plate_query,
)

router = APIRouter(tags=["events"])
Viewer = Annotated[Principal, Depends(require(Permission.VIEW_CAMERAS))]
FaceSeer = Annotated[Principal, Depends(require(Permission.SEE_FACES))]
EventId = Annotated[int, PathParam(ge=1, le=2**53)]

# The cursor is the last event's start time (microseconds since year 1, 18 digits)
# followed by its id: digits only, and the next page starts right after it.
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_TIME_DIGITS = 18
_MICROSECOND = timedelta(microseconds=1)


def encode_cursor(row: EventRow) -> str:
    """An opaque cursor pointing just after ``row`` in newest-first order.

    >>> from types import SimpleNamespace as Row
    >>> at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    >>> text = encode_cursor(Row(started_at=at, id=42))
    >>> text, decode_cursor(text) == (at, 42)
    ('06391323360000000042', True)
    """
    micros = (row.started_at - _EPOCH) // _MICROSECOND
    return f"{micros:0{_TIME_DIGITS}d}{row.id}"


def decode_cursor(text: str) -> tuple[datetime, int]:
    if len(text) <= _TIME_DIGITS or not text.isdigit() or parse_id(text[_TIME_DIGITS:]) is None:
        raise HTTPException(400, "the cursor is not valid; start again from the first page")
    try:
        at = _EPOCH + int(text[:_TIME_DIGITS]) * _MICROSECOND
    except OverflowError:
        raise HTTPException(
            400, "the cursor is not valid; start again from the first page"
        ) from None
    return at, int(text[_TIME_DIGITS:])


def _aware(name: str, value: datetime | None) -> datetime | None:
    """``value`` in UTC; 422 for a time without a time zone (its meaning is unknown)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise HTTPException(
            422, f"{name} needs a time zone, e.g. 2026-05-01T12:00:00Z or 2026-05-01T14:00:00+02:00"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise HTTPException(422, f"{name} is out of range") from None


def _refuse_identities(user: Principal, what: str) -> None:
    if not user.can(Permission.SEE_FACES):
        raise HTTPException(
            403,
            f"your role ({user.role.value}) may not {Permission.SEE_FACES.value}, "
            f"so it cannot filter events by {what}",
        )


def confirmations(ctx: ApiContext, rows: list[EventRow]) -> dict[int, int]:
    """How many reviewers confirmed each matched event of ``rows``."""
    matched = [r.id for r in rows if r.match_status is not None]
    reviews = event_reviews(ctx.store, matched) if matched else {}
    return {i: sum(r.decision == "confirm" for r in found) for i, found in reviews.items()}


def _snapshot_cutoff(ctx: ApiContext) -> datetime:
    """Events that started before this keep no ordinary snapshot (retention)."""
    return ctx.clock.now() - timedelta(hours=ctx.config.retention.snapshots_h)


def viewer_snapshot_shown(row: EventRow, cutoff: datetime) -> bool:
    """Whether a viewer sees the event's snapshot: the stored one, while an ordinary
    event of its age would still have one."""
    return row.snapshot_path is not None and row.started_at >= cutoff


def plate_out(row: EventRow) -> Plate | None:
    """The event's plate as the API shows it (to roles that see identities)."""
    if row.plate_text is None:
        return None
    return Plate(
        text=row.plate_text,
        confidence=row.plate_confidence or 0.0,
        crop=row.plate_crop_path is not None,
    )


def event_out(
    row: EventRow, user: Principal, confirmed: int, required: int, cutoff: datetime
) -> Event:
    """The API's view of ``row`` for ``user``: no match for roles that may not see faces."""
    match = None
    if row.match_status is not None and user.can(Permission.SEE_FACES):
        match = Match(
            person_id=row.person_id,
            person=row.person_name,
            watchlist_id=row.watchlist_id,
            watchlist=row.watchlist_name,
            score=row.match_score,
            status=row.match_status,
            confirmations=confirmed,
            required=required,
        )
    return Event(
        id=row.id,
        camera=row.camera,
        label=row.label,
        track_id=row.track_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        frames=row.frames,
        best_score=row.best_score,
        face_only=row.face_only,
        plate=plate_out(row) if user.can(Permission.SEE_FACES) else None,
        snapshot=row.snapshot_path is not None
        if user.can(Permission.SEE_FACES)
        else viewer_snapshot_shown(row, cutoff),
        match=match,
    )


def events_out(ctx: ApiContext, user: Principal, rows: list[EventRow]) -> list[Event]:
    """Many rows at once (one query for their confirmations; blocking)."""
    counts = confirmations(ctx, rows) if user.can(Permission.SEE_FACES) else {}
    required, cutoff = ctx.config.review.required_confirmations, _snapshot_cutoff(ctx)
    return [event_out(r, user, counts.get(r.id, 0), required, cutoff) for r in rows]


@router.get("/events", response_model=PageOf[Event])
def events(
    user: Viewer,
    ctx: Context,
    page: Page,
    camera: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    label: Annotated[str | None, Query(min_length=1, max_length=64, examples=["person"])] = None,
    since: Annotated[
        datetime | None, Query(description="started at or after (ISO 8601 with a time zone)")
    ] = None,
    until: Annotated[datetime | None, Query(description="started before (ISO 8601)")] = None,
    person: Annotated[
        str | None, Query(min_length=1, max_length=256, description="matched person: name or id")
    ] = None,
    status: Annotated[MatchStatus | None, Query(description="match status")] = None,
    plate: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="licence plate; spaces, dashes and case ignored",
            examples=["BA-123 XY"],
        ),
    ] = None,
    fuzzy: Annotated[
        bool, Query(description="with plate: also plates one character off (OCR misreads)")
    ] = False,
) -> PageOf[Event]:
    """Events of your cameras, newest first; pass ``next_cursor`` back as ``cursor``."""
    since, until = _aware("since", since), _aware("until", until)
    if person is not None:
        _refuse_identities(user, "person")
    if plate is not None:
        _refuse_identities(user, "plate")
        try:
            plate = plate_query(plate)
        except QueryError as error:
            raise HTTPException(422, str(error)) from None
    elif fuzzy:
        raise HTTPException(422, "fuzzy widens a plate search; give plate too")
    if status is not None:
        _refuse_identities(user, "match status")
    cameras = user.camera_filter()
    if camera is not None:
        check_camera(user, camera)
        cameras = None
    who: int | str | None = person
    if person is not None and parse_id(person) is not None:
        who = parse_id(person)  # a person id; a name otherwise
    rows = list_events(
        ctx.store,
        camera=camera,
        label=label,
        since=since,
        until=until,
        person=who,
        status=status,
        plate=plate,
        fuzzy=fuzzy,
        cameras=cameras,
        before=decode_cursor(page.cursor) if page.cursor else None,
        limit=page.limit + 1,  # one more tells whether there is a next page
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    shown = sum(1 for r in rows if r.person_id is not None) if user.can(Permission.SEE_FACES) else 0
    if person is not None or plate is not None or status is not None or shown:
        # Looking for a person or a plate, or being shown who matched, is an audited use
        # of personal data (as `safecity events` is); plain pages of unmatched events are not.
        filters = {"camera": camera, "label": label, "person": person, "status": status}
        filters |= {"plate": plate, "fuzzy": fuzzy or None}
        filters |= {"since": since and since.isoformat(), "until": until and until.isoformat()}
        record(
            ctx.store,
            actor=user.username,
            action="search.events",
            object="events",
            details={
                "filters": {k: v for k, v in filters.items() if v is not None},
                "page": bool(page.cursor),
                "found": len(rows),
                "matches_shown": shown,
            },
            clock=ctx.clock,
        )
    return PageOf[Event](
        items=events_out(ctx, user, rows),
        next_cursor=encode_cursor(rows[-1]) if more else None,
    )


def visible_event(ctx: ApiContext, user: Principal, event_id: int) -> EventRow:
    """The event, or 404 when it does not exist or is on a camera not granted to ``user``."""
    row = get_event(ctx.store, event_id)
    if row is None or not user.sees_camera(row.camera):
        raise NotFound(f"no event {event_id}")
    return row


@router.get("/events/{event_id}", response_model=EventDetail)
def event(event_id: EventId, user: Viewer, ctx: Context) -> EventDetail:
    """One event; with its review decisions for roles that see identities."""
    row = visible_event(ctx, user, event_id)
    base = events_out(ctx, user, [row])[0]
    if not user.can(Permission.SEE_FACES):
        return EventDetail(
            **base.model_dump(), reviews=[], authorisation_id=None, match_snapshot=False
        )
    reviews = event_reviews(ctx.store, [row.id]).get(row.id, [])
    if row.person_id is not None:
        # Who matched, shown: on record, as a page of the list showing it is.
        record(
            ctx.store,
            actor=user.username,
            action="view.event",
            object=f"event:{event_id}",
            details={"person_id": row.person_id, "status": row.match_status},
            clock=ctx.clock,
        )
    return EventDetail(
        **base.model_dump(),
        reviews=[EventReview(reviewer=r.reviewer, decision=r.decision, at=r.at) for r in reviews],
        authorisation_id=match_authorisation(ctx.store, row.id)
        if row.match_status is not None
        else None,
        match_snapshot=row.match_snapshot_path is not None,
    )


def _gone(event_id: int, what: str) -> NotFound:
    return NotFound(
        f"the {what} of event {event_id} is no longer stored (retention may have removed it)"
    )


def _read(ctx: ApiContext, relative: str, event_id: int, what: str) -> bytes:
    try:
        return ctx.store.media.path(relative).read_bytes()
    except (OSError, ValueError):
        raise _gone(event_id, what) from None


@router.get("/events/{event_id}/snapshot.jpg", response_class=Response, responses=JPEG_RESPONSE)
def snapshot(event_id: EventId, user: Viewer, ctx: Context) -> Response:
    """The event's snapshot; for roles that may not see faces, with every face pixelated."""
    row = visible_event(ctx, user, event_id)
    if row.snapshot_path is None:
        raise _gone(event_id, "snapshot")
    if not user.can(Permission.SEE_FACES) and not viewer_snapshot_shown(row, _snapshot_cutoff(ctx)):
        raise _gone(event_id, "snapshot")  # as for any event of its age
    if user.can(Permission.SEE_FACES):
        data = _read(ctx, row.snapshot_path, event_id, "snapshot")
    else:
        data = _for_viewer(ctx, row, event_id)
    return Response(data, media_type="image/jpeg")


def _for_viewer(ctx: ApiContext, row: EventRow, event_id: int) -> bytes:
    assert row.snapshot_path is not None
    try:
        path = ctx.store.media.path(row.snapshot_path)
        redactor = ctx.model("redactor")
        return viewer_snapshot(path, redactor)
    except (OSError, ValueError):
        raise _gone(event_id, "snapshot") from None


@router.get("/events/{event_id}/plate.jpg", response_class=Response, responses=JPEG_RESPONSE)
def plate_crop(event_id: EventId, user: FaceSeer, ctx: Context) -> Response:
    """The vehicle's licence plate as read (an identity: not for viewers)."""
    row = visible_event(ctx, user, event_id)
    if row.plate_crop_path is None:
        raise _gone(event_id, "plate image")
    return Response(
        _read(ctx, row.plate_crop_path, event_id, "plate image"), media_type="image/jpeg"
    )


@router.get("/events/{event_id}/match.jpg", response_class=Response, responses=JPEG_RESPONSE)
def match_snapshot(event_id: EventId, user: FaceSeer, ctx: Context) -> Response:
    """The frame crop the match was made on (the matched face unpixelated); not for viewers."""
    row = visible_event(ctx, user, event_id)
    if row.match_snapshot_path is None:
        raise _gone(event_id, "match snapshot")
    data = _read(ctx, row.match_snapshot_path, event_id, "match snapshot")
    # The unpixelated face of a matched person: every look at it is on record.
    record(
        ctx.store,
        actor=user.username,
        action="view.match_snapshot",
        object=f"event:{event_id}",
        clock=ctx.clock,
    )
    return Response(data, media_type="image/jpeg")
