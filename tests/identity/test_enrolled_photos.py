"""The enrolled face photo kept for reviewers: written with its template, gone with it.

Real portraits, the real face detector and dlib embedder, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from safecity.config import EmbedderConfig, FacesConfig
from safecity.errors import EnrolmentError
from safecity.governance.authorisations import approve
from safecity.identity import enrol as enrol_module
from safecity.identity.enrol import enroll, remove_person
from safecity.identity.photos import MAX_SIDE, enrolled_photo, face_crop, photo_relative
from safecity.identity.watchlists import create_watchlist
from safecity.store import Store, StoreError, open_store
from safecity.store.schema import Person, Template
from safecity.store.testing import scratch_postgres_schema
from safecity.vision.embedder import make_embedder
from safecity.vision.faces import FaceDetector

NOW = datetime.now(UTC)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FacesConfig())


@pytest.fixture(scope="module")
def embedder():
    return make_embedder(EmbedderConfig())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on each backend with an approved watchlist 'missing'."""
    if request.param == "sqlite":
        yield from _with_watchlist(f"sqlite:///{tmp_path / 'db' / 'safecity.db'}", tmp_path)
        return
    try:
        with scratch_postgres_schema() as url:
            yield from _with_watchlist(url, tmp_path)
    except StoreError as error:
        pytest.skip(f"PostgreSQL tests skipped: {error}")


def _with_watchlist(url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(url, tmp_path / "media")
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


def _files(store: Store) -> list[Path]:
    return sorted(p for p in store.media.root.rglob("*") if p.is_file())


def _templates(store: Store) -> list[Template]:
    with store.transaction() as session:
        return list(session.scalars(select(Template).order_by(Template.id)))


def _persons(store: Store) -> int:
    with store.transaction() as session:
        return int(session.scalar(select(func.count(Person.id))) or 0)


def test_the_enrolled_face_is_kept_beside_its_template(store, images, detector, embedder):
    result = enroll(
        store,
        "missing",
        "Barack Obama",
        [images / "obama.jpg", images / "obama2.jpg"],
        detector,
        embedder,
        by="alice",
    )
    templates = _templates(store)
    assert len(result.photo_paths) == 2 and len(templates) == 2
    for template in templates:
        expected = photo_relative(result.person_id, template.id, template.source_sha256)
        assert template.photo_path == expected
        assert expected.startswith(f"enrolled/{result.person_id}/")
        path = store.media.path(template.photo_path)
        assert path.stat().st_mode & 0o077 == 0  # a face: owner-only, like snapshots
        photo = cv2.imread(str(path))
        assert photo is not None and max(photo.shape[:2]) <= MAX_SIDE
    assert set(result.photo_paths) == {t.photo_path for t in templates}
    assert [p.relative_to(store.media.root).as_posix() for p in _files(store)] == sorted(
        result.photo_paths
    )

    # The crop is the face grown by 40% each side: the detector still finds one face in it.
    source = cv2.imread(str(images / "obama.jpg"))
    face = detector.detect(source)[0]
    crop = face_crop(source, face.box)
    assert len(detector.detect(crop)) == 1
    stored = cv2.imread(str(store.media.path(templates[0].photo_path)))
    assert stored.shape == crop.shape

    # The newest template's photo that exists is the one shown.
    newest = store.media.path(templates[-1].photo_path)
    assert enrolled_photo(store, result.person_id) == newest
    newest.unlink()
    assert enrolled_photo(store, result.person_id) == store.media.path(templates[0].photo_path)
    assert enrolled_photo(store, 99999) is None


def test_the_same_photo_again_writes_no_second_file(store, images, detector, embedder):
    enroll(store, "missing", "Obama", [images / "obama.jpg"], detector, embedder, by="alice")
    again = enroll(
        store,
        "missing",
        "Obama",
        [images / "obama.jpg", images / "obama.jpg"],
        detector,
        embedder,
        by="alice",
    )
    assert again.templates == 0 and again.photo_paths == ()
    assert len(_files(store)) == 1


def test_a_refused_enrolment_writes_no_file(store, images, tmp_path, detector, embedder):
    blank = tmp_path / "blank.png"
    assert cv2.imwrite(str(blank), np.full((300, 300, 3), 200, np.uint8))
    with pytest.raises(EnrolmentError, match="nothing was enrolled"):
        enroll(store, "missing", "X", [images / "obama.jpg", blank], detector, embedder, by="alice")
    assert _files(store) == [] and _templates(store) == [] and _persons(store) == 0


def test_a_failed_transaction_leaves_no_file(store, images, detector, embedder, monkeypatch):
    def broken_audit(*args, **kwargs):
        raise StoreError("the database went away")

    monkeypatch.setattr(enrol_module.audit, "append", broken_audit)
    with pytest.raises(StoreError, match="went away"):
        enroll(
            store,
            "missing",
            "Obama",
            [images / "obama.jpg", images / "obama2.jpg"],
            detector,
            embedder,
            by="alice",
        )
    monkeypatch.undo()
    assert _files(store) == [] and _templates(store) == [] and _persons(store) == 0


def test_a_photo_that_cannot_be_written_rolls_back_everything(
    store, images, detector, embedder, monkeypatch
):
    real_write = enrol_module.write_photo
    calls = []

    def second_write_fails(store_, relative, data):
        calls.append(relative)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(store_, relative, data)

    monkeypatch.setattr(enrol_module, "write_photo", second_write_fails)
    with pytest.raises(StoreError, match="No space left on device; nothing was enrolled"):
        enroll(
            store,
            "missing",
            "Obama",
            [images / "obama.jpg", images / "obama2.jpg"],
            detector,
            embedder,
            by="alice",
        )
    assert len(calls) == 2
    assert _files(store) == [] and _templates(store) == [] and _persons(store) == 0


def test_removing_the_person_removes_the_photos(store, images, detector, embedder):
    obama = enroll(
        store,
        "missing",
        "Obama",
        [images / "obama.jpg", images / "obama3.jpg"],
        detector,
        embedder,
        by="alice",
    )
    biden = enroll(
        store, "missing", "Biden", [images / "biden.jpg"], detector, embedder, by="alice"
    )
    assert len(_files(store)) == 3

    assert remove_person(store, "missing", "Obama", by="alice", reason="found") == 2

    assert not any(store.media.path(p).exists() for p in obama.photo_paths)
    assert not store.media.path(f"enrolled/{obama.person_id}").exists()  # emptied folder too
    assert [store.media.path(p) for p in biden.photo_paths] == _files(store)
    assert enrolled_photo(store, obama.person_id) is None
    assert enrolled_photo(store, biden.person_id) == store.media.path(biden.photo_paths[0])
