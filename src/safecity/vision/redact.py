"""What must be hidden before an image is stored (DESIGN.md invariant 3).

Every head and face is pixelated except the matched person's face. Three nets
catch them, because each alone misses some:

1. the head region (top of the box) of every person the object detector
   reports in the frame, tracked or not yet;
2. the face boxes found inside person boxes by the recognition face detector;
3. a *redaction* face detector run over the image itself, far more sensitive
   than the one used for recognition (small faces, low scores), so a person the
   object detector missed still loses their face. It runs whatever the
   recognition settings say: configuration cannot switch redaction off.
"""

from __future__ import annotations

import numpy as np

from safecity.config import FacesConfig
from safecity.vision.coco import LABEL_TO_ID
from safecity.vision.nms import box_iou
from safecity.vision.types import Face, Track

PERSON = LABEL_TO_ID["person"]

# The top share of a person box treated as the head, and how far a face box is
# grown, so that a loose or missed face box still hides the face.
HEAD_FRACTION = 0.28
FACE_GROW = 0.25
# A face found by the redaction detector is spared only when it is the matched
# face itself (boxes overlapping this much).
KEEP_IOU = 0.3

#: A snapshot crop has the person box plus 15 % on each side; the head is the top
#: 28 % of the box, so it ends about a third of the way down the crop (at most
#: 37 % where the frame's edge cut the crop, while the person's box lies inside
#: the frame). Hiding this top share covers the head when the box is not known.
HEAD_BAND = 0.4

#: Sensitive settings for finding faces to hide (not to recognise): a false face
#: costs a pixelated patch, a missed one a privacy breach.
#: Full resolution: at 1280 px a 1080p frame lost faces that 1920 px finds.
REDACTION_FACES = FacesConfig(min_score=0.3, min_size=8)
#: What the redactor itself hides: faces down to a margin below REDACTION_FACES, the
#: threshold any check of its output counts a face at. A face just under 0.3 in the
#: frame can score just over it in the JPEG that is shown or stored (arcade clip,
#: live view: a face behind a person the detector missed, 0.32 in the JPEG).
HIDDEN_FACES = REDACTION_FACES.model_copy(update={"min_score": 0.2})


def grow(box: np.ndarray, fraction: float) -> np.ndarray:
    """Grow a box by ``fraction`` of its size on every side.

    >>> grow(np.array([10, 10, 20, 20]), 0.5).tolist()
    [5.0, 5.0, 25.0, 25.0]
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * fraction, (y2 - y1) * fraction
    return np.array([x1 - dx, y1 - dy, x2 + dx, y2 + dy], np.float32)


def head_box(person_box: np.ndarray) -> np.ndarray:
    """The top of a person box, where the head is."""
    x1, y1, x2, y2 = (float(v) for v in person_box)
    return np.array([x1, y1, x2, y1 + (y2 - y1) * HEAD_FRACTION], np.float32)


def head_band(height: int, width: int) -> np.ndarray:
    """The top of a snapshot crop (``height`` × ``width``), where its person's head is.

    >>> head_band(100, 80).tolist()
    [[0.0, 0.0, 80.0, 40.0]]
    """
    return np.array([[0, 0, width, round(height * HEAD_BAND)]], np.float32)


def privacy_boxes(
    tracks: list[Track],
    faces: dict[int, Face],
    keep: int | set[int] | None,
    people: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Heads and faces of a frame to hide, except those of the kept track(s).

    ``people`` are raw person detections of the frame (tracked or not); one that
    overlaps a kept track's box is that person and is spared with it.

    >>> t = Track(1, 0, np.array([0, 0, 10, 100], np.float32), 0.9)
    >>> privacy_boxes([t], {}, keep=None)[0].tolist()
    [0.0, 0.0, 10.0, 28.0]
    >>> people = np.array([[0, 0, 10, 100], [50, 0, 60, 100]])
    >>> [b.tolist() for b in privacy_boxes([t], {}, keep=1, people=people)]
    [[50.0, 0.0, 60.0, 28.0]]
    """
    kept = {keep} if isinstance(keep, int) else set(keep or ())
    boxes = []
    for track in tracks:
        if track.track_id in kept or track.class_id != PERSON:
            continue
        boxes.append(head_box(track.box))
        face = faces.get(track.track_id)
        if face is not None:
            boxes.append(grow(face.box, FACE_GROW))
    if people is not None and len(people):
        people = np.asarray(people, np.float32).reshape(-1, 4)
        kept_boxes = np.array([t.box for t in tracks if t.track_id in kept], np.float32)
        if len(kept_boxes):
            spared = box_iou(people, kept_boxes.reshape(-1, 4)).max(axis=1) > 0.7
            people = people[~spared]
        boxes += [head_box(p) for p in people]
    return boxes


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip boxes to an image and drop the ones left empty."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    out = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    keep = (out[:, 2] - out[:, 0] >= 1) & (out[:, 3] - out[:, 1] >= 1)
    return out[keep]


class FaceRedactor:
    """Finds every face in an image to hide, sparing only the given kept faces."""

    def __init__(self) -> None:
        from safecity.vision.faces import FaceDetector

        self.detector = FaceDetector(HIDDEN_FACES)

    def hide(self, image_bgr: np.ndarray, boxes: np.ndarray, keep: np.ndarray | None = None):
        """``boxes`` plus every face found in the image, then once more in the
        pixelated result (a face next to a mosaic can surface only then)."""
        from safecity.store.media import pixelate

        boxes = np.vstack(
            [np.asarray(boxes, np.float32).reshape(-1, 4), self.faces(image_bgr, keep)]
        )
        again = self.faces(pixelate(image_bgr, boxes) if len(boxes) else image_bgr, keep)
        h, w = image_bgr.shape[:2]
        return clip_boxes(np.vstack([boxes, again]), w, h)

    def faces(self, image_bgr: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """Grown boxes of every face found, except those overlapping ``keep`` boxes."""
        boxes = [f.box for f in self.detector.detect(image_bgr)]
        if not boxes:
            return np.zeros((0, 4), np.float32)
        found = np.array(boxes, np.float32)
        if keep is not None and len(keep):
            kept = box_iou(found, np.asarray(keep, np.float32).reshape(-1, 4)).max(axis=1)
            found = found[kept <= KEEP_IOU]
        return np.array([grow(b, FACE_GROW) for b in found], np.float32).reshape(-1, 4)
