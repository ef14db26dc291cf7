"""The motion gate: a cheap frame difference that decides whether the detector runs.

Each frame is shrunk to ``config.width`` pixels wide, turned grey, blurred and
compared with a running-average background; pixels that changed by more than
``pixel_threshold`` grey levels are grown a little and grouped into connected
regions, returned as boxes in full-frame pixels. Costs about a millisecond at
1080p because all of it happens on the small frame.

Besides real change, the gate reports "moving" with one full-frame box
(``fraction`` as measured) when the detector must run anyway: on the first frame,
after a size change, when the gate is disabled, and at least every
``keepalive_s`` seconds of pts, so that still objects (a parked car, a seated
person) are detected again and their tracks kept alive.

>>> # gate = MotionGate(MotionConfig())
>>> # if gate.update(frame).moving: detections = detector.detect(frame.image)
"""

from __future__ import annotations

import cv2
import numpy as np

from safecity.config import MotionConfig
from safecity.vision.types import Frame, Regions

# Blur on the small frame: removes sensor noise and compression blocking.
_BLUR = (5, 5)
# Grow changed pixels so that the parts of one walking person join into one region.
_DILATE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
# Regions smaller than this (pixels of the small frame) are noise.
_MIN_REGION_PX = 3


class MotionGate:
    """Stateful per camera: keep one gate per stream."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self._background: np.ndarray | None = None  # float32, small grey frame
        self._shape: tuple[int, int] | None = None  # full-frame (h, w) it was built for
        self._last_run: float | None = None  # pts of the last frame reported as moving

    def reset(self) -> None:
        """Forget the background: the next frame counts as moving."""
        self._background = None
        self._shape = None
        self._last_run = None

    def update(self, frame: Frame) -> Regions:
        """Compare ``frame`` with the background; learn it; say where things changed."""
        h, w = frame.image.shape[:2]
        grey = self._small_grey(frame.image)
        fresh = self._background is None or self._shape != (h, w)
        if fresh:
            self._background = grey.astype(np.float32)
            self._shape = (h, w)
            return self._run_anyway(frame, 1.0)

        mask = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        cv2.accumulateWeighted(grey, self._background, self.config.background_rate)
        _, mask = cv2.threshold(mask, self.config.pixel_threshold - 1, 255, cv2.THRESH_BINARY)
        fraction = cv2.countNonZero(mask) / mask.size

        if not self.config.enabled:
            return self._run_anyway(frame, fraction)
        boxes = np.zeros((0, 4), np.float32)
        if fraction >= self.config.min_fraction and fraction > 0:
            boxes = self._regions(mask, w / mask.shape[1], h / mask.shape[0])
        if len(boxes):
            self._last_run = frame.pts
            return Regions(boxes, fraction)
        if self._keepalive_due(frame.pts):
            return self._run_anyway(frame, fraction)
        return Regions(fraction=fraction)

    # -- internals -------------------------------------------------------------
    def _small_grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        width = min(self.config.width, w)
        height = max(1, round(h * width / w))
        # Two steps, a linear shrink to twice the size then an area average: 0.1 ms
        # at 1080p here against 0.8-1.2 ms for a direct area shrink; on two copies
        # of a frame with Gaussian noise (sigma 20) their grey levels still differ
        # by at most 5, far below any useful pixel_threshold.
        if w > 4 * width:
            image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, _BLUR, 0)

    def _regions(self, mask: np.ndarray, sx: float, sy: float) -> np.ndarray:
        grown = cv2.dilate(mask, _DILATE)
        n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        stats = stats[1:]  # label 0 is the background
        stats = stats[stats[:, cv2.CC_STAT_AREA] >= _MIN_REGION_PX]
        x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
        boxes = np.stack([x * sx, y * sy, (x + bw) * sx, (y + bh) * sy], axis=1)
        return boxes.astype(np.float32).reshape(-1, 4)

    def _keepalive_due(self, pts: float) -> bool:
        last = self._last_run
        # pts going back means a new stream (loop, reconnect): restart the clock.
        return last is None or pts < last or pts - last >= self.config.keepalive_s

    def _run_anyway(self, frame: Frame, fraction: float) -> Regions:
        self._last_run = frame.pts
        full = np.array([[0, 0, frame.width, frame.height]], np.float32)
        return Regions(full, fraction)


__all__ = ["MotionGate"]
