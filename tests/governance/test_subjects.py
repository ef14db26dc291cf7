"""Subject requests with real faces: find what is held on a person, report it, erase it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from governance_support import HOUR, T0, authorised_watchlist, make_event
from sqlalchemy import func, select

from safecity.config import FacesConfig
from safecity.governance import audit
from safecity.governance.review import review_match
from safecity.governance.subjects import (
    PURPOSE,
    HoldInfo,
    MatchEvidence,
    RetentionTerms,
    SubjectError,
    SubjectFindings,
    WatchlistEntry,
    check_request_ref,
    erase_subject,
    export_findings,
    find_subject,
    render_html,
)
from safecity.identity.enrol import enroll
from safecity.store import Store, open_store
from safecity.store.schema import EventRecord, LegalHold, Person, Review, Template
from safecity.store.sink import StoreSink
from safecity.vision.embedder import make_embedder
from safecity.vision.faces import FaceDetector
from safecity.vision.types import Match

THRESHOLD = 0.925


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FacesConfig())


@pytest.fixture(scope="module")
def embedder():
    return make_embedder()


@pytest.fixture
def images(data_dir: Path) -> Path:
    return data_dir / "images"


def _find(store, photo, detector, embedder, clock, ref="SAR-1", by="carol"):
    return find_subject(
        store,
        photo,
        request_ref=ref,
        detector=detector,
        embedder=embedder,
        threshold=THRESHOLD,
        by=by,
        clock=clock,
    )


def _match(store, clock, portrait, result, info, *, track: int, at=None) -> int:
    """Store a candidate match of the enrolled person (as the pipeline's sink would)."""
    match = Match(result.person_id, result.person_name, info.id, info.name, 0.95, 0.1)
    event = make_event(portrait, track_id=track, start=at or clock.now(), match=match)
    return StoreSink(store, clock).write(event)


def _hold(store, event_id: int, case_ref: str, *, released: bool = False) -> None:
    with store.transaction() as session:
        session.add(
            LegalHold(
                event_id=event_id,
                case_ref=case_ref,
                placed_by="erin",
                placed_at=T0 + HOUR,
                released_by="erin" if released else None,
                released_at=T0 + 2 * HOUR if released else None,
            )
        )


def _count(store, column, *where) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count(column)).where(*where)) or 0


def _subject_records(store):
    return audit.list_records(store, action="subject.", newest_first=False)


def _event(store, event_id: int) -> EventRecord:
    with store.transaction() as session:
        return session.get(EventRecord, event_id)


