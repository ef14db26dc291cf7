"""Property-based fuzzing of every REST operation from its own OpenAPI description.

Schemathesis generates valid and invalid requests for each operation and sends
them, signed in as an admin with an API token, to the app on a seeded SQLite
store. No request may end in a server error (5xx), and every successful answer
must match the response model the operation documents. The streaming routes
never end a response, so they are left out (their ``Last-Event-ID`` is tested
in ``test_hardening.py``).

Some cases are bent towards what broke before: strings whose characters
``str.isdigit`` accepts but ``int`` does not ("²", "٣"), and numbers no database
integer holds, in every query and path parameter and in the API token.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from governance.governance_support import (
    add_person,
    authorised_watchlist,
    make_event,
    stored_match,
    unit,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from safecity.access.roles import Role
from safecity.access.sessions import create_token, resolve_token
from safecity.access.users import create_user, update_user
from safecity.api.app import create_app
from safecity.api.context import ApiContext
from safecity.config import SafecityConfig
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.store.sink import StoreSink

#: The fuzzing admin's name: random enough that generated requests never disable it.
FUZZER = f"fuzz-{uuid.uuid4().hex[:12]}"
STREAMING = r"(/api/v1/stream$|/live\.mjpg$)"


class Admin:
    """The fuzzing admin's API token, renewed whenever a generated request revoked it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        create_user(store, FUZZER, uuid.uuid4().hex, Role.ADMIN, by="setup")
        self.token = self._new_token()

    def _new_token(self) -> str:
        return create_token(self.store, FUZZER, "schema fuzzing", by="setup")[0]

    def headers(self) -> dict[str, str]:
        principal = resolve_token(self.store, self.token)
        if principal is None or principal.role is not Role.ADMIN:
            update_user(self.store, FUZZER, by="setup", role=Role.ADMIN, disabled=False)
            self.token = self._new_token()
        return {"Authorization": f"Bearer {self.token}"}


def seed(store: Store) -> None:
    """Events on two cameras (one with a candidate match), a second watchlist, a person."""
    now = datetime.now(UTC)
    clock = ManualClock(now)
    image = np.random.default_rng(7).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    stored_match(store, clock, image)
    sink = StoreSink(store, clock)
    for i in range(6):
        sink.write(
            make_event(
                image,
                camera=("gate-1", "yard-2")[i % 2],
                track_id=10 + i,
                start=now - timedelta(minutes=5 * i),
            )
        )
    other = authorised_watchlist(store, clock, "missing", cameras=["gate-1"])
    add_person(store, other.id, "John Roe", [unit(2)])


@pytest.fixture
def admin(api_store: Store) -> Admin:
    seed(api_store)
    return Admin(api_store)


def _described() -> dict:
    """The OpenAPI document (the same for every server; building it needs no store)."""
    return create_app(ApiContext(SafecityConfig(), store=None)).openapi()  # type: ignore[arg-type]


schema = schemathesis.openapi.from_dict(_described()).exclude(path_regex=STREAMING)

#: Digits to ``str.isdigit`` (not to ``int``), and integers beyond 64 bits.
TRICKY = ("²", "٣", "١٢", "9" * 20, str(2**63), str(2**64), "0" * 11 + "9" * 21, "-1")


def _bent(case, how: int, value: str):
    """``case`` with ``value`` in every query and path parameter (how 1, 3) and/or as the
    id of its API token (how 2, 3); as generated for any other ``how``."""
    if how in (1, 3):
        for part in ("query", "path_parameters"):
            params = getattr(case, part)
            if params:
                setattr(case, part, dict.fromkeys(params, value))
    if how in (2, 3):
        # Headers travel as Latin-1: "²" (0xB2) can be sent in one, "٣" cannot.
        token = value if value.isascii() or value == "²" else "²"
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer sc_{token}_x"}
    return case


@schema.hook
def flatmap_case(ctx, case):
    how = st.sampled_from((0, 0, 0, 1, 2, 3))
    return st.tuples(how, st.sampled_from(TRICKY)).map(lambda bent: _bent(case, *bent))


def success_matches_schema(ctx, response, case):
    """What a client parses (2xx bodies) must be what the operation documents.

    Refusals are only required to be one of the client errors (4xx) with a
    ``detail``; request validation (FastAPI's 422 list) is not held to each
    operation's own documented 422 body.
    """
    if 200 <= response.status_code < 300:
        return response_schema_conformance(ctx, response, case)
    return None


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_request_is_a_server_error(case, app: FastAPI, admin: Admin) -> None:
    token = (case.headers or {}).pop("Authorization", "")
    headers = {"Authorization": token} if token else admin.headers()
    case.call_and_validate(
        app=app,
        headers=headers,
        checks=[not_a_server_error, success_matches_schema],
    )
