"""``GET /metrics`` on a real app and store: signed in, every camera, Prometheus text."""

from __future__ import annotations

from datetime import timedelta

from api_support import PASSWORD, signed_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from governance.governance_support import stored_match
from metrics.test_metrics import values  # parsed with prometheus_client's parser

from safecity.access.roles import Role
from safecity.access.sessions import create_token
from safecity.access.users import create_user, set_password
from safecity.store import Store


def test_metrics_refuse_anonymous_and_camera_limited_users(
    app: FastAPI, anonymous: TestClient
) -> None:
    refused = anonymous.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "sign in" in refused.json()["detail"]
    bad = anonymous.get("/metrics", headers={"Authorization": "Bearer sc_1_forged"})
    assert bad.status_code == 401
    # The fixtures' users see camera gate-1 only; the figures span every camera.
    limited = signed_in(app, "vic").get("/metrics")
    assert limited.status_code == 403
    assert "every camera" in limited.json()["detail"]


def test_metrics_answer_a_token_with_the_database_figures(
    app: FastAPI, anonymous: TestClient, api_store: Store, clock, image
) -> None:
    create_user(api_store, "prom", PASSWORD, Role.VIEWER, by="ada", cameras=["*"], clock=clock)
    set_password(api_store, "prom", PASSWORD, by="prom", clock=clock)
    token, _ = create_token(api_store, "prom", "prometheus", by="ada", clock=clock)
    stored_match(api_store, clock, image)  # one candidate match, audited at T0
    clock.advance(timedelta(seconds=42))

    answer = anonymous.get("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    figures = values(answer.text)
    assert figures[("safecity_database_up", ())] == 1
    assert figures[("safecity_matches", (("status", "candidate"),))] == 1
    assert figures[("safecity_matches", (("status", "confirmed"),))] == 0
    # The newest audit record is the match's (T0): 42 s ago on the app's clock.
    assert figures[("safecity_audit_head_age_seconds", ())] == 42
    # A session works as well as a token (a GET: no CSRF token needed).
    session = signed_in(app, "prom")
    assert session.get("/metrics").status_code == 200