# -- find, export, erase -------------------------------------------------------------
def test_find_export_erase_with_a_legal_hold(
    store: Store, clock, detector, embedder, images, portrait, tmp_path
) -> None:
    wanted = authorised_watchlist(store, clock, "wanted")
    # A proposal never approved: not usable for identification, but it holds data all the same.
    authorised_watchlist(store, clock, "pending", approved=False)
    obama = enroll(
        store, "wanted", "Barack Obama", [images / "obama.jpg"], detector, embedder, by="alice",
        clock=clock,
    )  # fmt: skip
    obama_pending = enroll(
        store, "pending", "B. Obama", [images / "obama3.jpg"], detector, embedder, by="alice",
        clock=clock,
    )  # fmt: skip
    biden = enroll(
        store, "wanted", "Joe Biden", [images / "biden.jpg"], detector, embedder, by="alice",
        clock=clock,
    )  # fmt: skip
    free = _match(store, clock, portrait, obama, wanted, track=1)
    held = _match(store, clock, portrait, obama, wanted, track=2)
    released = _match(store, clock, portrait, obama, wanted, track=3)
    biden_event = _match(store, clock, portrait, biden, wanted, track=4)
    for reviewer in ("carol", "dave"):
        review_match(store, held, by=reviewer, decision="confirm", clock=clock)
    _hold(store, held, "CASE-7")
    _hold(store, released, "CASE-3", released=True)
    held_event = _event(store, held)
    held_files = [held_event.snapshot_path, held_event.match_snapshot_path]
    free_event = _event(store, free)
    free_files = [free_event.snapshot_path, free_event.match_snapshot_path]
    assert all(store.media.path(p).exists() for p in free_files + held_files)
    clock.advance(HOUR)

    found = _find(store, images / "obama2.jpg", detector, embedder, clock)

    assert found.found and found.request_ref == "SAR-1"
    assert len(found.probe_sha256) == 64 and found.templates_compared == 3
    by_list = {e.watchlist_name: e for e in found.entries}
    assert set(by_list) == {"wanted", "pending"}  # whatever the authorisation's state
    entry = by_list["wanted"]
    assert (entry.person_id, entry.person_name) == (obama.person_id, "Barack Obama")
    assert entry.legal_basis == "Police Act s.12" and entry.reference == "DC-wanted"
    assert entry.purpose == "find missing persons" and entry.authorisation_status == "active"
    assert entry.enrolled_by == "alice" and entry.enrolled_at == T0 and entry.templates == 1
    assert THRESHOLD <= entry.best_score < 1.0
    assert by_list["pending"].person_id == obama_pending.person_id
    assert by_list["pending"].authorisation_status == "proposed"
    assert by_list["pending"].evidence == ()
    evidence = {e.event_id: e for e in entry.evidence}
    assert set(evidence) == {free, held, released}  # never Biden's event
    assert evidence[free].status == "candidate" and evidence[free].camera == "gate-1"
    assert evidence[free].score == pytest.approx(0.95) and not evidence[free].held
    assert evidence[held].status == "confirmed" and evidence[held].held
    assert [(r.reviewer, r.decision) for r in evidence[held].reviews] == [
        ("carol", "confirm"),
        ("dave", "confirm"),
    ]
    assert [h.case_ref for h in evidence[held].holds] == ["CASE-7"]
    assert not evidence[released].held and evidence[released].holds[0].released_by == "erin"
    assert set(evidence[free].files) == set(free_files)

    # Reports: HTML for the person (snapshots embedded), JSON for the record.
    html_result = export_findings(store, found, tmp_path / "report.html", by="carol", clock=clock)
    html = (tmp_path / "report.html").read_text()
    assert html_result.format == "html" and html_result.images == 6  # 3 events x 2 files
    for text in ("Barack Obama", "Police Act s.12", "find missing persons", "CASE-7", "SAR-1"):
        assert text in html
    assert html.count("data:image/jpeg;base64,") == 6 and "Joe Biden" not in html
    assert (tmp_path / "report.html").stat().st_mode & 0o077 == 0  # personal data: owner only
    export_findings(store, found, tmp_path / "report.json", by="carol", clock=clock)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["request_ref"] == "SAR-1" and data["found"] is True
    wanted_json = next(e for e in data["entries"] if e["watchlist_name"] == "wanted")
    assert wanted_json["person_name"] == "Barack Obama"
    assert {e["event_id"]: e["under_legal_hold"] for e in wanted_json["evidence"]} == {
        free: False,
        held: True,
        released: False,
    }
    assert data["retention"]["snapshots_h"] == 72.0

    with pytest.raises(SubjectError, match="not found by request"):
        erase_subject(store, found, person_ids=[999], by="carol", clock=clock)
    everyone = [e.person_id for e in found.entries]
    erased = erase_subject(store, found, person_ids=everyone, by="carol", clock=clock)

    assert erased.events_erased == 2 and erased.templates_deleted == 2
    assert [(w.event_id, w.case_refs) for w in erased.withheld] == [(held, ("CASE-7",))]
    # The pending entry goes; the wanted one stays, template-less, as the identity of the held
    # evidence (it can match nobody any more).
    assert erased.persons_deleted == 1 and erased.persons_kept == (obama.person_id,)
    assert _count(store, Template.id, Template.person_id == obama.person_id) == 0
    assert _count(store, Person.id, Person.id == obama_pending.person_id) == 0
    assert erased.files_removed == 4 and erased.files_left == ()
    assert not any(store.media.path(p).exists() for p in free_files)
    for event_id in (free, released):
        row = _event(store, event_id)
        assert row.match_status == "erased" and row.match_person_id is None
        assert row.snapshot_path is None and row.match_snapshot_path is None
        assert _count(store, Review.id, Review.event_id == event_id) == 0
    kept = _event(store, held)
    assert kept.match_person_id == obama.person_id and kept.match_status == "confirmed"
    assert all(store.media.path(p).exists() for p in held_files)
    # Biden is untouched.
    assert _event(store, biden_event).match_person_id == biden.person_id
    assert _count(store, Template.id, Template.person_id == biden.person_id) == 1

    records = _subject_records(store)
    assert [r.action for r in records] == [
        "subject.find",
        "subject.export",
        "subject.export",
        "subject.erase",
    ]
    assert all(r.purpose == PURPOSE and r.details["request_ref"] == "SAR-1" for r in records)
    assert all(r.actor == "carol" for r in records)
    find = records[0].details
    assert find["probe_sha256"] == found.probe_sha256 and find["persons_found"] == 2
    assert find["events_found"] == 3 and find["templates_compared"] == 3
    assert [r.details["format"] for r in records[1:3]] == ["html", "json"]
    assert records[1].details["file"] == str((tmp_path / "report.html").resolve())
    assert records[3].details["withheld"] == [{"event": kept.uuid, "case_refs": ["CASE-7"]}]
    for record in records:  # nobody who did not match is named
        assert "Biden" not in json.dumps(record.details)

    # Once the hold is released, retention finishes the erasure the law had deferred.
    from safecity.config import SafecityConfig
    from safecity.governance.holds import release_hold
    from safecity.governance.retention import run_retention

    with store.transaction() as session:
        hold_id = session.scalar(
            select(LegalHold.id).where(LegalHold.event_id == held, LegalHold.released_at.is_(None))
        )
    release_hold(store, hold_id, by="erin", reason="case closed", clock=clock)
    report = run_retention(store, SafecityConfig(), clock=clock)
    assert report.erasures == 1
    assert _event(store, held).match_status == "erased"
    assert not any(store.media.path(p).exists() for p in held_files)
    assert _count(store, Person.id, Person.id == obama.person_id) == 0
    assert audit.verify(store).ok


