"""Real local servers for network sources (MJPEG over HTTP, static files, a silent
port), loaded as a pytest plugin by tests/conftest.py so every test folder can use them."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import pytest
import uvicorn


@contextlib.contextmanager
def running_app(app: Any, **options: Any) -> Iterator[SimpleNamespace]:
    """A real uvicorn server for ``app`` on a free local port, in a thread, for the
    block: ``url`` and the server's ``state`` (its open connections and tasks).
    ``options`` go to ``uvicorn.Config`` (e.g. proxy headers)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none", **options
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
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", state=running.server_state)
    finally:
        running.should_exit = True
        thread.join(10)


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up mid-response is what these tests do on purpose


class MjpegServer:
    """Serves ``multipart/x-mixed-replace`` JPEG frames on 127.0.0.1, like an IP camera.

    Each connection gets ``frames_per_connection`` frames, ``interval_s`` apart,
    then the server hangs up (a camera dropping). Requests numbered in
    ``refuse`` (1-based) get ``503`` instead (a camera that is still down).
    """

    def __init__(self, jpegs: list[bytes], frames_per_connection: int, interval_s: float) -> None:
        self.jpegs = jpegs
        self.frames_per_connection = frames_per_connection
        self.interval_s = interval_s
        self.refuse: set[int] = set()
        self.requests = 0
        self.frames_sent = 0
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                    number = server.requests
                if number in server.refuse:
                    self.send_error(503, "camera busy")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for k in range(server.frames_per_connection):
                    jpeg = server.jpegs[k % len(server.jpegs)]
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                    self.wfile.write(head.encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    self.wfile.flush()
                    with server._lock:
                        server.frames_sent += 1
                    time.sleep(server.interval_s)

            def log_message(self, *args) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/video.mjpg"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="session")
def pedestrian_jpegs(data_dir: Path) -> list[bytes]:
    """The first 12 frames of the pedestrians video as JPEG files."""
    cap = cv2.VideoCapture(str(data_dir / "video/pedestrians-768x576.avi"))
    jpegs = []
    for _ in range(12):
        ok, image = cap.read()
        assert ok
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    cap.release()
    return jpegs


@pytest.fixture
def mjpeg_server(pedestrian_jpegs) -> Iterator[Callable[..., MjpegServer]]:
    """Factory: ``mjpeg_server(frames_per_connection, interval_s)`` -> a running MjpegServer."""
    servers: list[MjpegServer] = []

    def start(frames_per_connection: int = 10, interval_s: float = 0.02) -> MjpegServer:
        server = MjpegServer(pedestrian_jpegs, frames_per_connection, interval_s)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def file_server() -> Iterator[Callable[[Path], str]]:
    """Factory: ``file_server(directory)`` -> base URL of an HTTP server for that folder."""
    servers: list[http.server.HTTPServer] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    def start(directory: Path) -> str:
        httpd = _QuietServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung camera)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connections are refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
