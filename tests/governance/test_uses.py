"""Identification uses: start and end are audited per watchlist and camera, by frame time;
an authorisation that expires mid-stream stops matching at that instant."""

from __future__ import annotations

from datetime import timedelta

from governance_support import DAY, add_person, authorised_watchlist, unit
from sqlalchemy import select, text

from safecity.config import SafecityConfig
from safecity.governance.audit import list_records, verify
from safecity.governance.uses import AuditedGallery
from safecity.identity.gallery import GalleryCache
from safecity.store import Store
from safecity.store.schema import IdentificationUse

SECOND = timedelta(seconds=1)


def _uses(store: Store) -> list[IdentificationUse]:
    with store.transaction() as session:
        return list(session.scalars(select(IdentificationUse).order_by(IdentificationUse.id)))


def test_expiry_mid_stream_stops_matching_at_that_instant(store: Store, clock) -> None:
    start = clock.now()
    until = start + timedelta(minutes=2)
    info = authorised_watchlist(
        store, clock, valid_from=start, valid_until=until, cameras=["gate-1"]
    )
    face = unit(5)
    add_person(store, info.id, "Jane Doe", [face])
    gallery = AuditedGallery(
        GalleryCache(store, SafecityConfig(), reload_s=3600), store, clock, heartbeat_s=60
    )

    # A stream of frames, 1 per second, across the end of the authorisation.
    matched_at = []
    for i in range(180):
        at = start + i * SECOND
        matcher = gallery.matcher_for("gate-1", at)
        if matcher is not None and matcher.match(face) is not None:
            matched_at.append(at)
        assert gallery.matcher_for("gate-2", at) is None  # out of scope: never a use
    gallery.close()
    assert matched_at[0] == start and matched_at[-1] == until - SECOND
    assert len(matched_at) == 120

    (use,) = _uses(store)
    assert (use.camera, use.watchlist_name, use.authorisation_id) == (
        "gate-1",
        "wanted",
        info.authorisation_id,
    )
    assert (use.started_at, use.ended_at) == (start, until)
    records = list_records(store, action="identification.", newest_first=False)
    assert [r.action for r in records] == ["identification.start", "identification.end"]
    assert (
        records[1].details["seconds"] == 120 and "no longer allows" in records[1].details["reason"]
    )
    assert verify(store).ok


def test_close_ends_open_uses_at_the_last_frame(store: Store, clock) -> None:
    info = authorised_watchlist(store, clock)
    add_person(store, info.id, "Jane Doe", [unit(1)])
    gallery = AuditedGallery(GalleryCache(store, SafecityConfig()), store, clock, heartbeat_s=30)
    start = clock.now()
    for i in range(100):
        gallery.matcher_for("gate-1", start + i * SECOND)
    heartbeat = _uses(store)[0].last_seen_at
    assert heartbeat == start + 90 * SECOND  # advanced every 30 s of frame time
    gallery.close()
    (use,) = _uses(store)
    assert use.ended_at == start + 99 * SECOND
    assert (
        list_records(store, action="identification.end")[0].details["reason"]
        == "the camera stopped"
    )


def test_a_use_that_cannot_be_audited_does_not_match(sqlite_store: Store, clock, tmp_path) -> None:
    info = authorised_watchlist(sqlite_store, clock)
    face = unit(2)
    add_person(sqlite_store, info.id, "Jane Doe", [face])
    cache = GalleryCache(sqlite_store, SafecityConfig())
    cache.reload()
    gallery = AuditedGallery(cache, sqlite_store, clock, retry_s=0)
    # The audit table refuses inserts (a full disk, a lost connection…).
    with sqlite_store.transaction() as session:
        session.execute(
            text(
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    assert gallery.matcher_for("gate-1", clock.now()) is None
    assert _uses(sqlite_store) == []
    with sqlite_store.transaction() as session:
        session.execute(text("DROP TRIGGER no_audit"))
    matcher = gallery.matcher_for("gate-1", clock.now() + SECOND)
    assert matcher is not None and matcher.match(face).person_name == "Jane Doe"
    assert len(_uses(sqlite_store)) == 1


def test_watchlists_outside_their_window_start_no_use(store: Store, clock) -> None:
    info = authorised_watchlist(
        store, clock, valid_from=clock.now() + DAY, valid_until=clock.now() + 2 * DAY
    )
    add_person(store, info.id, "Jane Doe", [unit(1)])
    gallery = AuditedGallery(GalleryCache(store, SafecityConfig()), store, clock)
    assert gallery.matcher_for("gate-1", clock.now()) is None
    gallery.close()
    assert _uses(store) == [] and list_records(store, action="identification.") == []
