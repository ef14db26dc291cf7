"""Object filters: which detections reach the tracker, which tracks become events.

Two kinds, per label (``detector.filters``, Frigate's shape):

* per detection — box area and width/height ratio (and ``min_score``, which the
  detector applies itself while decoding): a box outside them is not tracked. The
  detector runs exactly as before; this is a mask over its output.
* per track — a track that never moved and whose median detection score never
  reached the label's ``threshold`` is a still false alarm (a traffic cone read as
  a person): it produces no event. Its place is remembered (:class:`StillSpots`):
  a later track there too brief to be judged (under ``still_min_s``) that never
  moved and never scored ``threshold`` is the same false alarm flickering back.

The track test keeps constant memory however long a track lives (a parked car
for days): scores go into a 100-bin histogram, so the median is exact to 0.01,
and movement is judged from a running median of the last three box centres.

>>> from safecity.config import ObjectFilter
>>> evidence = TrackEvidence()
>>> for k in range(20):  # a small box that stays put, scoring 0.45
...     evidence.add(np.array([100, 100, 117, 120], np.float32), 0.45, k / 10)
>>> evidence.is_still_false_alarm(ObjectFilter(threshold=0.55))
True
>>> evidence.is_still_false_alarm(ObjectFilter(threshold=0.4))  # confident enough
False
"""

from __future__ import annotations

from collections import deque

import numpy as np

from safecity.config import DetectorConfig, ObjectFilter
from safecity.vision.coco import COCO_LABELS
from safecity.vision.nms import box_iou
from safecity.vision.types import Detections

_BINS = 100


def detection_mask(detections: Detections, config: DetectorConfig) -> np.ndarray:
    """``(N,)`` bool: the detections inside their label's area and ratio limits."""
    keep = np.ones(len(detections), bool)
    if not config.filters or len(detections) == 0:
        return keep
    boxes = detections.boxes
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    area, ratio = w * h, w / h
    for label, f in config.filters.items():
        rows = detections.class_ids == COCO_LABELS.index(label)
        if not rows.any():
            continue
        bad = (area < f.min_area) | (ratio < f.min_ratio)
        if f.max_area is not None:
            bad |= area > f.max_area
        if f.max_ratio is not None:
            bad |= ratio > f.max_ratio
        keep &= ~(rows & bad)
    return keep


class TrackEvidence:
    """What one track's detections say: its median score and whether it moved."""

    def __init__(self) -> None:
        self.scores = np.zeros(_BINS, np.int64)
        self.count = 0
        self.first_pts: float | None = None
        self.last_pts: float | None = None
        self._recent: deque[np.ndarray] = deque(maxlen=3)
        self._origin: np.ndarray | None = None  # smoothed centre where the track began
        self.movement = 0.0  # largest smoothed centre displacement / box diagonal so far
        self.peak_median = 0.0  # highest running median score, from the third detection on
        self.best_score = 0.0
        self.last_box: np.ndarray | None = None

    def add(self, box: np.ndarray, score: float, pts: float) -> None:
        """One detection of the track (its box in frame pixels, its score, its time)."""
        self.scores[min(int(score * _BINS), _BINS - 1)] += 1
        self.count += 1
        if self.first_pts is None:
            self.first_pts = pts
        self.last_pts = pts
        self.best_score = max(self.best_score, float(score))
        self.last_box = np.asarray(box, np.float64)
        if self.count >= 3:
            self.peak_median = max(self.peak_median, self.median_score)
        self._recent.append(np.asarray(box, np.float64))
        if len(self._recent) < self._recent.maxlen:
            return
        # A running median of three boxes: one jittery detection does not count as a move.
        smooth = np.median(np.stack(self._recent), axis=0)
        centre = (smooth[:2] + smooth[2:]) / 2
        if self._origin is None:
            self._origin = centre
            return
        diagonal = max(float(np.hypot(*(smooth[2:] - smooth[:2]))), 1.0)
        moved = float(np.hypot(*(centre - self._origin))) / diagonal
        self.movement = max(self.movement, moved)

    @property
    def median_score(self) -> float:
        """Median detection score, to 0.01 (the middle of its histogram bin)."""
        if self.count == 0:
            return 0.0
        k = int(np.searchsorted(np.cumsum(self.scores), (self.count + 1) / 2))
        return (k + 0.5) / _BINS

    @property
    def seconds(self) -> float:
        if self.first_pts is None or self.last_pts is None:
            return 0.0
        return self.last_pts - self.first_pts

    def is_still_false_alarm(self, f: ObjectFilter) -> bool:
        """Watched at least ``still_min_s``, never moved ``still_fraction`` of its
        diagonal, and its running median score never reached ``threshold``: no event."""
        return (
            self.seconds >= f.still_min_s
            and self.movement < f.still_fraction
            and self.peak_median < (f.threshold or 0.0)
        )

    def is_brief_repeat(self, f: ObjectFilter, spots: StillSpots, label: str) -> bool:
        """Too brief to judge (under ``still_min_s``), never moved, never scored
        ``threshold``, and where a still false alarm of ``label`` was: no event."""
        return (
            self.seconds < f.still_min_s
            and self.movement < f.still_fraction
            and self.best_score < (f.threshold or 0.0)
            and self.last_box is not None
            and spots.covers(label, self.last_box, self.last_pts or 0.0)
        )


class StillSpots:
    """Where one camera's still false alarms were, for ``memory_s`` seconds of its time.

    >>> spots = StillSpots(memory_s=600)
    >>> spots.add("person", np.array([163, 188, 180, 208]), pts=25.0)
    >>> spots.covers("person", np.array([164, 187, 181, 209]), pts=64.7)
    True
    >>> spots.covers("car", np.array([164, 187, 181, 209]), pts=64.7)
    False
    >>> spots.covers("person", np.array([164, 187, 181, 209]), pts=700.0)  # forgotten
    False
    """

    def __init__(self, memory_s: float = 600.0, min_iou: float = 0.5, most: int = 64) -> None:
        self.memory_s, self.min_iou = memory_s, min_iou
        self._spots: deque[tuple[str, np.ndarray, float]] = deque(maxlen=most)

    def add(self, label: str, box: np.ndarray, pts: float) -> None:
        self._spots.append((label, np.asarray(box, np.float32), pts))

    def covers(self, label: str, box: np.ndarray, pts: float) -> bool:
        boxes = [b for lab, b, at in self._spots if lab == label and pts - at <= self.memory_s]
        return bool(boxes) and float(box_iou(box, np.stack(boxes)).max()) >= self.min_iou


__all__ = ["StillSpots", "TrackEvidence", "detection_mask"]
