"""``safecity alerts test`` and ``safecity alerts status`` as an operator runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alerts.alerts_support import PASSWORD, SECRET, USER, Subscriber, wait_for


def _unused_port() -> int:
    """A port nothing listens on (the broker fixture has the ``closed_port`` one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _safecity(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "safecity", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _config(tmp_path: Path, broker_port: int, hook_url: str, bad_port: int) -> Path:
    config = tmp_path / "safecity.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'safecity.db'}', media_dir: '{tmp_path}/m'}}\n"
        "alerts:\n"
        "  mqtt:\n"
        f"    - {{name: broker, port: {broker_port}, username: {USER}, password: {PASSWORD}}}\n"
        f"    - {{name: wrongpass, port: {broker_port}, username: {USER}, password: nope}}\n"
        f"    - {{name: nobroker, port: {bad_port}}}\n"
        "  webhooks:\n"
        f"    - {{name: hook, url: '{hook_url}', secret: {SECRET}}}\n"
        f"    - {{name: nohook, url: 'http://127.0.0.1:{bad_port}/x', secret: {SECRET}}}\n"
    )
    return config


@pytest.mark.slow  # seven runs of the command
def test_alerts_test_says_whether_the_sink_acknowledged(tmp_path, broker, receiver):
    config = _config(tmp_path, broker.port, receiver.url, _unused_port())
    subscriber = Subscriber(broker.port)
    ok = _safecity(tmp_path, config, "alerts", "test", "broker")
    assert ok.returncode == 0, ok.stderr
    assert "acknowledged the test message (PUBACK)" in ok.stdout
    wait_for(lambda: subscriber.bodies("test"), 5, "the test message")
    assert subscriber.bodies("test")[0]["type"] == "test"
    assert not [m for m in subscriber.messages if m[0] == "safecity/available"]
    subscriber.close()

    hooked = _safecity(tmp_path, config, "alerts", "test", "hook")
    assert hooked.returncode == 0 and "(2xx)" in hooked.stdout
    assert receiver.received[-1].verified and receiver.received[-1].body["type"] == "test"

    for name, reason in [
        ("wrongpass", "refused the connection: Not authorized"),
        ("nobroker", "cannot reach the MQTT broker"),
        ("nohook", "cannot POST to"),
        ("nosuch", "no alert sink is named 'nosuch'; configured: broker, hook, nobroker"),
    ]:
        failed = _safecity(tmp_path, config, "alerts", "test", name)
        assert failed.returncode == 2, (name, failed.stdout, failed.stderr)
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], lines
    receiver.status = 500
    refused = _safecity(tmp_path, config, "alerts", "test", "hook")
    assert refused.returncode == 2 and "answered HTTP 500" in refused.stderr


def test_alerts_status_lists_every_sink(tmp_path, broker, receiver):
    config = _config(tmp_path, broker.port, receiver.url, _unused_port())
    shown = _safecity(tmp_path, config, "alerts", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = {r["sink"]: r for r in json.loads(shown.stdout)}
    assert set(rows) == {"broker", "wrongpass", "nobroker", "hook", "nohook"}
    assert rows["hook"]["kind"] == "webhook" and rows["hook"]["pending"] == 0
    assert not rows["hook"]["started"]
    table = _safecity(tmp_path, config, "alerts", "status")
    assert table.returncode == 0 and "not started" in table.stdout
