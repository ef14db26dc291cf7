"""A two-node Ray cluster on this machine, PostgreSQL and the pedestrians clip: cameras land on
both nodes, come back within 10 s of a ``kill -9`` of their worker or the loss of their node, and
the events stored equal those of the cameras nobody disturbed — none lost, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from safecity.store import open_store
from safecity.store.cluster import read_status

pytestmark = pytest.mark.slow

#: The issue's bound: a lost camera analyses again elsewhere within this many seconds.
RECOVERY_S = 10.0
CAMERAS = ["gate-1", "gate-2", "gate-3", "gate-4"]


def write_config(
    folder: Path, url: str, clip: Path, cameras=CAMERAS, fps: float = 5, live: bool = False
) -> Path:
    """Files analysed as fast as they decode, or (``live``) looped at their own pace."""
    config = {
        "cameras": [
            {"name": n, "url": str(clip), "fps": fps, "loop": live, "live_pace": live}
            for n in cameras
        ],
        "store": {"url": url, "media_dir": str(folder / "media")},
        "outbox": {"dir": str(folder / "outbox"), "drain_on_stop_s": 60},
        # One worker per node holds every camera it is given: a moved camera joins a
        # process whose models are loaded.
        "cluster": {"cameras_per_worker": 4, "cpus_per_camera": 0.5, "check_interval_s": 0.5},
        "audit": {
            "key_path": str(folder / "audit" / "key.pem"),
            "heads_path": str(folder / "audit" / "heads.jsonl"),
        },
    }
    path = folder / "city.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_run(config: Path, address: str, folder: Path) -> tuple[subprocess.Popen, Path]:
    """``safecity run --cluster ADDRESS`` in its own process, its output in run.log."""
    env = {**os.environ, "SAFECITY_HOME": str(folder / "home")}
    log = folder / "run.log"
    command = [sys.executable, "-m", "safecity", "-c", str(config), "run", "--cluster", address]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT), log


def status(store) -> dict:
    documents = read_status(store)
    return documents[0] if documents else {}


def wait_for(store, predicate, timeout: float, what: str) -> tuple[dict, float]:
    """Poll the coordinator's document until ``predicate`` holds; returns it and the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        document = status(store)
        if document and predicate(document):
            return document, time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s; last status {json.dumps(status(store))}")


def analysing(document: dict, cameras, after: dict[str, int] | None = None) -> bool:
    """Every camera in ``cameras`` is running and has analysed frames (more than ``after``)."""
    by_name = {c["camera"]: c for c in document["cameras"]}
    for name in cameras:
        camera = by_name.get(name, {})
        if camera.get("state") != "running":
            return False
        if camera.get("frames_analysed", 0) <= (after or {}).get(name, 0):
            return False
    return True


def hosted_by(document: dict, cameras, pid: int) -> bool:
    """Whether any of ``cameras`` is reported by the worker process ``pid``."""
    pids = {w["worker"]: w.get("pid") for w in document["workers"]}
    return any(
        pids.get(c.get("worker")) == pid for c in document["cameras"] if c["camera"] in cameras
    )


def test_a_revocation_empties_the_workers_of_both_nodes_within_2_s(
    two_nodes, pg_url, tmp_path, data_dir
):
    from governance.governance_support import add_person, authorised_watchlist, unit

    from safecity.governance.authorisations import revoke
    from safecity.governance.clock import ManualClock

    cluster, _ = two_nodes
    clip = data_dir / "video" / "pedestrians-768x576.avi"
    cameras = ["gate-1", "gate-2"]
    config = write_config(tmp_path, pg_url, clip, cameras, fps=2, live=True)
    store = open_store(pg_url, tmp_path / "media")
    watchlist = authorised_watchlist(store, ManualClock(datetime.now(UTC)), "wanted")
    add_person(store, watchlist.id, "someone", [unit(1)])
    run, log = start_run(config, cluster.address, tmp_path)
    key = str(watchlist.id)
    try:
        # One camera on each node; each node's worker holds the watchlist's template.
        document, _ = wait_for(
            store,
            lambda d: (
                analysing(d, cameras)
                and len(d["workers"]) == 2
                and all(w.get("templates", {}).get(key) == 1 for w in d["workers"])
            ),
            120,
            "both workers holding the watchlist",
        )
        assert len({w["node"] for w in document["workers"]}) == 2
        revoke(store, watchlist.authorisation_id, by="carol", reason="the court withdrew it")
        revoked_at = time.monotonic()
        wait_for(
            store,
            lambda d: (
                d["at"] > document["at"] and all(not w.get("templates") for w in d["workers"])
            ),
            10,
            "both workers dropping the revoked watchlist",
        )
        delay = time.monotonic() - revoked_at
        print(f"revocation reached both nodes' workers (as the coordinator saw) in {delay:.2f} s")
        assert delay < 2.0
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=120)
    assert run.returncode == 0, log.read_text()[-5000:]
    store.close()


