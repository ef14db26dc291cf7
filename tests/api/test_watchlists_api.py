"""Authorisations and watchlists over the API, and enrolment by upload with real photos."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from api_support import signed_in
from fastapi import FastAPI
from governance.governance_support import add_person, authorised_watchlist, unit

from safecity.api.app import create_app
from safecity.api.context import ApiContext
from safecity.config import EmbedderConfig, FacesConfig, SafecityConfig
from safecity.governance.audit import list_records
from safecity.governance.authorisations import revoke
from safecity.governance.clock import ManualClock
from safecity.identity.watchlists import WatchlistInfo
from safecity.store import Store
from safecity.vision.embedder import make_embedder
from safecity.vision.faces import FaceDetector

API = "/api/v1"


@pytest.fixture(scope="module")
def models() -> dict:
    """The real detector and embedder, loaded once for the module."""
    return {
        "face_detector": FaceDetector(FacesConfig()),
        "embedder": make_embedder(EmbedderConfig()),
    }


@pytest.fixture
def enrolling(ctx: ApiContext, models: dict) -> ApiContext:
    ctx._models.update(models)
    return ctx


@pytest.fixture
def wanted(api_store: Store) -> WatchlistInfo:
    return authorised_watchlist(api_store, ManualClock(datetime.now(UTC)), "wanted")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where uploads are written while enrolment reads them (checked empty afterwards)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def images(data_dir: Path) -> Path:
    return data_dir / "images"


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def _pair(images: Path) -> bytes:
    obama = cv2.imread(str(images / "obama.jpg"))
    biden = cv2.imread(str(images / "biden.jpg"))
    width = round(biden.shape[1] * obama.shape[0] / biden.shape[0])
    return _jpeg(np.hstack([obama, cv2.resize(biden, (width, obama.shape[0]))]))


def _persons(client, watchlist_id: int) -> list[dict]:
    response = client.get(f"{API}/watchlists/{watchlist_id}/persons")
    assert response.status_code == 200, response.text
    return response.json()["items"]


# -- authorisations and watchlists ------------------------------------------------------
def test_watchlists_show_their_authorisation_and_whether_they_match_now(
    app: FastAPI, api_store: Store, wanted: WatchlistInfo
) -> None:
    clock = ManualClock(datetime.now(UTC))
    pending = authorised_watchlist(api_store, clock, "pending", approved=False, cameras=["gate-1"])
    auditor = signed_in(app, "aude")
    listed = auditor.get(f"{API}/watchlists").json()
    assert [w["name"] for w in listed["items"]] == ["pending", "wanted"]
    assert listed["next_cursor"] is None
    by_name = {w["name"]: w for w in listed["items"]}
    assert by_name["wanted"]["matching_now"] is True
    assert by_name["pending"]["matching_now"] is False
    auth = by_name["wanted"]["authorisation"]
    assert auth["status"] == "active" and auth["reference"] == "DC-wanted"
    assert auth["proposed_by"] == "alice" and auth["decided_by"] == "bob"
    assert auth["cameras"] is None and auth["evidence_days"] == 90
    assert by_name["pending"]["authorisation"]["cameras"] == ["gate-1"]

    one = auditor.get(f"{API}/watchlists/{pending.id}").json()
    assert one["name"] == "pending" and one["authorisation"]["status"] == "proposed"
    assert auditor.get(f"{API}/watchlists/999").status_code == 404

    auths = auditor.get(f"{API}/authorisations", params={"limit": 1}).json()
    assert [a["id"] for a in auths["items"]] == [wanted.authorisation_id]
    rest = auditor.get(f"{API}/authorisations", params={"cursor": auths["next_cursor"]}).json()
    assert [a["id"] for a in rest["items"]] == [pending.authorisation_id]
    assert rest["items"][0]["watchlists"] == ["pending"]
    proposed = auditor.get(f"{API}/authorisations", params={"status": "proposed"}).json()
    assert [a["id"] for a in proposed["items"]] == [pending.authorisation_id]
    assert auditor.get(f"{API}/authorisations", params={"status": "nope"}).status_code == 400
    single = auditor.get(f"{API}/authorisations/{pending.authorisation_id}")
    assert single.json()["status"] == "proposed"
    assert auditor.get(f"{API}/authorisations/999").status_code == 404


def test_viewers_see_no_watchlists(app: FastAPI, wanted: WatchlistInfo) -> None:
    viewer = signed_in(app, "vic")
    for path in ("/watchlists", "/authorisations", f"/watchlists/{wanted.id}/persons"):
        response = viewer.get(API + path)
        assert response.status_code == 403, path
        assert "viewer" in response.json()["detail"]


def test_operators_create_watchlists_under_a_usable_authorisation(
    app: FastAPI, api_store: Store, wanted: WatchlistInfo
) -> None:
    operator = signed_in(app, "olga")
    body = {"name": "second", "authorisation_id": wanted.authorisation_id}
    created = operator.post(f"{API}/watchlists", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "second" and created.json()["matching_now"] is True
    assert created.json()["authorisation"]["id"] == wanted.authorisation_id
    (record,) = list_records(api_store, action="watchlist.create", actor="olga")
    assert record.origin.startswith("api olga@")

    taken = operator.post(f"{API}/watchlists", json=body)
    assert taken.status_code == 409
    assert taken.json()["detail"] == "a watchlist named 'second' already exists"
    unknown = operator.post(f"{API}/watchlists", json={"name": "x", "authorisation_id": 999})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "there is no authorisation 999"
    revoke(api_store, wanted.authorisation_id, by="bob", reason="case closed")
    revoked = operator.post(
        f"{API}/watchlists", json={"name": "third", "authorisation_id": wanted.authorisation_id}
    )
    assert revoked.status_code == 400
    assert revoked.json()["detail"] == (
        f"authorisation {wanted.authorisation_id} is revoked; a watchlist needs a valid one"
    )
    assert operator.get(f"{API}/watchlists/{wanted.id}").json()["matching_now"] is False

    reviewer = signed_in(app, "rita")
    refused = reviewer.post(f"{API}/watchlists", json={"name": "mine", "authorisation_id": 1})
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "your role (reviewer) may not create watchlists and enrol people"
    )


# -- enrolment ----------------------------------------------------------------------------
@pytest.mark.slow
def test_enrol_a_portrait_then_show_and_remove_the_person(
    app: FastAPI,
    enrolling: ApiContext,
    api_store: Store,
    wanted: WatchlistInfo,
    images: Path,
    private_tmp: Path,
) -> None:
    operator = signed_in(app, "olga")
    photo = (images / "obama.jpg").read_bytes()
    response = operator.post(
        f"{API}/watchlists/{wanted.id}/persons",
        data={"name": "Barack Obama"},
        files=[("photos", ("obama.jpg", photo, "image/jpeg"))],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["person"] == "Barack Obama" and body["templates"] == 1
    assert body["watchlist_id"] == wanted.id and body["created_person"] is True
    assert list(private_tmp.iterdir()) == []  # the upload is gone
    (record,) = list_records(api_store, action="enrolment.add")
    assert record.actor == "olga" and record.details["person_id"] == body["person_id"]

    (person,) = _persons(operator, wanted.id)
    assert person["name"] == "Barack Obama" and person["templates"] == 1
    assert person["enrolled_by"] == "olga" and person["photo"] is True
    assert operator.get(f"{API}/watchlists/{wanted.id}").json()["persons"] == 1

    face = signed_in(app, "rita").get(f"{API}/persons/{body['person_id']}/photo.jpg")
    assert face.status_code == 200 and face.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(face.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and max(decoded.shape[:2]) <= 256
    viewer = signed_in(app, "vic")
    assert viewer.get(f"{API}/persons/{body['person_id']}/photo.jpg").status_code == 403

    url = f"{API}/watchlists/{wanted.id}/persons/{body['person_id']}"
    assert operator.delete(url).status_code == 422  # no reason
    assert signed_in(app, "aude").delete(url, params={"reason": "found"}).status_code == 403
    assert operator.delete(url, params={"reason": "found safe"}).status_code == 204
    assert _persons(operator, wanted.id) == []
    (removed,) = list_records(api_store, action="enrolment.remove")
    assert removed.actor == "olga" and removed.details["reason"] == "found safe"
    assert operator.get(f"{API}/persons/{body['person_id']}/photo.jpg").status_code == 404
    assert operator.delete(url, params={"reason": "again"}).status_code == 404


@pytest.mark.slow
def test_refused_photos_are_named_by_their_own_file_names(
    app: FastAPI,
    enrolling: ApiContext,
    api_store: Store,
    wanted: WatchlistInfo,
    images: Path,
    private_tmp: Path,
) -> None:
    operator = signed_in(app, "olga")
    url = f"{API}/watchlists/{wanted.id}/persons"
    plate = (images / "licenseplate_motion.jpg").read_bytes()
    none = operator.post(
        url, data={"name": "X"}, files=[("photos", ("plate.jpg", plate, "image/jpeg"))]
    )
    assert none.status_code == 422
    assert none.json() == {
        "detail": "no face found in plate.jpg; nothing was enrolled",
        "refused": [{"photo": "plate.jpg", "reason": "no face found in plate.jpg"}],
    }

    two = operator.post(
        url,
        data={"name": "X"},
        files=[
            ("photos", ("obama.jpg", (images / "obama.jpg").read_bytes(), "image/jpeg")),
            ("photos", ("C:\\photos\\pair.jpg", _pair(images), "image/jpeg")),
        ],
    )
    assert two.status_code == 422
    (refused,) = two.json()["refused"]
    assert refused["photo"] == "pair.jpg"
    assert refused["reason"] == "2 faces found in pair.jpg; use a photo with exactly one face"
    assert two.json()["detail"].endswith("; nothing was enrolled")

    both = operator.post(
        url,
        data={"name": "X"},
        files=[
            ("photos", ("plate.jpg", plate, "image/jpeg")),
            ("photos", ("pair.png", _pair(images), "application/octet-stream")),
        ],
    )
    assert both.status_code == 422
    assert both.json()["detail"].startswith("2 of 2 photos refused: no face found in plate.jpg; ")
    assert [r["photo"] for r in both.json()["refused"]] == ["plate.jpg", "pair.png"]

    for response in (none, two, both):
        assert "safecity-enrol" not in response.text and str(private_tmp) not in response.text
    assert _persons(operator, wanted.id) == []  # nothing stored
    assert list_records(api_store, action="enrolment.add") == []
    assert list(private_tmp.iterdir()) == []


def test_only_jpeg_or_png_is_accepted(
    app: FastAPI, wanted: WatchlistInfo, images: Path, private_tmp: Path
) -> None:
    operator = signed_in(app, "olga")
    url = f"{API}/watchlists/{wanted.id}/persons"
    text = operator.post(
        url, data={"name": "X"}, files=[("photos", ("notes.txt", b"hello", "text/plain"))]
    )
    assert text.status_code == 415
    assert text.json()["detail"] == "only JPEG or PNG photos are accepted; notes.txt is text/plain"
    disguised = operator.post(
        url, data={"name": "X"}, files=[("photos", ("notes.jpg", b"hello", "image/jpeg"))]
    )
    assert disguised.status_code == 415
    assert "notes.jpg is not a JPEG or PNG image" in disguised.json()["detail"]
    gif = operator.post(
        url, data={"name": "X"}, files=[("photos", ("a.jpg", b"GIF89a....", "image/jpeg"))]
    )
    assert gif.status_code == 415 and gif.json()["detail"].endswith("a.jpg is image/gif")
    many = [("photos", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(11)]
    assert operator.post(url, data={"name": "X"}, files=many).status_code == 400
    assert list(private_tmp.iterdir()) == []


def test_oversized_photos_are_refused_with_the_limit(
    api_config: SafecityConfig, ctx: ApiContext, wanted: WatchlistInfo, images: Path
) -> None:
    api_config.api.max_upload_mb = 0.25
    operator = signed_in(create_app(ctx), "olga")
    url = f"{API}/watchlists/{wanted.id}/persons"
    # 273 KiB: just over the limit, within the request's allowance for the form's framing.
    photo = (images / "obama.jpg").read_bytes()
    one = operator.post(url, data={"name": "X"}, files=[("photos", ("o.jpg", photo, "image/jpeg"))])
    assert one.status_code == 413
    assert one.json()["detail"] == (
        "photo o.jpg is larger than the limit of 0.25 MB; send a smaller one"
    )
    # Over ten photos' worth (the most one enrolment takes): refused before it is read.
    big = b"\xff\xd8\xff" + bytes(3 * 1024 * 1024)
    whole = operator.post(url, data={"name": "X"}, files=[("photos", ("b.jpg", big, "image/jpeg"))])
    assert whole.status_code == 413
    assert whole.json()["detail"] == "the request is too large (3.0 MB); the limit is 2.6 MB"
    # Other requests are small JSON.
    huge = operator.post(f"{API}/watchlists", content=b"{" + bytes(2 * 1024 * 1024))
    assert huge.status_code == 413


def test_unknown_watchlist_and_a_person_without_photo(
    app: FastAPI, api_store: Store, wanted: WatchlistInfo
) -> None:
    person_id = add_person(api_store, wanted.id, "Jane Doe", [unit(1)])
    operator = signed_in(app, "olga")
    (person,) = _persons(operator, wanted.id)
    assert person == {
        "id": person_id,
        "name": "Jane Doe",
        "templates": 1,
        "enrolled_by": "alice",
        "created_at": person["created_at"],
        "photo": False,
    }
    missing = operator.get(f"{API}/persons/{person_id}/photo.jpg")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"there is no enrolled photo of person {person_id}"
    assert operator.get(f"{API}/persons/999/photo.jpg").status_code == 404
    assert operator.get(f"{API}/watchlists/999/persons").status_code == 404
    jpeg = _jpeg(np.zeros((8, 8, 3), np.uint8))
    unknown = operator.post(
        f"{API}/watchlists/999/persons",
        data={"name": "X"},
        files=[("photos", ("x.jpg", jpeg, "image/jpeg"))],
    )
    assert unknown.status_code == 404
    other = operator.delete(
        f"{API}/watchlists/999/persons/{person_id}", params={"reason": "wrong list"}
    )
    assert other.status_code == 404


def test_a_watchlist_is_seen_only_by_those_granted_a_camera_it_covers(
    app: FastAPI, api_store: Store, wanted: WatchlistInfo
) -> None:
    clock = ManualClock(datetime.now(UTC))
    square = authorised_watchlist(api_store, clock, "square-only", cameras=["square"])
    person_id = add_person(api_store, square.id, "Jane Doe", [unit(3)])
    olga = signed_in(app, "olga")  # granted gate-1 only
    names = [w["name"] for w in olga.get("/api/v1/watchlists").json()["items"]]
    assert names == [wanted.name]  # every-camera watchlists cover gate-1 too
    for path in (f"/watchlists/{square.id}", f"/watchlists/{square.id}/persons"):
        hidden = olga.get(f"/api/v1{path}")
        assert hidden.status_code == 404
        assert hidden.json()["detail"] == f"there is no watchlist {square.id} on your cameras"
    assert olga.get(f"/api/v1/persons/{person_id}/photo.jpg").status_code == 404
    admin = signed_in(app, "ada")
    assert {w["name"] for w in admin.get("/api/v1/watchlists").json()["items"]} == {
        wanted.name,
        "square-only",
    }
