"""Bodies are limited as they arrive and need credentials first; every answer has the headers."""

from __future__ import annotations

from collections.abc import Iterator

from api_support import signed_in
from fastapi import FastAPI
from fastapi.testclient import TestClient


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_a_body_without_credentials_is_refused_before_it_is_read(anonymous: TestClient) -> None:
    response = anonymous.post("/api/v1/watchlists", content=_chunks(50 * 1024 * 1024))
    assert response.status_code == 401
    assert response.json()["detail"] == "sign in first (or send an API token)"
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_body_without_a_length_is_cut_at_the_limit(app: FastAPI) -> None:
    operator = signed_in(app, "olga")
    response = operator.post(
        "/api/v1/watchlists",
        content=_chunks(3 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "the request is too large; the limit is 1.0 MB"
    login = TestClient(app).post("/api/v1/auth/login", content=_chunks(3 * 1024 * 1024))
    assert login.status_code == 413


def test_answers_carry_the_security_headers(app: FastAPI, anonymous: TestClient) -> None:
    health = anonymous.get("/healthz")
    assert health.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in health.headers["content-security-policy"]
    me = signed_in(app, "vic").get("/api/v1/auth/me")
    assert me.headers["cache-control"] == "no-store"
    assert me.headers["x-content-type-options"] == "nosniff"


class _CountedBody:
    """A 40 MB body that counts how many of its chunks the server pulled."""

    def __init__(self, total: int = 40 * 1024 * 1024) -> None:
        self.total = total
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.total // (64 * 1024)):
            self.pulled += 1
            yield b"x" * (64 * 1024)


def test_a_body_with_a_bad_credential_is_refused_before_it_is_read(
    anonymous: TestClient,
) -> None:
    upload = "/api/v1/watchlists/1/persons"
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    for credential, detail in (
        ({"Authorization": "Bearer junk"}, "the API token is not valid"),
        ({"Authorization": "Bearer sc_1_forged"}, "the API token is not valid"),
        ({"Cookie": "safecity_session=made-up"}, "your session has ended"),
    ):
        body = _CountedBody()
        response = anonymous.post(upload, content=body, headers=multipart | credential)
        assert response.status_code == 401, credential
        assert response.json()["detail"].startswith(detail)
        assert body.pulled == 0, credential


def test_a_session_body_without_the_csrf_token_is_refused_before_it_is_read(
    app: FastAPI,
) -> None:
    operator = signed_in(app, "olga")
    operator.headers.pop("X-CSRF-Token")
    body = _CountedBody()
    response = operator.post("/api/v1/watchlists", content=body)
    assert response.status_code == 403 and "X-CSRF-Token" in response.json()["detail"]
    assert body.pulled == 0


def test_unicode_digits_and_huge_numbers_are_client_errors(
    app: FastAPI, anonymous: TestClient
) -> None:
    # Header bytes are read as Latin-1: b"\xb2" is "²", which str.isdigit accepts.
    tokens = (b"sc_\xb2_x", "sc_²_x".encode(), b"sc_99999999999999999999_x", b"sc_-1_x")
    for token in tokens:
        for path in ("/", "/api/v1/auth/me", "/healthz"):
            sent = {"Authorization": b"Bearer " + token}
            response = anonymous.get(path, headers=sent)
            assert response.status_code in (200, 401), (token, path, response.text)
            if path == "/api/v1/auth/me":
                assert response.json()["detail"].startswith("the API token is not valid")
    auditor = signed_in(app, "aude")
    for person in ("²", "٣", "9" * 30, "99999999999999999999"):
        found = auditor.get("/api/v1/events", params={"person": person})
        assert found.status_code == 200, (person, found.text)
        assert found.json()["items"] == []
    for cursor in ("0" * 11 + "9" * 21, "1" * 32):
        page = auditor.get("/api/v1/events", params={"cursor": cursor})
        assert page.status_code in (200, 400), (cursor, page.text)
        if page.status_code == 400:
            assert page.json()["detail"].endswith("start again from the first page")


def test_the_content_security_policy_forbids_base_and_foreign_forms(
    anonymous: TestClient,
) -> None:
    for path in ("/healthz", "/login", "/api/v1/auth/me"):
        policy = anonymous.get(path).headers["content-security-policy"]
        directives = {d.strip() for d in policy.split(";")}
        assert "base-uri 'none'" in directives, path
        assert "form-action 'self'" in directives, path
        assert "frame-ancestors 'none'" in directives, path
