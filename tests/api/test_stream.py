"""GET /stream (Server-Sent Events) and /cameras/{name}/live.mjpg on a real uvicorn server.

Endless responses need a real server: the app runs in uvicorn on a thread, and
httpx reads the streams as a browser would. Events are inserted after the
client connected and must arrive, each only to users who may see it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import cv2
import httpx
import numpy as np
import pytest
from api_support import PASSWORD
from clock_support import needs_real_timed_waits
from fastapi import FastAPI
from governance.governance_support import make_event, stored_match
from servers import running_app

from safecity.api.context import ApiContext
from safecity.api.live import LiveHub
from safecity.api.routers import stream
from safecity.governance.clock import ManualClock
from safecity.pipeline import FrameResult
from safecity.store import Store
from safecity.store.health import report_health
from safecity.store.sink import StoreSink
from safecity.vision.redact import FaceRedactor
from safecity.vision.types import Frame

NOW = datetime.now(UTC)


@pytest.fixture
def fast_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "POLL_S", 0.05)
    monkeypatch.setattr(stream, "HEALTH_S", 0.3)
    monkeypatch.setattr(stream, "HEARTBEAT_S", 0.2)


@pytest.fixture
def server(app: FastAPI) -> Iterator[SimpleNamespace]:
    with running_app(app) as running:
        yield running


def client(server: SimpleNamespace, username: str) -> httpx.Client:
    signed = httpx.Client(base_url=server.url, timeout=10)
    response = signed.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return signed


class Messages:
    """Server-Sent Events read from a streaming response, one message at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments: list[str] = []
        self.retry: int | None = None

    def next(self) -> dict[str, str]:
        message: dict[str, str] = {}
        for line in self.lines:
            if not line:
                if message:
                    return message
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                self.comments.append(value)
            elif name == "retry":
                self.retry = int(value)
            else:
                message[name] = value
        raise AssertionError("the stream ended")

    def until(self, found: Callable[[dict[str, str]], bool], seconds: float = 10) -> list[dict]:
        """Every message up to and including the first that ``found`` accepts."""
        seen = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self.next()
            seen.append(message)
            if found(message):
                return seen
        raise AssertionError(f"not found in {seen}")


def events_in(messages: list[dict]) -> list[dict]:
    return [json.loads(m["data"]) for m in messages if m.get("event") == "event"]


