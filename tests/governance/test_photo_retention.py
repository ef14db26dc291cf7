"""Enrolled face photos go with their templates: erasure, template expiry, orphan sweep.

Real portraits enrolled with the real detector and embedder, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clock_support import needs_real_file_times
from governance_support import DAY, HOUR, authorised_watchlist
from sqlalchemy import func, select

from safecity.config import FacesConfig, SafecityConfig
from safecity.governance.retention import run_retention
from safecity.governance.subjects import erase_subject, find_subject
from safecity.identity.enrol import enroll
from safecity.identity.photos import enrolled_photo
from safecity.store import Store
from safecity.store.schema import Template
from safecity.vision.embedder import make_embedder
from safecity.vision.faces import FaceDetector

CONFIG = SafecityConfig()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FacesConfig())


@pytest.fixture(scope="module")
def embedder():
    return make_embedder()


@pytest.fixture
def images(data_dir: Path) -> Path:
    return data_dir / "images"


def _enrol(store, clock, detector, embedder, name, *photos):
    return enroll(store, "wanted", name, list(photos), detector, embedder, by="alice", clock=clock)


def _exists(store: Store, paths) -> list[bool]:
    return [store.media.path(p).exists() for p in paths]


def _age(path: Path, seconds: float) -> None:
    at = datetime.now(UTC).timestamp() - seconds
    os.utime(path, (at, at))


def test_erasure_removes_the_enrolled_photos(store, clock, detector, embedder, images):
    authorised_watchlist(store, clock, "wanted")
    obama = _enrol(store, clock, detector, embedder, "Obama", images / "obama.jpg")
    biden = _enrol(store, clock, detector, embedder, "Biden", images / "biden.jpg")
    assert _exists(store, obama.photo_paths + biden.photo_paths) == [True, True]

    found = find_subject(
        store,
        images / "obama2.jpg",
        request_ref="SAR-9",
        detector=detector,
        embedder=embedder,
        threshold=0.925,
        by="carol",
        clock=clock,
    )
    assert [e.person_id for e in found.entries] == [obama.person_id]
    erased = erase_subject(store, found, person_ids=[obama.person_id], by="carol", clock=clock)

    assert erased.templates_deleted == 1 and erased.photos_removed == 1
    assert erased.files_left == ()
    assert _exists(store, obama.photo_paths) == [False]
    assert enrolled_photo(store, obama.person_id) is None
    assert _exists(store, biden.photo_paths) == [True]  # someone else's entry is untouched


def test_template_expiry_removes_the_photos(store, clock, detector, embedder, images):
    authorised_watchlist(store, clock, "wanted", valid_until=clock.now() + DAY)
    obama = _enrol(
        store, clock, detector, embedder, "Obama", images / "obama.jpg", images / "obama3.jpg"
    )
    grace = timedelta(days=CONFIG.authorisations.template_grace_days)
    clock.advance(DAY + grace - HOUR)
    assert run_retention(store, CONFIG, clock=clock).templates == 0
    assert _exists(store, obama.photo_paths) == [True, True]

    clock.advance(2 * HOUR)
    report = run_retention(store, CONFIG, clock=clock)

    assert (report.templates, report.files, report.orphans) == (2, 2, 0)
    assert _exists(store, obama.photo_paths) == [False, False]
    assert enrolled_photo(store, obama.person_id) is None


@needs_real_file_times
def test_the_orphan_sweep_keeps_live_photos_and_removes_orphaned_ones(
    store, clock, detector, embedder, images
):
    authorised_watchlist(store, clock, "wanted")
    obama = _enrol(store, clock, detector, embedder, "Obama", images / "obama.jpg")
    grace_s = CONFIG.retention.orphan_grace_s
    live = store.media.path(obama.photo_paths[0])
    _age(live, 2 * grace_s)  # old, but its template refers to it
    folder = live.parent
    orphan = folder / "999-0123456789abcdef.jpg"  # a template deleted, its file left behind
    orphan.write_bytes(live.read_bytes())
    _age(orphan, 2 * grace_s)
    young = folder / "998-0123456789abcdef.jpg"  # an enrolment still committing
    young.write_bytes(b"x")
    gone_person = store.media.root / "enrolled" / "4242"
    gone_person.mkdir(parents=True)
    gone_orphan = gone_person / "7-ffffffffffffffff.jpg"
    gone_orphan.write_bytes(b"x")
    _age(gone_orphan, 2 * grace_s)
    foreign = store.media.root / "enrolled" / "notes" / "readme.jpg"  # not a person folder
    foreign.parent.mkdir()
    foreign.write_bytes(b"x")
    _age(foreign, 100 * grace_s)

    report = run_retention(store, CONFIG, clock=clock)

    assert (report.orphans, report.files) == (2, 2)
    assert live.exists() and young.exists() and foreign.exists()
    assert not orphan.exists() and not gone_orphan.exists()
    assert enrolled_photo(store, obama.person_id) == live
    with store.transaction() as session:
        assert session.scalar(select(func.count(Template.id))) == 1

    # The emptied person folder goes once it is older than the grace too.
    _age(gone_person, 2 * grace_s)
    again = run_retention(store, CONFIG, clock=clock)
    assert again.orphans == 0 and again.folders == 1 and not gone_person.exists()
    assert live.exists()
