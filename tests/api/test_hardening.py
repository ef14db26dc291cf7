"""Findings of a security review, each kept closed: odd numbers, photo bombs, lock-outs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from api_support import PASSWORD
from fastapi import FastAPI


@pytest.fixture
def server(app: FastAPI) -> Iterator[SimpleNamespace]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    config.timeout_graceful_shutdown = 2
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = running.servers[0].sockets[0].getsockname()[1]
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}")
    running.should_exit = True
    thread.join(10)


def test_a_unicode_or_huge_last_event_id_starts_the_stream_afresh(
    server: SimpleNamespace,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        login = {"username": "aude", "password": PASSWORD}
        assert client.post("/api/v1/auth/login", json=login).status_code == 200
        # Servers read header bytes as Latin-1: b"\xb2" is "²", which str.isdigit accepts.
        for resume in (b"\xb2", "²".encode(), b"99999999999999999999", b"-3", b"12"):
            headers = {"Last-Event-ID": resume, "Accept": "text/event-stream"}
            with client.stream("GET", "/api/v1/stream", headers=headers) as response:
                assert response.status_code == 200, resume
                assert response.headers["content-type"].startswith("text/event-stream")
