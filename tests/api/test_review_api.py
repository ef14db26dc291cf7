"""The review queue and four-eyes decisions over the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from api_support import signed_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from governance.governance_support import make_event, stored_match
from sqlalchemy import select

from safecity.access.sessions import create_token
from safecity.access.users import update_user
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.store.schema import EventRecord, Template
from safecity.store.sink import StoreSink
from safecity.vision.types import Match

API = "/api/v1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def portrait(data_dir: Path) -> np.ndarray:
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    assert image is not None
    return image


def _row(store: Store, event_id: int) -> EventRecord:
    with store.transaction() as session:
        return session.get(EventRecord, event_id)


def _decide(client, event_id: int, decision: str, note: str = ""):
    return client.post(f"{API}/review/{event_id}", json={"decision": decision, "note": note})


def test_two_different_reviewers_confirm_a_match(
    app: FastAPI, api_store: Store, clock: ManualClock, portrait: np.ndarray
) -> None:
    m = stored_match(api_store, clock, portrait)
    rita, remy = signed_in(app, "rita"), signed_in(app, "remy")

    (queued,) = rita.get(f"{API}/review/queue").json()["items"]
    assert queued["event_id"] == m.event_id and queued["camera"] == "gate-1"
    assert queued["person"] == "Jane Doe" and queued["watchlist"] == "wanted"
    assert (queued["confirmations"], queued["required"]) == (0, 2)
    assert queued["may_review"] is True and queued["why_not"] is None
    assert queued["reviewed_by_you"] is False

    first = _decide(rita, m.event_id, "confirm", "looks like her")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "event_id": m.event_id,
        "status": "candidate",
        "confirmations": 1,
        "required": 2,
        "counted": True,
        "message": "candidate match: 1 of 2 confirmations (rita)",
    }
    again = _decide(rita, m.event_id, "confirm")  # the same reviewer counts once
    assert again.status_code == 200
    assert again.json()["counted"] is False and again.json()["confirmations"] == 1
    assert _row(api_store, m.event_id).match_status == "candidate"
    changed = _decide(rita, m.event_id, "reject")
    assert changed.status_code == 409
    assert changed.json()["detail"] == f"rita already confirmed the match of event {m.event_id}"

    (mine,) = rita.get(f"{API}/review/queue").json()["items"]
    assert mine["reviewed_by_you"] is True and mine["may_review"] is False
    assert "already confirmed" in mine["why_not"]
    (theirs,) = remy.get(f"{API}/review/queue").json()["items"]
    assert theirs["confirmations"] == 1 and theirs["may_review"] is True

    second = _decide(remy, m.event_id, "confirm")
    assert second.json()["status"] == "confirmed" and second.json()["confirmations"] == 2
    assert _row(api_store, m.event_id).match_status == "confirmed"
    assert rita.get(f"{API}/review/queue").json()["items"] == []
    late = _decide(rita, m.event_id, "reject")
    assert late.status_code == 409
    assert late.json()["detail"] == f"the match of event {m.event_id} is already confirmed"

    records = list_records(api_store, action="review.")
    assert [(r.actor, r.action) for r in records] == [
        ("remy", "review.confirm"),
        ("rita", "review.confirm"),
    ]
    assert records[1].origin.startswith("api rita@") and "looks like her" not in str(records)


def test_a_rejection_deletes_the_match_image_and_keeps_a_pixelated_snapshot(
    app: FastAPI, api_store: Store, clock: ManualClock, portrait: np.ndarray
) -> None:
    m = stored_match(api_store, clock, portrait)
    before = _row(api_store, m.event_id)
    snapshot = api_store.media.path(before.snapshot_path)
    match_image = api_store.media.path(before.match_snapshot_path)
    unpixelated = snapshot.read_bytes()
    remy = signed_in(app, "remy")
    rejected = _decide(remy, m.event_id, "reject", "not her")
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert "evidence was deleted" in rejected.json()["message"]
    assert not match_image.exists()
    row = _row(api_store, m.event_id)
    assert row.match_snapshot_path is None and row.match_person_id is None
    assert row.snapshot_path == before.snapshot_path
    assert remy.get(f"{API}/events/{m.event_id}/match.jpg").status_code == 404
    shown = remy.get(f"{API}/events/{m.event_id}/snapshot.jpg")
    assert shown.status_code == 200 and shown.content == snapshot.read_bytes() != unpixelated


def test_who_may_not_review(
    app: FastAPI, api_store: Store, clock: ManualClock, portrait: np.ndarray
) -> None:
    m = stored_match(api_store, clock, portrait)  # alice enrolled Jane Doe
    with api_store.transaction() as session:  # rita added a photo of her
        template = session.scalars(select(Template).where(Template.person_id == m.person_id)).one()
        session.add(
            Template(
                person_id=m.person_id,
                embedder=template.embedder,
                dim=template.dim,
                vector=template.vector,
                source_sha256="1" * 64,
                enrolled_by="rita",
            )
        )
    rita = signed_in(app, "rita")
    (queued,) = rita.get(f"{API}/review/queue").json()["items"]
    assert queued["may_review"] is False and queued["reviewed_by_you"] is False
    assert queued["why_not"].startswith("you enrolled Jane Doe")
    refused = _decide(rita, m.event_id, "confirm")
    assert refused.status_code == 400
    assert "a match of someone you enrolled must be reviewed by others" in refused.json()["detail"]

    operator = signed_in(app, "olga")
    assert operator.get(f"{API}/review/queue").status_code == 403
    forbidden = _decide(operator, m.event_id, "confirm")
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == (
        "your role (operator) may not confirm or reject candidate matches"
    )
    assert signed_in(app, "vic").get(f"{API}/review/queue").status_code == 403
    assert _row(api_store, m.event_id).match_status == "candidate"

    assert _decide(rita, 999_999, "confirm").status_code == 404
    assert rita.post(f"{API}/review/{m.event_id}", json={"decision": "maybe"}).status_code == 422

    # A token for remy, made by an admin, would let the admin confirm as remy: refused.
    token, _ = create_token(api_store, "remy", "script", by="ada")
    by_token = TestClient(app).post(
        f"{API}/review/{m.event_id}",
        json={"decision": "confirm"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert by_token.status_code == 403
    assert "signed in to the console, not a token" in by_token.json()["detail"]
    assert _row(api_store, m.event_id).match_status == "candidate"
    # Looking at the queue is on record, with what was shown.
    seen = [r for r in list_records(api_store) if r.action == "search.review_queue"]
    assert seen and seen[0].actor == "rita" and seen[0].details["events"] == [m.event_id]


def test_the_queue_shows_only_granted_cameras_and_pages(
    app: FastAPI, api_store: Store, clock: ManualClock, portrait: np.ndarray
) -> None:
    m = stored_match(api_store, clock, portrait)
    sink = StoreSink(api_store, clock)
    match = Match(m.person_id, "Jane Doe", m.watchlist.id, m.watchlist.name, 0.9, 0.2)
    ids = {"gate-1": [m.event_id], "square": []}
    for i in range(4):
        camera = "square" if i % 2 == 0 else "gate-1"
        clock.advance(timedelta(seconds=10))
        event = make_event(portrait, camera=camera, track_id=i + 2, start=clock.now(), match=match)
        ids[camera].append(sink.write(event))

    rita = signed_in(app, "rita")
    first = rita.get(f"{API}/review/queue", params={"limit": 2}).json()
    assert [c["event_id"] for c in first["items"]] == ids["gate-1"][:2]
    rest = rita.get(f"{API}/review/queue", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [c["event_id"] for c in rest.json()["items"]] == ids["gate-1"][2:]
    assert rest.json()["next_cursor"] is None
    # A page that takes the last candidate says so, even when it is exactly full.
    full = rita.get(f"{API}/review/queue", params={"limit": 3}).json()
    assert len(full["items"]) == 3 and full["next_cursor"] is None

    hidden = ids["square"][0]
    response = _decide(rita, hidden, "confirm")
    assert response.status_code == 404
    assert response.json()["detail"] == f"there is no event {hidden} on your cameras"
    update_user(api_store, "remy", by="ada", cameras=["*"], set_cameras=True)
    everywhere = signed_in(app, "remy").get(f"{API}/review/queue").json()
    assert sorted(c["event_id"] for c in everywhere["items"]) == sorted(
        ids["gate-1"] + ids["square"]
    )
    assert everywhere["next_cursor"] is None
