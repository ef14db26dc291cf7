"""Images served to users: decoding, pixelation for those who may not see faces, encoding.

Stored snapshots already have every face but a matched one pixelated (DESIGN.md
invariant 3). A viewer sees no face at all: :func:`viewer_snapshot` runs the
redaction face detector over the stored image and pixelates every face it
finds, and also the band where a person's head is (the crop's top), in case the
detector misses a face. The band is hidden on every snapshot alike, so that
its presence does not tell a viewer which events matched.

>>> image = np.zeros((120, 80, 3), np.uint8)
>>> decode_jpeg(encode_jpeg(image)).shape
(120, 80, 3)
>>> head_band(100, 80).tolist()
[[0.0, 0.0, 80.0, 40.0]]
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from safecity.store.media import pixelate
from safecity.vision.redact import HEAD_BAND as HEAD_BAND  # the top share hidden
from safecity.vision.redact import head_band

#: Live frames are sent at most this wide (pixels).
MAX_WIDTH = 960
JPEG_QUALITY = 85

# The face detector is not documented as thread-safe: one image at a time.
#: YuNet (OpenCV) sessions are not safe to share between threads: every redaction here
#: and in the live view takes this lock.
DETECT_LOCK = threading.Lock()


def decode_jpeg(data: bytes) -> np.ndarray | None:
    """A BGR image, or None when ``data`` is not an image OpenCV can read."""
    if not data:
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as JPEG")
    return encoded.tobytes()


def hide_every_face(image: np.ndarray, redactor: Any) -> np.ndarray:
    """A copy of ``image`` with every face the redactor finds and the head band pixelated.

    ``redactor`` is a :class:`~safecity.vision.redact.FaceRedactor`.
    """
    height, width = image.shape[:2]
    with DETECT_LOCK:
        boxes = np.asarray(redactor.faces(image), np.float32).reshape(-1, 4)
        boxes = np.vstack([boxes, head_band(height, width)])
        # Once more on the result: a face beside a mosaic can surface only then.
        if len(boxes):
            again = np.asarray(redactor.faces(pixelate(image, boxes)), np.float32)
            boxes = np.vstack([boxes, again.reshape(-1, 4)])
    return pixelate(image, boxes) if len(boxes) else image.copy()


class _Cache:
    """Recently served redacted snapshots, keyed by file, its version and the mode."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_viewer_cache = _Cache(256)


def viewer_snapshot(path: Path, redactor: Any) -> bytes:
    """The JPEG at ``path`` with every face pixelated, for users who may not see faces.

    Raises ``FileNotFoundError`` when the file is gone and ``ValueError`` when it
    is not a readable image.
    """
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    cached = _viewer_cache.get(key)
    if cached is not None:
        return cached
    image = decode_jpeg(path.read_bytes())
    if image is None:
        raise ValueError(f"{path.name} is not a readable image")
    encoded = encode_jpeg(hide_every_face(image, redactor))
    _viewer_cache.put(key, encoded)
    return encoded
