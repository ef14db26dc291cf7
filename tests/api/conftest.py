"""An API app on a real store (SQLite, or PostgreSQL where marked), with a user per role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from api_support import add_role_users
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from governance.governance_support import T0

from safecity.api.app import create_app
from safecity.api.context import ApiContext
from safecity.config import SafecityConfig
from safecity.governance.clock import ManualClock
from safecity.store import Store, open_store


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, with the smallest cost, so tests with many sign-ins stay quick."""
    monkeypatch.setattr(
        "safecity.access.users._hasher", PasswordHasher(time_cost=1, memory_cost=1024)
    )


@pytest.fixture
def api_config(tmp_path: Path) -> SafecityConfig:
    config = SafecityConfig()
    config.store.url = f"sqlite:///{tmp_path / 'safecity.db'}"
    config.store.media_dir = tmp_path / "media"
    config.audit.key_path = tmp_path / "audit" / "key.pem"
    config.audit.heads_path = tmp_path / "audit" / "heads.jsonl"
    return config


@pytest.fixture
def api_store(api_config: SafecityConfig) -> Iterator[Store]:
    store = open_store(api_config.store.url, api_config.store.media_dir)
    add_role_users(store)
    yield store
    store.close()


@pytest.fixture
def ctx(api_config: SafecityConfig, api_store: Store) -> ApiContext:
    return ApiContext(api_config, api_store)


@pytest.fixture
def app(ctx: ApiContext) -> FastAPI:
    return create_app(ctx)


@pytest.fixture
def anonymous(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture
def image(data_dir: Path) -> np.ndarray:
    """A small real face for event snapshots (Obama's portrait, 64×80)."""
    return cv2.resize(cv2.imread(str(data_dir / "images" / "obama.jpg")), (64, 80))


@pytest.fixture
def clock(ctx: ApiContext) -> ManualClock:
    """The app's clock, fixed at T0 (modules with a clock of their own override it)."""
    ctx.clock = ManualClock(T0)
    return ctx.clock
