"""Enrolment: photos of one person → face templates on an authorised watchlist.

Every photo is checked first (readable image, exactly one face, large and clear
enough); if any photo is refused, nothing is stored: no person row, no
template, no file. Only then are the faces embedded and written, in one
transaction. The photos themselves are not kept: only their sha256 (to know
what was enrolled, and to skip a photo enrolled twice) and, per template, a
small JPEG of the enrolled face for reviewers to see beside a probe
(:mod:`safecity.identity.photos`; ``Template.photo_path``). Those files are
written inside the transaction and removed again if it fails, and they go
with their template.

>>> result = enroll(store, "missing-persons", "Jane Doe", [Path("jane.jpg")],  # doctest: +SKIP
...                 detector=FaceDetector(FacesConfig()), embedder=make_embedder())
>>> result.templates  # doctest: +SKIP
1
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from sqlalchemy import select

from safecity.errors import AuthorisationError, EnrolmentError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.identity.imagesize import image_size
from safecity.identity.photos import encode_photo, photo_relative, remove_photos, write_photo
from safecity.identity.plate_lists import check_kind
from safecity.identity.watchlists import WatchlistInfo, get_watchlist
from safecity.store.db import Store, StoreError
from safecity.store.schema import EventRecord, Person, Template
from safecity.vision.types import Face

# An enrolment photo is a deliberate, close portrait: ask for a face wide enough
# that size barely limits recognition (dlib's chip is 150 px for ~100 px faces;
# 98 % of LFW's 250x250 portraits have a face at least 80 px wide).
MIN_FACE_WIDTH = 64
# face_quality (size x sharpness x pose, 0..1) below this means blurred or turned
# away; such a template would hurt every later match of this person.
MIN_QUALITY = 0.5
# Decoded, a photo takes 3 bytes a pixel (40 MP: 120 MB); a phone's photo has 12-50 MP.
# Larger ones are refused from the header, before decoding (a decompression bomb).
MAX_PIXELS = 40_000_000


class PhotoTooLarge(EnrolmentError):
    """A photo's header declares more pixels than :data:`MAX_PIXELS`."""


class FaceFinder(Protocol):
    """What finds faces in a photo (``vision.faces.FaceDetector``)."""

    def detect(self, image_bgr: np.ndarray) -> list[Face]: ...


class Embedder(Protocol):
    """What turns a face into a unit vector (``vision.embedder``)."""

    name: str
    dim: int

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray: ...


@dataclass(frozen=True)
class EnrolResult:
    """What one enrolment stored."""

    person_id: int
    person_name: str
    watchlist_id: int
    watchlist_name: str
    embedder: str
    templates: int  # templates added now
    template_ids: tuple[int, ...]
    skipped: int  # photos already enrolled for this person with this embedder
    created_person: bool  # False when the person was already on the watchlist
    photo_paths: tuple[str, ...] = ()  # per new template, its face photo (media-relative)


@dataclass(frozen=True)
class _Photo:
    path: Path
    sha256: str
    image: np.ndarray
    face: Face


def read_image(path: Path) -> tuple[np.ndarray, str]:
    """Decode a photo (BGR, EXIF orientation applied) and its sha256; EnrolmentError if not."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise EnrolmentError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise EnrolmentError(f"{path}: is a folder, not an image") from None
    except OSError as error:
        raise EnrolmentError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not data:
        raise EnrolmentError(f"{path}: not an image (the file is empty)")
    check_pixels(data, str(path))
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise EnrolmentError(
            f"{path}: not an image (OpenCV cannot decode it as JPEG, PNG or another image format)"
        )
    return image, hashlib.sha256(data).hexdigest()


def check_pixels(data: bytes, name: str, max_pixels: int | None = None) -> None:
    """Refuse a photo whose header declares more than ``max_pixels`` (default
    :data:`MAX_PIXELS`), or whose size cannot be read from its header, before it is decoded."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    size = image_size(data)
    if size is None:
        raise EnrolmentError(
            f"{name}: not an image (only JPEG, PNG, WebP, BMP and GIF photos are read, "
            "and this one's header is not one of them)"
        )
    width, height = size
    if width * height > limit:
        raise PhotoTooLarge(
            f"{name}: the photo is too large: {width}×{height} pixels; "
            f"the limit is {limit / 1e6:g} megapixels"
        )


