"""GET /events, /events/{id} and their snapshots, on a real SQLite store and real photos.

Non-admins see camera "gate-1" only; the viewer (vic) sees no identity and every
face pixelated; events are paged by key, every event exactly once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from api_support import PASSWORD, signed_in
from fastapi import FastAPI
from governance.governance_support import make_event, stored_match

from safecity.access.roles import Role
from safecity.access.users import create_user
from safecity.api.imaging import HEAD_BAND
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.governance.review import review_match
from safecity.store import Store
from safecity.store.media import pixelate
from safecity.store.queries import get_event, list_events
from safecity.store.sink import StoreSink
from safecity.vision.faces import FaceDetector
from safecity.vision.redact import REDACTION_FACES

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def face_photo(data_dir: Path) -> np.ndarray:
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    assert image is not None
    return image


def write(store: Store, image: np.ndarray, *, camera: str, start: datetime, **kw) -> int:
    event = make_event(image, camera=camera, start=start, track_id=kw.pop("track_id", 1))
    if kw:
        event = replace(event, **kw)
    return StoreSink(store, ManualClock(NOW)).write(event)


@pytest.fixture
def seeded(api_store: Store, face_photo: np.ndarray) -> dict[str, int]:
    """Five plain events on gate-1 and square, and a candidate match on gate-1."""
    small = cv2.resize(face_photo, (64, 64))
    ids = {
        "gate_person": write(api_store, small, camera="gate-1", start=NOW - timedelta(hours=3)),
        "gate_car": write(
            api_store, small, camera="gate-1", start=NOW - timedelta(hours=2), label="car"
        ),
        "square_person": write(api_store, small, camera="square", start=NOW - timedelta(hours=1)),
        "square_car": write(
            api_store, small, camera="square", start=NOW - timedelta(minutes=30), label="car"
        ),
        "gate_face": write(
            api_store, face_photo, camera="gate-1", start=NOW - timedelta(minutes=20)
        ),
    }
    ids["match"] = stored_match(api_store, ManualClock(NOW), face_photo).event_id
    return ids


def ids_of(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["items"]]


def test_newest_first_and_only_granted_cameras(app: FastAPI, seeded: dict[str, int]) -> None:
    ada, olga = signed_in(app, "ada"), signed_in(app, "olga")
    everything = ids_of(ada.get("/api/v1/events"))
    assert everything == [
        seeded[k]
        for k in ("match", "gate_face", "square_car", "square_person", "gate_car", "gate_person")
    ]
    gate = ids_of(olga.get("/api/v1/events"))
    assert gate == [seeded[k] for k in ("match", "gate_face", "gate_car", "gate_person")]
    assert ids_of(ada.get("/api/v1/events", params={"camera": "square"})) == [
        seeded["square_car"],
        seeded["square_person"],
    ]
    refused = olga.get("/api/v1/events", params={"camera": "square"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "camera 'square' is not granted to you"


def test_filters(app: FastAPI, seeded: dict[str, int]) -> None:
    ada = signed_in(app, "ada")
    cars = ids_of(ada.get("/api/v1/events", params={"label": "car"}))
    assert cars == [seeded["square_car"], seeded["gate_car"]]
    window = {
        "since": (NOW - timedelta(hours=2, minutes=1)).isoformat(),
        "until": (NOW - timedelta(minutes=30)).isoformat(),  # exclusive
    }
    assert ids_of(ada.get("/api/v1/events", params=window)) == [
        seeded["square_person"],
        seeded["gate_car"],
    ]
    zulu = ada.get("/api/v1/events", params={"since": "2000-01-01T00:00:00Z", "camera": "gate-1"})
    assert len(ids_of(zulu)) == 4
    naive = ada.get("/api/v1/events", params={"since": "2026-05-01T12:00:00"})
    assert naive.status_code == 422
    assert naive.json()["detail"].startswith("since needs a time zone")
    candidates = ids_of(ada.get("/api/v1/events", params={"status": "candidate"}))
    assert candidates == [seeded["match"]]
    assert ids_of(ada.get("/api/v1/events", params={"status": "confirmed"})) == []


def test_match_and_person_search_for_roles_that_see_faces(
    app: FastAPI, api_store: Store, seeded: dict[str, int]
) -> None:
    olga = signed_in(app, "olga")
    found = olga.get("/api/v1/events", params={"person": "Jane Doe"})
    assert ids_of(found) == [seeded["match"]]
    match = found.json()["items"][0]["match"]
    assert match["person"] == "Jane Doe" and match["watchlist"] == "wanted"
    assert match["status"] == "candidate"
    assert (match["confirmations"], match["required"]) == (0, 2)
    by_id = olga.get("/api/v1/events", params={"person": str(match["person_id"])})
    assert ids_of(by_id) == [seeded["match"]]
    assert ids_of(olga.get("/api/v1/events", params={"person": "Nobody"})) == []
    # Looking for a person is audited with who asked and what was found.
    searches = list_records(api_store, action="search.events", newest_first=False)
    assert [(r.actor, r.details["found"]) for r in searches] == [
        ("olga", 1),
        ("olga", 1),
        ("olga", 0),
    ]


def test_viewer_gets_no_identities(app: FastAPI, seeded: dict[str, int]) -> None:
    vic = signed_in(app, "vic")
    listed = vic.get("/api/v1/events")
    assert ids_of(listed)[0] == seeded["match"]
    assert all(e["match"] is None for e in listed.json()["items"])
    assert "Jane" not in listed.text
    for params in ({"person": "Jane Doe"}, {"person": "1"}, {"status": "candidate"}):
        refused = vic.get("/api/v1/events", params=params)
        assert refused.status_code == 403, params
        assert "your role (viewer) may not see faces and identities" in refused.json()["detail"]
    detail = vic.get(f"/api/v1/events/{seeded['match']}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["match"] is None and body["reviews"] == []
    assert body["authorisation_id"] is None and body["match_snapshot"] is False
    assert vic.get(f"/api/v1/events/{seeded['match']}/match.jpg").status_code == 403


def test_event_detail_with_reviews(app: FastAPI, api_store: Store, seeded: dict[str, int]) -> None:
    event_id = seeded["match"]
    review_match(api_store, event_id, by="rita", decision="confirm", note="same person")
    body = signed_in(app, "aude").get(f"/api/v1/events/{event_id}").json()
    assert body["id"] == event_id and body["camera"] == "gate-1" and body["snapshot"] is True
    assert [(r["reviewer"], r["decision"]) for r in body["reviews"]] == [("rita", "confirm")]
    assert body["match"]["confirmations"] == 1 and body["match"]["status"] == "candidate"
    assert body["authorisation_id"] is not None and body["match_snapshot"] is True
    listed = signed_in(app, "ada").get("/api/v1/events", params={"status": "candidate"})
    assert listed.json()["items"][0]["match"]["confirmations"] == 1


def test_missing_and_hidden_events_are_404(app: FastAPI, seeded: dict[str, int]) -> None:
    olga = signed_in(app, "olga")
    for path in ("", "/snapshot.jpg", "/match.jpg"):
        missing = olga.get(f"/api/v1/events/999999{path}")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no event 999999"}
        hidden = olga.get(f"/api/v1/events/{seeded['square_car']}{path}")
        assert hidden.status_code == 404
        assert hidden.json() == {"detail": f"no event {seeded['square_car']}"}
    assert signed_in(app, "ada").get(f"/api/v1/events/{seeded['square_car']}").status_code == 200
    no_match = olga.get(f"/api/v1/events/{seeded['gate_car']}/match.jpg")
    assert no_match.status_code == 404
    assert "retention" in no_match.json()["detail"]


def _face_box(image: np.ndarray) -> tuple[int, int, int, int]:
    faces = FaceDetector(REDACTION_FACES).detect(image)
    assert faces, "the test photo has a face"
    x1, y1, x2, y2 = (int(v) for v in max(faces, key=lambda f: f.width).box)
    return max(0, x1), max(0, y1), x2, y2


def _difference(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2].astype(int)).mean())


@pytest.mark.parametrize("event", ["gate_face", "match"])
def test_snapshots_are_pixelated_for_viewers(
    app: FastAPI, api_store: Store, seeded: dict[str, int], event: str
) -> None:
    row = get_event(api_store, seeded[event])
    assert row is not None and row.snapshot_file is not None
    stored = row.snapshot_file.read_bytes()
    original = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
    box = _face_box(original)

    full = signed_in(app, "olga").get(f"/api/v1/events/{row.id}/snapshot.jpg")
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.content == stored  # roles that see faces get the stored file

    hidden = signed_in(app, "vic").get(f"/api/v1/events/{row.id}/snapshot.jpg")
    assert hidden.status_code == 200 and hidden.headers["content-type"] == "image/jpeg"
    seen = cv2.imdecode(np.frombuffer(hidden.content, np.uint8), cv2.IMREAD_COLOR)
    assert seen.shape == original.shape
    # The face is a mosaic now: far from the original, and no detector finds it.
    assert _difference(seen, original, box) > 8.0
    assert FaceDetector(REDACTION_FACES).detect(seen) == []
    # Away from the face the picture is the same (up to JPEG noise); every snapshot
    # also loses its top band (where a head is), matched or not, so none stands out.
    height, width = original.shape[:2]
    assert _difference(seen, original, (0, height - 40, width, height)) < 4.0
    band = np.array([[0, 0, width, round(height * HEAD_BAND)]], np.float32)
    expected = pixelate(original, band)
    corner = (0, 0, 200, int(height * HEAD_BAND))  # of the band, away from the face
    assert _difference(seen, expected, corner) < 4.0
    # Served again from the cache, identical.
    again = signed_in(app, "vic").get(f"/api/v1/events/{row.id}/snapshot.jpg")
    assert again.content == hidden.content


def test_match_snapshot_and_files_gone(
    app: FastAPI, api_store: Store, seeded: dict[str, int]
) -> None:
    row = get_event(api_store, seeded["match"])
    assert row is not None and row.match_snapshot_path is not None
    rita = signed_in(app, "rita")
    shown = rita.get(f"/api/v1/events/{row.id}/match.jpg")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert shown.content == api_store.media.path(row.match_snapshot_path).read_bytes()

    api_store.media.remove(row.match_snapshot_path)
    assert row.snapshot_path is not None
    api_store.media.remove(row.snapshot_path)
    for path, who in (("match.jpg", "rita"), ("snapshot.jpg", "rita"), ("snapshot.jpg", "vic")):
        gone = signed_in(app, who).get(f"/api/v1/events/{row.id}/{path}")
        assert gone.status_code == 404, (path, who)
        detail = gone.json()["detail"]
        assert detail.startswith(f"the {'match snapshot' if path == 'match.jpg' else 'snapshot'}")
        assert "retention may have removed it" in detail


def _pages(client, limit: int, **params) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/v1/events", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([e["id"] for e in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert cursor.isdigit() and len(cursor) <= 32
        assert len(pages) < 100


def test_keyset_paging_returns_every_event_once(
    app: FastAPI, api_store: Store, face_photo: np.ndarray
) -> None:
    image = cv2.resize(face_photo, (32, 32))
    events = []
    for i in range(24):  # groups of three start at the same second: the id breaks ties
        camera = ("gate-1", "square", "dock")[i % 3]
        start = NOW - timedelta(minutes=i // 3)
        events.append(make_event(image, camera=camera, start=start, track_id=i))
    StoreSink(api_store, ManualClock(NOW)).write_many(events)
    newest_first = [r.id for r in list_events(api_store, limit=1000)]
    by_camera = {r.id: r.camera for r in list_events(api_store, limit=1000)}
    create_user(api_store, "gus", PASSWORD, Role.OPERATOR, by="setup", cameras=["gate-1", "square"])

    for who, cameras in (("ada", None), ("olga", {"gate-1"}), ("gus", {"gate-1", "square"})):
        client = signed_in(app, who)
        expected = [i for i in newest_first if cameras is None or by_camera[i] in cameras]
        for limit in (1, 4, 5, 8):
            pages = _pages(client, limit)
            flat = [i for page in pages for i in page]
            assert flat == expected, (who, limit)
            assert all(len(page) == limit for page in pages[:-1])
            assert pages[-1], "no empty last page"
    label_pages = _pages(signed_in(app, "gus"), 3, label="person", camera="square")
    assert [i for page in label_pages for i in page] == [
        i for i in newest_first if by_camera[i] == "square"
    ]


def test_bad_cursor_is_400(app: FastAPI, seeded: dict[str, int]) -> None:
    ada = signed_in(app, "ada")
    for cursor in ("12", "9" * 30):
        bad = ada.get("/api/v1/events", params={"cursor": cursor})
        assert bad.status_code == 400, cursor
        assert bad.json()["detail"].startswith("the cursor is not valid")
    assert ada.get("/api/v1/events", params={"cursor": "x1"}).status_code == 422


def test_signed_out_is_401(anonymous) -> None:
    assert anonymous.get("/api/v1/events").status_code == 401
    assert anonymous.get("/api/v1/events/1/snapshot.jpg").status_code == 401
