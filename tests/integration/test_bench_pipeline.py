"""``safecity bench pipeline`` for real: live-paced cameras, real models, a scratch store.

Short runs (a few cameras at 2 fps for seconds) on a shared machine: the
assertions are about figures that make sense (a rate near the target, positive
lags under a second, CPU and memory reported), not about speed. First, the two
pieces the figures come from: a camera's summary and the hold rule.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from clock_support import needs_real_timed_waits
from test_cli import one_error_line, safecity

from safecity.events import Event, Snapshot
from safecity.pipeline import FrameResult
from safecity.runtime.bench_pipeline import judge
from safecity.runtime.local import CameraStats
from safecity.vision.types import Frame


def live(test):
    """The runs below load real models and pace cameras on the wall clock."""
    return pytest.mark.slow(needs_real_timed_waits(test))


CLIPS = ["pedestrians-768x576.avi", "arcade-crowd-1080p.mp4"]


@pytest.fixture
def home(tmp_path):
    return tmp_path


def bench(home, *args: str) -> dict:
    done = safecity(home, "bench", "pipeline", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _result(time_: datetime, analysed: bool = True) -> FrameResult:
    frame = Frame("gate", 0, 0.0, time_, np.zeros((4, 4, 3), np.uint8))
    return FrameResult(frame, analysed, [], [], {"detector": 12.0})


def _event(ended_at: datetime) -> Event:
    box = np.zeros(4, np.float32)
    snapshot = Snapshot(
        np.zeros((4, 4, 3), np.uint8), box, box, np.zeros((0, 4), np.float32), 0, ended_at
    )
    return Event("gate", 1, "person", ended_at, ended_at, 0.9, 3, snapshot)


def test_a_summary_covers_the_window_since_its_restart_and_is_json_ready():
    stats = CameraStats("gate")
    now = datetime.now(UTC)
    stats.record(_result(now - timedelta(seconds=5)))  # warm-up: forgotten below
    stats.restart_window()
    for lag in (0.1, 0.2, 0.3, 0.4):
        stats.record(_result(now - timedelta(seconds=lag), analysed=lag < 0.35))
    stats.record_stored([_event(now - timedelta(seconds=2))], now)
    stats.events, stats.dropped = 1, 7
    summary = json.loads(json.dumps(stats.summary()))
    assert summary["frames_in"] == 5 and summary["frames_analysed"] == 4  # counters run on
    assert summary["dropped"] == 7 and summary["events"] == 1
    assert 0.2 <= summary["lag_p50_s"] < 0.3 < summary["lag_p95_s"] < 0.5  # not the 5 s one
    assert summary["event_lag_p50_s"] == pytest.approx(2.0)
    assert summary["analysed_fps"] > 4  # 4 frames in a few milliseconds
    assert stats.lag_s == pytest.approx(0.4, abs=0.05)  # the last frame's, as health reports
    stats.window_s = 0.05
    time.sleep(0.1)
    empty = stats.summary()  # nothing within the window: no lags, not zero
    assert empty["lag_p50_s"] is None and empty["event_lag_p95_s"] is None
    assert empty["analysed_fps"] == 0


def test_n_holds_only_when_every_camera_keeps_up():
    def camera(lag: float | None, fps: float, state: str = "running") -> dict:
        return {"camera": "c", "state": state, "lag_p95_s": lag, "analysed_fps": fps}

    assert judge([camera(0.3, 5.0), camera(0.9, 4.6)], 5.0)["held"] is True
    assert judge([camera(0.3, 5.0), camera(1.2, 5.0)], 5.0) == {
        "held": False,
        "worst_lag_p95_s": 1.2,
        "min_analysed_fps": 5.0,
    }
    assert judge([camera(0.3, 5.0), camera(0.3, 4.4)], 5.0)["held"] is False  # < 90 % of F
    assert judge([camera(None, 0.0)], 5.0)["held"] is False  # never analysed a frame
    assert judge([camera(0.3, 5.0, state="failed")], 5.0)["held"] is False


@pytest.mark.parametrize("clip", CLIPS)
@live
def test_two_cameras_at_two_fps_give_figures_per_camera(home, data_dir, clip):
    source = data_dir / "video" / clip
    result = bench(home, "--source", str(source), "--cameras", "2", "--fps", "2", "--seconds", "5")
    assert result["source"] == str(source) and result["fps_target"] == 2
    cameras = result["camera_stats"]
    assert [c["camera"] for c in cameras] == ["cam-1", "cam-2"]
    for c in cameras:
        assert c["state"] == "running" and not c["last_error"]
        assert 1.6 <= c["analysed_fps"] <= 2.3  # the clip's pace, sampled at 2 fps
        assert 0 < c["lag_p50_s"] <= c["lag_p95_s"] < 1.0
        assert c["frames_in"] >= 10 and c["frames_analysed"] <= c["frames_in"]
        assert c["dropped"] >= 0 and c["reconnects"] == 0
        if c["event_lag_p50_s"] is not None:  # events stored after their last frame
            assert 0 < c["event_lag_p50_s"] <= c["event_lag_p95_s"]
    # Whether two cameras hold on a loaded CI machine is a figure, not a property
    # (one arcade camera analysed 1.6-1.8 fps there, under the 90 % rule): the verdict
    # must follow the hold rule on the cameras reported.
    assert result["held"] is judge(cameras, 2.0)["held"]
    assert result["worst_lag_p95_s"] == max(c["lag_p95_s"] for c in cameras)
    [worker] = result["workers"]
    assert worker["cameras"] == ["cam-1", "cam-2"]
    assert 0 < worker["cpu_cores"] <= 2.5 and worker["wall_s"] >= 5
    assert 100 < worker["rss_mb"] <= worker["peak_rss_mb"]  # models loaded: 100s of MB


@live
def test_overloaded_cameras_drop_frames_and_do_not_hold(home, data_dir):
    """Three cameras of the 1080p clip at its full 25 fps are more than 2 cores keep up
    with (one camera alone nearly does since the int8 detector: 23.7 fps): frames are
    dropped, not queued, so the lag stays bounded while the rate falls."""
    source = data_dir / "video" / "arcade-crowd-1080p.mp4"
    result = bench(home, "--source", str(source), "--cameras", "3", "--fps", "25", "--seconds", "4")
    cameras = result["camera_stats"]
    assert sum(c["dropped"] for c in cameras) > 0 and result["held"] is False
    assert min(c["analysed_fps"] for c in cameras) < 0.9 * 25
    # dropped, not queued: a queue would be seconds behind by now
    assert all(c["lag_p95_s"] < 2.0 for c in cameras)


@live
def test_find_max_on_a_tiny_budget_reports_the_largest_n(home, data_dir):
    result = bench(
        home,
        *("--find-max", "--fps", "2", "--seconds", "2", "--warmup", "1", "--max-cameras", "2"),
    )
    assert [step["cameras"] for step in result["steps"]] == [1, 2]
    assert result["largest"] >= 1
    held = [step["cameras"] for step in result["steps"] if step["held"]]
    assert result["largest"] == max(held)
    for step in result["steps"]:
        assert len(step["camera_stats"]) == step["cameras"] and step["workers"]


@live
def test_find_max_prints_a_table_and_the_largest_n(home, data_dir):
    done = safecity(
        home,
        *("bench", "pipeline", "--find-max", "--fps", "2", "--seconds", "2", "--warmup", "0"),
        "--max-cameras",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert "largest N at 2 fps" in done.stdout and "cores" in done.stdout
    assert "1 camera(s):" in done.stderr  # progress, one line per N tried


@pytest.mark.parametrize("damage", ["not a video", "truncated", "missing"])
@live
def test_an_unusable_source_is_one_error_line(home, data_dir, damage):
    video = home / "broken.avi"
    if damage == "not a video":
        video.write_text("hello")
    elif damage == "truncated":
        data = (data_dir / "video/pedestrians-768x576.avi").read_bytes()
        video.write_bytes(data[: len(data) // 3])
    done = safecity(home, "bench", "pipeline", "--source", str(video), "--seconds", "2")
    line = one_error_line(done)
    assert f"cannot use {video} as a bench source" in line
    assert done.stdout == ""


@live
def test_watched_cameras_have_their_faces_embedded_and_unwatched_do_not(data_dir, monkeypatch):
    """``--watched``: the cost of a camera a watchlist covers (faces searched in every
    head and embedded); without it, a camera no authorisation covers (none embedded)."""
    import safecity.pipeline
    from safecity.config import SafecityConfig
    from safecity.runtime.bench_pipeline import bench_pipeline

    embedded = []
    original = safecity.pipeline.embed_faces

    def counting(embedder, image, faces):
        embedded.append(len(faces))
        return original(embedder, image, faces)

    monkeypatch.setattr(safecity.pipeline, "embed_faces", counting)
    clip = data_dir / "video" / "seated-faces-480x270.gif"
    config = SafecityConfig()
    counts = {}
    for watched in (False, True):
        embedded.clear()
        result = bench_pipeline(config, clip, 1, 5.0, 2.0, warmup_s=1.0, watched=watched)
        assert result["watched"] is watched
        counts[watched] = sum(embedded)
    assert counts == {False: 0, True: counts[True]} and counts[True] > 0
