"""A real store on each backend (SQLite file; PostgreSQL scratch schema) and real events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from event_support import still_event

from safecity.events import Event
from safecity.store import Store, open_store
from safecity.vision.types import Match

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(backend_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(backend_url, tmp_path / "media")
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def portrait(data_dir: Path) -> np.ndarray:
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    assert image is not None
    return image


def _make_event(
    image: np.ndarray,
    *,
    camera: str = "gate-1",
    track_id: int = 1,
    label: str = "person",
    start: datetime = T0,
    redact: list[list[float]] | None = None,
    match: Match | None = None,
) -> Event:
    """An event whose snapshot is ``image`` with ``redact`` boxes to pixelate."""
    return still_event(
        image,
        start=start,
        camera=camera,
        track_id=track_id,
        label=label,
        redact=redact,
        match=match,
    )


@pytest.fixture
def make_event():
    """``make_event(image, camera=, track_id=, label=, start=, redact=, match=) -> Event``."""
    return _make_event


@pytest.fixture
def media_files():
    """``media_files(folder)``: every file under a media folder, temp files included."""
    return lambda folder: sorted(p for p in Path(folder).rglob("*") if p.is_file())
