"""The console's live view of a camera analysed on a Ray worker (``serve --cluster``).

A one-node Ray cluster on this machine, ``safecity run --cluster`` in its own process with a
looping, live-paced camera, PostgreSQL; the app runs in this process (joined to the cluster)
under a real uvicorn server. Frames come from the worker as JPEGs at most ``api.live_fps`` a
second, and the worker keeps no frame once nobody watches.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import yaml

# tests/api's modules import their helper as ``api_support`` (as tests/web/conftest.py notes).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api.api_support import PASSWORD, add_role_users  # noqa: E402
from api.test_stream import _parts  # noqa: E402  (the MJPEG parts reader)
from runtime.test_cluster import (  # noqa: E402
    analysing,
    start_run,
    wait_for,
    write_config,
)
from servers import running_app  # noqa: E402

from safecity.api.app import create_app  # noqa: E402
from safecity.api.context import ApiContext  # noqa: E402
from safecity.api.remote_live import RemoteLive  # noqa: E402
from safecity.config import SafecityConfig  # noqa: E402
from safecity.runtime.cluster import LIVE_LEASE_S, NAMESPACE, connect, disconnect  # noqa: E402
from safecity.store import open_store  # noqa: E402

pytestmark = pytest.mark.slow

FRAMES = 6


@pytest.fixture
def one_node():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def signed_in(url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=10)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client


def test_live_view_of_a_camera_on_a_worker(one_node, pg_url, tmp_path, data_dir):
    import ray

    clip = data_dir / "video" / "pedestrians-768x576.avi"  # 768×576, 10 fps
    config_path = write_config(tmp_path, pg_url, clip, ["gate-1"], fps=2, live=True)
    config = SafecityConfig.model_validate(yaml.safe_load(config_path.read_text()))
    store = open_store(pg_url, tmp_path / "media")
    add_role_users(store)  # vic (viewer) and ada (admin) among them
    run, log = start_run(config_path, one_node.address, tmp_path)
    connect(one_node.address)
    try:
        document, _ = wait_for(store, lambda d: analysing(d, ["gate-1"]), 120, "gate-1 analysing")
        [camera] = document["cameras"]
        worker = ray.get_actor(f"{document['run_id'][:8]}-{camera['worker']}", namespace=NAMESPACE)
        assert ray.get(worker.live_watched.remote(), timeout=10) == []  # nobody watches yet

        app = create_app(ApiContext(config, store), RemoteLive(store, config.api.live_fps))
        with running_app(app) as server:
            vic = signed_in(server.url, "vic")
            listed = vic.get("/api/v1/cameras").json()["items"]
            assert [(c["name"], c["live"]) for c in listed] == [("gate-1", True)]
            with vic.stream("GET", "/api/v1/cameras/gate-1/live.mjpg") as response:
                assert response.status_code == 200
                started = time.monotonic()
                jpegs = _parts(response, FRAMES + 1)
                took = time.monotonic() - started
                watched = ray.get(worker.live_watched.remote(), timeout=10)
            print(f"{FRAMES + 1} live frames from the worker in {took:.2f} s")
            assert watched == ["gate-1"]
            for jpeg in jpegs:
                shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert shown is not None and shown.shape == (576, 768, 3)
            assert len(set(jpegs)) == FRAMES + 1, "each part is a new frame"
            # At most live_fps (4) a second: FRAMES + 1 polls span FRAMES intervals of 1/4 s.
            assert took >= 0.9 * FRAMES / config.api.live_fps

            # The client left: within the lease (and a frame) the worker drops its frames.
            left_at = time.monotonic()
            while ray.get(worker.live_watched.remote(), timeout=10):
                assert time.monotonic() - left_at < LIVE_LEASE_S + 3, "frames kept unwatched"
                time.sleep(0.2)
            print(f"worker dropped the live frames {time.monotonic() - left_at:.1f} s after")
            time.sleep(1.0)  # frames keep coming (10 a second) and are not kept
            assert ray.get(worker.live_watched.remote(), timeout=10) == []

            # Scope first, then: a camera nobody runs is not found.
            assert vic.get("/api/v1/cameras/square/live.mjpg").status_code == 403
            ada = signed_in(server.url, "ada")
            missing = ada.get("/api/v1/cameras/square/live.mjpg")
            assert missing.status_code == 404, missing.text
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        disconnect()
        run.send_signal(signal.SIGINT)
        run.wait(timeout=120)
        store.close()
    assert run.returncode == 0, log.read_text()[-5000:]
