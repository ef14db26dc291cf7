"""Four-eyes review: one confirmation leaves a candidate, the same user twice counts once,
two users confirm; a rejection deletes the evidence and leaves an ordinary event (its
snapshot pixelated); nobody reviews their own enrolment."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from governance_support import stored_match

from safecity.governance.audit import list_records, verify
from safecity.governance.review import ReviewError, review_match, review_queue
from safecity.store import Store
from safecity.store.schema import EventRecord
from safecity.vision.faces import FaceDetector
from safecity.vision.redact import REDACTION_FACES


def _row(store: Store, event_id: int) -> EventRecord:
    with store.transaction() as session:
        return session.get(EventRecord, event_id)


def test_two_different_reviewers_confirm(store: Store, clock, portrait) -> None:
    m = stored_match(store, clock, portrait)
    first = review_match(store, m.event_id, by="carol", decision="confirm", clock=clock)
    assert (first.status, first.confirmed_by) == ("candidate", ["carol"])
    assert "1 of 2 confirmations" in first.describe()
    again = review_match(store, m.event_id, by="carol", decision="confirm", clock=clock)
    assert (again.status, again.confirmed_by, again.counted) == ("candidate", ["carol"], False)
    assert [c.event_id for c in review_queue(store)] == [m.event_id]
    assert review_queue(store)[0].confirmed_by == ["carol"]

    second = review_match(store, m.event_id, by="dave", decision="confirm", clock=clock)
    assert (second.status, second.confirmed_by) == ("confirmed", ["carol", "dave"])
    row = _row(store, m.event_id)
    assert row.match_status == "confirmed" and row.match_decided_at == clock.now()
    assert row.snapshot_path and store.media.path(row.match_snapshot_path).exists()
    assert review_queue(store) == []
    with pytest.raises(ReviewError, match="already confirmed"):
        review_match(store, m.event_id, by="erin", decision="reject", clock=clock)
    reviews = list_records(store, action="review.", newest_first=False)
    assert [(r.actor, r.details["confirmations"]) for r in reviews] == [("carol", 1), ("dave", 2)]
    assert verify(store).ok


def test_three_confirmations_when_configured(store: Store, clock, portrait) -> None:
    m = stored_match(store, clock, portrait)
    for reviewer, expected in [
        ("carol", "candidate"),
        ("dave", "candidate"),
        ("erin", "confirmed"),
    ]:
        done = review_match(
            store, m.event_id, by=reviewer, decision="confirm", required=3, clock=clock
        )
        assert done.status == expected


def _faces(path: Path) -> list:
    """Faces the redaction detector (score 0.3, faces from 8 px) finds in a stored file."""
    image = cv2.imread(str(path))
    assert image is not None, path
    return FaceDetector(REDACTION_FACES).detect(image)


def test_a_rejection_deletes_the_match_image_and_pixelates_the_snapshot(
    store: Store, clock, portrait
) -> None:
    """The event becomes an ordinary one: no match image, its snapshot kept with
    the formerly matched face pixelated (on a real photo of a face)."""
    m = stored_match(store, clock, portrait)
    before = _row(store, m.event_id)
    snapshot = store.media.path(before.snapshot_path)
    match_image = store.media.path(before.match_snapshot_path)
    assert len(_faces(snapshot)) == 1  # the matched face, unpixelated, before
    review_match(store, m.event_id, by="carol", decision="confirm", clock=clock)
    done = review_match(
        store, m.event_id, by="dave", decision="reject", note="not her", clock=clock
    )
    assert done.status == "rejected" and done.rejected_by == "dave"
    row = _row(store, m.event_id)
    assert row.match_status == "rejected" and row.match_person_id is None
    assert row.match_snapshot_path is None and not match_image.exists()
    assert row.snapshot_path == before.snapshot_path and snapshot.exists()
    assert _faces(snapshot) == []
    assert cv2.imread(str(snapshot)).shape == portrait.shape
    assert row.match_watchlist_id == m.watchlist.id and row.match_score == pytest.approx(0.97)
    (record,) = list_records(store, action="review.reject")
    assert record.details["evidence_deleted"] == 1 and record.details["snapshot_pixelated"]
    assert "not her" not in str(record.details)
    assert len(record.details["note_sha256"]) == 64


def test_a_snapshot_that_cannot_be_pixelated_is_deleted(store: Store, clock, portrait) -> None:
    m = stored_match(store, clock, portrait)
    before = _row(store, m.event_id)
    snapshot = store.media.path(before.snapshot_path)
    snapshot.write_bytes(b"not a jpeg")  # corrupt: the face cannot be found, so it goes
    review_match(store, m.event_id, by="carol", decision="reject", clock=clock)
    row = _row(store, m.event_id)
    assert row.snapshot_path is None and row.match_snapshot_path is None
    assert not snapshot.exists() and not store.media.path(before.match_snapshot_path).exists()
    (record,) = list_records(store, action="review.reject")
    assert record.details["evidence_deleted"] == 2 and not record.details["snapshot_pixelated"]


def test_nobody_reviews_their_own_enrolment(store: Store, clock, portrait) -> None:
    m = stored_match(store, clock, portrait)  # alice enrolled Jane Doe
    with pytest.raises(ReviewError, match="alice enrolled Jane Doe"):
        review_match(store, m.event_id, by="alice", decision="confirm", clock=clock)
    assert _row(store, m.event_id).match_status == "candidate"
    assert list_records(store, action="review.") == []


def test_reviews_need_a_candidate(store: Store, clock, portrait) -> None:
    with pytest.raises(ReviewError, match="not a match"):
        review_match(store, 999, by="carol", decision="confirm", clock=clock)
    m = stored_match(store, clock, portrait)
    with pytest.raises(ReviewError, match="'confirm' or 'reject'"):
        review_match(store, m.event_id, by="carol", decision="maybe", clock=clock)  # type: ignore[arg-type]
    review_match(store, m.event_id, by="carol", decision="confirm", clock=clock)
    with pytest.raises(ReviewError, match="already confirmed"):
        review_match(store, m.event_id, by="carol", decision="reject", clock=clock)


def test_whoever_added_a_photo_does_not_review_either(store: Store, clock, portrait) -> None:
    from governance_support import unit

    from safecity.store.schema import Template

    m = stored_match(store, clock, portrait)  # alice enrolled Jane Doe
    with store.transaction() as session:
        v = unit(9)
        session.add(
            Template(
                person_id=m.person_id,
                embedder="dlib",
                dim=v.size,
                vector=v.astype("<f4").tobytes(),
                source_sha256="1" * 64,
                enrolled_by="carol",
            )
        )
    with pytest.raises(ReviewError, match="carol enrolled Jane Doe"):
        review_match(store, m.event_id, by="carol", decision="confirm", clock=clock)


def test_a_removed_person_can_only_be_rejected(store: Store, clock, portrait) -> None:
    from safecity.identity.enrol import remove_person

    m = stored_match(store, clock, portrait)
    remove_person(store, m.watchlist.name, "Jane Doe", by="alice", reason="found", clock=clock)
    with pytest.raises(ReviewError, match="can only be rejected"):
        review_match(store, m.event_id, by="carol", decision="confirm", clock=clock)
    assert review_match(store, m.event_id, by="carol", decision="reject", clock=clock).status == (
        "rejected"
    )
