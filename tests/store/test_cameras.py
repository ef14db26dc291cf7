"""sync_cameras keeps the cameras table in step with the config."""

from __future__ import annotations

from safecity.config import CameraConfig
from safecity.store import Store
from safecity.store.cameras import list_cameras, sync_cameras


def test_sync_inserts_updates_and_keeps(store: Store) -> None:
    sync_cameras(store, [CameraConfig(name="gate-1", url="rtsp://a", location="north")])
    sync_cameras(
        store,
        [
            CameraConfig(name="gate-1", url="rtsp://b", location="north gate"),
            CameraConfig(name="gate-2", url="rtsp://c"),
        ],
    )
    sync_cameras(store, [])  # a camera leaving the config keeps its row (events refer to it)
    rows = list_cameras(store)
    assert [(r.name, r.url, r.location) for r in rows] == [
        ("gate-1", "rtsp://b", "north gate"),
        ("gate-2", "rtsp://c", ""),
    ]
    assert rows[0].created_at.tzinfo is not None
