"""A cluster worker (:class:`CameraWorker`, in this process) serves its own metrics.

Several workers share a node, so each takes a free port on ``metrics.host`` and reports
it as ``"metrics"`` in its ``state()``, which ``safecity cluster status --json`` shows.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from metrics.test_metrics import values

from safecity.store import open_store

pytestmark = pytest.mark.slow


def _scrape(address: str) -> dict:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        return values(answer.read().decode())


def test_a_worker_serves_its_cameras_metrics_and_reports_where(
    tmp_path: Path, data_dir: Path
) -> None:
    import ray

    from safecity.runtime.cluster import CameraWorker

    url = f"sqlite:///{tmp_path / 'safecity.db'}"
    open_store(url, tmp_path / "media").close()  # migrated, as the coordinator leaves it
    config = {
        "store": {"url": url, "media_dir": str(tmp_path / "media")},
        "outbox": {"dir": str(tmp_path / "outbox")},
        "audit": {"key_path": str(tmp_path / "key.pem"), "heads_path": str(tmp_path / "h")},
    }
    video = data_dir / "video" / "pedestrians-768x576.avi"
    worker = CameraWorker("w1-test", config, run_id="run-1")
    try:
        address = worker.metrics.address
        assert address is not None and address.startswith("127.0.0.1:")
        assert not address.endswith(":9464")  # a free port, not the configured one
        worker.assign([{"name": "campus", "url": str(video), "fps": 5, "live_pace": True}])
        key = ("safecity_camera_frames_in_total", (("camera", "campus"),))
        deadline = time.monotonic() + 60
        while _scrape(address).get(key, 0) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
        figures = _scrape(address)
        assert figures[key] >= 5
        assert figures[("safecity_outbox_events", (("outbox", "w1-test"),))] >= 0
        assert ("safecity_database_up", ()) not in figures  # the API serves those, once
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=1, include_dashboard=False, configure_logging=False)
        try:
            assert worker.state()["metrics"] == address
        finally:
            ray.shutdown()
    finally:
        worker.shutdown(drain_s=5.0)
    with pytest.raises(urllib.error.URLError):
        _scrape(address)  # closed with the worker
