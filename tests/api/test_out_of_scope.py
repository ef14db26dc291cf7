"""What lies outside a user's cameras answers exactly like what does not exist.

The operator olga is granted camera "gate-1" only. An authorisation scoped to
"square", its watchlist, the person on it, their photo and the events on
"square" must all answer 404 with the same sentence as an id that does not
exist; nothing else (a 403, a 409 naming the object, a 201) may tell her they
are there. An authorisation for every camera covers hers, so she sees it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from api_support import signed_in
from fastapi import FastAPI
from governance.governance_support import T0, add_person, authorised_watchlist, make_event, unit
from sqlalchemy import update

from safecity.api.context import ApiContext
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.store.schema import Template
from safecity.store.sink import StoreSink
from safecity.vision.types import Match

API = "/api/v1"
MISSING = 99_999


@pytest.fixture
def world(ctx: ApiContext, api_store: Store, data_dir: Path) -> dict[str, int]:
    """Authorisations for square only, gate-1 only and every camera; a person with a
    photo and a match on square."""
    clock = ctx.clock = ManualClock(T0)
    square = authorised_watchlist(api_store, clock, "hidden", cameras=["square"])
    gate = authorised_watchlist(api_store, clock, "gate-list", cameras=["gate-1"])
    everywhere = authorised_watchlist(api_store, clock, "everywhere")
    person = add_person(api_store, square.id, "Hidden Person", [unit(1)])
    api_store.media.root.mkdir(parents=True, exist_ok=True)
    (api_store.media.root / "face.jpg").write_bytes(
        cv2.imencode(".jpg", np.full((40, 40, 3), 128, np.uint8))[1].tobytes()
    )
    with api_store.transaction(write=True) as session:
        session.execute(
            update(Template).where(Template.person_id == person).values(photo_path="face.jpg")
        )
    image = cv2.resize(cv2.imread(str(data_dir / "images" / "obama.jpg")), (64, 80))
    match = Match(person, "Hidden Person", square.id, square.name, 0.97, 0.2)
    event = StoreSink(api_store, clock).write(
        make_event(image, camera="square", start=T0, match=match)
    )
    return {
        "square_auth": square.authorisation_id,
        "square_list": square.id,
        "gate_auth": gate.authorisation_id,
        "everywhere_auth": everywhere.authorisation_id,
        "person": person,
        "event": event,
    }


def test_everything_outside_the_operators_cameras_answers_as_missing(
    app: FastAPI, api_store: Store, world: dict[str, int]
) -> None:
    admin, olga = signed_in(app, "ada"), signed_in(app, "olga")
    photo = ("photos", ("me.jpg", b"\xff\xd8\xff\xe0 not really", "image/jpeg"))
    # (method, path template with {id}, the hidden id, extra request arguments)
    routes = [
        ("GET", "/authorisations/{id}", world["square_auth"], {}),
        ("GET", "/watchlists/{id}", world["square_list"], {}),
        ("GET", "/watchlists/{id}/persons", world["square_list"], {}),
        ("POST", "/watchlists/{id}/persons", world["square_list"], {"data": {"name": "x"}}),
        ("DELETE", "/watchlists/{id}/persons/1", world["square_list"], {}),
        ("GET", "/persons/{id}/photo.jpg", world["person"], {}),
        ("GET", "/events/{id}", world["event"], {}),
        ("GET", "/events/{id}/snapshot.jpg", world["event"], {}),
        ("GET", "/events/{id}/match.jpg", world["event"], {}),
    ]
    for method, template, hidden, extra in routes:
        kwargs = dict(extra)
        if method == "POST":
            kwargs["files"] = [photo]
        if method == "DELETE":
            kwargs["params"] = {"reason": "test"}
        if method == "GET":  # the admin sees each object: it is there
            seen = admin.get(API + template.format(id=hidden))
            assert seen.status_code == 200, (template, seen.text)
        answer = olga.request(method, API + template.format(id=hidden), **kwargs)
        missing = olga.request(method, API + template.format(id=MISSING), **kwargs)
        assert answer.status_code == missing.status_code == 404, (template, answer.text)
        assert answer.json() == {
            "detail": missing.json()["detail"].replace(str(MISSING), str(hidden))
        }, template
        assert "Hidden" not in answer.text and "square" not in answer.text

    # A watchlist under an authorisation she cannot see: as if it did not exist.
    body = {"name": "mine", "authorisation_id": world["square_auth"]}
    refused = olga.post(f"{API}/watchlists", json=body)
    absent = olga.post(f"{API}/watchlists", json=body | {"authorisation_id": MISSING})
    assert refused.status_code == absent.status_code == 404, refused.text
    assert refused.json()["detail"] == f"there is no authorisation {world['square_auth']}"
    assert absent.json()["detail"] == f"there is no authorisation {MISSING}"
    assert olga.get(f"{API}/watchlists/999").status_code == 404

    # Lists leave them out; an authorisation for every camera covers hers.
    auths = olga.get(f"{API}/authorisations").json()["items"]
    assert sorted(a["id"] for a in auths) == sorted([world["gate_auth"], world["everywhere_auth"]])
    listed = olga.get(f"{API}/watchlists").json()["items"]
    assert sorted(w["name"] for w in listed) == ["everywhere", "gate-list"]
    assert world["event"] not in [e["id"] for e in olga.get(f"{API}/events").json()["items"]]

    # A taken name: the same sentence whether or not she can see the watchlist that
    # has it; the clash with the hidden one is on record for auditors.
    visible = {"name": "gate-list", "authorisation_id": world["gate_auth"]}
    hidden = {"name": "hidden", "authorisation_id": world["gate_auth"]}
    clash = olga.post(f"{API}/watchlists", json=visible)
    hidden_clash = olga.post(f"{API}/watchlists", json=hidden)
    assert clash.status_code == hidden_clash.status_code == 409
    assert clash.json() == {"detail": "a watchlist named 'gate-list' already exists"}
    assert hidden_clash.json() == {"detail": "a watchlist named 'hidden' already exists"}
    (probe,) = list_records(api_store, action="watchlist.name_taken")
    assert probe.actor == "olga" and probe.object == f"watchlist:{world['square_list']}"
    assert probe.origin.startswith("api olga@")
    fresh = {"name": "new", "authorisation_id": world["everywhere_auth"]}
    assert olga.post(f"{API}/watchlists", json=fresh).status_code == 201
