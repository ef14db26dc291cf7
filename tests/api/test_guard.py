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