def test_erase_without_holds_removes_the_person(
    sqlite_store: Store, clock, detector, embedder, images, portrait
) -> None:
    store = sqlite_store
    wanted = authorised_watchlist(store, clock, "wanted")
    obama = enroll(
        store, "wanted", "Barack Obama", [images / "obama.jpg", images / "obama3.jpg"], detector,
        embedder, by="alice", clock=clock,
    )  # fmt: skip
    event_id = _match(store, clock, portrait, obama, wanted, track=1)
    files = [_event(store, event_id).snapshot_path, _event(store, event_id).match_snapshot_path]
    found = _find(store, images / "obama2.jpg", detector, embedder, clock, ref="SAR-2")
    assert [e.templates for e in found.entries] == [2]

    erased = erase_subject(
        store, found, person_ids=[found.entries[0].person_id], by="carol", clock=clock
    )

    assert (erased.persons_deleted, erased.templates_deleted, erased.events_erased) == (1, 2, 1)
    assert erased.persons_kept == () and erased.withheld == ()
    assert _count(store, Person.id) == 0 and _count(store, Template.id) == 0
    assert not any(store.media.path(p).exists() for p in files)
    assert _event(store, event_id).match_status == "erased"
    # The person's data is gone, so a second search finds nothing.
    again = _find(store, images / "obama2.jpg", detector, embedder, clock, ref="SAR-2")
    assert not again.found
    erase = [r for r in _subject_records(store) if r.action == "subject.erase"]
    assert erase[0].details["persons_deleted"] == 1 and erase[0].details["templates_deleted"] == 2
    assert audit.verify(store).ok


