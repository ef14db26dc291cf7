"""Separation of duties through the API, as one person with admin rights would try it.

An admin may not decide; a password an admin set is provisional; two
confirmations count as two people only if neither account was set up by the
other, nor both by the same admin (directly or through an admin they made).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from api_support import PASSWORD, signed_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from governance.governance_support import stored_match

from safecity.access.roles import Role
from safecity.access.users import create_user, get_user
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.store.schema import EventRecord

API = "/api/v1"
OWN = "my very own secret"


@pytest.fixture
def candidate(api_store: Store, data_dir: Path) -> int:
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    assert image is not None
    return stored_match(api_store, ManualClock(datetime.now(UTC)), np.asarray(image)).event_id


def _status(store: Store, event_id: int) -> str:
    with store.transaction() as session:
        return session.get(EventRecord, event_id).match_status


def _confirm(client: TestClient, event_id: int):
    return client.post(f"{API}/review/{event_id}", json={"decision": "confirm"})


def _add(admin: TestClient, name: str, role: str = "reviewer") -> None:
    body = {"username": name, "password": PASSWORD, "role": role, "cameras": ["gate-1"]}
    response = admin.post(f"{API}/users", json=body)
    assert response.status_code == 201, response.text


def _own_password(app: FastAPI, name: str, current: str = PASSWORD) -> TestClient:
    """Sign in with the password an admin set, set one's own, sign in again with it."""
    client = signed_in(app, name, current)
    assert client.get(f"{API}/auth/me").json()["password_provisional"] is True
    changed = client.post(
        f"{API}/auth/password", json={"current_password": current, "new_password": OWN}
    )
    assert changed.status_code == 204, changed.text
    client = signed_in(app, name, OWN)
    assert client.get(f"{API}/auth/me").json()["password_provisional"] is False
    return client


def test_an_admin_cannot_confirm(app: FastAPI, api_store: Store, candidate: int) -> None:
    admin = signed_in(app, "ada")
    response = _confirm(admin, candidate)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("admins administer accounts and do not decide")
    assert admin.get(f"{API}/review/queue").status_code == 403
    assert _status(api_store, candidate) == "candidate"


def test_a_reset_password_is_provisional_and_the_resetter_sponsors_for_good(
    app: FastAPI, api_store: Store, candidate: int
) -> None:
    admin = signed_in(app, "ada")
    # The admin resets rita's password and signs in as her.
    reset = admin.post(f"{API}/users/rita/password", json={"password": "ada knows this one"})
    assert reset.status_code == 204
    as_rita = signed_in(app, "rita", "ada knows this one")
    refused = _confirm(as_rita, candidate)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("your password was set by ada; set your own")
    (queued,) = as_rita.get(f"{API}/review/queue").json()["items"]
    assert queued["may_review"] is False and "set by ada" in queued["why_not"]
    # Changing it "as rita" makes it rita's own: one confirmation counts ...
    as_rita = _own_password(app, "rita", "ada knows this one")
    assert _confirm(as_rita, candidate).json()["status"] == "candidate"
    # ... but the same admin resetting remy too cannot supply the second one.
    assert (
        admin.post(f"{API}/users/remy/password", json={"password": "ada knows it too"}).status_code
        == 204
    )
    as_remy = _own_password(app, "remy", "ada knows it too")
    (queued,) = as_remy.get(f"{API}/review/queue").json()["items"]
    assert queued["may_review"] is False and "both set up by ada" in queued["why_not"]
    refused = _confirm(as_remy, candidate)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith(
        "your account and that of rita, who confirmed this match, were both set up by ada"
    )
    assert _status(api_store, candidate) == "candidate"
    assert [r.actor for r in list_records(api_store, action="review.confirm")] == ["rita"]


def test_two_reviewers_made_by_one_admin_are_one_person(
    app: FastAPI, api_store: Store, candidate: int
) -> None:
    admin = signed_in(app, "ada")
    _add(admin, "r1")
    _add(admin, "r2")
    assert get_user(api_store, "r1").provisional
    r1, r2 = _own_password(app, "r1"), _own_password(app, "r2")
    first = _confirm(r1, candidate)
    assert first.status_code == 200 and first.json()["status"] == "candidate"
    second = _confirm(r2, candidate)
    assert second.status_code == 403
    assert "were both set up by ada" in second.json()["detail"]
    assert _status(api_store, candidate) == "candidate"


def test_reviewers_made_by_two_admins_confirm_unless_one_admin_made_the_other(
    app: FastAPI, api_store: Store, candidate: int
) -> None:
    # The first admin, made on the command line when there was none (the root).
    create_user(api_store, "root", PASSWORD, Role.ADMIN, by="oslogin", bootstrap=True)
    root = signed_in(app, "root")
    _add(root, "a1", "admin")
    _add(root, "a2", "admin")
    a1, a2 = _own_password(app, "a1"), _own_password(app, "a2")
    _add(a1, "r1")
    _add(a2, "r2")
    # a1 makes an admin of its own, who makes r3: a1 may be behind r1 and r3 both.
    _add(a1, "a3", "admin")
    _add(_own_password(app, "a3"), "r3")
    r1, r2, r3 = (_own_password(app, n) for n in ("r1", "r2", "r3"))

    assert _confirm(r1, candidate).json()["status"] == "candidate"
    refused = _confirm(r3, candidate)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith(
        "your account and that of r1, who confirmed this match, were both set up by a1 "
        "(your account was set up by a3, whose account was set up by a1;"
    )
    done = _confirm(r2, candidate)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "confirmed"
    assert _status(api_store, candidate) == "confirmed"


def test_a_wrong_current_password_changes_nothing(app: FastAPI, api_store: Store) -> None:
    client = signed_in(app, "rita")
    response = client.post(
        f"{API}/auth/password", json={"current_password": "not it at all", "new_password": OWN}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "the current password is wrong"
    assert signed_in(app, "rita").get(f"{API}/auth/me").status_code == 200
