"""A licence plate hit in the API's review queue: the read beside the listed plate.

The hit is a real OpenALPR photo's car event whose plate read is the labelled
plate's crop, listed on an approved plate watchlist (tests/plate_hit_support.py).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from api_support import signed_in
from fastapi import FastAPI
from governance.governance_support import stored_match
from plate_hit_support import listed_plate_hit

from safecity.config import SafecityConfig
from safecity.governance.clock import ManualClock
from safecity.identity.plate_lists import add_plate
from safecity.store import Store

API = "/api/v1"


@pytest.fixture
def portrait(data_dir: Path) -> np.ndarray:
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    assert image is not None
    return image


def _jpeg(client, url: str) -> np.ndarray:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, url
    return image


def test_a_plate_hit_shows_the_read_and_its_crop_beside_the_listed_plate(
    app: FastAPI, api_store: Store, clock: ManualClock, data_dir: Path, portrait: np.ndarray
) -> None:
    face = stored_match(api_store, clock, portrait)
    hit = listed_plate_hit(api_store, data_dir, clock)  # listed by olga, an operator
    rita, remy = signed_in(app, "rita"), signed_in(app, "remy")

    by_kind = {c["kind"]: c for c in rita.get(f"{API}/review/queue").json()["items"]}
    assert set(by_kind) == {"face", "plate"}
    plate = by_kind["plate"]
    assert plate["event_id"] == hit.event_id and plate["camera"] == "gate-1"
    assert plate["face"] is None  # no enrolled photo of a vehicle
    assert plate["plate"] == {
        "read": "OY09FEU",
        "confidence": pytest.approx(0.93),
        "crop_url": f"{API}/events/{hit.event_id}/plate.jpg",
        "listed": ["OY09FEU"],
        "vehicle": "stolen silver car, case 4411",
        "snapshot_url": f"{API}/events/{hit.event_id}/match.jpg",
    }
    assert (plate["person"], plate["watchlist"]) == (hit.vehicle, "stolen-cars-eu5")
    authorisation = plate["authorisation"]
    assert authorisation["reference"] == "DC-stolen-cars-eu5"
    assert (authorisation["status"], authorisation["decided_by"]) == ("active", "bob")
    assert authorisation["watchlists"] == ["stolen-cars-eu5"]
    assert plate["may_review"] is True and plate["why_not"] is None

    # A face hit keeps its images and has no plate.
    assert by_kind["face"]["event_id"] == face.event_id and by_kind["face"]["plate"] is None
    assert by_kind["face"]["face"] == {
        "enrolled_photo_url": f"{API}/persons/{face.person_id}/photo.jpg",
        "seen_url": f"{API}/events/{face.event_id}/match.jpg",
    }

    # The URLs give the stored images: the plate as read (the labelled box) and the car.
    crop = _jpeg(rita, plate["plate"]["crop_url"])
    assert crop.shape[:2] == hit.plate.crop.shape[:2] == (42, 183)
    assert np.abs(crop.astype(int) - hit.plate.crop).mean() < 8  # JPEG, the same picture
    assert _jpeg(rita, plate["plate"]["snapshot_url"]).shape == hit.plate.photo.shape

    assert rita.post(f"{API}/review/{hit.event_id}", json={"decision": "confirm"}).is_success
    done = remy.post(f"{API}/review/{hit.event_id}", json={"decision": "confirm"})
    assert done.json()["status"] == "confirmed"
    assert [c["kind"] for c in rita.get(f"{API}/review/queue").json()["items"]] == ["face"]


def test_whoever_listed_the_vehicle_or_added_a_plate_of_it_may_not_review_its_hit(
    app: FastAPI, api_store: Store, clock: ManualClock, data_dir: Path
) -> None:
    hit = listed_plate_hit(api_store, data_dir, clock, by="rita")
    # remy adds a second plate of the same car: he listed it too.
    add_plate(
        api_store, hit.watchlist.name, "oy09 fev", name=hit.vehicle, by="remy",
        countries=SafecityConfig().plates.countries, clock=clock,
    )  # fmt: skip
    for name in ("rita", "remy"):
        reviewer = signed_in(app, name)
        (queued,) = reviewer.get(f"{API}/review/queue").json()["items"]
        assert queued["plate"]["listed"] == ["OY09FEU", "OY09FEV"]
        assert queued["may_review"] is False, name
        assert queued["why_not"] == (
            "you listed stolen silver car, case 4411 (or added a plate of it); "
            "a hit on a vehicle you listed must be reviewed by others"
        )
        refused = reviewer.post(f"{API}/review/{hit.event_id}", json={"decision": "confirm"})
        assert refused.status_code == 400, name
        assert f"{name} enrolled stolen silver car" in refused.json()["detail"]

    # Roles as for faces: no queue for an operator, no plate image for a viewer.
    assert signed_in(app, "olga").get(f"{API}/review/queue").status_code == 403
    viewer = signed_in(app, "vic").get(f"{API}/events/{hit.event_id}/plate.jpg")
    assert viewer.status_code == 403