def test_someone_not_held_finds_nothing_and_is_still_audited(
    store: Store, clock, detector, embedder, images, tmp_path
) -> None:
    authorised_watchlist(store, clock, "wanted")
    enroll(
        store, "wanted", "Barack Obama", [images / "obama.jpg"], detector, embedder, by="alice",
        clock=clock,
    )  # fmt: skip

    found = _find(store, images / "biden.jpg", detector, embedder, clock, ref="SAR-3")

    assert not found.found and found.entries == () and found.templates_compared == 1
    records = _subject_records(store)
    assert [r.action for r in records] == ["subject.find"]
    assert records[0].purpose == PURPOSE and records[0].details["persons_found"] == 0
    assert records[0].details["person_ids"] == []
    assert "Obama" not in json.dumps(records[0].details)
    export_findings(store, found, tmp_path / "none.html", by="carol", clock=clock)
    assert "nothing is held" in (tmp_path / "none.html").read_text()
    with pytest.raises(SubjectError, match="name the entries"):
        erase_subject(store, found, person_ids=[], by="carol", clock=clock)
    assert _count(store, Template.id) == 1
    assert [r.action for r in _subject_records(store)][-1] == "subject.export"
    assert audit.verify(store).ok


def test_a_photo_without_exactly_one_face_is_refused_and_nothing_is_searched(
    sqlite_store: Store, clock, detector, embedder, images, data_dir, tmp_path
) -> None:
    store = sqlite_store
    authorised_watchlist(store, clock, "wanted")
    enroll(
        store, "wanted", "Barack Obama", [images / "obama.jpg"], detector, embedder, by="alice",
        clock=clock,
    )  # fmt: skip
    plate = images / "licenseplate_motion.jpg"
    with pytest.raises(SubjectError, match="no face found in .*licenseplate_motion.jpg"):
        _find(store, plate, detector, embedder, clock)
    two = tmp_path / "two.jpg"
    import cv2

    a, b = cv2.imread(str(images / "obama.jpg")), cv2.imread(str(images / "biden.jpg"))
    height = min(a.shape[0], b.shape[0])
    cv2.imwrite(str(two), np.hstack([a[:height], b[:height]]))
    with pytest.raises(SubjectError, match="2 faces found"):
        _find(store, two, detector, embedder, clock)
    with pytest.raises(SubjectError, match="file not found"):
        _find(store, tmp_path / "missing.jpg", detector, embedder, clock)
    assert _subject_records(store) == []


# -- small pieces, no models ---------------------------------------------------------
def test_request_ref_is_required() -> None:
    assert check_request_ref(" SAR-9 ") == "SAR-9"
    for bad in ("", "   ", "a\nb", "x" * 129):
        with pytest.raises(SubjectError, match="request-ref"):
            check_request_ref(bad)


def _findings(name: str, files=(None, None)) -> SubjectFindings:
    evidence = MatchEvidence(
        event_id=5,
        event_uuid="e" * 32,
        camera="gate-1",
        location="Main St",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=4),
        score=0.95,
        status="confirmed",
        decided_at=T0,
        reviews=(),
        holds=(HoldInfo(1, 1, "CASE-<1>", "erin", T0, None, None),),
        snapshot_path=files[0],
        match_snapshot_path=files[1],
    )
    entry = WatchlistEntry(
        person_id=1,
        person_name=name,
        watchlist_id=2,
        watchlist_name="wanted",
        authorisation_id=3,
        authorisation_status="active",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="DC-1",
        purpose="find missing persons",
        valid_until=T0 + timedelta(days=30),
        evidence_days=90,
        enrolled_at=T0,
        enrolled_by="alice",
        templates=1,
        best_score=0.97,
        evidence=(evidence,),
    )
    return SubjectFindings("SAR-5", "0" * 64, "dlib", 0.925, 1, T0, "carol", (entry,))


def test_the_html_report_escapes_what_operators_typed_and_states_retention() -> None:
    html, images = render_html(
        _findings("<script>alert(1)</script>"), RetentionTerms(snapshots_h=48, audit_days=None)
    )
    assert images == 0
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "CASE-&lt;1&gt;" in html and "as long as the legal hold" in html
    assert "48 hours" in html and "without time limit" in html
    assert "Main St" in html


def test_export_refuses_an_unknown_format_and_audits_nothing(sqlite_store: Store, tmp_path):
    with pytest.raises(SubjectError, match=r"\.html or \.json"):
        export_findings(sqlite_store, _findings("Jane"), tmp_path / "report.pdf", by="carol")
    with pytest.raises(SubjectError, match="does not exist"):
        export_findings(sqlite_store, _findings("Jane"), tmp_path / "no" / "r.json", by="carol")
    assert _subject_records(sqlite_store) == []
    assert not any(p.suffix in (".json", ".pdf", ".tmp") for p in tmp_path.rglob("*"))


