"""Sign-in, sessions, CSRF, API tokens, roles and the failed-login limit."""

from __future__ import annotations

import time

import pytest
from api_support import PASSWORD, signed_in
from fastapi import FastAPI
from fastapi.testclient import TestClient

from safecity.access.sessions import LoginError, create_token, login
from safecity.governance.audit import list_records
from safecity.store import Store


def test_healthz_needs_no_sign_in_and_everything_else_does(
    app: FastAPI, anonymous: TestClient
) -> None:
    assert anonymous.get("/healthz").json() == {"status": "ok", "database": "ok"}
    for path in ("/api/v1/auth/me", "/api/v1/users", "/api/v1/openapi.json"):
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert "sign in" in response.json()["detail"]


def test_login_sets_an_httponly_strict_cookie_and_is_audited(
    app: FastAPI, anonymous: TestClient, api_store: Store
) -> None:
    response = anonymous.post("/api/v1/auth/login", json={"username": "olga", "password": PASSWORD})
    assert response.status_code == 200
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert response.json()["role"] == "operator"
    assert response.json()["cameras"] == ["gate-1"]
    me = anonymous.get("/api/v1/auth/me").json()
    assert me["username"] == "olga" and me["csrf_token"] == response.json()["csrf_token"]
    logins = [r for r in list_records(api_store) if r.action == "auth.login"]
    assert [r.object for r in logins] == ["olga"]
    assert logins[0].actor == "olga" and logins[0].origin == "api testclient (login)"


def test_a_state_change_with_the_cookie_needs_the_csrf_token(app: FastAPI) -> None:
    client = signed_in(app, "ada")
    body = {
        "username": "newbie",
        "password": "a long password",
        "role": "viewer",
        "cameras": ["gate-1"],
    }
    csrf = client.headers.pop("X-CSRF-Token")
    refused = client.post("/api/v1/users", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    created = client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text


def test_wrong_passwords_are_audited_then_rate_limited(
    app: FastAPI, anonymous: TestClient, api_store: Store
) -> None:
    for _ in range(5):
        bad = anonymous.post("/api/v1/auth/login", json={"username": "vic", "password": "nope"})
        assert bad.status_code == 401
        assert bad.json()["detail"] == "wrong user name or password"
    locked = anonymous.post("/api/v1/auth/login", json={"username": "vic", "password": PASSWORD})
    assert locked.status_code == 429
    assert "too many failed logins" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 0
    actions = [r.action for r in list_records(api_store)]
    assert actions.count("auth.login_failed") == 5
    assert actions.count("auth.login_locked") == 1
    failed = next(r for r in list_records(api_store) if r.action == "auth.login_failed")
    assert failed.details == {"ip": "testclient", "reason": "wrong password"}
    # Nobody was signed in: the failure is not put on vic's account.
    assert failed.actor == "anonymous" and failed.object == "vic"
    assert "nope" not in str([r.details for r in list_records(api_store)])


def test_api_tokens_authenticate_machines_and_can_be_revoked(
    app: FastAPI, anonymous: TestClient, api_store: Store
) -> None:
    text, info = create_token(api_store, "aude", "siem export", by="ada")
    headers = {"Authorization": f"Bearer {text}"}
    me = anonymous.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["via"] == "token siem export by ada"
    # A token needs no CSRF header: it is not sent by browsers on their own.
    admin = signed_in(app, "ada")
    assert admin.delete(f"/api/v1/tokens/{info.id}").status_code == 204
    assert anonymous.get("/api/v1/auth/me", headers=headers).status_code == 401
    forged = text[:-4] + "AAAA"
    assert (
        anonymous.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_only_admins_manage_users(app: FastAPI) -> None:
    viewer = signed_in(app, "vic")
    response = viewer.get("/api/v1/users")
    assert response.status_code == 403
    assert response.json()["detail"] == "your role (viewer) may not manage users and tokens"
    admin = signed_in(app, "ada")
    first = admin.get("/api/v1/users", params={"limit": 4}).json()
    assert [u["username"] for u in first["items"]] == ["ada", "aude", "olga", "remy"]
    rest = admin.get("/api/v1/users", params={"limit": 4, "cursor": first["next_cursor"]}).json()
    assert [u["username"] for u in rest["items"]] == ["rita", "vic"]
    assert rest["next_cursor"] is None


def test_logout_ends_the_session(app: FastAPI, api_store: Store) -> None:
    client = signed_in(app, "rita")
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401
    assert "auth.logout" in [r.action for r in list_records(api_store)]


def test_a_malformed_request_gets_one_sentence(app: FastAPI) -> None:
    admin = signed_in(app, "ada")
    response = admin.get("/api/v1/users", params={"limit": 0})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "invalid request: limit: Input should be greater than or equal to 1"
    )
    bad = admin.post("/api/v1/users", json={"username": "x"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("invalid request: password")
    huge = admin.get("/api/v1/audit", params={"cursor": "9" * 30})
    assert huge.status_code == 400 and "cursor is not valid" in huge.json()["detail"]
    schema = admin.get("/api/v1/openapi.json").json()
    error = schema["components"]["schemas"]["HTTPValidationError"]
    assert error["properties"]["detail"]["type"] == "string"


def test_a_lock_from_one_address_does_not_lock_the_user_out_elsewhere(
    ctx, api_store: Store
) -> None:
    policy = ctx.config.api
    for _ in range(policy.login_max_failures):
        with pytest.raises(LoginError, match="wrong user name or password"):
            login(api_store, "rita", "guess", ip="203.0.113.9", policy=policy)
    with pytest.raises(LoginError, match="too many failed logins") as locked:
        login(api_store, "rita", PASSWORD, ip="203.0.113.9", policy=policy)
    assert locked.value.retry_after_s and locked.value.retry_after_s <= 15 * 60
    # Rita at her own desk still gets in.
    signed = login(api_store, "rita", PASSWORD, ip="10.1.2.3", policy=policy)
    assert signed.principal.username == "rita"
    # Many addresses guessing one name slow it down everywhere, at the higher limit,
    # but never lock its owner out.
    policy = policy.model_copy(update={"login_user_max_failures": 8})
    for n in range(3):
        with pytest.raises(LoginError):
            login(api_store, "rita", "guess", ip=f"198.51.100.{n}", policy=policy)
    started = time.monotonic()
    assert login(api_store, "rita", PASSWORD, ip="10.1.2.3", policy=policy).principal
    assert time.monotonic() - started >= 0.5


def test_the_last_admin_stays_and_grants_are_explicit(app: FastAPI) -> None:
    admin = signed_in(app, "ada")
    demoted = admin.patch("/api/v1/users/ada", json={"role": "viewer"})
    assert demoted.status_code == 400
    assert demoted.json()["detail"] == "ada is the last admin; make another admin first"
    assert admin.patch("/api/v1/users/ada", json={"disabled": True}).status_code == 400
    body = {"username": "nogrant", "password": "a long password", "role": "operator"}
    refused = admin.post("/api/v1/users", json=body)
    assert refused.status_code == 400 and "name the cameras" in refused.json()["detail"]
    bad = admin.post("/api/v1/users", json=body | {"cameras": ["x" * 200]})
    assert bad.status_code == 422
    second = admin.post(
        "/api/v1/users", json=body | {"username": "boss", "role": "admin", "cameras": None}
    )
    assert second.status_code == 201
    assert admin.patch("/api/v1/users/ada", json={"role": "viewer"}).status_code == 200
