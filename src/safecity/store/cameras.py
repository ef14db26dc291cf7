"""The ``cameras`` table, kept in step with the configuration's cameras.

>>> sync_cameras(store, config.cameras)  # doctest: +SKIP
>>> [c.name for c in list_cameras(store)]  # doctest: +SKIP
['gate-1', 'market-2']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from safecity.config import CameraConfig
from safecity.store.db import Store
from safecity.store.schema import Camera


@dataclass(frozen=True)
class CameraRow:
    id: int
    name: str
    url: str
    location: str
    created_at: datetime


def sync_cameras(store: Store, cameras: Iterable[CameraConfig]) -> None:
    """Insert new cameras and update the url and location of known ones (by name).

    Cameras missing from ``cameras`` are kept: their events still refer to them.
    """
    with store.transaction(write=True) as session:
        known = {c.name: c for c in session.scalars(select(Camera))}
        for camera in cameras:
            row = known.get(camera.name)
            if row is None:
                session.add(Camera(name=camera.name, url=camera.url, location=camera.location))
            else:
                row.url, row.location = camera.url, camera.location


def list_cameras(store: Store) -> list[CameraRow]:
    """Every known camera, by name."""
    with store.transaction() as session:
        rows = session.scalars(select(Camera).order_by(Camera.name)).all()
        return [CameraRow(r.id, r.name, r.url, r.location, r.created_at) for r in rows]