def check_photo(
    path: Path,
    detector: FaceFinder,
    *,
    min_face_width: int = MIN_FACE_WIDTH,
    min_quality: float = MIN_QUALITY,
) -> _Photo:
    """Load a photo and find its one usable face, or raise EnrolmentError saying why not."""
    image, digest = read_image(path)
    faces = detector.detect(image)
    if not faces:
        raise EnrolmentError(f"no face found in {path}")
    if len(faces) > 1:
        raise EnrolmentError(
            f"{len(faces)} faces found in {path}; use a photo with exactly one face"
        )
    face = faces[0]
    if face.width < min_face_width:
        raise EnrolmentError(
            f"the face in {path} is {face.width:.0f} px wide, too small; "
            f"use a photo where it is at least {min_face_width} px wide"
        )
    if face.quality < min_quality:
        raise EnrolmentError(
            f"the face in {path} is too blurred or turned away (quality {face.quality:.2f}, "
            f"needs {min_quality:.2f}); use a sharp, frontal photo"
        )
    return _Photo(Path(path), digest, image, face)


def _vector(embedder: Embedder, photo: _Photo) -> bytes:
    vector = np.asarray(embedder.embed(photo.image, photo.face), np.float32).reshape(-1)
    if vector.shape != (embedder.dim,) or not np.isfinite(vector).all():
        raise EnrolmentError(f"the {embedder.name} embedder gave no usable vector for {photo.path}")
    if abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
        raise EnrolmentError(
            f"the {embedder.name} embedder gave a non-unit vector for {photo.path}"
        )
    return vector.astype("<f4").tobytes()


def check_authorisation(info: WatchlistInfo, now: datetime, what: str) -> None:
    """Refuse ``what`` (enrolment, re-embedding) on a watchlist whose authorisation was
    refused, revoked, or has expired by ``now``."""
    if info.status in ("refused", "revoked"):
        raise AuthorisationError(
            f"the authorisation of watchlist '{info.name}' was {info.status}; {what} refused"
        )
    if now >= info.valid_until:
        raise AuthorisationError(
            f"the authorisation of watchlist '{info.name}' expired on "
            f"{info.valid_until.isoformat()}; {what} refused"
        )


def enroll(
    store: Store,
    watchlist: str,
    person: str,
    images: Sequence[Path],
    detector: FaceFinder,
    embedder: Embedder,
    *,
    by: str,
    min_face_width: int = MIN_FACE_WIDTH,
    min_quality: float = MIN_QUALITY,
    clock: Clock = SYSTEM_CLOCK,
) -> EnrolResult:
    """Enrol ``person`` on ``watchlist`` from ``images`` (one face each); all or nothing.

    Raises :class:`EnrolmentError` (a photo refused, naming every refused photo),
    :class:`~safecity.identity.watchlists.WatchlistError` (no such watchlist) or
    :class:`AuthorisationError` (the watchlist's authorisation has expired).
    A person already on the watchlist gets the new templates added. ``by`` is
    recorded as the enroller (who may then not review this person's matches)
    and the enrolment is audited with the photos' sha256, never the photos.
    Each new template gets a face photo under the media folder
    (:mod:`safecity.identity.photos`); if the transaction fails they are removed.
    :class:`~safecity.store.StoreError` when the database or the media folder fails.
    """
    by = audit.check_actor(by)
    person = (person or "").strip()
    if not person:
        raise EnrolmentError("give the name of the person to enrol")
    if not images:
        raise EnrolmentError(f"no photos given to enrol '{person}'")
    info = get_watchlist(store, watchlist, clock=clock)
    check_kind(info, "face")
    now = clock.now()
    check_authorisation(info, now, "enrolment")

    # Check every photo before storing anything, and report every refusal at once.
    photos: list[_Photo] = []
    refusals: list[str] = []
    for path in images:
        try:
            photos.append(
                check_photo(path, detector, min_face_width=min_face_width, min_quality=min_quality)
            )
        except EnrolmentError as error:
            refusals.append(str(error))
    if refusals:
        prefix = "" if len(refusals) == 1 else f"{len(refusals)} of {len(images)} photos refused: "
        raise EnrolmentError(prefix + "; ".join(refusals) + "; nothing was enrolled")

    unique = list({p.sha256: p for p in photos}.values())  # the same file given twice
    vectors = [(photo.sha256, _vector(embedder, photo)) for photo in unique]
    faces: dict[str, bytes] = {}
    for photo in unique:
        try:
            faces[photo.sha256] = encode_photo(
                photo.image, photo.face.box, quality=store.media.jpeg_quality
            )
        except ValueError as error:
            raise EnrolmentError(
                f"cannot keep the face of {photo.path} ({error}); nothing was enrolled"
            ) from None

    written: list[str] = []
    try:
        result = _store_enrolment(
            store, info, person, by, embedder, vectors, faces, len(images), now, written
        )
    except BaseException:
        remove_photos(store, written)  # the rows were rolled back: so go the files
        raise
    return result


