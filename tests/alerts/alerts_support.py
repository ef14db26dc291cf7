"""Real receivers for alert tests: a Mosquitto of the test's own, an MQTT subscriber and
an HTTP endpoint that checks webhook signatures the way the README tells receivers to.

Kept out of conftest.py so tests import them by a name no other test folder uses.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt

USER, PASSWORD = "safecity", "alert-test-pass"
SECRET = "a-webhook-secret-of-32-characters"
#: A signed request older than this is refused as a replay (the README's advice).
MAX_AGE_S = 300


class Mosquitto:
    """One broker on ``port``, username/password only, persistent sessions (kill -9 safe).

    Persistence (saved every second) keeps the subscriber's session and queued QoS 1
    messages over a restart, as a production broker would.
    """

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        folder.mkdir(parents=True, exist_ok=True)
        passwords = folder / "passwd"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD],
            check=True,
            capture_output=True,
        )
        self.conf = folder / "mosquitto.conf"
        # As root, mosquitto would switch to its own user, who cannot read this folder.
        user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            user + f"listener {port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {passwords}\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "autosave_interval 1\n"
            "autosave_on_changes true\n"
            f"log_dest file {folder / 'mosquitto.log'}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def kill(self) -> None:
        """kill -9: no goodbye, no final save."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@dataclass
class Subscriber:
    """A persistent-session QoS 1 subscriber to ``<prefix>/#`` that keeps every message."""

    port: int
    prefix: str = "safecity"
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="alert-test-subscriber",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(USER, PASSWORD)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.ready.wait(10), "the subscriber did not connect"

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        client.subscribe(f"{self.prefix}/#", qos=1)
        self.ready.set()

    def _on_message(self, _client, _userdata, message) -> None:
        self.messages.append((message.topic, message.payload, message.retain))

    def bodies(self, topic: str) -> list[dict]:
        """Every JSON message seen on ``<prefix>/<topic>`` (retained replays included)."""
        return [json.loads(p) for t, p, _ in list(self.messages) if t == f"{self.prefix}/{topic}"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Received:
    message_id: str
    timestamp: int
    body: dict
    verified: bool
    replay: bool


class WebhookReceiver:
    """A threaded HTTP server that verifies each POST as the README's example does."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.seen: set[str] = set()
        self.raw: list[tuple[dict, bytes]] = []  # (headers, body), to replay
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()}
                receiver.raw.append((headers, body))
                self.send_response(receiver.accept(headers, body, self.path))
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accept(self, headers: dict, body: bytes, path: str = "") -> int:
        """Verify the signature; note a replay (id seen at this path, or old timestamp)."""
        timestamp = headers.get("X-Safecity-Timestamp", "0")
        message_id = path + " " + headers.get("X-Safecity-Id", "")
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        verified = hmac.compare_digest(
            "sha256=" + expected, headers.get("X-Safecity-Signature", "")
        )
        replay = message_id in self.seen or abs(time.time() - int(timestamp)) > MAX_AGE_S
        self.received.append(
            Received(message_id.split(" ")[-1], int(timestamp), json.loads(body), verified, replay)
        )
        if verified and not replay:
            self.seen.add(message_id)
        return self.status if verified else 401

    def bodies(self, kind: str) -> list[dict]:
        return [r.body for r in list(self.received) if r.body.get("type") == kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
