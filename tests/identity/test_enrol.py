"""Enrolment with the real face detector and dlib embedder on real portraits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from safecity.config import EmbedderConfig, FacesConfig
from safecity.errors import AuthorisationError, EnrolmentError
from safecity.governance.authorisations import approve
from safecity.governance.clock import ManualClock
from safecity.identity.enrol import enroll
from safecity.identity.watchlists import WatchlistError, active_gallery, create_watchlist
from safecity.store import Store, open_store
from safecity.store.schema import Person, Template
from safecity.vision.embedder import make_embedder
from safecity.vision.faces import FaceDetector

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FacesConfig())


@pytest.fixture(scope="module")
def embedder():
    return make_embedder(EmbedderConfig())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'safecity.db'}", tmp_path / "media")
    info = create_watchlist(
        opened,
        "missing",
        by="alice",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="2024/117",
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=30),
        cameras=None,
        purpose="find missing persons",
    )
    approve(opened, info.authorisation_id, by="bob")
    yield opened
    opened.close()


@pytest.fixture
def images(data_dir: Path) -> Path:
    return data_dir / "images"


def _counts(store: Store) -> tuple[int, int]:
    with store.transaction() as session:
        return (
            session.scalar(select(func.count(Person.id))),
            session.scalar(select(func.count(Template.id))),
        )


def _write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


@pytest.mark.slow
def test_enrol_one_portrait(store: Store, images: Path, detector, embedder) -> None:
    result = enroll(
        store, "missing", "Barack Obama", [images / "obama.jpg"], detector, embedder, by="alice"
    )
    assert (result.templates, result.created_person, result.embedder) == (1, True, "dlib")
    assert _counts(store) == (1, 1)
    with store.transaction() as session:
        template = session.scalars(select(Template)).one()
    assert template.dim == 128 and len(template.vector) == 128 * 4
    photo = cv2.imread(str(images / "obama.jpg"))
    expected = embedder.embed(photo, detector.detect(photo)[0])
    np.testing.assert_allclose(np.frombuffer(template.vector, "<f4"), expected, atol=1e-6)

    vectors, entries = active_gallery(store, "gate-1", NOW, "dlib")
    assert vectors.shape == (1, 128) and entries[0].person_name == "Barack Obama"
    # another photo of the same man is close to the template; Biden is not
    other = cv2.imread(str(images / "obama2.jpg"))
    biden = cv2.imread(str(images / "biden.jpg"))
    same = float(vectors[0] @ embedder.embed(other, detector.detect(other)[0]))
    different = float(vectors[0] @ embedder.embed(biden, detector.detect(biden)[0]))
    assert same > different + 0.05


@pytest.mark.slow
def test_more_photos_and_the_same_photo_again(store: Store, images: Path, detector, embedder):
    first = enroll(
        store,
        "missing",
        "Obama",
        [images / "obama.jpg", images / "obama2.jpg"],
        detector,
        embedder,
        by="alice",
    )
    assert first.templates == 2
    again = enroll(
        store,
        "missing",
        "Obama",
        [images / "obama.jpg", images / "obama3.jpg"],
        detector,
        embedder,
        by="alice",
    )
    assert (again.templates, again.skipped, again.created_person) == (1, 1, False)
    assert again.person_id == first.person_id
    assert _counts(store) == (1, 3)


def test_text_file_is_refused(store: Store, tmp_path: Path, detector, embedder) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo at all\n")
    with pytest.raises(EnrolmentError, match=r"notes\.jpg: not an image \("):
        enroll(store, "missing", "X", [notes], detector, embedder, by="alice")
    assert _counts(store) == (0, 0)


def test_image_without_a_face_is_refused(store, images, tmp_path, detector, embedder) -> None:
    plate = cv2.imread(str(images / "licenseplate_motion.jpg"))
    crop = _write(tmp_path / "plate.png", plate[100:400, 100:500])
    blank = _write(tmp_path / "blank.png", np.full((400, 400, 3), 200, np.uint8))
    for path in (crop, blank):
        with pytest.raises(EnrolmentError, match=f"^no face found in {path}"):
            enroll(store, "missing", "X", [path], detector, embedder, by="alice")
    assert _counts(store) == (0, 0)


def test_two_faces_are_refused(store, images, tmp_path, detector, embedder) -> None:
    obama = cv2.imread(str(images / "obama.jpg"))
    biden = cv2.imread(str(images / "biden.jpg"))
    width = round(biden.shape[1] * obama.shape[0] / biden.shape[0])
    pair = _write(
        tmp_path / "pair.jpg", np.hstack([obama, cv2.resize(biden, (width, obama.shape[0]))])
    )
    with pytest.raises(
        EnrolmentError, match="2 faces found in .*pair.jpg; use a photo with exactly one"
    ):
        enroll(store, "missing", "X", [pair], detector, embedder, by="alice")
    assert _counts(store) == (0, 0)


def test_small_face_is_refused_with_its_size(store, images, tmp_path, detector, embedder) -> None:
    obama = cv2.imread(str(images / "obama.jpg"))
    small = _write(tmp_path / "small.jpg", cv2.resize(obama, None, fx=0.2, fy=0.2))
    with pytest.raises(EnrolmentError, match=r"small.jpg is \d+ px wide, too small"):
        enroll(store, "missing", "X", [small], detector, embedder, by="alice")
    assert _counts(store) == (0, 0)


def test_one_bad_photo_stores_nothing(store, images, tmp_path, detector, embedder) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    missing = tmp_path / "absent.jpg"
    with pytest.raises(EnrolmentError) as caught:
        enroll(
            store,
            "missing",
            "Obama",
            [images / "obama.jpg", notes, missing],
            detector,
            embedder,
            by="alice",
        )
    message = str(caught.value)
    assert message.startswith("2 of 3 photos refused:")
    assert "notes.txt: not an image" in message and "absent.jpg: file not found" in message
    assert "\n" not in message
    assert _counts(store) == (0, 0)


def test_unknown_and_expired_watchlists(store, images, detector, embedder) -> None:
    with pytest.raises(WatchlistError, match="no watchlist named 'nope'"):
        enroll(store, "nope", "X", [images / "obama.jpg"], detector, embedder, by="alice")
    with pytest.raises(AuthorisationError, match="expired"):
        enroll(
            store,
            "missing",
            "X",
            [images / "obama.jpg"],
            detector,
            embedder,
            by="alice",
            clock=ManualClock(NOW + timedelta(days=31)),
        )
    with pytest.raises(EnrolmentError, match="no photos"):
        enroll(store, "missing", "X", [], detector, embedder, by="alice")
    assert _counts(store) == (0, 0)
