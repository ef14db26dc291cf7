"""The ``safecity`` command as an operator meets it: real processes, real files.

Bad input gets one clear line and a non-zero exit, and leaves no rows behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clock_support import needs_real_timed_waits
from sqlalchemy import create_engine, text

SAFECITY = [sys.executable, "-m", "safecity"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def safecity(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, SAFECITY_HOME=str(home / "data"), COLUMNS="60")
    return subprocess.run(
        [*SAFECITY, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=home
    )


def count(home: Path, table: str) -> int:
    db = home / "data" / "safecity.db"
    if not db.exists():
        return 0
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        tables = {r[0] for r in connection.execute(text("SELECT name FROM sqlite_master"))}
        if table not in tables:
            return 0
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


@pytest.mark.slow
def test_truncated_video_is_refused_and_stores_nothing(home, data_dir):
    video = home / "truncated.avi"
    data = (data_dir / "video/pedestrians-768x576.avi").read_bytes()
    video.write_bytes(data[: len(data) // 3])
    line = one_error_line(safecity(home, "analyze", str(video), "--fps", "5"))
    assert "truncated" in line or "corrupt" in line
    assert count(home, "events") == 0
    media = home / "data" / "media"
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_not_a_video_is_refused(home):
    bogus = home / "notes.mp4"
    bogus.write_text("this is not a video\n")
    line = one_error_line(safecity(home, "analyze", str(bogus)))
    assert "notes.mp4" in line


def test_unreachable_url_fails_fast(home, closed_port):
    started = time.monotonic()
    line = one_error_line(safecity(home, "analyze", f"rtsp://127.0.0.1:{closed_port}/stream"))
    assert time.monotonic() - started < 30
    assert "127.0.0.1" in line
    assert count(home, "events") == 0


OPERATOR, OPERATOR_PASSWORD = "otto", "an operator's own secret"


def _operator(home: Path) -> None:
    """A real account, its password its own: proposing an authorisation needs one."""
    from safecity.access.roles import Role
    from safecity.access.users import create_user, set_password
    from safecity.store import open_store

    store = open_store(f"sqlite:///{home / 'data' / 'safecity.db'}", home / "data" / "media")
    create_user(store, OPERATOR, OPERATOR_PASSWORD, Role.OPERATOR, by="setup", cameras=["*"])
    set_password(store, OPERATOR, OPERATOR_PASSWORD, by=OPERATOR)
    store.close()


def _watchlist(home: Path, *extra: str) -> subprocess.CompletedProcess:
    """``watchlist create`` proposing an authorisation as the operator, with their password."""
    _operator(home)
    return subprocess.run(
        [*SAFECITY, "--user", OPERATOR, "watchlist", "create", "wanted", "--legal-basis",
         "Test Act s.1", "--authority", "Test Court", "--reference", "TC-1", "--purpose",
         "search for a missing person", "--valid-from", "2026-01-01T00:00:00+00:00",
         "--valid-until", "2099-01-01T00:00:00+00:00", *extra, "--password-stdin"],
        input=OPERATOR_PASSWORD + "\n", capture_output=True, text=True, timeout=300, cwd=home,
        env=dict(os.environ, SAFECITY_HOME=str(home / "data"), COLUMNS="60"),
    )  # fmt: skip


def test_enrol_refuses_a_non_image_and_stores_nothing(home, data_dir):
    assert _watchlist(home).returncode == 0
    notes = home / "photo.jpg"
    notes.write_text("not an image")
    line = one_error_line(
        safecity(
            home,
            "enroll",
            "wanted",
            "--person",
            "X",
            str(data_dir / "images/obama.jpg"),
            str(notes),
        )
    )
    assert "photo.jpg" in line and "not an image" in line
    assert count(home, "persons") == 0 and count(home, "templates") == 0


def test_watchlist_needs_a_valid_window(home):
    line = one_error_line(_watchlist(home, "--valid-until", "2026-01-01"))
    assert "an authorisation must end after it starts" in line
    assert count(home, "watchlists") == 0 and count(home, "authorisations") == 0


def test_unreachable_database_is_one_line(home, closed_port):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/safecity"
    line = one_error_line(safecity(home, "--db", url, "events"))
    assert "cannot reach the database" in line


def test_bad_config_is_one_line(home):
    config = home / "bad.yaml"
    config.write_text("cameras:\n  - name: a\n    url: x.mp4\n    fpz: 3\n")
    line = one_error_line(safecity(home, "--config", str(config), "run"))
    assert "fpz" in line


@pytest.mark.slow
def test_analyze_then_list_events_as_json(home, data_dir):
    gif = data_dir / "video/seated-faces-480x270.gif"
    video = home / "lobby.mp4"
    done = safecity(
        home, "analyze", str(gif), "--camera", "lobby", "--annotated", str(video), "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["frames_in"] == 56
    # The woman on the right is tracked through the clip; the man leaning on the
    # left is mostly cut by the frame edge and may never become a track.
    assert report["events"], "the seated woman should give an event"
    assert report["annotated_video"] == str(video)
    # Nobody is enrolled: no face may be visible anywhere in the annotated video.
    import av

    from safecity.config import FacesConfig
    from safecity.vision.faces import FaceDetector

    detector = FaceDetector(FacesConfig(min_score=0.6, min_size=8))
    with av.open(str(video)) as container:
        visible = [
            i
            for i, frame in enumerate(container.decode(video=0))
            if detector.detect(frame.to_ndarray(format="bgr24"))
        ]
    assert visible == [], f"faces visible in frames {visible}"
    listed = safecity(home, "events", "--camera", "lobby", "--label", "person", "--json")
    rows = json.loads(listed.stdout)
    assert {r["id"] for r in rows} <= {e["id"] for e in report["events"]}
    assert rows and all(r["label"] == "person" and r["camera"] == "lobby" for r in rows)
    assert count(home, "events") == len(report["events"])


@pytest.mark.slow
@needs_real_timed_waits  # the reconnect backoff waits on the stop event
def test_fleet_keeps_going_while_a_camera_reconnects(tmp_path, data_dir, mjpeg_server):
    """Two cameras: a file and an MJPEG camera that hangs up every 15 frames.
    The dropped camera reconnects with backoff; the file camera is unaffected."""
    from safecity.config import SafecityConfig
    from safecity.pipeline import Stages
    from safecity.runtime.local import CameraFleet
    from safecity.store import open_store
    from safecity.store.sink import StoreSink

    server = mjpeg_server(frames_per_connection=15, interval_s=0.05)
    config = SafecityConfig.model_validate(
        {
            "cameras": [
                {"name": "lobby", "url": str(data_dir / "video/seated-faces-480x270.gif")},
                {"name": "street", "url": server.url, "timeout_s": 2},
            ],
            "reconnect": {"initial_s": 0.1, "max_s": 0.5},
        }
    )
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "media")
    fleet = CameraFleet(config, Stages.load(config), write=StoreSink(store).write_many)
    fleet.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        street, lobby = fleet.stats["street"], fleet.stats["lobby"]
        if street.reconnects >= 2 and lobby.state == "stopped" and street.frames_in > 30:
            break
        time.sleep(0.2)
    fleet.stop.set()
    fleet.join(timeout=20)
    assert not fleet.running
    lobby, street = fleet.stats["lobby"], fleet.stats["street"]
    assert lobby.frames_in == 56 and lobby.state == "stopped"
    assert street.reconnects >= 2
    assert street.frames_in > 30  # frames kept coming after each hang-up
    from safecity.store.queries import list_events

    assert list_events(store, camera="lobby")
    store.close()


def test_module_entry_point_exists():
    done = subprocess.run([*SAFECITY, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "analyze" in done.stdout


def test_usage_errors_are_short_and_exit_2(home):
    done = safecity(home, "events", "--limit", "0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--limit" in done.stderr
    done = safecity(home, "analyze", "x.mp4", "--camera", "bad name")
    line = one_error_line(done)
    assert "name" in line


def test_models_verify_fails_when_models_are_missing(home, tmp_path):
    env_models = tmp_path / "no-models"
    done = subprocess.run(
        [*SAFECITY, "models", "verify"],
        capture_output=True,
        text=True,
        env=dict(os.environ, SAFECITY_MODELS=str(env_models), COLUMNS="200"),
    )
    assert done.returncode == 1
    assert "safecity models install" in done.stderr


@pytest.mark.slow
def test_ctrl_c_on_a_file_stores_nothing(home, data_dir):
    import signal

    env = dict(os.environ, SAFECITY_HOME=str(home / "data"), COLUMNS="200")
    video = data_dir / "video/pedestrians-768x576.avi"
    proc = subprocess.Popen(
        [*SAFECITY, "analyze", str(video)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(6)  # models loaded, some frames analysed, far from the end (~30 s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = one_error_line(done)
    assert "nothing was stored" in line
    assert count(home, "events") == 0
