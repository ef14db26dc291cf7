"""ReconnectingSource against a real local MJPEG server that drops and refuses."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from clock_support import needs_real_timed_waits

from safecity.config import CameraConfig, ReconnectConfig
from safecity.errors import SourceError
from safecity.video.source import ReconnectingSource


def camera(url: str) -> CameraConfig:
    return CameraConfig(name="gate", url=url, timeout_s=2.0)


class RecordingWait:
    """The backoff sleep, recorded; it really waits (briefly) on the stop event."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.delays: list[float] = []

    def __call__(self, delay: float) -> bool:
        self.delays.append(delay)
        return self.stop.wait(delay)


@needs_real_timed_waits
def test_reopens_a_dropping_stream_and_frames_run_on(mjpeg_server) -> None:
    # Each connection gives 10 frames then hangs up; the 2nd and 3rd reconnects find
    # the camera busy (503), so the backoff has to grow before it comes back.
    server = mjpeg_server(frames_per_connection=10, interval_s=0.01)
    server.refuse = {2, 3}
    stop = threading.Event()
    wait = RecordingWait(stop)
    calls: list[tuple[int, str]] = []
    source = ReconnectingSource(
        camera(server.url),
        ReconnectConfig(initial_s=0.05, max_s=0.15, max_attempts=5),
        stop,
        on_reconnect=lambda attempt, error: calls.append((attempt, error)),
        wait=wait,
    )
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == 35:
            break
    # 35 frames need four connections of 10: three drops, two refusals.
    assert server.requests == 6
    assert source.sessions == 4
    assert source.reconnects == 5
    assert wait.delays == pytest.approx([0.05, 0.1, 0.15, 0.05, 0.05])
    assert [a for a, _ in calls] == [1, 2, 3, 1, 1]
    assert "stopped after frame 9" in calls[0][1]
    assert "server answered" in calls[1][1] and "5XX" in calls[1][1]
    # One continuous stream for the stages downstream.
    assert [f.index for f in frames] == list(range(35))
    pts = np.array([f.pts for f in frames])
    assert np.all(np.diff(pts) > 0)
    # The outage (about 0.3 s of backoff) shows in pts.
    assert pts[10] - pts[9] >= 0.3
    assert all(f.camera == "gate" for f in frames)
    assert frames[20].image.shape == (576, 768, 3)


@needs_real_timed_waits
def test_gives_up_after_max_attempts(closed_port) -> None:
    stop = threading.Event()
    wait = RecordingWait(stop)
    source = ReconnectingSource(
        camera(f"rtsp://127.0.0.1:{closed_port}/live"),
        ReconnectConfig(initial_s=0.01, max_s=0.03, max_attempts=3),
        stop,
        wait=wait,
    )
    with pytest.raises(SourceError) as info:
        list(source)
    assert str(info.value).startswith("camera 'gate' gave up after 3 reconnect attempts: ")
    assert "connection was refused" in str(info.value)
    assert wait.delays == pytest.approx([0.01, 0.02, 0.03])
    assert source.reconnects == 3 and source.sessions == 0


@needs_real_timed_waits
def test_stop_interrupts_the_backoff(closed_port) -> None:
    stop = threading.Event()
    source = ReconnectingSource(
        camera(f"http://127.0.0.1:{closed_port}/x.mjpg"),
        ReconnectConfig(initial_s=30, max_s=60),
        stop,
    )
    frames = []
    thread = threading.Thread(target=lambda: frames.extend(source))
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert frames == [] and source.reconnects == 0


def test_files_are_passed_through_not_retried(data_dir, tmp_path) -> None:
    stop = threading.Event()
    wait = RecordingWait(stop)
    config = ReconnectConfig(initial_s=0.01)
    missing = ReconnectingSource(camera(str(tmp_path / "none.avi")), config, stop, wait=wait)
    with pytest.raises(SourceError, match="file not found"):
        list(missing)
    gif = str(data_dir / "video/seated-faces-480x270.gif")
    frames = list(ReconnectingSource(camera(gif), config, stop, wait=wait))
    assert len(frames) == 56
    assert wait.delays == []
