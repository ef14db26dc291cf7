"""Track → event lifecycle.

One :class:`Event` per confirmed track: it is born when the tracker confirms a
track, keeps the best-scoring snapshot and the best face seen, and is emitted
when the track ends. The snapshot carries the boxes that must be pixelated
before anything writes it (DESIGN.md invariant 3); the face vector of a track
that matched nothing never leaves this module's memory (invariant 2).

Each event carries a ``uuid`` made by :func:`event_uuid` from what identifies its
track in a run, so the same track always gets the same uuid: a camera restarted
from the start of a file (same frame times) reproduces it, and the store, which
is idempotent by uuid, keeps one copy.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from safecity.vision.types import Match


@dataclass(frozen=True)
class Snapshot:
    """The best view of a track, ready for a sink.

    ``image`` is a crop of the frame around the object (BGR). ``redact_boxes``
    are regions in ``image`` pixels that must be pixelated before the first write:
    every face and every head region of a person that is not the matched face.
    ``box`` is the object's box in ``image`` pixels; ``frame_box`` where the crop
    lies in the frame.
    """

    image: np.ndarray
    box: np.ndarray
    frame_box: np.ndarray
    redact_boxes: np.ndarray  # (K, 4) float32
    frame_index: int
    time: datetime


#: The labels whose events may carry a licence plate.
VEHICLE_LABELS = frozenset({"car", "truck", "bus", "motorcycle"})


#: The longest plate text the store keeps (EU plates have at most 10 characters).
PLATE_TEXT_MAX = 16


def plate_key(text: str) -> str:
    """A plate as stored and searched: upper case, letters and digits only.

    >>> plate_key("ba-123 xy")
    'BA123XY'
    """
    return "".join(c for c in text.upper() if c.isascii() and c.isalnum())


@dataclass(frozen=True)
class PlateRead:
    """A vehicle's licence plate as read while it was tracked.

    ``text`` is normalised (upper case, letters and digits only, e.g. ``"BA123XY"``);
    ``confidence`` is 0..1; ``crop`` is the plate's image (BGR) the read came from;
    ``reads`` is how many reads were voted into ``text``.
    """

    text: str
    confidence: float
    crop: np.ndarray
    reads: int = 1


@dataclass(frozen=True)
class Event:
    """Everything a sink may store about one track. Contains no face vector."""

    camera: str
    track_id: int
    label: str
    started_at: datetime
    ended_at: datetime
    best_score: float
    frames: int
    snapshot: Snapshot
    match: Match | None = None
    match_snapshot: Snapshot | None = None  # the frame where the face matched, if any
    uuid: str = ""  # 32 hex digits from event_uuid(); "" lets the sink pick a random one
    # A person seen by the face detector only (the object detector missed the body):
    # the snapshot is the head and shoulders around the face (events.face_only).
    face_only: bool = False
    # The licence plate of a vehicle (a label in VEHICLE_LABELS), when one was read.
    plate: PlateRead | None = None


#: Namespace of event uuids (uuid5): fixed, so uuids are the same on every machine.
EVENT_NAMESPACE = uuidlib.UUID("5f0c4c1e-8a47-4d2b-9a43-3b1f6c0e7a10")


def event_uuid(event: Event, run: str) -> str:
    """The uuid of ``event`` in ``run``: the same track of the same run always gets the same.

    Built from the run id, camera, label, track id and start time (not from the
    snapshot or scores, which are the track's state and not its identity), so a
    worker that re-analyses a file from its start after a crash reproduces it.

    >>> from datetime import UTC
    >>> t = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    >>> e = Event("gate-1", 7, "person", t, t, 0.9, 3, None)  # type: ignore[arg-type]
    >>> event_uuid(e, "run-1") == event_uuid(e, "run-1") != event_uuid(e, "run-2")
    True
    >>> len(event_uuid(e, "run-1"))
    32
    """
    key = "\n".join(
        (run, event.camera, event.label, str(int(event.track_id)), event.started_at.isoformat())
    )
    return uuidlib.uuid5(EVENT_NAMESPACE, key).hex


def with_uuids(events: Iterable[Event], run: str) -> list[Event]:
    """``events`` with their uuid set from ``run`` where they have none yet."""
    return [e if e.uuid else replace(e, uuid=event_uuid(e, run)) for e in events]
