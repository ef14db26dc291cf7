"""A real console in a browser: uvicorn serving the app, Debian's Chromium driven by Playwright.

The server's store holds the events of a real pipeline run on the sample video
(camera ``vtest``), whose frames also fed the live view. Screenshots go to
``test-artifacts/screenshots/`` (or ``$SAFECITY_ARTIFACTS/screenshots``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from browser_support import PASSWORD, Console
from governance.governance_support import authorised_watchlist

from safecity.config import CameraConfig, SafecityConfig
from safecity.governance.clock import ManualClock

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
USERS = {
    "ada": ("admin", None),
    "olga": ("operator", ["*"]),
    "rita": ("reviewer", ["*"]),
    "remy": ("reviewer", ["*"]),
    "vic": ("viewer", ["*"]),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    root = Path(os.environ.get("SAFECITY_ARTIFACTS", REPO / "test-artifacts"))
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def console(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    import uvicorn

    from safecity.access import users
    from safecity.access.roles import parse_role
    from safecity.api.app import create_app
    from safecity.api.context import ApiContext
    from safecity.api.live import LiveHub
    from safecity.pipeline import Stages
    from safecity.runtime.local import analyze_one
    from safecity.store import open_store
    from safecity.store.sink import StoreSink

    folder = tmp_path_factory.mktemp("console")
    config = SafecityConfig()
    config.store.url = f"sqlite:///{folder / 'safecity.db'}"
    config.store.media_dir = folder / "media"
    config.audit.key_path = folder / "audit" / "key.pem"
    config.audit.heads_path = folder / "audit" / "heads.jsonl"
    store = open_store(config.store.url, config.store.media_dir)
    # Real argon2id at its smallest cost: five accounts, many sign-ins.
    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024)
    for name, (role, cameras) in USERS.items():
        # Each set up by its own admin stand-in, each password its owner's: what two
        # reviewers need to count as two people (safecity.access.duties).
        role_ = parse_role(role)
        users.create_user(store, name, PASSWORD, role_, by=f"setup-{name}", cameras=cameras)
        users.set_password(store, name, PASSWORD, by=name)
    live = LiveHub(config.api.live_fps)
    video = data_dir / "video" / "pedestrians-768x576.avi"
    report = analyze_one(
        CameraConfig(name="vtest", url=str(video), fps=5),
        config,
        Stages.load(config),
        write=StoreSink(store).write_many,
        on_frame=lambda result: live.publish("vtest", result),
    )
    assert report.event_ids, "the sample video gave no events"
    # A watchlist proposed by one user and approved by another, valid now, every camera.
    clock = ManualClock(datetime.now(UTC))
    watchlist = authorised_watchlist(
        store, clock, valid_until=clock.now() + timedelta(days=30), cameras=None
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ApiContext(config, store, live=live)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.1)
    yield Console(
        f"http://127.0.0.1:{port}", store, config, len(report.event_ids), data_dir, watchlist.id
    )
    server.should_exit = True
    thread.join(10)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # This machine has no outside network: keep Chromium from trying.
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()
