"""Findings of a security review, each kept closed: odd numbers, photo bombs, lock-outs."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from api_support import PASSWORD, add_role_users, signed_in
from fastapi import FastAPI
from governance.governance_support import authorised_watchlist
from servers import running_app

from safecity.errors import EnrolmentError
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.identity.enrol import read_image
from safecity.identity.imagesize import image_size
from safecity.store import Store, open_store


@pytest.fixture
def server(app: FastAPI) -> Iterator[SimpleNamespace]:
    # Behind a "proxy" (this host) as `safecity serve` runs with forwarded_allow_ips:
    # X-Forwarded-For names the client, so a test can come from many addresses.
    with running_app(app, proxy_headers=True, forwarded_allow_ips=["127.0.0.1"]) as running:
        yield running


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


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header declares ``width`` × ``height`` grey pixels, with a tiny IDAT of
    zeros (the first rows): a decoder allocates the whole image before it finds out."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * ((width + 1) * 16), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )


TOO_LARGE = "the photo is too large: 20000×20000 pixels; the limit is 40 megapixels"


def test_a_decompression_bomb_is_refused_from_its_header_through_the_api(
    app: FastAPI, api_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    wanted = authorised_watchlist(api_store, ManualClock(datetime.now(UTC)), "wanted")
    operator = signed_in(app, "olga")
    bomb = png_bomb()
    assert image_size(bomb) == (20000, 20000) and len(bomb) < 10_000
    started = time.monotonic()
    response = operator.post(
        f"/api/v1/watchlists/{wanted.id}/persons",
        data={"name": "Nobody"},
        files=[("photos", ("bomb.png", bomb, "image/png"))],
    )
    assert time.monotonic() - started < 2
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == f"bomb.png: {TOO_LARGE}"
    assert list(uploads.iterdir()) == []
    assert operator.get(f"/api/v1/watchlists/{wanted.id}/persons").json()["items"] == []
    assert list_records(api_store, action="enrolment.add") == []


def test_a_decompression_bomb_is_refused_by_the_photo_reader_and_the_cli(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    # The one reader of enrolment and subject-search photos (enroll, subject find, the API).
    started = time.monotonic()
    with pytest.raises(EnrolmentError) as refused:
        read_image(bomb)
    assert time.monotonic() - started < 1
    assert str(refused.value) == f"{bomb}: {TOO_LARGE}"
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "data"), COLUMNS="200")

    def safecity(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "safecity", *args]
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
        )

    # Proposing the watchlist's authorisation takes a real account and its password.
    store = open_store(
        f"sqlite:///{tmp_path / 'data' / 'safecity.db'}", tmp_path / "data" / "media"
    )
    add_role_users(store)
    store.close()
    created = safecity(
        "--user", "olga", "watchlist", "create", "wanted", "--legal-basis", "Test Act s.1",
        "--authority", "Test Court", "--reference", "TC-1",
        "--purpose", "search for a missing person",
        "--valid-from", "2000-01-01T00:00:00+00:00", "--valid-until", "2999-01-01T00:00:00+00:00",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    enrolled = safecity("enroll", "wanted", "--person", "Nobody", str(bomb))
    assert enrolled.returncode == 2, enrolled.stderr
    assert TOO_LARGE in enrolled.stderr and "Traceback" not in enrolled.stderr


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp"])
def test_the_header_reader_agrees_with_opencv(data_dir: Path, suffix: str) -> None:
    import cv2

    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))[:, :-7]
    ok, encoded = cv2.imencode(suffix, image)
    assert ok
    height, width = image.shape[:2]
    assert image_size(encoded.tobytes()) == (width, height)
    assert image_size(encoded.tobytes()[:8]) is None  # cut short: unknown, never a guess
    lossless = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    assert image_size(lossless) == (width, height)


def test_guessing_from_many_addresses_slows_the_name_but_never_locks_its_owner_out(
    server: SimpleNamespace, api_store: Store
) -> None:
    def attempt(address: str, password: str) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post(
                "/api/v1/auth/login",
                json={"username": "rita", "password": password},
                headers={"X-Forwarded-For": address},
            )
        return response, time.monotonic() - started

    for n in range(10):  # 5 wrong passwords from each of 10 addresses: 50 for the name
        for _ in range(5):
            response, _ = attempt(f"198.51.100.{n}", "guess")
            assert response.status_code == 401, response.text
    # Rita from an eleventh address gets in, after a short wait.
    signed, waited = attempt("203.0.113.11", PASSWORD)
    assert signed.status_code == 200, signed.text
    assert 0.5 <= waited < 5
    # Each of the guessing addresses is locked for rita (its own guesses), and only it.
    locked, _ = attempt("198.51.100.0", PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert locked.json()["detail"].startswith("too many failed logins from this address")
    # Further guesses from a twelfth address are slowed, the wait doubling, not refused.
    waits = []
    for _ in range(2):
        guessed, slowed = attempt("203.0.113.12", "guess")
        assert guessed.status_code == 401
        assert guessed.json()["detail"] == "wrong user name or password"
        waits.append(slowed)
    assert waits[0] >= 0.5 and waits[1] >= 1.0
    # Slowed guesses wait without holding the server's worker threads: more of them
    # at once than there are threads (40) do not hold up rita's own requests.
    guesses = [threading.Thread(target=attempt, args=(f"192.0.2.{n}", "guess")) for n in range(45)]
    for guess in guesses:
        guess.start()
    time.sleep(0.5)  # all of them are waiting now (2 s each)
    started = time.monotonic()
    with httpx.Client(base_url=server.url, cookies=signed.cookies, timeout=30) as rita:
        assert rita.get("/api/v1/auth/me").json()["username"] == "rita"
    answered_in = time.monotonic() - started
    for guess in guesses:
        guess.join()
    assert answered_in < 1.0, f"rita waited {answered_in:.1f} s behind the slowed guesses"
    actions = [r.action for r in list_records(api_store, limit=1000)]
    assert actions.count("auth.login_slowed") == 1
    assert actions.count("auth.login_locked") == 10
    assert actions.count("auth.login") == 1
    assert actions.count("auth.login_failed") == 50 + 2 + 45


def test_disabling_an_account_revokes_its_api_tokens_for_good(
    app: FastAPI, api_store: Store
) -> None:
    from fastapi.testclient import TestClient

    from safecity.access.sessions import create_token, list_tokens

    text, info = create_token(api_store, "aude", "siem export", by="ada")
    machine = TestClient(app, headers={"Authorization": f"Bearer {text}"})
    assert machine.get("/api/v1/auth/me").status_code == 200
    admin = signed_in(app, "ada")
    assert admin.patch("/api/v1/users/aude", json={"disabled": True}).status_code == 200
    assert machine.get("/api/v1/auth/me").status_code == 401
    assert admin.patch("/api/v1/users/aude", json={"disabled": False}).status_code == 200
    refused = machine.get("/api/v1/auth/me")
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("the API token is not valid")
    (token,) = list_tokens(api_store, "aude")
    assert token.revoked_at is not None
    (revoked,) = list_records(api_store, action="token.revoke")
    assert revoked.object == f"token:{info.id}" and revoked.actor == "ada"
