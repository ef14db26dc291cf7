"""Retention enforced by the system: what goes when, what a hold keeps, what one run audits.

Real stores (SQLite and PostgreSQL), real snapshot files, a ManualClock moved
past each limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from clock_support import needs_real_file_times
from governance_support import (
    DAY,
    HOUR,
    add_person,
    authorised_watchlist,
    make_event,
    stored_match,
    unit,
)
from sqlalchemy import func, select

from safecity.config import SafecityConfig
from safecity.governance import audit
from safecity.governance.audit import HeadSigner, list_records
from safecity.governance.authorisations import (
    approve,
    file_request,
    get_authorisation,
    propose,
    revoke,
    start_emergency,
)
from safecity.governance.holds import place_hold, release_hold
from safecity.governance.retention import RetentionReport, run_retention
from safecity.governance.review import review_match, review_queue
from safecity.identity.watchlists import create_watchlist, get_watchlist
from safecity.store import Store
from safecity.store.schema import EventRecord, Template
from safecity.store.sink import StoreSink
from safecity.vision.types import Match

CONFIG = SafecityConfig()


def _event(store: Store, event_id: int) -> EventRecord | None:
    with store.transaction() as session:
        return session.get(EventRecord, event_id)


def _files(store: Store, event: EventRecord) -> list[Path]:
    return [store.media.path(p) for p in (event.snapshot_path, event.match_snapshot_path) if p]


def _plain_event(store: Store, clock, image: np.ndarray, start: datetime | None = None) -> int:
    sink = StoreSink(store, clock) if clock is not None else StoreSink(store)
    return sink.write(make_event(image, start=start or clock.now()))


def _confirm(store: Store, clock, event_id: int) -> None:
    review_match(store, event_id, by="carol", decision="confirm", clock=clock)
    assert review_match(store, event_id, by="dave", decision="confirm", clock=clock).status == (
        "confirmed"
    )


def _templates(store: Store) -> int:
    with store.transaction() as session:
        return int(session.scalar(select(func.count(Template.id))) or 0)


def test_snapshots_go_after_72_hours_and_rows_after_30_days(store: Store, clock, portrait):
    event_id = _plain_event(store, clock, portrait)
    files = _files(store, _event(store, event_id))
    assert len(files) == 1 and files[0].exists()

    clock.advance(71 * HOUR)
    assert run_retention(store, CONFIG, clock=clock) == RetentionReport()
    assert files[0].exists()

    clock.advance(2 * HOUR)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.snapshots, report.files, report.events) == (1, 1, 0)
    assert not files[0].exists()
    row = _event(store, event_id)
    assert row is not None and row.snapshot_path is None

    clock.set(row.started_at + 29 * DAY)
    assert run_retention(store, CONFIG, clock=clock).events == 0
    clock.set(row.started_at + 30 * DAY + HOUR)
    assert run_retention(store, CONFIG, clock=clock).events == 1
    assert _event(store, event_id) is None
    # Idempotent: nothing left to do.
    assert run_retention(store, CONFIG, clock=clock) == RetentionReport()


def test_unreviewed_candidate_is_closed_as_expired_after_72_hours(store: Store, clock, portrait):
    matched = stored_match(store, clock, portrait)
    files = _files(store, _event(store, matched.event_id))
    assert len(files) == 2
    clock.advance(71 * HOUR)
    assert run_retention(store, CONFIG, clock=clock).candidates_expired == 0
    assert review_queue(store)

    clock.advance(2 * HOUR)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.candidates_expired, report.files) == (1, 2)
    assert not any(f.exists() for f in files)
    row = _event(store, matched.event_id)
    assert row.match_status == "expired" and row.match_person_id is None
    assert row.match_decided_at == clock.now()
    assert row.match_watchlist_id == matched.watchlist.id and row.match_score is not None
    assert review_queue(store) == []


def test_rejected_evidence_is_already_gone_and_the_row_follows_the_event_rule(
    store: Store, clock, portrait
):
    matched = stored_match(store, clock, portrait)
    snapshot, match_image = _files(store, _event(store, matched.event_id))
    review_match(store, matched.event_id, by="carol", decision="reject", clock=clock)
    assert not match_image.exists()
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.rejected_evidence, report.files) == (0, 0)
    assert _event(store, matched.event_id).match_status == "rejected"
    # Its snapshot (the face pixelated) lives as long as an ordinary event's.
    clock.advance(71 * HOUR)
    assert run_retention(store, CONFIG, clock=clock).files == 0 and snapshot.exists()
    clock.advance(2 * HOUR)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.snapshots, report.files) == (1, 1) and not snapshot.exists()
    assert _event(store, matched.event_id).snapshot_path is None
    clock.advance(31 * DAY)
    assert run_retention(store, CONFIG, clock=clock).events == 1
    assert _event(store, matched.event_id) is None


def test_confirmed_evidence_is_kept_for_the_authorisations_evidence_days(
    store: Store, clock, portrait
):
    long = stored_match(store, clock, portrait, name="long", evidence_days=40)
    short = stored_match(store, clock, portrait, name="short", person="John Roe", evidence_days=5)
    _confirm(store, clock, long.event_id)
    _confirm(store, clock, short.event_id)
    long_files = _files(store, _event(store, long.event_id))
    short_files = _files(store, _event(store, short.event_id))

    clock.advance(4 * DAY)
    assert run_retention(store, CONFIG, clock=clock).confirmed == 0
    assert all(f.exists() for f in long_files + short_files)

    clock.advance(2 * DAY)  # 6 days: past the short period, well before the event rule
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.confirmed, report.files) == (1, 2)
    assert _event(store, short.event_id) is None
    assert not any(f.exists() for f in short_files)

    clock.advance(33 * DAY)  # 39 days: past events_days, inside 40 evidence days
    assert run_retention(store, CONFIG, clock=clock).confirmed == 0
    assert _event(store, long.event_id).match_status == "confirmed"
    assert all(f.exists() for f in long_files)

    clock.advance(2 * DAY)
    assert run_retention(store, CONFIG, clock=clock).confirmed == 1
    assert _event(store, long.event_id) is None
    assert not any(f.exists() for f in long_files)


def test_held_match_outlives_retention_until_released(store: Store, clock, portrait):
    matched = stored_match(store, clock, portrait)
    _confirm(store, clock, matched.event_id)
    hold = place_hold(store, matched.event_id, case_ref="CR-2026-117", by="carol", clock=clock)
    files = _files(store, _event(store, matched.event_id))

    clock.advance(400 * DAY)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.confirmed, report.events, report.files, report.held) == (0, 0, 0, 1)
    row = _event(store, matched.event_id)
    assert row is not None and row.match_status == "confirmed"
    assert all(f.exists() for f in files) and len(files) == 2

    release_hold(store, hold.id, by="dave", reason="case closed", clock=clock)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.confirmed, report.files, report.held) == (1, 2, 0)
    assert _event(store, matched.event_id) is None
    assert not any(f.exists() for f in files)


def test_templates_are_deleted_after_the_grace_not_before(store: Store, clock):
    info = authorised_watchlist(store, clock, valid_until=clock.now() + DAY)
    add_person(store, info.id, "Jane Doe", [unit(1), unit(2)])
    grace = CONFIG.authorisations.template_grace_days

    clock.advance(DAY + timedelta(days=grace) - HOUR)
    assert run_retention(store, CONFIG, clock=clock).templates == 0
    assert _templates(store) == 2

    clock.advance(2 * HOUR)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.templates, report.template_authorisations) == (2, 1)
    assert _templates(store) == 0
    auth = get_authorisation(store, info.authorisation_id)
    assert auth.templates_deleted_at == clock.now()
    assert auth.watchlists == [info.name]  # the watchlist and its persons stay
    assert run_retention(store, CONFIG, clock=clock) == RetentionReport()


def test_renewed_watchlists_keep_their_templates(store: Store, clock):
    info = authorised_watchlist(store, clock, valid_until=clock.now() + DAY)
    add_person(store, info.id, "Jane Doe", [unit(1)])
    renewal = propose(
        store,
        by="alice",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="DC-wanted-2",
        purpose="find missing persons",
        valid_from=clock.now(),
        valid_until=clock.now() + 60 * DAY,
        cameras=None,
        renews=info.authorisation_id,
        clock=clock,
    )
    approve(store, renewal.id, by="bob", clock=clock)

    clock.advance(20 * DAY)
    report = run_retention(store, CONFIG, clock=clock)
    assert report.templates == 0 and _templates(store) == 1
    assert get_authorisation(store, renewal.id).watchlists == [info.name]
    assert get_authorisation(store, info.authorisation_id).templates_deleted_at is not None


def _emergency_match(store: Store, clock, image: np.ndarray, name: str) -> tuple[int, int]:
    auth = start_emergency(
        store,
        by="alice",
        purpose="find a missing child",
        reason="child missing since this morning",
        valid_until=clock.now() + 3 * DAY,
        cameras=None,
        clock=clock,
    )
    watchlist = create_watchlist(store, name, by="alice", authorisation=auth.id, clock=clock)
    person_id = add_person(store, watchlist.id, "Jane Doe", [unit(1)])
    match = Match(person_id, "Jane Doe", watchlist.id, watchlist.name, 0.97, 0.2)
    event_id = StoreSink(store, clock).write(make_event(image, start=clock.now(), match=match))
    return auth.id, event_id


def test_lapsed_emergency_use_has_its_results_annulled(store: Store, clock, portrait):
    lapsed, lapsed_event = _emergency_match(store, clock, portrait, "urgent")
    filed, filed_event = _emergency_match(store, clock, portrait, "urgent-filed")
    file_request(
        store,
        filed,
        by="alice",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="DC-9",
        clock=clock,
    )
    files = _files(store, _event(store, lapsed_event))
    assert _event(store, lapsed_event).match_status == "candidate" and files

    clock.advance(23 * HOUR)
    assert run_retention(store, CONFIG, clock=clock).emergency_uses == 0

    clock.advance(2 * HOUR)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.emergency_uses, report.emergency_results, report.files) == (1, 1, 2)
    row = _event(store, lapsed_event)
    assert row.match_status == "annulled" and row.match_person_id is None
    assert row.match_score is None and row.snapshot_path is None
    assert not any(f.exists() for f in files)
    assert get_authorisation(store, lapsed).results_deleted_at == clock.now()
    assert get_authorisation(store, filed).results_deleted_at is None
    assert _event(store, filed_event).match_status == "candidate"
    assert run_retention(store, CONFIG, clock=clock).emergency_uses == 0


def _touch(path: Path, at: datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (at.timestamp(), at.timestamp()))
    return path


@needs_real_file_times
def test_orphan_files_and_empty_day_folders_are_swept(store: Store, clock, portrait):
    # File ages are the file system's, on the machine's clock (not the run's manual one).
    now = datetime.now(UTC)
    root = store.media.root
    grace = timedelta(seconds=CONFIG.retention.orphan_grace_s)
    event_id = _plain_event(store, clock, portrait)
    kept = _files(store, _event(store, event_id))[0]
    os.utime(kept, ((now - 2 * grace).timestamp(),) * 2)  # old, but its row refers to it
    orphan = _touch(root / "gate-1" / "2026-11-20" / "0123abcd.jpg", now - 2 * grace)
    old_temp = _touch(root / "gate-1" / "2026-11-20" / ".tmpab12.tmp", now - 2 * grace)
    young_temp = _touch(root / "gate-1" / "2026-11-27" / ".tmpcd34.tmp", now - grace / 2)
    young = _touch(root / "gate-2" / "2026-11-27" / "fresh.jpg", now - grace / 2)
    foreign = _touch(root / "notes" / "readme.jpg", now - 100 * grace)  # not a day folder
    top = _touch(root / "keep.txt", now - 100 * grace)
    empty_old = root / "gate-3" / "2026-10-01"
    empty_old.mkdir(parents=True)
    os.utime(empty_old, ((now - 2 * grace).timestamp(),) * 2)

    report = run_retention(store, CONFIG, clock=clock)
    assert (report.orphans, report.files, report.folders) == (2, 2, 1)
    assert not orphan.exists() and not old_temp.exists() and not empty_old.exists()
    assert all(p.exists() for p in (kept, young_temp, young, foreign, top))
    assert (root / "gate-1" / "2026-11-20").is_dir()  # emptied just now: young
    assert run_retention(store, CONFIG, clock=clock).orphans == 0


def test_one_audit_record_with_counts_per_run(store: Store, clock, portrait):
    _plain_event(store, clock, portrait)
    before = list_records(store, limit=10_000)
    clock.advance(4 * DAY)
    report = run_retention(store, CONFIG, clock=clock, actor="erin")
    after = list_records(store, limit=10_000)
    assert len(after) == len(before) + 1
    record = after[0]
    assert (record.action, record.actor, record.at) == ("retention.run", "erin", clock.now())
    assert record.details == report.as_dict() and record.details["snapshots"] == 1
    assert all(isinstance(v, int) for v in record.details.values())


def test_audit_purge_keeps_the_chain_verifiable(store: Store, clock, tmp_path):
    config = SafecityConfig.model_validate(
        {
            "retention": {"audit_days": 200},
            "audit": {"key_path": tmp_path / "key.pem", "heads_path": tmp_path / "heads.jsonl"},
        }
    )
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    for i in range(4):
        audit.record(store, actor="alice", action="search.events", object=f"q:{i}", clock=clock)
    signer.sign(store, clock)
    clock.advance(201 * DAY)
    audit.record(store, actor="alice", action="search.events", object="q:new", clock=clock)

    report = run_retention(store, config, clock=clock)
    assert report.audit_records == 4
    assert audit.verify(store).ok
    assert signer.verify(store).ok
    actions = [r.action for r in list_records(store, newest_first=False)]
    assert actions == ["search.events", "audit.purge", "retention.run"]
    assert run_retention(store, config, clock=clock).audit_records == 0
    assert audit.verify(store).ok


def test_audit_retention_has_a_floor() -> None:
    with pytest.raises(ValueError, match="183"):
        SafecityConfig.model_validate({"retention": {"audit_days": 10}})


def test_many_old_events_are_deleted_batch_by_batch(sqlite_store: Store, clock, portrait):
    sink = StoreSink(sqlite_store, clock)
    ids = sink.write_many([make_event(portrait, track_id=i, start=clock.now()) for i in range(7)])
    clock.advance(31 * DAY)
    report = run_retention(sqlite_store, CONFIG, clock=clock, batch_size=2)
    assert (report.snapshots, report.events, report.files) == (7, 7, 7)
    assert all(_event(sqlite_store, i) is None for i in ids)


@needs_real_file_times
def test_retention_runs_while_the_pipeline_writes(store: Store, clock, portrait):
    sink = StoreSink(store, clock)
    old = sink.write_many(
        [make_event(portrait, track_id=i, start=clock.now() - 40 * DAY) for i in range(12)]
    )
    new: list[int] = []
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(12):
                new.append(sink.write(make_event(portrait, track_id=100 + i, start=clock.now())))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    total = 0
    while writer.is_alive() or total == 0:
        total += run_retention(store, CONFIG, clock=clock, batch_size=3).events
    writer.join()
    assert failures == []
    assert total == 12 and len(old) == len(new) == 12
    # Told apart by track, not by id: SQLite gives a new row the id of the highest
    # deleted one when retention deleted it first (seen 1 run in 5 here).
    with store.transaction() as session:
        stored = session.execute(select(EventRecord.id, EventRecord.track_id)).all()
    assert sorted(track for _, track in stored) == list(range(100, 112))
    assert sorted(i for i, _ in stored) == sorted(new)
    assert all(p.exists() for i in new for p in _files(store, _event(store, i)))


def _registered(group: str) -> bool:
    from safecity.cli import app

    return any(g.name == group for g in app.registered_groups)


@pytest.mark.skipif(not _registered("retention"), reason="the retention group is not registered")
@needs_real_file_times
def test_retention_command(sqlite_store: Store, portrait, tmp_path):
    old = _plain_event(sqlite_store, None, portrait, datetime.now(UTC) - 40 * DAY)
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "safecity", "--db", str(sqlite_store.engine.url), "--media"]
        + [str(sqlite_store.media.root), "--user", "erin", "retention", "run", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts == {**RetentionReport().as_dict(), "snapshots": 1, "events": 1, "files": 1}
    assert _event(sqlite_store, old) is None
    record = list_records(sqlite_store, action="retention.run")[0]
    assert (record.actor, record.details) == ("erin", counts)


def test_a_revoked_unfiled_emergency_use_loses_its_results_too(store: Store, clock, portrait):
    """Revoking before filing must not keep the results: they were never authorised."""
    auth_id, event_id = _emergency_match(store, clock, portrait, "urgent")
    revoke(store, auth_id, by="alice", reason="child found", clock=clock)
    clock.advance(25 * HOUR)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.emergency_uses, report.emergency_results) == (1, 1)
    assert _event(store, event_id).match_status == "annulled"


def test_a_match_stored_after_the_lapse_is_annulled_by_the_next_run(store, clock, portrait):
    """An event analysed late (frame time before the deadline, stored after the run that
    annulled the use) is caught by the next run."""
    auth_id, _ = _emergency_match(store, clock, portrait, "urgent")
    frame_time = clock.now() + 23 * HOUR
    clock.advance(25 * HOUR)
    run_retention(store, CONFIG, clock=clock)
    watchlist = get_authorisation(store, auth_id).watchlists[0]
    info = get_watchlist(store, watchlist)
    match = Match(1, "Jane Doe", info.id, info.name, 0.97, 0.2)
    late = StoreSink(store, clock).write(make_event(portrait, start=frame_time, match=match))
    assert _event(store, late).match_status in (None, "annulled")  # the sink refuses it now
    report = run_retention(store, CONFIG, clock=clock)
    assert report.emergency_uses == 0
    assert _event(store, late).match_status in (None, "annulled")


def _persons(store: Store) -> list[str]:
    from safecity.store.schema import Person

    with store.transaction() as session:
        return list(session.scalars(select(Person.name).order_by(Person.name)))


def test_names_go_with_templates_unless_evidence_refers_to_them(store, clock, portrait):
    """After the grace, templates go; a name no match refers to goes with them, a name
    that confirmed-match evidence still refers to stays until that evidence goes."""
    info = authorised_watchlist(store, clock, valid_until=clock.now() + DAY)
    add_person(store, info.id, "Nobody Matched", [unit(7)])
    matched = add_person(store, info.id, "Jane Doe", [unit(1)])
    match = Match(matched, "Jane Doe", info.id, info.name, 0.97, 0.2)
    event_id = StoreSink(store, clock).write(make_event(portrait, start=clock.now(), match=match))
    for reviewer in ("carol", "dave"):
        review_match(store, event_id, by=reviewer, decision="confirm", clock=clock)
    clock.advance(DAY + 8 * DAY)
    report = run_retention(store, CONFIG, clock=clock)
    assert (report.templates, report.persons) == (2, 1)
    assert _persons(store) == ["Jane Doe"]
    clock.advance(100 * DAY)  # evidence period (90 days) over
    report = run_retention(store, CONFIG, clock=clock)
    assert report.confirmed == 1 and _persons(store) == []


def test_a_removed_person_stays_while_evidence_refers_to_them(store, clock, portrait):
    from safecity.identity.enrol import remove_person

    m = stored_match(store, clock, portrait)
    for reviewer in ("carol", "dave"):
        review_match(store, m.event_id, by=reviewer, decision="confirm", clock=clock)
    remove_person(store, m.watchlist.name, "Jane Doe", by="alice", reason="found", clock=clock)
    assert _persons(store) == ["Jane Doe"] and _templates(store) == 0
    assert _event(store, m.event_id).match_person_id == m.person_id
    clock.advance(31 * DAY)
    run_retention(store, CONFIG, clock=clock)
    assert _persons(store) == ["Jane Doe"]  # confirmed evidence is kept 90 days
    clock.advance(60 * DAY)
    run_retention(store, CONFIG, clock=clock)
    assert _event(store, m.event_id) is None and _persons(store) == []


def _file(store, clock, auth_id: int) -> None:
    file_request(
        store, auth_id, by="alice", legal_basis="Police Act s.12", authority="District Court",
        reference="DC-9", clock=clock,
    )  # fmt: skip


def test_emergency_results_go_unless_the_use_was_approved(store: Store, clock, portrait):
    """Filed then revoked before approval, or filed and never decided: results annulled.
    Approved then revoked: the results were lawful and are kept."""
    revoked, revoked_event = _emergency_match(store, clock, portrait, "revoked-before")
    undecided, undecided_event = _emergency_match(store, clock, portrait, "undecided")
    approved, approved_event = _emergency_match(store, clock, portrait, "approved")
    for auth_id in (revoked, undecided, approved):
        _file(store, clock, auth_id)
    revoke(store, revoked, by="alice", reason="no longer needed", clock=clock)
    approve(store, approved, by="bob", clock=clock)
    revoke(store, approved, by="alice", reason="child found", clock=clock)

    clock.advance(25 * HOUR)  # past the deadline; the undecided one may still be approved
    run_retention(store, CONFIG, clock=clock)
    assert _event(store, revoked_event).match_status == "annulled"
    assert _event(store, undecided_event).match_status == "candidate"
    clock.advance(72 * HOUR)  # no decision within emergency_decision_h
    run_retention(store, CONFIG, clock=clock)
    assert _event(store, undecided_event).match_status == "annulled"
    assert _event(store, approved_event).match_status == "expired"  # unreviewed, not annulled
