"""The enrolled face photo, kept for reviewers beside the probe snapshot.

Enrolment keeps, per template, a JPEG of the enrolled face (the face box grown
by :data:`MARGIN` of its size on each side, clipped to the photo, at most
:data:`MAX_SIDE` px on its longer side) under the media folder at
``enrolled/<person_id>/<template_id>-<sha256[:16]>.jpg`` (``Template.photo_path``).
The photo is kept only while its template exists: whatever deletes templates
(:func:`safecity.identity.enrol.remove_person`, retention's template expiry,
subject erasure) collects their photo paths first and removes the files after
its commit; retention's orphan sweep removes any photo whose template is gone.

>>> photo_relative(7, 12, "ab" * 32)
'enrolled/7/12-abababababababab.jpg'
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from safecity.store.db import Store
from safecity.store.media import write_atomically
from safecity.store.schema import Template

log = logging.getLogger(__name__)

#: The folder, under the media folder, of enrolled face photos (one subfolder per person id).
ENROLLED_DIR = "enrolled"
#: How much the face box grows on each side, as a fraction of its width / height.
MARGIN = 0.4
#: The longer side of a stored photo, at most (pixels).
MAX_SIDE = 256


def face_crop(
    image: np.ndarray, box: np.ndarray, *, margin: float = MARGIN, max_side: int = MAX_SIDE
) -> np.ndarray:
    """The face of ``box`` grown by ``margin`` each side, clipped, shrunk to ``max_side``.

    >>> face_crop(np.zeros((1000, 1000, 3), np.uint8), np.array([400, 400, 600, 700])).shape
    (256, 171, 3)
    """
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError("the face box is not finite")
    grow_x, grow_y = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, math.floor(x1 - grow_x)), max(0, math.floor(y1 - grow_y))
    right, bottom = min(width, math.ceil(x2 + grow_x)), min(height, math.ceil(y2 + grow_y))
    if right <= left or bottom <= top:
        raise ValueError("the face box lies outside the image")
    crop = image[top:bottom, left:right]
    longest = max(crop.shape[:2])
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


def encode_photo(image: np.ndarray, box: np.ndarray, *, quality: int = 90) -> bytes:
    """The JPEG bytes of :func:`face_crop`; ``ValueError`` if it cannot be encoded."""
    crop = face_crop(image, box)
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {crop.shape} {crop.dtype} face as JPEG")
    return encoded.tobytes()


def photo_relative(person_id: int, template_id: int, sha256: str) -> str:
    """The photo's path relative to the media folder (unique per template)."""
    digest = "".join(c for c in sha256.lower()[:16] if c in "0123456789abcdef") or "0"
    return f"{ENROLLED_DIR}/{int(person_id)}/{int(template_id)}-{digest}.jpg"


def write_photo(store: Store, relative: str, data: bytes) -> None:
    """Atomically write one photo (owner-only); ``OSError`` when it cannot be written."""
    target = store.media.path(relative)
    for attempt in range(2):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(target, data)
            return
        except FileNotFoundError:  # its empty folder was removed by a sweep meanwhile
            if attempt:
                raise


def photo_paths(session: Session, *where: ColumnElement[bool]) -> list[str]:
    """The photo paths of the templates matching ``where`` (to remove after a delete)."""
    return sorted(
        set(
            session.scalars(
                select(Template.photo_path).where(Template.photo_path.is_not(None), *where)
            )
        )
    )


def remove_photos(store: Store, paths: Iterable[str]) -> tuple[int, list[str]]:
    """Delete photos whose templates' deletion is committed, and their emptied folders.

    Returns ``(files deleted, paths that could not be deleted)``; a failure is
    logged, and retention's orphan sweep deletes such a file later.
    """
    removed, left = 0, []
    folders: set[Path] = set()
    for relative in paths:
        try:
            path = store.media.path(relative)
            existed = path.exists()
            path.unlink(missing_ok=True)
        except (OSError, ValueError) as error:
            log.warning("could not delete the enrolled photo %s: %s", relative, error)
            left.append(relative)
            continue
        removed += existed
        folders.add(path.parent)
    base = store.media.path(ENROLLED_DIR)
    for folder in folders:
        if folder.parent == base:
            with contextlib.suppress(OSError):  # only when empty
                folder.rmdir()
    return removed, left


def photo_folders(root: Path) -> list[Path]:
    """The per-person photo folders under ``root`` (for retention's orphan sweep)."""
    base = Path(root) / ENROLLED_DIR
    if base.is_symlink() or not base.is_dir():
        return []
    return [
        folder
        for folder in sorted(base.iterdir())
        if folder.name.isdigit() and not folder.is_symlink() and folder.is_dir()
    ]


def enrolled_photo(store: Store, person_id: int) -> Path | None:
    """The absolute path of the newest photo of ``person_id`` that exists, else ``None``."""
    with store.transaction() as session:
        paths = list(
            session.scalars(
                select(Template.photo_path)
                .where(Template.person_id == person_id, Template.photo_path.is_not(None))
                .order_by(Template.created_at.desc(), Template.id.desc())
            )
        )
    for relative in paths:
        try:
            path = store.media.path(relative)
        except ValueError:
            continue
        if path.is_file():
            return path
    return None


__all__ = [
    "ENROLLED_DIR",
    "MARGIN",
    "MAX_SIDE",
    "encode_photo",
    "enrolled_photo",
    "face_crop",
    "photo_folders",
    "photo_paths",
    "photo_relative",
    "remove_photos",
    "write_photo",
]
