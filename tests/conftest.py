"""Shared fixtures: the real media in ../shared/data (or $SAFECITY_TEST_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Local MJPEG/file servers and closed ports, for network-source tests.
pytest_plugins = ["servers"]


def _data_dir() -> Path | None:
    env = os.environ.get("SAFECITY_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "README.md").exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = _data_dir()
    if found is None:
        pytest.skip("test media not found: set SAFECITY_TEST_DATA or place ../shared/data")
    return found