def test_cameras_survive_a_killed_worker_and_a_lost_node_and_rebalance_on_a_join(
    two_nodes, pg_url, tmp_path, data_dir
):
    cluster, second = two_nodes
    clip = data_dir / "video" / "pedestrians-768x576.avi"
    config = write_config(tmp_path, pg_url, clip)
    store = open_store(pg_url, tmp_path / "media")
    run, log = start_run(config, cluster.address, tmp_path)
    try:
        # Cameras land on both nodes and analyse.
        document, _ = wait_for(
            store, lambda d: analysing(d, CAMERAS), 120, "all four cameras analysing"
        )
        nodes = Counter(c["node"] for c in document["cameras"])
        assert len(nodes) == 2 and set(nodes.values()) == {2}, nodes

        # kill -9 the worker on the second node: its cameras analyse again within 10 s.
        victim = next(w for w in document["workers"] if w["node"] == second.node_id)
        moved = victim["cameras"]
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        # Back in the restarted process, or (if it was slow to answer) moved to another worker.
        wait_for(
            store,
            lambda d: analysing(d, moved) and not hosted_by(d, moved, victim["pid"]),
            60,
            "the killed worker's cameras analysing again",
        )
        worker_recovery = time.monotonic() - killed_at
        print(f"kill -9 of worker {victim['worker']}: cameras back in {worker_recovery:.1f} s")
        assert worker_recovery < RECOVERY_S

        # Lose the second node: its cameras move to the head node within 10 s.
        cluster.remove_node(second)
        lost_at = time.monotonic()
        document, _ = wait_for(
            store,
            lambda d: (
                all(c["node"] != second.node_id for c in d["cameras"] if c["camera"] in moved)
                and analysing(d, moved)
            ),
            60,
            "the lost node's cameras analysing on the head node",
        )
        node_recovery = time.monotonic() - lost_at
        print(f"node loss: cameras back in {node_recovery:.1f} s")
        assert node_recovery < RECOVERY_S

        # A node joins: it takes its share of the cameras still running.
        third = cluster.add_node(num_cpus=2)
        joined_at = time.monotonic()
        wait_for(
            store,
            lambda d: any(
                c["node"] == third.node_id
                and c.get("state") == "running"
                and c.get("frames_analysed", 0) > 0
                for c in d["cameras"]
            ),
            60,
            "the joining node analysing its share",
        )
        print(f"node join: analysing its share {time.monotonic() - joined_at:.1f} s after")

        run.wait(timeout=600)
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            run.wait(timeout=120)
    output = log.read_text()
    assert run.returncode == 0, output

    # Nothing lost, nothing twice: every camera stored the same tracks as every other.
    from sqlalchemy import select

    from safecity.store.schema import EventRecord

    with store.transaction() as session:
        rows = session.execute(
            select(
                EventRecord.camera,
                EventRecord.uuid,
                EventRecord.track_id,
                EventRecord.label,
                EventRecord.started_at,
            )
        ).all()
    assert len({r.uuid for r in rows}) == len(rows)
    per_camera = {
        name: sorted((r.track_id, r.label, r.started_at) for r in rows if r.camera == name)
        for name in CAMERAS
    }
    undisturbed = [name for name in CAMERAS if name not in moved]
    reference = per_camera[undisturbed[0]]
    assert len(reference) > 20
    for name in CAMERAS:
        assert per_camera[name] == reference, name
    assert not any((tmp_path / "outbox").rglob("*.json"))
    store.close()
