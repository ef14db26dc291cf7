"""Watchlists: authorisation validation, and time/camera scoping of active_gallery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from safecity.errors import AuthorisationError
from safecity.governance.authorisations import approve
from safecity.governance.clock import ManualClock
from safecity.identity.watchlists import (
    WatchlistError,
    WatchlistInfo,
    active_gallery,
    create_watchlist,
    get_watchlist,
    list_watchlists,
)
from safecity.store import Store, open_store
from safecity.store.schema import Person, Template

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def store(backend_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(backend_url, tmp_path / "media")
    yield opened
    opened.close()


def _authorised(**overrides):
    fields = dict(
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="2024/117",
        purpose="find missing persons",
        valid_from=NOW - DAY,
        valid_until=NOW + 30 * DAY,
        cameras=None,
        by="alice",
        clock=ManualClock(NOW),
    )
    fields.update(overrides)
    return fields


def _approved(store: Store, name: str, **fields) -> WatchlistInfo:
    """A watchlist proposed by alice and approved by bob while it was valid."""
    info = create_watchlist(store, name, **fields)
    approve(store, info.authorisation_id, by="bob", clock=ManualClock(fields["valid_from"]))
    return get_watchlist(store, info.id)


def _enrol_vectors(store: Store, watchlist_id: int, name: str, vectors, embedder="dlib") -> int:
    """Store templates directly (the embedder is tested in test_enrol)."""
    with store.transaction() as session:
        person = Person(name=name, watchlist_id=watchlist_id)
        session.add(person)
        session.flush()
        for v in vectors:
            v = np.asarray(v, np.float32)
            session.add(
                Template(
                    person_id=person.id,
                    embedder=embedder,
                    dim=v.size,
                    vector=v.astype("<f4").tobytes(),
                    source_sha256="0" * 64,
                )
            )
        return person.id


def _unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


# ---------------------------------------------------------------- validation


def test_create_and_list(store: Store) -> None:
    created = create_watchlist(store, "missing", **_authorised(cameras=["gate-2", "gate-1"]))
    other = create_watchlist(store, "alerts", **_authorised(valid_until=NOW + DAY))
    assert created.cameras == ["gate-1", "gate-2"] and other.cameras is None
    rows = list_watchlists(store)
    assert [r.name for r in rows] == ["alerts", "missing"]
    missing = rows[1]
    assert (missing.legal_basis, missing.authority, missing.reference, missing.purpose) == (
        "Police Act s.12",
        "District Court",
        "2024/117",
        "find missing persons",
    )
    assert missing.valid_from == NOW - DAY and missing.valid_from.tzinfo is not None
    assert (missing.persons, missing.templates) == (0, 0)
    assert get_watchlist(store, "missing").id == created.id


@pytest.mark.parametrize(
    ("field", "label"),
    [
        ("legal_basis", "legal basis"),
        ("authority", "issuing authority"),
        ("reference", "reference"),
        ("purpose", "purpose"),
    ],
)
def test_every_authorisation_field_is_required(store: Store, field: str, label: str) -> None:
    for empty in ("", "   ", None):
        with pytest.raises(AuthorisationError, match=f"needs: {label}$"):
            create_watchlist(store, "w", **_authorised(**{field: empty}))
    assert list_watchlists(store) == []


def test_validity_window(store: Store) -> None:
    with pytest.raises(AuthorisationError, match="must end after it starts"):
        create_watchlist(store, "w", **_authorised(valid_until=NOW - DAY))
    with pytest.raises(AuthorisationError, match="must end after it starts"):
        create_watchlist(store, "w", **_authorised(valid_from=NOW, valid_until=NOW))
    with pytest.raises(AuthorisationError, match="time zone"):
        create_watchlist(store, "w", **_authorised(valid_from=datetime(2024, 5, 1)))
    assert list_watchlists(store) == []


def test_camera_scope(store: Store) -> None:
    with pytest.raises(AuthorisationError, match="camera scope is empty"):
        create_watchlist(store, "w", **_authorised(cameras=[]))
    with pytest.raises(AuthorisationError, match="invalid camera name"):
        create_watchlist(store, "w", **_authorised(cameras=["gate 1/../x"]))
    assert create_watchlist(store, "w", **_authorised(cameras="all")).cameras is None


def test_duplicate_and_unknown_names(store: Store) -> None:
    create_watchlist(store, "missing", **_authorised())
    with pytest.raises(WatchlistError, match="a watchlist named 'missing' already exists"):
        create_watchlist(store, "missing", **_authorised(reference="other"))
    with pytest.raises(WatchlistError, match="no watchlist named 'nope'"):
        get_watchlist(store, "nope")
    assert len(list_watchlists(store)) == 1


# ---------------------------------------------------------------- active_gallery


def test_gallery_is_scoped_by_time_and_camera(store: Store) -> None:
    everywhere = _approved(store, "everywhere", **_authorised())
    gate1 = _approved(store, "gate1-only", **_authorised(cameras=["gate-1"]))
    expired = _approved(
        store, "expired", **_authorised(valid_from=NOW - 10 * DAY, valid_until=NOW - DAY)
    )
    future = _approved(
        store, "future", **_authorised(valid_from=NOW + DAY, valid_until=NOW + 10 * DAY)
    )
    a = _enrol_vectors(store, everywhere.id, "A", [_unit(1), _unit(2)])
    b = _enrol_vectors(store, gate1.id, "B", [_unit(3)])
    _enrol_vectors(store, expired.id, "C", [_unit(4)])
    _enrol_vectors(store, future.id, "D", [_unit(5)])
    _enrol_vectors(store, everywhere.id, "E", [_unit(6, dim=16)], embedder="arcface")

    vectors, entries = active_gallery(store, "gate-1", NOW, "dlib")
    assert vectors.dtype == np.float32 and vectors.shape == (3, 8)
    assert [(e.person_name, e.watchlist_name) for e in entries] == [
        ("A", "everywhere"),
        ("A", "everywhere"),
        ("B", "gate1-only"),
    ]
    assert [e.person_id for e in entries] == [a, a, b]
    np.testing.assert_array_equal(vectors, np.stack([_unit(1), _unit(2), _unit(3)]))

    # another camera: B's scope does not cover it
    _, entries = active_gallery(store, "gate-2", NOW, "dlib")
    assert {e.person_name for e in entries} == {"A"}
    # expired and not-yet-valid authorisations give nothing; boundaries are [from, until)
    _, entries = active_gallery(store, "gate-1", NOW - 5 * DAY, "dlib")
    assert {e.person_name for e in entries} == {"C"}
    _, entries = active_gallery(store, "gate-1", NOW + DAY, "dlib")
    assert {e.person_name for e in entries} == {"A", "B", "D"}
    _, entries = active_gallery(store, "gate-1", NOW - DAY, "dlib")  # C's valid_until
    assert {e.person_name for e in entries} == {"A", "B"}
    # other embedders are kept apart
    vectors, entries = active_gallery(store, "gate-1", NOW, "arcface")
    assert vectors.shape == (1, 16) and entries[0].person_name == "E"


def test_gallery_time_in_another_zone(store: Store) -> None:
    w = _approved(store, "w", **_authorised(valid_from=NOW, valid_until=NOW + DAY))
    _enrol_vectors(store, w.id, "A", [_unit(1)])
    before = (NOW - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-5)))
    after = (NOW + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=9)))
    assert active_gallery(store, "c", before, "dlib")[0].shape == (0, 0)
    assert active_gallery(store, "c", after, "dlib")[0].shape == (1, 8)


def test_empty_gallery(store: Store) -> None:
    vectors, entries = active_gallery(store, "gate-1", NOW, "dlib")
    assert vectors.shape == (0, 0) and entries == []
    with pytest.raises(ValueError, match="timezone-aware"):
        active_gallery(store, "gate-1", datetime(2024, 5, 1), "dlib")


def test_list_counts_persons_and_templates(store: Store) -> None:
    w = _approved(store, "w", **_authorised())
    _enrol_vectors(store, w.id, "A", [_unit(1), _unit(2)])
    _enrol_vectors(store, w.id, "B", [_unit(3)])
    (row,) = list_watchlists(store, clock=ManualClock(NOW))
    assert (row.persons, row.templates, row.valid_now) == (2, 3, True)
    (later,) = list_watchlists(store, clock=ManualClock(NOW + 31 * DAY))
    assert later.valid_now is False  # its window ended at NOW + 30 days
    assert row.status == "active" and row.authorisation_id
    assert row.covers("any-camera", NOW)


# -- the pipeline's view: GalleryCache decides per frame time -------------------------
def test_gallery_cache_follows_frame_time_and_scope(store: Store) -> None:
    """Matching stops at the very instant the authorisation ends, by frame time,
    without waiting for a reload; out-of-scope cameras never get a matcher."""
    from safecity.config import SafecityConfig
    from safecity.identity.gallery import GalleryCache

    until = NOW + timedelta(minutes=5)
    info = _approved(store, "gate-only", **_authorised(valid_until=until, cameras=["gate-1"]))
    face = _unit(1, dim=128)
    _enrol_vectors(store, info.id, "Jane Roe", [face])
    cache = GalleryCache(store, SafecityConfig(), reload_s=3600)

    matcher = cache.matcher_for("gate-1", until - timedelta(microseconds=1))
    assert matcher is not None
    match = matcher.match(face)
    assert match is not None and match.person_name == "Jane Roe"
    assert cache.matcher_for("gate-1", until) is None  # expired at that instant
    assert cache.matcher_for("gate-1", NOW - 2 * DAY) is None  # not yet valid
    assert cache.matcher_for("square", NOW) is None  # not in scope


def test_gallery_cache_without_templates_or_watchlists(store: Store) -> None:
    from safecity.config import SafecityConfig
    from safecity.identity.gallery import GalleryCache

    cache = GalleryCache(store, SafecityConfig())
    assert cache.matcher_for("gate-1", NOW) is None
    _approved(store, "empty", **_authorised())
    cache.reload()
    assert cache.matcher_for("gate-1", NOW) is None  # authorised, but nobody enrolled


def test_gallery_cache_survives_a_database_that_went_away(tmp_path: Path) -> None:
    """A camera keeps its last authorised gallery (still checked against the frame
    time) while the store cannot be read, instead of stopping."""
    from safecity.config import SafecityConfig
    from safecity.identity.gallery import GalleryCache

    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "media")
    info = _approved(store, "w", **_authorised(valid_until=NOW + DAY))
    face = _unit(2, dim=128)
    _enrol_vectors(store, info.id, "Jane Roe", [face])
    cache = GalleryCache(store, SafecityConfig(), reload_s=0)
    assert cache.matcher_for("gate-1", NOW).match(face) is not None

    store.engine.dispose()
    (tmp_path / "db.sqlite").unlink()  # the next read finds no tables: a StoreError
    assert cache.matcher_for("gate-1", NOW).match(face) is not None
    assert cache.matcher_for("gate-1", NOW + DAY) is None  # the window still applies
    store.close()


def test_an_unapproved_authorisation_matches_nothing(store: Store) -> None:
    """Proposed by one user, inside its window and scope: still no gallery, and a
    perfect match is impossible, until a second user approves."""
    from safecity.config import SafecityConfig
    from safecity.identity.gallery import GalleryCache

    info = create_watchlist(store, "w", **_authorised())
    face = _unit(7, dim=128)
    _enrol_vectors(store, info.id, "Jane Roe", [face])
    assert info.status == "proposed" and not info.covers("gate-1", NOW)
    assert active_gallery(store, "gate-1", NOW, "dlib")[1] == []
    assert GalleryCache(store, SafecityConfig()).matcher_for("gate-1", NOW) is None
    with pytest.raises(AuthorisationError, match="a different user must approve"):
        approve(store, info.authorisation_id, by="alice", clock=ManualClock(NOW))
    approve(store, info.authorisation_id, by="bob", clock=ManualClock(NOW))
    matcher = GalleryCache(store, SafecityConfig()).matcher_for("gate-1", NOW)
    assert matcher.match(face).person_name == "Jane Roe"
