"""The plain values that flow between stages.

Each arrow of the pipeline carries one of these frozen dataclasses, so every stage
can be tested alone with a list of frames.

Conventions, everywhere in safecity:
- images are ``HxWx3 uint8`` in **BGR** order (OpenCV's), C-contiguous;
- boxes are ``float32 [x1, y1, x2, y2]`` in pixels of the frame they refer to;
- face landmarks are 5 points ``(x, y)`` in frame pixels, in the order
  right eye, left eye, nose tip, right mouth corner, left mouth corner
  ("right" = the person's right, i.e. the left side of the image), as YuNet,
  SCRFD and ArcFace use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from safecity.vision.coco import COCO_LABELS


@dataclass(frozen=True)
class Frame:
    """One decoded frame of one camera."""

    camera: str
    index: int  # position in the decoded stream (0-based, counts every decoded frame)
    pts: float  # seconds since the start of the stream
    time: datetime  # wall-clock time of the frame, timezone-aware UTC
    image: np.ndarray  # HxWx3 uint8 BGR: the main stream, for faces and snapshots
    # The same moment from the camera's lower-resolution detect stream (detect_url), for
    # the motion gate and the object detector; None: they use ``image``.
    detect_image: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def detect_scale(self) -> tuple[float, float]:
        """Main-image pixels per detect-image pixel, (x, y); (1, 1) without a detect image."""
        if self.detect_image is None:
            return 1.0, 1.0
        h, w = self.detect_image.shape[:2]
        return self.width / w, self.height / h

    def for_detection(self) -> Frame:
        """This frame as the detector sees it: the detect image, when there is one."""
        if self.detect_image is None:
            return self
        return Frame(self.camera, self.index, self.pts, self.time, self.detect_image)


@dataclass(frozen=True)
class Detections:
    """Objects found in one frame.

    >>> d = Detections(np.array([[0, 0, 10, 20]], np.float32), np.array([0.9], np.float32),
    ...                np.array([0]))
    >>> d.labels
    ['person']
    >>> len(d[d.scores > 0.95])
    0
    """

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64, COCO index 0..79

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, np.float32).reshape(-1))
        object.__setattr__(self, "class_ids", np.asarray(self.class_ids, np.int64).reshape(-1))
        if not (len(self.boxes) == len(self.scores) == len(self.class_ids)):
            raise ValueError("boxes, scores and class_ids must have the same length")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])

    @property
    def labels(self) -> list[str]:
        return [COCO_LABELS[int(c)] for c in self.class_ids]

    def scaled(self, sx: float, sy: float) -> Detections:
        """The same detections with boxes in pixels ``sx`` by ``sy`` times larger."""
        if sx == 1.0 and sy == 1.0:
            return self
        factor = np.array([sx, sy, sx, sy], np.float32)
        return Detections(self.boxes * factor, self.scores, self.class_ids)


@dataclass(frozen=True)
class Face:
    """A face found in a frame, with what is needed to align and judge it."""

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in frame pixels
    landmarks: np.ndarray  # (5, 2) float32, order documented above
    score: float  # detector confidence 0..1
    quality: float = 0.0  # 0..1, see safecity.vision.faces.face_quality

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


@dataclass(frozen=True)
class Track:
    """One tracked object in one frame."""

    track_id: int
    class_id: int
    box: np.ndarray  # (4,) float32
    score: float

    @property
    def label(self) -> str:
        return COCO_LABELS[self.class_id]


@dataclass(frozen=True)
class Match:
    """A face that matched an enrolled person on an authorised watchlist."""

    person_id: int
    person_name: str
    watchlist_id: int
    watchlist_name: str
    score: float  # cosine similarity of unit vectors, higher is closer
    margin: float  # score minus the best score of any other person


@dataclass(frozen=True)
class Regions:
    """Where the motion gate saw change; ``boxes`` empty means nothing moved."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    fraction: float = 0.0  # share of the frame's pixels that changed

    @property
    def moving(self) -> bool:
        return len(self.boxes) > 0
