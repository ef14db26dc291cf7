"""Fixtures for end-to-end runs: real models, real media, a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safecity.config import SafecityConfig


@pytest.fixture(scope="session")
def config() -> SafecityConfig:
    return SafecityConfig()


@pytest.fixture(scope="session")
def stages(config):
    from safecity.pipeline import Stages

    return Stages.load(config)


def make_store(folder: Path):
    from safecity.store import open_store

    return open_store(f"sqlite:///{folder / 'safecity.db'}", folder / "media")


@pytest.fixture
def store(tmp_path: Path):
    opened = make_store(tmp_path)
    yield opened
    opened.close()


NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def authorise_watchlist(store) -> str:
    """A watchlist for every camera, valid a day either side of NOW (alice proposed, bob
    approved). NOW is fixed: pass ManualClock(NOW) to whatever checks it."""
    from safecity.governance.authorisations import approve
    from safecity.governance.clock import ManualClock
    from safecity.identity.watchlists import create_watchlist

    clock = ManualClock(NOW)
    info = create_watchlist(
        store,
        name="wanted",
        by="alice",
        clock=clock,
        legal_basis="Test Act s.1",
        authority="Test Court",
        reference="TC-2026-001",
        purpose="integration test",
        # Matching needs the window to hold at the frame's time (from NOW on) and when
        # the match is stored (the sink's clock, set to NOW): the run's day covers both.
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=1),
        cameras=None,
    )
    approve(store, info.authorisation_id, by="bob", clock=clock)
    return "wanted"


@pytest.fixture(scope="session")
def e2e():
    """The helpers above, for module-scoped fixtures that build their own store."""
    import types

    return types.SimpleNamespace(now=NOW, make_store=make_store, authorise=authorise_watchlist)
