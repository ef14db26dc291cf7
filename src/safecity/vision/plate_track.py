"""The plate of one tracked vehicle: read a few times while it is in view, voted.

A read costs a text detection and recognition (about 80-400 ms a crop on two
cores, by ``plates.det_side``), so a track is read at most ``plates.max_reads``
times, ``plates.read_interval_s`` apart, and only while the vehicle is at least
``plates.min_vehicle_width`` pixels wide.

>>> plate = TrackPlate(PlatesConfig())
>>> plate.due(np.array([0, 0, 80, 60]), 0.0)    # too narrow to read its plate
False
>>> plate.read(reader, image, track.box, pts)   # doctest: +SKIP
>>> plate.result()                              # events.PlateRead or None
"""

from __future__ import annotations

import numpy as np

from safecity.config import PlatesConfig
from safecity.events import PlateRead
from safecity.video.pacing import due_again
from safecity.vision.plates import PlateReader, PlateVote

#: Margin kept around the plate's text line in the stored crop (share of its height).
CROP_MARGIN = 0.35


class TrackPlate:
    def __init__(self, config: PlatesConfig) -> None:
        self.config = config
        self.vote = PlateVote(max_reads=config.max_reads)
        self.attempts = 0
        self._last_pts: float | None = None
        self._best: tuple[float, np.ndarray] | None = None  # confidence, plate crop

    def due(self, box: np.ndarray, pts: float) -> bool:
        """Whether to read the vehicle in this frame."""
        if self.attempts >= self.config.max_reads:
            return False
        if float(box[2] - box[0]) < self.config.min_vehicle_width:
            return False
        return due_again(self._last_pts, pts, self.config.read_interval_s)

    def read(self, reader: PlateReader, image_bgr: np.ndarray, box: np.ndarray, pts: float) -> None:
        """Read the vehicle's crop of ``image_bgr`` and add what it says to the vote."""
        self.attempts += 1
        self._last_pts = pts
        h, w = image_bgr.shape[:2]
        x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
        x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        if x2 - x1 < 2 or y2 - y1 < 2:
            return
        vehicle = image_bgr[y1:y2, x1:x2]
        read = reader.read(vehicle)
        if read is None:
            return
        self.vote.add(read)
        if self._best is None or read.confidence > self._best[0]:
            self._best = (read.confidence, plate_crop(vehicle, read.box))

    def result(self) -> PlateRead | None:
        """The voted plate with the crop of its most confident read, or None."""
        voted = self.vote.result()
        if voted is None or self._best is None or not voted.text:
            return None
        return PlateRead(
            text=voted.text,
            confidence=float(voted.confidence),
            crop=self._best[1],
            reads=len(self.vote.reads),
        )


def plate_crop(vehicle_bgr: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The plate's text line ``box`` (x, y, w, h) cut from the vehicle crop, with a margin.

    >>> plate_crop(np.zeros((100, 200, 3), np.uint8), (50, 40, 60, 20)).shape
    (34, 74, 3)
    """
    x, y, w, h = box
    m = int(round(CROP_MARGIN * h))
    height, width = vehicle_bgr.shape[:2]
    x1, y1 = max(x - m, 0), max(y - m, 0)
    x2, y2 = min(x + w + m, width), min(y + h + m, height)
    return np.ascontiguousarray(vehicle_bgr[y1:y2, x1:x2])
