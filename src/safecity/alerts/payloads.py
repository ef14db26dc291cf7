"""What an alert says: the messages built from stored events and confirmed matches.

Every message is a JSON object with a stable ``message_id`` (``<event uuid>:<kind>``),
so a receiver that sees one twice (delivery is at least once) drops the copy.
Nothing here ever reads a face vector or an image: an event is announced with a
link to its snapshot on the API (which checks who asks), never with its bytes.

Who may learn what (DESIGN.md invariants; README "### Alerts"):

- ``event``: any finished object event, in Frigate's ``type: "end"`` shape —
  safecity stores an event when its track ends, so there is no new/update.
  It says nothing about a match.
- ``count``: (MQTT only) how many events of that label the camera stored that
  started in the hour before this one ended, retained like Frigate's counts.
- ``review``: a match waits for review: camera and event only — no name, person,
  score or watchlist.
- ``match``: a confirmed match with the person's name and watchlist, built only
  for sinks that list the match's authorisation (the dispatcher checks it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from safecity.store.schema import EventRecord

#: The API route of an event's snapshot (safecity.api.routers.events, under /api/v1).
SNAPSHOT_ROUTE = "/api/v1/events/{event_id}/snapshot.jpg"
#: The window of the per camera and label count.
COUNT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Message:
    """One alert: ``topic`` is relative to a sink's prefix (MQTT); webhooks get ``kind``."""

    message_id: str
    kind: str  # event | count | review | match | test
    topic: str
    body: dict[str, Any]
    retain: bool = False
    mqtt_only: bool = False
    identity: dict[str, Any] | None = field(default=None, compare=False)  # for the audit

    def json(self) -> str:
        """The body as sent: compact, keys sorted (what a webhook signature covers)."""
        return json.dumps(self.body, sort_keys=True, separators=(",", ":"), default=str)


def snapshot_url(public_url: str, event: EventRecord) -> str | None:
    """Where the API serves this event's snapshot (None without one)."""
    if event.snapshot_path is None:
        return None
    return public_url.rstrip("/") + SNAPSHOT_ROUTE.format(event_id=event.id)


def _frigate_event(event: EventRecord, public_url: str) -> dict[str, Any]:
    return {
        "id": event.uuid,
        "event_id": event.id,
        "camera": event.camera,
        "label": event.label,
        "sub_label": None,
        "track_id": event.track_id,
        "start_time": event.started_at.timestamp(),
        "end_time": event.ended_at.timestamp(),
        "started_at": event.started_at.isoformat(),
        "ended_at": event.ended_at.isoformat(),
        "score": event.best_score,
        "top_score": event.best_score,
        "frames": event.frames,
        "has_snapshot": event.snapshot_path is not None,
        "has_clip": False,
        "snapshot_url": snapshot_url(public_url, event),
    }


def event_message(event: EventRecord, public_url: str) -> Message:
    """The finished object event (Frigate's ``end``: ``before`` and ``after`` are the same)."""
    described = _frigate_event(event, public_url)
    message_id = f"{event.uuid}:event"
    body = {"message_id": message_id, "type": "end", "before": described, "after": described}
    return Message(message_id, "event", "events", body)


def count_message(event: EventRecord, count: int) -> Message:
    """The camera's count of this label after ``event`` (retained)."""
    message_id = f"{event.uuid}:count"
    body = {
        "message_id": message_id,
        "camera": event.camera,
        "label": event.label,
        "count": count,
        "window_s": int(COUNT_WINDOW.total_seconds()),
        "at": event.ended_at.isoformat(),
    }
    return Message(
        message_id, "count", f"{event.camera}/{event.label}", body, retain=True, mqtt_only=True
    )


def review_message(event: EventRecord) -> Message:
    """ "Candidate on camera X needs review": the camera and the event, nothing about whom."""
    message_id = f"{event.uuid}:review"
    body = {
        "message_id": message_id,
        "type": "review",
        "camera": event.camera,
        "event_id": event.id,
        "event": event.uuid,
        "text": f"candidate match on camera {event.camera} needs review",
    }
    return Message(message_id, "review", "reviews", body)


def match_message(
    event: EventRecord,
    *,
    person: str,
    watchlist: str,
    confirmed_at: datetime,
    public_url: str,
) -> Message:
    """A confirmed match, with identity: only for sinks bound to its authorisation."""
    message_id = f"{event.uuid}:match"
    body = {
        "message_id": message_id,
        "type": "match",
        "camera": event.camera,
        "event_id": event.id,
        "event": event.uuid,
        "person": person,
        "watchlist": watchlist,
        "authorisation": event.match_authorisation_id,
        "started_at": event.started_at.isoformat(),
        "confirmed_at": confirmed_at.isoformat(),
        "snapshot_url": snapshot_url(public_url, event),
    }
    if event.plate_text:  # a listed vehicle's hit: the plate that was read
        body["plate"] = event.plate_text
    identity = {"event": event.uuid, "camera": event.camera, "watchlist": watchlist}
    return Message(message_id, "match", "matches", body, identity=identity)


def probe_message(sink: str, at: datetime, nonce: str) -> Message:
    """``safecity alerts test``: a message that says only that it is a test."""
    message_id = f"test-{nonce}:test"
    body = {"message_id": message_id, "type": "test", "sink": sink, "at": at.isoformat()}
    return Message(message_id, "test", "test", body)
