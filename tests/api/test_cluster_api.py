"""GET /api/v1/cluster: the coordinators' documents from a real store, fresh or not, and cut
to the cameras of the user who asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_support import signed_in
from fastapi import FastAPI
from fastapi.testclient import TestClient

from safecity.api.context import ApiContext
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.store.cluster import OUTBOX_LATE_AFTER_S, STALE_AFTER_S, write_status

NODE_A = "a" * 56
NODE_B = "b" * 56


def document(coordinator: str = "head-1", now: datetime | None = None) -> dict:
    """A coordinator's document as ``Coordinator.status()`` writes it: two nodes, two workers
    (one whose database is away, one with an old backlog), three cameras."""
    now = now or datetime.now(UTC)
    return {
        "coordinator": coordinator,
        "run_id": "0123456789abcdef",
        "address": "10.0.0.1:6379",
        "at": now.isoformat(),
        "ended": False,
        "nodes": [
            {"id": NODE_A, "address": "10.0.0.1", "cpus": 4.0, "capacity": 8, "workers": 1},
            {"id": NODE_B, "address": "10.0.0.2", "cpus": 2.0, "capacity": 4, "workers": 1},
        ],
        "workers": [
            {
                "worker": "w1-aaaaaaaa",
                "node": NODE_A,
                "pid": 4242,
                "host": "edge-a",
                "rss_mb": 812.5,
                "cpu_percent": 143.0,
                "cameras": ["gate-1", "gate-2"],
                "outbox_events": 12,
                "outbox_bytes": 48_000,
                "outbox_oldest": (now - timedelta(seconds=5)).isoformat(),
                "outbox_error": "the database cannot be reached (connection refused)",
                "state": "running",
                "last_error": "",
            },
            {
                "worker": "w2-bbbbbbbb",
                "node": NODE_B,
                "pid": 4343,
                "host": "edge-b",
                "rss_mb": 790.0,
                "cpu_percent": 88.0,
                "cameras": ["gate-3"],
                "outbox_events": 3,
                "outbox_bytes": 9_000,
                "outbox_oldest": (now - timedelta(seconds=OUTBOX_LATE_AFTER_S + 60)).isoformat(),
                "outbox_error": "",
                "state": "running",
                "last_error": "",
            },
        ],
        "cameras": [
            camera("gate-1", "w1-aaaaaaaa", NODE_A),
            camera("gate-2", "w1-aaaaaaaa", NODE_A, last_error="gate-2 secret error"),
            camera("gate-3", "w2-bbbbbbbb", NODE_B),
        ],
        "moves": [
            {"camera": "gate-2", "from": "w0-old", "to": "w1-aaaaaaaa", "at": now.isoformat()},
            {"camera": "gate-1", "from": "w0-old", "to": "w1-aaaaaaaa", "at": now.isoformat()},
        ],
    }


def camera(name: str, worker: str, node: str, last_error: str = "") -> dict:
    return {
        "camera": name,
        "worker": worker,
        "node": node,
        "state": "running",
        "analysed_fps": 4.9,
        "lag_p50_s": 0.21,
        "lag_p95_s": 0.48,
        "event_lag_p95_s": 1.2,
        "events": 17,
        "dropped": 2,
        "frames_in": 600,
        "frames_analysed": 420,
        "reconnects": 1,
        "last_error": last_error,
    }


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
        (NODE_A, 1, 0),  # the document's counts as written (it had none for cameras)
        (NODE_B, 1, 0),
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
