"""Live cameras against real RTSP servers (GStreamer's, tests/rtsp_server.py): the
decoder skipping frames, and a detect substream that pairs and then drops."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from clock_support import needs_real_timed_waits
from rtsp_support import RtspServer, gstreamer_missing

from safecity.config import CameraConfig, ReconnectConfig
from safecity.errors import SourceError
from safecity.video.source import ReconnectingSource, open_source
from safecity.video.substream import PairedFrames

pytestmark = [needs_real_timed_waits, pytest.mark.slow]
PEDESTRIANS = "video/pedestrians-768x576.avi"


@pytest.fixture
def servers(data_dir: Path, tmp_path: Path):
    missing = gstreamer_missing()
    if missing:
        pytest.skip(missing)
    small = tmp_path / "pedestrians-384x288.mp4"
    with av.open(str(data_dir / PEDESTRIANS)) as inp, av.open(str(small), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 384, 288, "yuv420p"
        for n, frame in enumerate(inp.decode(video=0)):
            if n >= 200:
                break
            out.mux(stream.encode(frame.reformat(width=384, height=288, format="yuv420p")))
        out.mux(stream.encode(None))
    started = []
    try:
        for clip in (data_dir / PEDESTRIANS, small):
            server = RtspServer(clip)
            server.start()
            started.append(server)
        yield started
    finally:
        for server in started:
            server.stop()


def test_keyframes_only_over_rtsp_keeps_live_times(servers) -> None:
    main, _ = servers
    # The server sends 10 fps with a keyframe every 10 frames: one frame a second.
    camera = CameraConfig(name="street", url=main.url, decode={"skip": "nonkey"})
    with open_source(camera) as source:
        frames = [f for _, f in zip(range(8), source, strict=False)]
        assert source.skip == "nonkey"
    # This server's keyframes arrive in two packets, each of which FFmpeg decodes into a
    # frame of the same pts (in every skip mode): one moment per distinct pts.
    pts = sorted({round(f.pts, 6) for f in frames})
    assert len(pts) >= 3
    gaps = np.diff(pts)
    assert np.all(np.abs(gaps - 1.0) < 0.3), gaps
    first = {}
    for f in frames:
        first.setdefault(round(f.pts, 6), f.index)
    assert np.all(np.diff(sorted(first.values())) >= 8)  # skipped frames still counted


def test_a_live_detect_stream_pairs_and_its_drop_is_a_camera_error(servers) -> None:
    main, detect = servers
    camera = CameraConfig(name="street", url=main.url, detect_url=detect.url, fps=5)
    reconnect = ReconnectConfig(initial_s=0.2, max_s=0.2, max_attempts=1)
    stop, detect_stop = threading.Event(), threading.Event()
    frames = PairedFrames.for_camera(
        ReconnectingSource(camera, reconnect, stop),
        ReconnectingSource(camera, reconnect, detect_stop, role="detect"),
        camera,
        detect_stop,
    )
    got: list = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for frame in frames:
                got.append(frame)
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while len(got) < 15 and time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    assert not errors, errors
    assert len(got) >= 15
    assert frames.paired >= 12, (frames.paired, frames.unpaired)
    twin = next(f for f in got if f.detect_image is not None)
    assert twin.image.shape == (576, 768, 3) and twin.detect_image.shape == (288, 384, 3)
    assert twin.detect_scale == (2.0, 2.0)
    detect.kill()
    reader.join(30)
    stop.set()
    assert not reader.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], SourceError)
    assert "camera 'street' detect stream gave up after 1 reconnect attempts" in str(errors[0])