# -- the command ---------------------------------------------------------------------
def _cli_has_subject() -> bool:
    from typer.main import get_command

    from safecity.cli import app

    return "subject" in get_command(app).commands  # type: ignore[attr-defined]


needs_cli = pytest.mark.skipif(
    not _cli_has_subject(), reason="the 'subject' group is not registered in safecity.cli yet"
)


def _run(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"), COLUMNS="200")
    command = [sys.executable, "-m", "safecity", "--db", url, "--media", str(tmp_path / "media")]
    return subprocess.run(
        [*command, "--user", "carol", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )


@needs_cli
def test_cli_erase_needs_yes(tmp_path, images) -> None:
    url = f"sqlite:///{tmp_path / 'safecity.db'}"
    done = _run(
        tmp_path, url, "subject", "find", "--image", str(images / "obama2.jpg"),
        "--request-ref", "SAR-7", "--erase",
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "--yes" in lines[0]
    done = _run(
        tmp_path, url, "subject", "find", "--image", str(images / "obama2.jpg"),
        "--request-ref", "SAR-7", "--erase", "--yes",
    )  # fmt: skip
    assert done.returncode == 2 and "--person ID" in done.stderr
    store = open_store(url, tmp_path / "media")
    try:
        assert _subject_records(store) == []
    finally:
        store.close()


@pytest.mark.slow
@needs_cli
def test_cli_find_export_erase(tmp_path, detector, embedder, images) -> None:
    from datetime import UTC, datetime

    from safecity.governance.clock import ManualClock

    url = f"sqlite:///{tmp_path / 'safecity.db'}"
    # The CLI runs on the system clock: authorise around now.
    clock = ManualClock(datetime.now(UTC))
    store = open_store(url, tmp_path / "media")
    try:
        authorised_watchlist(store, clock, "wanted")
        obama = enroll(store, "wanted", "Barack Obama", [images / "obama.jpg"], detector,
                       embedder, by="alice", clock=clock)  # fmt: skip
    finally:
        store.close()
    report = tmp_path / "report.html"
    done = _run(
        tmp_path, url, "subject", "find", "--image", str(images / "obama2.jpg"),
        "--request-ref", "SAR-8", "--export", str(report), "--erase", "--yes",
        "--person", str(obama.person_id),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Barack Obama" in done.stdout and "erased: 1" in done.stdout
    assert "Barack Obama" in report.read_text()
    done = _run(
        tmp_path, url, "subject", "find", "--image", str(images / "obama2.jpg"),
        "--request-ref", "SAR-8",
    )  # fmt: skip
    assert done.returncode == 0 and "nothing held" in done.stdout, done.stderr
    store = open_store(url, tmp_path / "media")
    try:
        actions = [r.action for r in _subject_records(store)]
        assert actions == ["subject.find", "subject.export", "subject.erase", "subject.find"]
        assert _count(store, Person.id) == 0
        assert audit.verify(store).ok
    finally:
        store.close()


def test_evidence_outliving_its_templates_is_still_found(
    sqlite_store: Store, clock, detector, embedder, images, portrait
) -> None:
    """Retention deleted the templates (authorisation ended) but a confirmed match is kept:
    the probe is compared with the face in the match snapshot, and the evidence is found."""
    info = authorised_watchlist(sqlite_store, clock, "wanted")
    obama = enroll(
        sqlite_store, "wanted", "Barack Obama", [images / "obama.jpg"], detector, embedder,
        by="alice", clock=clock,
    )  # fmt: skip
    event_id = _match(sqlite_store, clock, portrait, obama, info, track=1)
    with sqlite_store.transaction() as session:
        session.execute(Template.__table__.delete())
    found = _find(sqlite_store, images / "obama2.jpg", detector, embedder, clock)
    assert [e.person_id for e in found.entries] == [obama.person_id]
    assert [m.event_id for m in found.entries[0].evidence] == [event_id]
    nobody = _find(sqlite_store, images / "biden.jpg", detector, embedder, clock, ref="SAR-2")
    assert nobody.entries == ()
