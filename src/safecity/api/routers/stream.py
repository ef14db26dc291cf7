"""Server-Sent Events: new events, camera health and the review queue, as they change.

``GET /stream`` keeps the response open and sends:

- ``event: event`` (``id:`` the event's id, ``data:`` the Event JSON) for each new
  event on the user's cameras, without its match for roles that may not see
  faces; a reconnecting browser sends ``Last-Event-ID`` and resumes after it,
  but a resume replays at most the newest :data:`REPLAY_EVENTS` events of the
  user's cameras that started within :data:`REPLAY_WINDOW` (whichever is fewer),
  so ``Last-Event-ID: 0`` is not a way to read every past match;
- ``event: health`` (``data:`` the list of Health) every :data:`HEALTH_S`;
- ``event: review`` (``data: {"candidates": n}``) when the number of candidate
  matches on the user's cameras changes, for roles that review;
- a comment line every :data:`HEARTBEAT_S`, so proxies keep the connection open.

Who matched is personal data: whenever frames show a matched person (to roles
that see faces), an audit record ``stream.matches`` with those event ids is
written before they are sent (``first``: the stream's first such record;
``replay``: sent on a resume). One per poll that shows any, none for streams
that show none.

The database is polled every :data:`POLL_S` in a worker thread. The stream ends
when the client goes away, or when its user is signed out, disabled or changes
password (checked every :data:`RECHECK_S`, so within about two seconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from safecity.access.roles import Permission, Principal
from safecity.api.context import ApiContext
from safecity.api.deps import Context, parse_id, require, still_signed_in
from safecity.api.routers.cameras import health_list
from safecity.api.routers.events import events_out
from safecity.governance.audit import record
from safecity.store.db import StoreError
from safecity.store.queries import count_events, events_after, latest_event_id, list_events

log = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])
Viewer = Annotated[Principal, Depends(require(Permission.VIEW_CAMERAS))]

POLL_S = 1.0  # how often the database is asked for new events
HEALTH_S = 2.0  # how often the health list is sent
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing the stream
RECHECK_S = 1.0  # how often the user's session (and grants) are checked again
RETRY_MS = 3000  # the browser's reconnection delay
BATCH = 200  # events read per poll at most (the rest come on the next one)
REPLAY_EVENTS = 100  # a resume replays at most this many past events …
REPLAY_WINDOW = timedelta(hours=1)  # … and none that started longer ago than this


def sse(kind: str, data: object, event_id: int | None = None) -> bytes:
    """One Server-Sent Event (``data`` as one line of JSON).

    >>> sse("review", {"candidates": 2}, None)
    b'event: review\\ndata: {"candidates": 2}\\n\\n'
    """
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class _Poll:
    events: list[dict]
    last_id: int
    health: list[dict] | None
    candidates: int | None


@dataclass
class _Shown:
    """The audit records of one stream: written before the identities they list are sent."""

    records: int = 0

    def note(self, ctx: ApiContext, user: Principal, events: list[dict], replay: bool) -> None:
        ids = [e["id"] for e in events if e["match"] and e["match"]["person_id"] is not None]
        if not ids:
            return
        record(
            ctx.store,
            actor=user.username,
            action="stream.matches",
            object="events",
            details={"events": ids, "first": self.records == 0, "replay": replay},
            clock=ctx.clock,
        )
        self.records += 1


def _replay(
    ctx: ApiContext, user: Principal, after_id: int, upto: int, shown: _Shown
) -> list[dict]:  # blocking: runs in a worker thread
    """The events after ``after_id`` up to ``upto`` a resume sends, oldest first: only the
    newest :data:`REPLAY_EVENTS` of the user's cameras started within :data:`REPLAY_WINDOW`."""
    since = ctx.clock.now() - REPLAY_WINDOW
    rows = list_events(ctx.store, since=since, cameras=user.camera_filter(), limit=REPLAY_EVENTS)
    rows = sorted((r for r in rows if after_id < r.id <= upto), key=lambda r: r.id)
    events = [e.model_dump(mode="json") for e in events_out(ctx, user, rows)]
    shown.note(ctx, user, events, replay=True)
    return events


def _poll(
    ctx: ApiContext, user: Principal, after_id: int, want_health: bool, shown: _Shown
) -> _Poll:  # blocking: runs in a worker thread
    cameras = user.camera_filter()
    rows = events_after(ctx.store, after_id, cameras=cameras, limit=BATCH)
    events = [e.model_dump(mode="json") for e in events_out(ctx, user, rows)]
    shown.note(ctx, user, events, replay=False)  # on record before they are sent
    health = None
    if want_health:
        health = [h.model_dump(mode="json") for h in health_list(ctx, user)]
    candidates = None
    if user.can(Permission.REVIEW):
        candidates = count_events(ctx.store, status="candidate", cameras=cameras)
    return _Poll(events, rows[-1].id if rows else after_id, health, candidates)


def _resume_from(header: str | None) -> int | None:
    return parse_id(header)  # ASCII digits within 64 bits ("²".isdigit() is true)


async def _stream(
    request: Request, ctx: ApiContext, user: Principal, after_id: int, resume: int | None
) -> AsyncIterator[bytes]:
    """Events after ``after_id`` as they come; with ``resume`` (below ``after_id``) first
    the bounded replay of those between the two."""
    loop = asyncio.get_running_loop()
    shown = _Shown()
    yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
    if resume is not None and resume < after_id:
        try:
            replayed = await run_in_threadpool(_replay, ctx, user, resume, after_id, shown)
        except StoreError as error:
            log.warning("event stream of %s: %s", user.username, error)
            yield b": the database is unavailable; nothing replayed\n\n"
        else:
            for event in replayed:
                yield sse("event", event, event["id"])
    next_health = next_beat = next_check = loop.time()
    next_beat += HEARTBEAT_S
    next_check += RECHECK_S
    candidates: int | None = None
    while not await request.is_disconnected():
        now = loop.time()
        if now >= next_check:
            next_check = now + RECHECK_S
            found = await still_signed_in(request)
            if found is None or not found.can(Permission.VIEW_CAMERAS):
                yield b": signed out\n\n"
                return
            user = found  # grants may have changed
        want_health = now >= next_health
        try:
            poll = await run_in_threadpool(_poll, ctx, user, after_id, want_health, shown)
        except StoreError as error:
            log.warning("event stream of %s: %s", user.username, error)
            yield b": the database is unavailable; retrying\n\n"
        else:
            for event in poll.events:
                yield sse("event", event, event["id"])
            after_id = poll.last_id
            if poll.health is not None:
                next_health = now + HEALTH_S
                yield sse("health", poll.health)
            if poll.candidates is not None and poll.candidates != candidates:
                candidates = poll.candidates
                yield sse("review", {"candidates": candidates})
        if loop.time() >= next_beat:
            next_beat = loop.time() + HEARTBEAT_S
            yield b": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless stream"}},
)
async def stream(
    request: Request,
    user: Viewer,
    ctx: Context,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="resume after this event id (browsers send it)"),
    ] = None,
) -> StreamingResponse:
    """Live updates for the console: new events, health, the review queue's size."""
    latest = await run_in_threadpool(latest_event_id, ctx.store)
    resume = _resume_from(last_event_id)
    return StreamingResponse(
        _stream(request, ctx, user, latest, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