def _store_enrolment(
    store: Store,
    info: WatchlistInfo,
    person: str,
    by: str,
    embedder: Embedder,
    vectors: list[tuple[str, bytes]],
    faces: dict[str, bytes],
    given: int,
    now: datetime,
    written: list[str],
) -> EnrolResult:
    """The enrolment's one transaction; appends each photo file it writes to ``written``."""
    with store.transaction(write=True) as session:
        row = session.scalar(
            select(Person).where(Person.watchlist_id == info.id, Person.name == person)
        )
        created = row is None
        if row is None:
            row = Person(name=person, watchlist_id=info.id, enrolled_by=by, created_at=now)
            session.add(row)
            session.flush()
        elif row.removed_at is not None:  # enrolled again after a removal
            row.removed_at = None
            row.enrolled_by = by
        known = set(
            session.scalars(
                select(Template.source_sha256).where(
                    Template.person_id == row.id, Template.embedder == embedder.name
                )
            )
        )
        templates = [
            Template(
                person_id=row.id,
                embedder=embedder.name,
                dim=int(embedder.dim),
                vector=blob,
                source_sha256=digest,
                enrolled_by=by,
                created_at=now,
            )
            for digest, blob in vectors
            if digest not in known
        ]
        session.add_all(templates)
        session.flush()
        for template in templates:
            relative = photo_relative(row.id, template.id, template.source_sha256)
            written.append(relative)
            try:
                write_photo(store, relative, faces[template.source_sha256])
            except (OSError, ValueError) as error:
                reason = getattr(error, "strerror", None) or error
                raise StoreError(
                    f"cannot write the enrolled photo {relative} under the media folder "
                    f"{store.media_dir}: {reason}; nothing was enrolled"
                ) from None
            template.photo_path = relative
        session.flush()
        result = EnrolResult(
            person_id=row.id,
            person_name=person,
            watchlist_id=info.id,
            watchlist_name=info.name,
            embedder=embedder.name,
            templates=len(templates),
            template_ids=tuple(t.id for t in templates),
            skipped=given - len(templates),
            created_person=created,
            photo_paths=tuple(t.photo_path for t in templates if t.photo_path),
        )
        audit.append(
            session,
            at=now,
            actor=by,
            action="enrolment.add",
            object=f"person:{row.id}",
            details={
                "person_id": row.id,
                "watchlist": info.name,
                "templates": len(templates),
                "photos_sha256": [digest for digest, _ in vectors],
                "face_photos_kept": len(templates),
            },
        )
    return result


def remove_person(
    store: Store, watchlist: str, person: str, *, by: str, reason: str, clock: Clock = SYSTEM_CLOCK
) -> int:
    """Remove a person and every template of theirs from a watchlist (audited).

    Matching stops at once (no template). If match evidence still refers to
    them, the name stays (marked removed) so that evidence keeps saying who
    matched, and a subject request can still find it; retention deletes the
    name with the last such event. The templates' face photos are deleted after
    the commit. Returns the number of templates deleted.
    """
    by = audit.check_actor(by)
    if not (reason or "").strip():
        raise EnrolmentError("say why the person is removed (--reason)")
    info = get_watchlist(store, watchlist, clock=clock)
    with store.transaction(write=True) as session:
        row = session.scalar(
            select(Person).where(Person.watchlist_id == info.id, Person.name == person)
        )
        if row is None or row.removed_at is not None:
            raise EnrolmentError(f"'{person}' is not on watchlist '{info.name}'")
        templates = len(row.templates)
        plates = [p.plate for p in row.plates]  # a listed vehicle's: they go like templates
        photos = sorted({t.photo_path for t in row.templates if t.photo_path})
        referenced = session.scalar(
            select(EventRecord.id).where(EventRecord.match_person_id == row.id).limit(1)
        )
        if referenced is None:
            session.delete(row)
        else:
            for template in list(row.templates):
                session.delete(template)
            for plate in list(row.plates):
                session.delete(plate)
            row.removed_at = clock.now()
        session.flush()
        audit.append(
            session,
            at=clock.now(),
            actor=by,
            action="enrolment.remove",
            object=f"person:{row.id}",
            details={
                "person_id": row.id,
                "watchlist": info.name,
                "templates": templates,
                "plates": plates,
                "reason": reason.strip(),
            },
        )
    remove_photos(store, photos)  # one left behind goes with retention's orphan sweep
    return templates
