"""Every read that shows who matched leaves an audit record; viewers cannot tell a match.

On a fixed clock (T0 from the governance helpers), so nothing depends on today.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from api_support import signed_in
from fastapi import FastAPI
from governance.governance_support import T0, add_person, make_event, stored_match, unit

from safecity.api.context import ApiContext
from safecity.api.imaging import decode_jpeg
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.governance.review import review_match
from safecity.store import Store
from safecity.store.sink import StoreSink

API = "/api/v1"


def test_an_event_showing_who_matched_is_audited(
    app: FastAPI, api_store: Store, clock: ManualClock, image: np.ndarray
) -> None:
    matched = stored_match(api_store, clock, image)
    plain = StoreSink(api_store, clock).write(make_event(image, start=T0, track_id=2))
    olga, vic = signed_in(app, "olga"), signed_in(app, "vic")

    shown = olga.get(f"{API}/events/{matched.event_id}")
    assert shown.status_code == 200 and shown.json()["match"]["person"] == "Jane Doe"
    (seen,) = list_records(api_store, action="view.event")
    assert seen.actor == "olga" and seen.object == f"event:{matched.event_id}"
    assert seen.details["person_id"] == matched.person_id
    assert seen.origin.startswith("api olga@")

    # No identity shown, nothing recorded: an ordinary event, or a viewer.
    assert olga.get(f"{API}/events/{plain}").status_code == 200
    assert vic.get(f"{API}/events/{matched.event_id}").json()["match"] is None
    assert len(list_records(api_store, action="view.event")) == 1


def test_a_page_of_people_on_a_watchlist_is_audited(
    app: FastAPI, api_store: Store, clock: ManualClock, image: np.ndarray
) -> None:
    matched = stored_match(api_store, clock, image)
    other = add_person(api_store, matched.watchlist.id, "Abe Other", [unit(2)])
    olga = signed_in(app, "olga")
    page = olga.get(f"{API}/watchlists/{matched.watchlist.id}/persons", params={"limit": 1})
    assert [p["name"] for p in page.json()["items"]] == ["Abe Other"]
    (seen,) = list_records(api_store, action="view.watchlist_persons")
    assert seen.actor == "olga" and seen.object == f"watchlist:{matched.watchlist.id}"
    assert seen.details == {"persons": [other], "page": False}
    cursor = page.json()["next_cursor"]
    rest = olga.get(f"{API}/watchlists/{matched.watchlist.id}/persons", params={"cursor": cursor})
    assert [p["id"] for p in rest.json()["items"]] == [matched.person_id]
    later = max(list_records(api_store, action="view.watchlist_persons"), key=lambda r: r.id)
    assert later.details == {"persons": [matched.person_id], "page": True}


def test_a_viewer_cannot_tell_a_rejected_match_from_an_ordinary_event(
    app: FastAPI, ctx: ApiContext, api_store: Store, clock: ManualClock, image: np.ndarray
) -> None:
    rejected = stored_match(api_store, clock, image).event_id
    plain = StoreSink(api_store, clock).write(make_event(image, start=T0, track_id=2))
    review_match(api_store, rejected, by="rita", decision="reject", clock=clock)
    vic = signed_in(app, "vic")

    def seen(event_id: int) -> dict:
        listed = {e["id"]: e for e in vic.get(f"{API}/events").json()["items"]}[event_id]
        detail = vic.get(f"{API}/events/{event_id}").json()
        assert {k: detail[k] for k in listed} == listed
        return {k: v for k, v in detail.items() if k not in ("id", "track_id")}

    assert seen(rejected) == seen(plain)
    assert seen(plain)["snapshot"] is True
    # The console loads every listed snapshot: the rejected event's is there too,
    # with every face hidden, as an ordinary event's is.
    for event_id in (rejected, plain):
        shot = vic.get(f"{API}/events/{event_id}/snapshot.jpg")
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
        assert decode_jpeg(shot.content).shape == image.shape

    # Once an ordinary event's snapshot is past retention, viewers see none for any
    # event, though a confirmed match keeps its evidence longer.
    confirmed = stored_match(api_store, clock, image, name="other").event_id
    for reviewer in ("rita", "remy"):
        review_match(api_store, confirmed, by=reviewer, decision="confirm", clock=clock)
    clock.set(T0 + timedelta(hours=ctx.config.retention.snapshots_h, seconds=1))
    vic = signed_in(app, "vic")  # the first session went idle meanwhile
    assert seen(confirmed)["snapshot"] is seen(plain)["snapshot"] is False
    gone = vic.get(f"{API}/events/{confirmed}/snapshot.jpg")
    assert gone.status_code == 404
    assert gone.json()["detail"] == vic.get(f"{API}/events/{plain}/snapshot.jpg").json()[
        "detail"
    ].replace(str(plain), str(confirmed))
    assert signed_in(app, "olga").get(f"{API}/events/{confirmed}/snapshot.jpg").status_code == 200
