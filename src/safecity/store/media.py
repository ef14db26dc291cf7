"""Snapshot files: pixelation of faces and atomic JPEG writes.

DESIGN.md invariant 3: every face that is not the matched one is pixelated
*before the first byte is written*. :class:`MediaStore` only ever encodes an
image that :func:`pixelate` has already redacted, and writes it through a temp
file and ``os.replace``, so a reader never sees a partial (or unredacted) file.

Layout under the media folder: ``<camera>/<YYYY-MM-DD>/<event-uuid>.jpg`` (UTC day).
"""

from __future__ import annotations

import errno
import math
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

# Tiles across the longer side of a box when no tile size is given: 6 tiles leave
# a face's rough colour but no features, whatever the face's size in pixels.
DEFAULT_TILES = 4

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def pixelate(image: np.ndarray, boxes: np.ndarray, block: int | None = None) -> np.ndarray:
    """A copy of ``image`` with each box replaced by a coarse mosaic of tile means.

    ``boxes`` is ``(K, 4)`` ``x1, y1, x2, y2`` in pixels (clipped to the image;
    partly covered pixels are included). ``block`` is the tile side in pixels;
    ``None`` picks ``ceil(longer side / 4)`` per box (at least 2), so a face
    becomes at most 4×4 flat tiles (at 6×6 a face detector still found faces in
    the mosaic of small faces). Averaging discards the detail: no function of
    the output can bring it back. Raises ``ValueError`` on a non-finite box, since
    a region that cannot be located cannot be redacted.

    >>> img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> pixelate(img, np.array([[0, 0, 2, 2]]), block=2)[:2, :2].tolist()
    [[2, 2], [2, 2]]
    """
    out = np.array(image, copy=True)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        raise ValueError("a redaction box is not finite; refusing to write an unredacted image")
    height, width = out.shape[:2]
    for x1f, y1f, x2f, y2f in boxes:
        x1, y1 = max(0, math.floor(x1f)), max(0, math.floor(y1f))
        x2, y2 = min(width, math.ceil(x2f)), min(height, math.ceil(y2f))
        if x2 <= x1 or y2 <= y1:
            continue
        region = out[y1:y2, x1:x2]
        h, w = region.shape[:2]
        tile = block if block is not None else max(2, math.ceil(max(h, w) / DEFAULT_TILES))
        if tile < 1:
            raise ValueError(f"block must be at least 1 pixel, got {tile}")
        ys = np.arange(0, h, tile)
        xs = np.arange(0, w, tile)
        # Sum each tile with reduceat, divide by its pixel count (edge tiles are smaller).
        sums = np.add.reduceat(np.add.reduceat(region.astype(np.float64), ys, 0), xs, 1)
        heights = np.diff(np.append(ys, h))
        widths = np.diff(np.append(xs, w))
        counts = np.outer(heights, widths)
        means = sums / (counts if region.ndim == 2 else counts[..., None])
        mosaic = np.repeat(np.repeat(np.rint(means), heights, 0), widths, 1)
        region[...] = mosaic.astype(out.dtype)
    return out


def write_atomically(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temp file beside it, fsync, rename.

    The file is readable by its owner only (``mkstemp``'s mode). A path that
    exists and is not a regular file (a device, a folder, a symlink) is refused
    with ``OSError`` rather than replaced. A reader never sees a partial file,
    and a failure leaves no temp file behind.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OSError(errno.EEXIST, "it exists and is not a regular file")
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def safe_name(name: str) -> str:
    """A single path component made from ``name`` (no separators, never ``.``/``..``)."""
    cleaned = _UNSAFE.sub("_", name)
    return cleaned if cleaned.strip(".") else "_" + cleaned


class MediaStore:
    """Redacted JPEG snapshots under one folder.

    >>> media = MediaStore(Path("/tmp/media"))  # doctest: +SKIP
    >>> rel = media.write_jpeg(image, redact_boxes, "gate-1", time, "3f2a…")  # doctest: +SKIP
    >>> media.path(rel)  # doctest: +SKIP
    PosixPath('/tmp/media/gate-1/2024-05-01/3f2a….jpg')
    """

    def __init__(self, root: Path, *, jpeg_quality: int = 90) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.jpeg_quality = int(jpeg_quality)

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file; refuses paths leaving the folder."""
        full = (self.root / relative).resolve()
        if not full.is_relative_to(self.root.resolve()):
            raise ValueError(f"media path {relative!r} leaves the media folder")
        return full

    def write_jpeg(
        self,
        image: np.ndarray,
        redact_boxes: np.ndarray,
        camera: str,
        time: datetime,
        name: str,
    ) -> str:
        """Pixelate ``redact_boxes``, encode, and atomically write; returns the relative path.

        Raises ``OSError`` when the file cannot be written and ``ValueError`` when
        the image cannot be encoded; nothing is left behind in either case.
        """
        encoded = self._redacted_jpeg(image, redact_boxes)
        day = time.astimezone(UTC).strftime("%Y-%m-%d")
        relative = f"{safe_name(camera)}/{day}/{safe_name(name)}.jpg"
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, encoded)
        return relative

    def read_image(self, relative: str) -> np.ndarray:
        """A stored snapshot as a BGR image.

        Raises ``OSError`` when it cannot be read and ``ValueError`` when it is
        not an image (or its path leaves the folder).
        """
        data = self.path(relative).read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None or not image.size:
            raise ValueError(f"{relative} is not a readable image")
        return image

    def rewrite_jpeg(self, relative: str, image: np.ndarray, redact_boxes: np.ndarray) -> None:
        """Replace a stored snapshot with ``image`` with ``redact_boxes`` pixelated, atomically:
        a reader sees the old file or the new one, never a mix. Raises as :meth:`write_jpeg`."""
        write_atomically(self.path(relative), self._redacted_jpeg(image, redact_boxes))

    def _redacted_jpeg(self, image: np.ndarray, redact_boxes: np.ndarray) -> bytes:
        redacted = pixelate(image, redact_boxes)
        ok, encoded = cv2.imencode(".jpg", redacted, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as JPEG")
        return encoded.tobytes()

    def remove(self, relative: str) -> None:
        """Delete a stored file if present (used to undo a write whose row failed)."""
        self.path(relative).unlink(missing_ok=True)
