"""``safecity events --plate``: an identity search on the command line, as ``--person`` is.

Real processes on a real SQLite store with real plate crops; accounts with real passwords.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from plate_support import labelled_plate, vehicle_event

from safecity.access.roles import Role
from safecity.access.users import create_user, set_password
from safecity.governance.audit import list_records
from safecity.store import Store, open_store
from safecity.store.sink import StoreSink

PASSWORD = "correct horse battery"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path, data_dir: Path):
    opened = open_store(f"sqlite:///{tmp_path / 'safecity.db'}", tmp_path / "media")
    StoreSink(opened).write(vehicle_event(labelled_plate(data_dir, "eu8"), start=T0))
    yield opened
    opened.close()


def events(store: Store, user: str, *args: str, password: str = PASSWORD):
    url, media = str(store.engine.url), str(store.media.root)
    env = {k: v for k, v in os.environ.items() if k != "SAFECITY_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "safecity", "--db", url, "--media", media, "--user", user]
        + ["events", *args, "--json", "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def add(store: Store, name: str, role: Role) -> None:
    create_user(store, name, PASSWORD, role, by="setup", cameras=["gate-1"])
    set_password(store, name, PASSWORD, by=name)


@pytest.mark.slow
def test_plate_search_needs_a_role_that_sees_identities(store: Store) -> None:
    add(store, "aude", Role.AUDITOR)
    add(store, "vic", Role.VIEWER)
    refused = events(store, "vic", "--plate", "WSQ3021")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        "error: your role (viewer) may not see faces and identities, so it cannot search "
        "events by plate; nothing was searched"
    )
    wrong = events(store, "aude", "--plate", "WSQ3021", password="not the password")
    assert wrong.returncode == 2 and "wrong user name or password" in wrong.stderr
    assert list_records(store, action="search.events") == []

    found = events(store, "aude", "--plate", "wsq 3o21", "--fuzzy")  # O for 0: one off
    assert found.returncode == 0, found.stderr
    assert [r["plate_text"] for r in json.loads(found.stdout)] == ["WSQ3021"]
    exact = events(store, "aude", "--plate", "wsq 3o21")
    assert exact.returncode == 0 and json.loads(exact.stdout) == []
    searches = list_records(store, action="search.events", newest_first=False)
    assert [(r.actor, r.details["filters"].get("plate"), r.details["found"]) for r in searches] == [
        ("aude", "WSQ3O21", 1),
        ("aude", "WSQ3O21", 0),
    ]
