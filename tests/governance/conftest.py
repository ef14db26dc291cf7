"""A real store on each backend and a settable clock (helpers: governance_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from governance_support import T0

from safecity.governance.clock import ManualClock
from safecity.store import Store, StoreError, open_store
from safecity.store.testing import scratch_postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'safecity.db'}"
        return
    try:
        with scratch_postgres_schema() as url:
            yield url
    except StoreError as error:
        pytest.skip(f"PostgreSQL tests skipped: {error}")


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
