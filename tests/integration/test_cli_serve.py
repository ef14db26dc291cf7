"""``safecity user`` and ``safecity serve`` as an engineer deploying the console meets them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from test_cli import SAFECITY, count, one_error_line, safecity

pytestmark = pytest.mark.slow  # several safecity processes, one of them a server

PASSWORD = "a long enough secret"


def _env(home: Path) -> dict[str, str]:
    return dict(os.environ, SAFECITY_HOME=str(home / "data"), COLUMNS="100")


def _user_add(home: Path, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    """As chief: the first admin when there is none (bootstrap), then chief's password first."""
    first = count(home, "users") == 0
    return subprocess.run(
        [*SAFECITY, "--user", "chief", "user", "add", *args, "--password-stdin"],
        input=("" if first else PASSWORD + "\n") + password + "\n",
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=120,
    )


def _as_chief(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SAFECITY, "--user", "chief", *args, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_users_are_created_changed_and_refused_in_words(tmp_path: Path) -> None:
    done = _user_add(tmp_path, "chief", "--role", "admin")
    assert done.returncode == 0, done.stderr
    assert "user chief (admin) created; cameras: every camera" in done.stdout
    assert "created" in _user_add(tmp_path, "vic", "--role", "viewer", "--cameras", "gate-1").stdout
    assert "already exists" in one_error_line(_user_add(tmp_path, "chief", "--role", "admin"))
    assert "roles are admin, operator" in one_error_line(
        _user_add(tmp_path, "x", "--role", "boss", "--cameras", "*")
    )
    assert "name the cameras" in one_error_line(_user_add(tmp_path, "y", "--role", "operator"))
    assert "at least 10 characters" in one_error_line(
        _user_add(tmp_path, "z", "--role", "viewer", "--cameras", "*", password="short")
    )
    nobody = subprocess.run(
        [*SAFECITY, "--user", "vic", "user", "set", "vic", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=_env(tmp_path),
    )
    assert "vic is not an admin" in one_error_line(nobody)
    changed = _as_chief(tmp_path, "user", "set", "vic", "--cameras", "gate-1,square", "--disable")
    assert changed.returncode == 0, changed.stderr
    assert "cameras gate-1, square, disabled" in changed.stdout
    token = _as_chief(tmp_path, "user", "token", "create", "chief", "--name", "vms-bridge")
    assert token.returncode == 0 and token.stdout.strip().splitlines()[-1].startswith("sc_")
    listed = safecity(tmp_path, "user", "list")
    assert "chief" in listed.stdout and "vic" in listed.stdout
    assert count(tmp_path, "users") == 2
    # Every change is on the audit trail, which stays intact.
    trail = safecity(tmp_path, "audit", "list", "--json")
    actions = [a for a in ("user.create", "user.update", "token.create") if a in trail.stdout]
    assert actions == ["user.create", "user.update", "token.create"]
    assert safecity(tmp_path, "audit", "verify").returncode == 0


def test_serve_answers_healthz_signs_in_a_user_and_stops_cleanly(tmp_path: Path) -> None:
    assert _user_add(tmp_path, "chief", "--role", "admin").returncode == 0
    port = _free_port()
    server = subprocess.Popen(
        [*SAFECITY, "serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        with httpx.Client(base_url=base) as client:
            assert client.get("/api/v1/events").status_code == 401
            login = client.post(
                "/api/v1/auth/login", json={"username": "chief", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            assert client.get("/api/v1/events").status_code == 200
            assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "safecity"
    finally:
        server.send_signal(signal.SIGTERM)
        out, errors = server.communicate(timeout=60)
    assert server.returncode == 0, errors
    assert f"safecity console on http://127.0.0.1:{port}/" in out
    assert "Traceback" not in errors
    trail = safecity(tmp_path, "audit", "list", "--json").stdout
    assert "auth.login" in trail
    # The server signed the chain head on its way out: the last signed head is the last
    # record (the login), and verify checks the chain against it.
    records = json.loads(trail)
    heads = (tmp_path / "data" / "audit" / "signed-heads.jsonl").read_text().splitlines()
    assert json.loads(heads[-1])["id"] == max(r["id"] for r in records)
    verified = safecity(tmp_path, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(safecity(tmp_path, "serve", "--port", str(port)))
    assert line == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
