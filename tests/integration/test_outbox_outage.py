"""A PostgreSQL outage during ``safecity run`` loses no event (issue 10, "nothing finished
is lost").

Two runs of the pedestrians clip at 5 fps, each on its own fresh database: one
undisturbed, one with the PostgreSQL server stopped for 60 s shortly after its first
event was stored. The second must store exactly the events of the first, each once.
This stops the real server (``pg_ctlcluster``), so it is slow and restarts the server
whatever happens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clock_support import needs_real_timed_waits
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from safecity.store import StoreError
from safecity.store.testing import scratch_postgres_schema

SAFECITY = [sys.executable, "-m", "safecity"]


def _server() -> tuple[list[str], str]:
    """``pg_ctlcluster`` for the server the test database is on, and its port.

    The server of ``SAFECITY_TEST_POSTGRES`` (default 127.0.0.1:5432), found by
    its port in ``pg_lsclusters``; Debian's 15/main when that cannot tell.
    """
    from sqlalchemy.engine import make_url

    from safecity.store.testing import postgres_test_url

    port = str(make_url(postgres_test_url()).port or 5432)
    clusters = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True)
    for line in clusters.stdout.splitlines():
        version, name, listens = (line.split() + ["", "", ""])[:3]
        if listens == port:
            return ["pg_ctlcluster", "--skip-systemctl-redirect", version, name], port
    return ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"], port


CLUSTER, PORT = _server()
OUTAGE_S = 60.0


def _config(folder: Path, url: str, video: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "safecity.yaml"
    config.write_text(
        "cameras:\n"
        f"  - {{name: campus, url: '{video}', fps: 5}}\n"
        f"store: {{url: '{url}', media_dir: '{folder / 'media'}'}}\n"
        # Long enough for the run to wait for the server to come back after the clip ends.
        f"outbox: {{dir: '{folder / 'outbox'}', drain_on_stop_s: {OUTAGE_S * 3}}}\n"
        # Ray's workers do not inherit the run's SAFECITY_HOME: without these they would
        # sign audit heads into the real data home of whoever runs the tests.
        f"audit: {{key_path: '{folder / 'audit' / 'key.pem'}', "
        f"heads_path: '{folder / 'audit' / 'heads.jsonl'}'}}\n"
    )
    return config


def _start(folder: Path, config: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, SAFECITY_HOME=str(folder / "data"), COLUMNS="200")
    return subprocess.Popen(
        [*SAFECITY, "--config", str(config), "run", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=folder,
    )


def _events(url: str) -> list[tuple]:
    """(camera, track, label, started_at, uuid) of every stored event; [] when unreachable."""
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT camera, track_id, label, started_at, uuid FROM events "
                    "ORDER BY camera, track_id, started_at"
                )
            )
            return [tuple(row) for row in rows]
    except Exception:
        return []
    finally:
        engine.dispose()


def _cluster(action: str) -> None:
    subprocess.run([*CLUSTER, action], check=True, capture_output=True, timeout=60)


def _wait_ready(timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", PORT, "-q"])
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError("PostgreSQL did not come back")


@pytest.fixture(scope="module")
def postgres() -> None:
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("needs pg_ctlcluster and root to stop and start the PostgreSQL server")
    try:
        with scratch_postgres_schema():
            pass
    except StoreError as error:
        pytest.skip(f"PostgreSQL tests skipped: {error}")


@pytest.fixture(scope="module")
def undisturbed(postgres, tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """The events of an undisturbed ``safecity run`` of the clip, and the seconds it took."""
    video = data_dir / "video/pedestrians-768x576.avi"
    folder = tmp_path_factory.mktemp("undisturbed")
    began = time.monotonic()
    with scratch_postgres_schema() as url:
        run = _start(folder, _config(folder, url, video))
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        baseline = _events(url)
    return baseline, time.monotonic() - began


@pytest.mark.slow
@needs_real_timed_waits
@pytest.mark.parametrize("where", ["one process", "two-node cluster"])
def test_a_postgres_outage_during_run_loses_no_event(
    undisturbed, where: str, tmp_path: Path, data_dir: Path, request: pytest.FixtureRequest
) -> None:
    """The outage run is ``safecity run``, or ``run --cluster`` on a head and a second node."""
    video = data_dir / "video/pedestrians-768x576.avi"
    extra: tuple[str, ...] = ()
    if where == "two-node cluster":
        cluster, _ = request.getfixturevalue("two_nodes")
        extra = ("--cluster", cluster.address)
    began = time.monotonic()
    baseline, first_run_s = undisturbed
    n = len(baseline)
    assert n > 10, "the clip should give a few dozen events"

    with scratch_postgres_schema() as url:
        folder = tmp_path / "two"
        run = _start(folder, _config(folder, url, video), *extra)
        stopped = False
        try:
            # Shortly after the start: as soon as the run has stored its first event.
            deadline = time.monotonic() + 300
            while not _events(url):
                assert run.poll() is None, run.communicate()[1]
                assert time.monotonic() < deadline, "no event stored in 300 s"
                time.sleep(0.2)
            before = len(_events(url))
            _cluster("stop")
            stopped = True
            down_at = time.monotonic()
            time.sleep(OUTAGE_S)
            assert run.poll() is None or run.returncode == 0, run.communicate()[1]
        finally:
            if stopped:
                _cluster("start")
                _wait_ready()
        back_at = time.monotonic()
        # The outbox stores what waited, then the run ends: note when the count last grew.
        last_change, seen = back_at, len(_events(url))
        while run.poll() is None:
            count = len(_events(url))
            if count != seen:
                seen, last_change = count, time.monotonic()
            assert time.monotonic() - back_at < OUTAGE_S * 4, "the outbox did not drain"
            time.sleep(0.2)
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        after = _events(url)
        if len(after) != seen:
            last_change = time.monotonic()

    took = time.monotonic() - began
    print(
        f"\nN={n}; outage run: {before} stored before the outage, {len(after)} in the end; "
        f"server down {back_at - down_at:.1f} s; last event stored "
        f"{max(0.0, last_change - back_at):.1f} s after it was back; undisturbed run "
        f"{first_run_s:.0f} s; test took {took:.0f} s\n"
        + "\n".join(line for line in err.splitlines() if "outbox" in line)
    )
    assert "Traceback" not in err
    assert "not stored" not in err.replace("events not stored yet", "")
    assert before < n, "the outage should have cut the run before its end"
    # Exactly the same events, each once, with as many distinct uuids.
    assert len(after) == n
    assert [row[:4] for row in after] == [row[:4] for row in baseline]
    assert len({row[4] for row in after}) == n
    if not extra:  # a cluster worker logs to Ray's files, not to the run's stderr
        assert "were stored late" in err