def finished(server: SimpleNamespace, seconds: float = 5) -> bool:
    """Whether every request the server was handling has ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not server.state.tasks:
            return True
        time.sleep(0.05)
    return False


def write(store: Store, image: np.ndarray, camera: str, track_id: int = 1) -> int:
    event = make_event(image, camera=camera, start=NOW, track_id=track_id)
    return StoreSink(store, ManualClock(NOW)).write(event)


def test_new_events_arrive_on_granted_cameras_only(
    fast_stream, server, api_store: Store, image: np.ndarray
) -> None:
    old = write(api_store, image, "gate-1")  # before connecting: not sent
    report_health(api_store, [SimpleNamespace(camera="gate-1", state="running")], "edge", NOW)
    report_health(api_store, [SimpleNamespace(camera="square", state="running")], "edge", NOW)
    olga = client(server, "olga")
    with olga.stream("GET", "/api/v1/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = Messages(response)
        health = messages.until(lambda m: m.get("event") == "health")[-1]
        assert [h["camera"] for h in json.loads(health["data"])] == ["gate-1"]
        assert messages.retry is not None and messages.retry > 0

        hidden = write(api_store, image, "square", 2)
        shown = write(api_store, image, "gate-1", 3)
        match = stored_match(api_store, ManualClock(NOW), image).event_id
        got = messages.until(lambda m: m.get("id") == str(match))
        sent = events_in(got)
        assert [e["id"] for e in sent] == [shown, match]
        assert old not in [e["id"] for e in sent] and hidden not in [e["id"] for e in sent]
        assert sent[-1]["match"]["person"] == "Jane Doe"
        assert sent[-1]["match"]["status"] == "candidate"
        assert not any(m.get("event") == "review" for m in got)  # operators do not review
        messages.until(lambda m: m.get("event") == "health")
        assert "keep-alive" in messages.comments
    assert finished(server), "the stream went on after the client left"


def test_viewer_stream_carries_no_identity(
    fast_stream, server, api_store: Store, image: np.ndarray
) -> None:
    vic = client(server, "vic")
    with vic.stream("GET", "/api/v1/stream") as response:
        messages = Messages(response)
        messages.until(lambda m: m.get("event") == "health")
        match = stored_match(api_store, ManualClock(NOW), image).event_id
        got = messages.until(lambda m: m.get("id") == str(match))
        sent = events_in(got)
        assert [e["id"] for e in sent] == [match]
        assert sent[0]["match"] is None
        assert "Jane" not in json.dumps(got)
        assert not any(m.get("event") == "review" for m in got)


def test_reviewers_hear_the_queue_change(
    fast_stream, server, api_store: Store, image: np.ndarray
) -> None:
    rita = client(server, "rita")
    with rita.stream("GET", "/api/v1/stream") as response:
        messages = Messages(response)
        first = messages.until(lambda m: m.get("event") == "review")[-1]
        assert json.loads(first["data"]) == {"candidates": 0}
        stored_match(api_store, ManualClock(NOW), image)
        got = messages.until(lambda m: m.get("event") == "review")
        assert json.loads(got[-1]["data"]) == {"candidates": 1}
        # Said once per change, not at every poll.
        later = messages.until(lambda m: m.get("event") == "health")
        later += messages.until(lambda m: m.get("event") == "health")
        assert not any(m.get("event") == "review" for m in later)


def test_resumes_after_last_event_id(
    fast_stream, server, api_store: Store, image: np.ndarray
) -> None:
    first = write(api_store, image, "gate-1", 1)
    second = write(api_store, image, "gate-1", 2)
    third = write(api_store, image, "square", 3)
    ada = client(server, "ada")
    headers = {"Last-Event-ID": str(first)}
    with ada.stream("GET", "/api/v1/stream", headers=headers) as response:
        messages = Messages(response)
        got = messages.until(lambda m: m.get("id") == str(third))
        assert [e["id"] for e in events_in(got)] == [second, third]


def test_stream_needs_a_session(server) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as anonymous:
        assert anonymous.get("/api/v1/stream").status_code == 401


def test_stream_ends_when_signed_out(fast_stream, server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "RECHECK_S", 0.1)
    olga = client(server, "olga")
    with olga.stream("GET", "/api/v1/stream") as response:
        messages = Messages(response)
        messages.until(lambda m: m.get("event") == "health")
        csrf = olga.cookies["safecity_csrf"]
        other = httpx.Client(base_url=server.url, cookies=olga.cookies, timeout=5)
        assert other.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        with pytest.raises(AssertionError, match="the stream ended"):
            messages.until(lambda m: False)
        assert "signed out" in messages.comments


# -- the MJPEG live view -----------------------------------------------------------------
def _result(image: np.ndarray, index: int) -> FrameResult:
    image = image.copy()
    cv2.putText(image, str(index), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return FrameResult(Frame("gate-1", index, index / 10, NOW, image), True, [], [])


def _parts(response: httpx.Response, count: int) -> list[bytes]:
    """The first ``count`` JPEGs of a multipart/x-mixed-replace body."""
    buffer, found = b"", []
    for chunk in response.iter_bytes():
        buffer += chunk
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = buffer[:head_end].decode()
            assert head.startswith("--frame\r\nContent-Type: image/jpeg"), head
            length = int(head.rsplit("Content-Length: ", 1)[1])
            end = head_end + 4 + length
            if len(buffer) < end + 2:
                break
            found.append(buffer[head_end + 4 : end])
            buffer = buffer[end + 2 :]
            if len(found) == count:
                return found
    raise AssertionError("the stream ended")


@needs_real_timed_waits  # its feeder paces frames with Event.wait(0.05)
def test_mjpeg_live_view(server, ctx: ApiContext, data_dir: Path) -> None:
    photo = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    hub = ctx.live = LiveHub(10, FaceRedactor())
    hub.publish("gate-1", _result(photo, 1))
    feeding = threading.Event()

    def feed() -> None:
        index = 2
        while not feeding.wait(0.05):
            hub.publish("gate-1", _result(photo, index))
            index += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        vic = client(server, "vic")
        with vic.stream("GET", "/api/v1/cameras/gate-1/live.mjpg") as response:
            assert response.status_code == 200
            content_type = response.headers["content-type"]
            assert content_type == "multipart/x-mixed-replace; boundary=frame"
            started = time.monotonic()
            jpegs = _parts(response, 3)
            took = time.monotonic() - started
        for jpeg in jpegs:
            shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert shown is not None and shown.shape[1] <= 960
        assert len(set(jpegs)) == 3, "each part is a new frame"
        assert took >= 0.15  # at most 10 frames a second
        assert finished(server), "the stream went on after the client left"
        refused = vic.get("/api/v1/cameras/square/live.mjpg")
        assert refused.status_code == 403
    finally:
        feeding.set()
        feeder.join(5)
