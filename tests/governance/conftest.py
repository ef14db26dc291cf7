"""A real store on each backend and a settable clock (helpers: governance_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from governance_support import T0

from safecity.governance.clock import ManualClock
from safecity.store import Store, open_store


@pytest.fixture
def store(backend_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(backend_url, tmp_path / "media")
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'safecity.db'}", tmp_path / "media")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(scope="session")
def portrait(data_dir: Path) -> np.ndarray:
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    assert image is not None
    return image
