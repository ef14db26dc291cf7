"""Plates in the API: shown to roles that see identities, searched on record.

Real SQLite store, real plate crops (OpenALPR EU photos); users of every role on
camera gate-1 (api_support).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_support import signed_in
from fastapi import FastAPI
from plate_support import labelled_plate, vehicle_event

from safecity.governance.audit import list_records
from safecity.store import Store
from safecity.store.sink import StoreSink

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def cars(api_store: Store, data_dir: Path) -> dict[str, int]:
    sink = StoreSink(api_store)
    ids = {}
    for i, name in enumerate(("eu1", "eu8")):
        plate = labelled_plate(data_dir, name)
        start = NOW - timedelta(minutes=10 - i)
        ids[plate.text] = sink.write(vehicle_event(plate, start=start, track_id=i + 1))
    return ids


def searches(store: Store) -> list[dict]:
    return [r.details for r in list_records(store, action="search.events", newest_first=False)]


def test_plate_search_exact_and_fuzzy_is_audited(app: FastAPI, api_store: Store, cars) -> None:
    aude = signed_in(app, "aude")  # an auditor: sees identities
    exact = aude.get("/api/v1/events", params={"plate": "wsq-3021"})
    assert exact.status_code == 200, exact.text
    (item,) = exact.json()["items"]
    assert item["id"] == cars["WSQ3021"]
    assert item["plate"] == {"text": "WSQ3021", "confidence": pytest.approx(0.93), "crop": True}
    assert aude.get("/api/v1/events", params={"plate": "WSQ3O21"}).json()["items"] == []
    fuzzy = aude.get("/api/v1/events", params={"plate": "WSQ3O21", "fuzzy": "true"})
    assert [e["id"] for e in fuzzy.json()["items"]] == [cars["WSQ3021"]]
    two_off = aude.get("/api/v1/events", params={"plate": "WS03O21", "fuzzy": "true"})
    assert two_off.json()["items"] == []
    # Every plate search is on record, naming the plate searched (normalised).
    found = [
        (d["filters"]["plate"], d["filters"].get("fuzzy"), d["found"]) for d in searches(api_store)
    ]
    assert found == [
        ("WSQ3021", None, 1), ("WSQ3O21", None, 0), ("WSQ3O21", True, 1), ("WS03O21", True, 0),
    ]  # fmt: skip
    crop = aude.get(f"/api/v1/events/{cars['WSQ3021']}/plate.jpg")
    assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"


def test_a_viewer_neither_searches_nor_sees_plates(app: FastAPI, api_store: Store, cars) -> None:
    vic = signed_in(app, "vic")
    refused = vic.get("/api/v1/events", params={"plate": "M5XSX"})
    assert refused.status_code == 403
    assert "viewer" in refused.json()["detail"] and "plate" in refused.json()["detail"]
    listed = vic.get("/api/v1/events").json()["items"]
    assert sorted(e["id"] for e in listed) == sorted(cars.values())
    assert all(e["plate"] is None for e in listed)  # the cars are there; their plates are not
    assert vic.get(f"/api/v1/events/{cars['M5XSX']}").json()["plate"] is None
    assert vic.get(f"/api/v1/events/{cars['M5XSX']}/plate.jpg").status_code == 403
    assert searches(api_store) == []  # refused before searching
    # A role that sees identities sees the plate in a plain listing (not a search: not audited).
    olga = signed_in(app, "olga")
    plates = {e["id"]: e["plate"]["text"] for e in olga.get("/api/v1/events").json()["items"]}
    assert plates == {v: k for k, v in cars.items()}


def test_a_plate_with_nothing_to_search_is_refused_in_words(app: FastAPI, cars) -> None:
    olga = signed_in(app, "olga")
    answer = olga.get("/api/v1/events", params={"plate": "--"})
    assert answer.status_code == 422 and "no letters or digits" in answer.json()["detail"]
    answer = olga.get("/api/v1/events", params={"fuzzy": "true"})
    assert answer.status_code == 422 and "give plate" in answer.json()["detail"]
