"""GET /api/v1/cluster: the coordinators' documents from a real store, fresh or not, and cut
to the cameras of the user who asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_support import signed_in
from cluster_support import NODE_A, NODE_B, camera, document
from fastapi import FastAPI
from fastapi.testclient import TestClient

from safecity.api.context import ApiContext
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.store.cluster import OUTBOX_LATE_AFTER_S, STALE_AFTER_S, write_status


def test_nothing_reported_is_an_empty_list(app: FastAPI) -> None:
    body = signed_in(app, "ada").get("/api/v1/cluster").json()
    assert body == {
        "coordinators": [],
        "stale_after_s": STALE_AFTER_S,
        "outbox_late_after_s": OUTBOX_LATE_AFTER_S,
    }


def test_an_admin_sees_the_whole_cluster_with_outbox_trouble_rated(
    app: FastAPI, api_store: Store
) -> None:
    write_status(api_store, document())
    response = signed_in(app, "ada").get("/api/v1/cluster")
    assert response.status_code == 200
    [head] = response.json()["coordinators"]
    assert head["coordinator"] == "head-1" and head["reporting"] is True
    assert 0 <= head["age_s"] < STALE_AFTER_S and head["ended"] is False
    assert [(n["id"], n["workers"], n["cameras"]) for n in head["nodes"]] == [
        (NODE_A, 1, 2),
        (NODE_B, 1, 1),
    ]
    workers = {w["worker"]: w for w in head["workers"]}
    assert workers["w1-aaaaaaaa"]["outbox_health"] == "error"  # the database is away
    assert workers["w1-aaaaaaaa"]["outbox_error"].startswith("the database cannot be reached")
    assert workers["w2-bbbbbbbb"]["outbox_health"] == "late"
    assert workers["w2-bbbbbbbb"]["outbox_age_s"] > OUTBOX_LATE_AFTER_S
    assert workers["w1-aaaaaaaa"]["rss_mb"] == 812.5
    cameras = {c["camera"]: c for c in head["cameras"]}
    assert sorted(cameras) == ["gate-1", "gate-2", "gate-3"]
    assert cameras["gate-3"]["node"] == NODE_B and cameras["gate-3"]["worker"] == "w2-bbbbbbbb"
    assert cameras["gate-1"]["analysed_fps"] == 4.9 and cameras["gate-1"]["lag_p95_s"] == 0.48
    assert head["moves"][0]["from"] == "w0-old"


def test_a_scoped_operator_sees_only_their_cameras_and_nothing_of_the_others(
    app: FastAPI, api_store: Store
) -> None:
    write_status(api_store, document())
    # A second coordinator runs only cameras olga may not see: left out for her.
    other = document("head-2")
    other["cameras"] = [camera("gate-9", "w2-bbbbbbbb", NODE_B)]
    other["workers"] = [{**other["workers"][1], "cameras": ["gate-9"]}]
    write_status(api_store, other)
    response = signed_in(app, "olga").get("/api/v1/cluster")  # olga sees gate-1 only
    assert response.status_code == 200
    for name in ("gate-2", "gate-3", "gate-9", "secret", "head-2", "w2-bbbbbbbb"):
        assert name not in response.text, name
    [head] = response.json()["coordinators"]
    assert [c["camera"] for c in head["cameras"]] == ["gate-1"]
    assert [(w["worker"], w["cameras"]) for w in head["workers"]] == [("w1-aaaaaaaa", ["gate-1"])]
    assert head["workers"][0]["outbox_health"] == "error"  # her camera's events wait there
    assert [(n["id"], n["workers"], n["cameras"]) for n in head["nodes"]] == [
        (NODE_A, 1, 1),
        (NODE_B, 0, 0),
    ]
    assert [m["camera"] for m in head["moves"]] == ["gate-1"]
    # The admin still sees both coordinators, newest first.
    everyone = signed_in(app, "ada").get("/api/v1/cluster").json()["coordinators"]
    assert [c["coordinator"] for c in everyone] == ["head-2", "head-1"]


def test_a_silent_coordinator_is_not_reporting_and_an_ended_one_says_so(
    app: FastAPI, api_store: Store, ctx: ApiContext
) -> None:
    write_status(api_store, document())
    ended = document("head-2")
    ended["ended"] = True
    write_status(api_store, ended)
    ctx.clock = ManualClock(datetime.now(UTC) + timedelta(seconds=STALE_AFTER_S + 45))
    body = signed_in(app, "vic").get("/api/v1/cluster").json()
    by_name = {c["coordinator"]: c for c in body["coordinators"]}
    assert by_name["head-1"]["reporting"] is False
    assert STALE_AFTER_S + 45 <= by_name["head-1"]["age_s"] < STALE_AFTER_S + 60
    assert by_name["head-2"]["ended"] is True and by_name["head-2"]["reporting"] is False


def test_a_malformed_document_is_left_out_not_a_server_error(
    app: FastAPI, api_store: Store
) -> None:
    write_status(api_store, document())
    broken = document("head-2")
    broken["workers"][0]["rss_mb"] = "lots"
    write_status(api_store, broken)
    response = signed_in(app, "ada").get("/api/v1/cluster")
    assert response.status_code == 200
    assert [c["coordinator"] for c in response.json()["coordinators"]] == ["head-1"]


def test_signing_in_is_needed(anonymous: TestClient) -> None:
    response = anonymous.get("/api/v1/cluster")
    assert response.status_code == 401
    assert "detail" in response.json()
