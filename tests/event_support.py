"""One way for tests to make a stored-looking event from a still image.

>>> e = still_event(np.zeros((4, 6, 3), np.uint8), start=T)
>>> (e.label, e.frames, (e.ended_at - e.started_at).seconds, e.snapshot.box.tolist())
('person', 40, 4, [0.0, 0.0, 6.0, 4.0])
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from safecity.events import Event, PlateRead, Snapshot
from safecity.vision.types import Match

T = datetime(2026, 1, 1, tzinfo=UTC)


def still_event(
    image: np.ndarray,
    *,
    start: datetime,
    camera: str = "gate-1",
    track_id: int = 1,
    label: str = "person",
    redact: list[list[float]] | None = None,
    match: Match | None = None,
    match_snapshot: bool = False,
    plate: PlateRead | None = None,
) -> Event:
    """A 4-second, 40-frame ``label`` event whose snapshot is the whole ``image``, with
    ``redact`` boxes to pixelate; ``match_snapshot``: the snapshot serves as the match's."""
    h, w = image.shape[:2]
    whole = np.array([0, 0, w, h], np.float32)
    snapshot = Snapshot(
        image=image,
        box=whole,
        frame_box=whole.copy(),
        redact_boxes=np.array(redact or [], np.float32).reshape(-1, 4),
        frame_index=10,
        time=start,
    )
    return Event(
        camera=camera,
        track_id=track_id,
        label=label,
        started_at=start,
        ended_at=start + timedelta(seconds=4),
        best_score=0.8,
        frames=40,
        snapshot=snapshot,
        match=match,
        match_snapshot=snapshot if match_snapshot and match is not None else None,
        plate=plate,
    )
