"""Accountability through the ``safecity`` command, as two operators and two reviewers meet it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_cli import SAFECITY, count, one_error_line, safecity

from safecity.access.roles import Role
from safecity.access.users import create_user, set_password
from safecity.events import Event, Snapshot
from safecity.store import open_store
from safecity.store.schema import Person
from safecity.store.sink import StoreSink
from safecity.vision.types import Match

NOW = datetime.now(UTC)
pytestmark = pytest.mark.slow  # each test runs several safecity processes


PASSWORD = "a long enough secret"
#: Real accounts, each set up by its own admin stand-in, each password its owner's.
USERS = {
    "alice": Role.OPERATOR,
    "bob": Role.REVIEWER,
    "carol": Role.REVIEWER,
    "dave": Role.REVIEWER,
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    store = open_store(
        f"sqlite:///{tmp_path / 'data' / 'safecity.db'}", tmp_path / "data" / "media"
    )
    for name, role in USERS.items():
        create_user(store, name, PASSWORD, role, by=f"setup-{name}", cameras=["*"])
        set_password(store, name, PASSWORD, by=name)
    store.close()
    return tmp_path


def _as(home: Path, user: str, *args: str, password: str = PASSWORD):
    """``safecity --user USER ARGS --password-stdin`` with the password on standard input."""
    return subprocess.run(
        [*SAFECITY, "--user", user, *args, "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, SAFECITY_HOME=str(home / "data"), COLUMNS="60"),
        cwd=home,
    )


def _propose(home: Path) -> None:
    done = _as(
        home,
        "alice",
        "authorisation",
        "propose",
        "--legal-basis",
        "Police Act s.12",
        "--authority",
        "District Court",
        "--reference",
        "DC-2026-7",
        "--purpose",
        "find a missing person",
        "--valid-from",
        (NOW - timedelta(hours=1)).isoformat(),
        "--valid-until",
        (NOW + timedelta(days=1)).isoformat(),
    )
    assert done.returncode == 0, done.stderr
    assert "a reviewer other than alice must approve it" in done.stdout


def test_two_users_then_a_watchlist_then_a_verified_trail(home: Path) -> None:
    _propose(home)
    line = one_error_line(_as(home, "alice", "authorisation", "approve", "1"))
    assert "a different user must approve it" in line
    # A name that is no account, or the right name with the wrong password, decides nothing.
    line = one_error_line(_as(home, "Bob", "authorisation", "approve", "1"))
    assert line == "error: wrong user name or password for 'Bob'"
    line = one_error_line(_as(home, "bob", "authorisation", "approve", "1", password="guessed it!"))
    assert line == "error: wrong user name or password for 'bob'"
    done = _as(home, "bob", "authorisation", "approve", "1")
    assert done.returncode == 0 and "active" in done.stdout
    done = safecity(home, "--user", "bob", "watchlist", "create", "missing", "--authorisation", "1")
    assert done.returncode == 0 and "(active)" in done.stdout

    done = safecity(home, "audit", "verify")
    assert done.returncode == 0, done.stderr
    assert "audit trail intact: 13 records" in done.stdout
    done = safecity(home, "audit", "list", "--json", "--limit", "100")
    assert '"authorisation.approve"' in done.stdout and '"bob"' in done.stdout
    failed = [r for r in json.loads(done.stdout) if r["action"] == "auth.login_failed"]
    assert sorted((r["object"], r["details"]["reason"]) for r in failed) == [
        ("Bob", "unknown user"),
        ("bob", "wrong password"),
    ]
    # Whoever --user claims to be, the record also says where it came from.
    assert '"origin": "cli ' in done.stdout


def test_a_watchlist_proposing_its_authorisation_needs_the_proposers_password(
    home: Path,
) -> None:
    """``watchlist create NAME`` with legal fields proposes as ``authorisation propose`` does."""
    fields = (
        "--legal-basis", "Police Act s.12", "--authority", "District Court",
        "--reference", "DC-2026-8", "--purpose", "find a missing person",
        "--valid-from", (NOW - timedelta(hours=1)).isoformat(),
        "--valid-until", (NOW + timedelta(days=1)).isoformat(),
    )  # fmt: skip
    # No password (no terminal to ask on), a name with no account, a wrong password.
    line = one_error_line(safecity(home, "--user", "alice", "watchlist", "create", "w", *fields))
    assert line == "error: no terminal to ask for the password of alice; give --password-stdin"
    line = one_error_line(_as(home, "Alice", "watchlist", "create", "w", *fields))
    assert line == "error: wrong user name or password for 'Alice'"
    line = one_error_line(
        _as(home, "alice", "watchlist", "create", "w", *fields, password="guessed it!")
    )
    assert line == "error: wrong user name or password for 'alice'"
    assert count(home, "watchlists") == 0 and count(home, "authorisations") == 0

    done = _as(home, "alice", "watchlist", "create", "w", *fields)
    assert done.returncode == 0, done.stderr
    assert "(proposed)" in done.stdout and "a reviewer other than alice" in done.stdout
    done = safecity(home, "authorisation", "list", "--json")
    assert json.loads(done.stdout)[0]["proposed_by"] == "alice"
    line = one_error_line(_as(home, "alice", "authorisation", "approve", "1"))
    assert "a different user must approve it" in line
    assert _as(home, "bob", "authorisation", "approve", "1").returncode == 0
    done = safecity(home, "audit", "list", "--json", "--limit", "100")
    failed = [r for r in json.loads(done.stdout) if r["action"] == "auth.login_failed"]
    assert sorted((r["object"], r["details"]["for"]) for r in failed) == [
        ("Alice", "propose an authorisation"),
        ("alice", "propose an authorisation"),
    ]


def test_audit_verify_names_the_tampered_record(home: Path) -> None:
    _propose(home)
    _as(home, "bob", "authorisation", "approve", "1")
    db = home / "data" / "safecity.db"
    connection = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 1")
    connection.executescript(
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor = 'mallory' WHERE id = 1;"
    )
    connection.close()
    done = safecity(home, "audit", "verify")
    assert done.returncode == 1
    assert "record 1" in done.stderr and "altered" in done.stderr
    assert "Traceback" not in done.stderr


def test_truncation_is_caught_by_the_signed_head(home: Path) -> None:
    _propose(home)
    _as(home, "bob", "authorisation", "approve", "1")  # each command signs the new head
    connection = sqlite3.connect(home / "data" / "safecity.db")
    connection.executescript(
        "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id = 10;"
    )
    connection.close()
    done = safecity(home, "audit", "verify")
    assert done.returncode == 1 and "truncated" in done.stderr


def test_two_reviewers_confirm_a_match(home: Path, data_dir: Path) -> None:
    _propose(home)
    _as(home, "bob", "authorisation", "approve", "1")
    safecity(home, "--user", "alice", "watchlist", "create", "missing", "--authorisation", "1")
    store = open_store(f"sqlite:///{home / 'data' / 'safecity.db'}", home / "data" / "media")
    with store.transaction() as session:
        person = Person(name="Jane Doe", watchlist_id=1, enrolled_by="alice")
        session.add(person)
        session.flush()
        person_id = person.id
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    h, w = image.shape[:2]
    box = np.array([0, 0, w, h], np.float32)
    snapshot = Snapshot(image, box, box, np.zeros((0, 4), np.float32), 1, NOW)
    event = Event(
        "gate-1",
        1,
        "person",
        NOW,
        NOW,
        0.9,
        5,
        snapshot,
        Match(person_id, "Jane Doe", 1, "missing", 0.96, 0.1),
        snapshot,
    )
    event_id = str(StoreSink(store).write(event))
    store.close()

    done = safecity(home, "review", "queue", "--json")
    assert '"person_name": "Jane Doe"' in done.stdout and '"confirmed_by": []' in done.stdout
    line = one_error_line(_as(home, "alice", "review", "confirm", event_id))
    assert "alice enrolled Jane Doe" in line
    done = _as(home, "carol", "review", "confirm", event_id)
    assert "1 of 2 confirmations" in done.stdout
    done = _as(home, "carol", "review", "confirm", event_id)
    assert "counted once" in done.stdout and "1 of 2" in done.stdout
    done = _as(home, "dave", "review", "confirm", event_id)
    assert done.returncode == 0 and "confirmed by carol, dave" in done.stdout
    done = safecity(home, "events", "--json")
    assert '"match_status": "confirmed"' in done.stdout
    assert count(home, "reviews") == 2
    assert safecity(home, "audit", "verify").returncode == 0


def test_run_records_its_config_enforces_retention_and_signs(home: Path, data_dir: Path) -> None:
    """`safecity run` over a short file camera: the configuration is audited once, the
    retention scheduler runs, the head is signed, and a second run with the same
    config adds no configuration record."""
    config = home / "safecity.yaml"
    config.write_text(
        "cameras:\n"
        f"  - {{name: lobby, url: '{data_dir / 'video/seated-faces-480x270.gif'}', fps: 2}}\n"
        "retention: {interval_s: 3600}\n"
    )
    for _ in range(2):
        done = safecity(home, "--user", "alice", "--config", str(config), "run")
        assert done.returncode == 0, done.stderr
    listed = safecity(home, "audit", "list", "--json", "--limit", "1000").stdout
    assert listed.count('"config.change"') == 1
    assert listed.count('"retention.run"') == 2
    assert (home / "data" / "audit" / "signed-heads.jsonl").exists()
    assert safecity(home, "audit", "verify").returncode == 0


def test_out_of_range_times_and_odd_paths_are_one_line(home: Path) -> None:
    line = one_error_line(
        safecity(
            home, "report", "transparency", "--from", "2026-01-01",
            "--to", "9999-12-31T23:59:59-05:00",
        )
    )  # fmt: skip
    assert "out of range" in line
    (home / "a-folder").mkdir()
    line = one_error_line(safecity(home, "report", "dpia", "--out", str(home / "a-folder")))
    assert "not a regular file" in line
