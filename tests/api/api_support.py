"""Helpers for API tests: users of every role and signed-in clients."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from safecity.access.roles import Role
from safecity.access.users import create_user, set_password
from safecity.store import Store

PASSWORD = "correct horse battery"
#: One user per role; the non-admins see camera "gate-1" only.
ROLE_USERS = {
    "ada": Role.ADMIN,
    "olga": Role.OPERATOR,
    "rita": Role.REVIEWER,
    "remy": Role.REVIEWER,
    "aude": Role.AUDITOR,
    "vic": Role.VIEWER,
}


def add_role_users(store: Store) -> None:
    """Each account set up by its own (stand-in) admin, its password set by its owner:
    what two reviewers need to be two people (see safecity.access.duties)."""
    for name, role in ROLE_USERS.items():
        create_user(store, name, PASSWORD, role, by=f"setup-{name}", cameras=["gate-1"])
        set_password(store, name, PASSWORD, by=name)


def signed_in(app: FastAPI, username: str, password: str = PASSWORD) -> TestClient:
    """A client with the session cookie and the CSRF header of ``username``."""
    client = TestClient(app)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client
