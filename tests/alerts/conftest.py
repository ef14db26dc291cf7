"""A real store on each backend, a Mosquitto of the test's own and a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alerts.alerts_support import Mosquitto, WebhookReceiver

from safecity.store import Store, StoreError, open_store
from safecity.store.testing import scratch_postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'db' / 'safecity.db'}", tmp_path / "media")
        yield opened
        opened.close()
        return
    try:
        with scratch_postgres_schema() as url:
            opened = open_store(url, tmp_path / "media")
            yield opened
            opened.close()
    except StoreError as error:
        pytest.skip(f"PostgreSQL tests skipped: {error}")


@pytest.fixture
def broker(tmp_path: Path, closed_port: int) -> Iterator[Mosquitto]:
    running = Mosquitto(tmp_path / "mosquitto", closed_port)
    running.start()
    yield running
    running.kill()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver()
    yield running
    running.close()
