"""A real store on each backend, a Mosquitto of the test's own and a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alerts.alerts_support import Mosquitto, WebhookReceiver

from safecity.store import Store, open_store


@pytest.fixture
def store(backend_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(backend_url, tmp_path / "media")
    yield opened
    opened.close()


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
