"""Track → event lifecycle.

One :class:`Event` per confirmed track: it is born when the tracker confirms a
track, keeps the best-scoring snapshot and the best face seen, and is emitted
when the track ends. The snapshot carries the boxes that must be pixelated
before anything writes it (DESIGN.md invariant 3); the face vector of a track
that matched nothing never leaves this module's memory (invariant 2).
"""

from __future__ import annotations

from dataclasses import dataclass
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
