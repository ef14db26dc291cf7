"""Video sources on the real test media, truncated copies, and real local servers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest

from safecity.config import CameraConfig
from safecity.errors import SourceError
from safecity.video.source import open_source, probe, redact_url

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# name, frames, (height, width), nominal fps, pts of the last frame
MEDIA = [
    ("pedestrians-768x576.avi", 795, (576, 768), 10.0, 79.4),
    ("arcade-crowd-1080p.mp4", 105, (1080, 1920), 25.0, 4.16),
    ("seated-faces-480x270.gif", 56, (270, 480), 12.5, 4.58),
]


def camera(url: Path | str, **kw) -> CameraConfig:
    return CameraConfig(name="cam-1", url=str(url), **kw)


def read_all(url: Path | str, **kw) -> list:
    with open_source(camera(url, **kw), start_time=START) as source:
        frames = list(source)
        assert source.ended_cleanly
    return frames


def read_until_error(url: Path | str, **kw) -> tuple[list, SourceError, object]:
    """Frames yielded before the SourceError, the error, and the source."""
    source = open_source(camera(url, **kw), start_time=START)
    frames = []
    with pytest.raises(SourceError) as info:
        for frame in source:
            frames.append(frame)
    return frames, info.value, source


@pytest.mark.parametrize(("name", "count", "shape", "fps", "last_pts"), MEDIA)
def test_files_decode_every_frame_with_size_and_pts(
    data_dir, name, count, shape, fps, last_pts
) -> None:
    frames = read_all(data_dir / "video" / name)
    assert len(frames) == count
    assert [f.index for f in frames] == list(range(count))
    first = frames[0]
    assert first.image.shape == (*shape, 3) and first.image.dtype == np.uint8
    assert first.image.flags["C_CONTIGUOUS"]
    assert first.pts == 0.0
    assert frames[-1].pts == pytest.approx(last_pts, abs=1e-6)
    pts = np.array([f.pts for f in frames])
    assert np.all(np.diff(pts) > 0)
    # File times are the start time plus pts: reruns give the same times.
    assert frames[-1].time == START + timedelta(seconds=frames[-1].pts)
    assert probe(str(data_dir / "video" / name)).fps == pytest.approx(fps)


def test_frames_are_bgr(data_dir) -> None:
    # The van in the pedestrians video is white, the grass green: check channel order.
    image = read_all(data_dir / "video/pedestrians-768x576.avi", fps=0.1)[0].image
    grass = image[450:500, 200:300].reshape(-1, 3).mean(axis=0)
    assert grass[1] > grass[2] and grass[1] > grass[0]  # G dominates
    van = image[55:85, 660:700].reshape(-1, 3).mean(axis=0)
    assert van.min() > 180


def test_probe_reports_stream_parameters(data_dir) -> None:
    info = probe(str(data_dir / "video/arcade-crowd-1080p.mp4"))
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 1920, 1080, 105)
    assert info.duration_s == pytest.approx(4.21, abs=0.01)
    assert not info.live
    assert probe(str(data_dir / "video/pedestrians-768x576.avi")).codec == "msmpeg4"


def test_start_time_defaults_to_file_mtime(data_dir) -> None:
    path = data_dir / "video/pedestrians-768x576.avi"
    with open_source(camera(path)) as source:
        frame = next(source)
    assert frame.time == datetime.fromtimestamp(path.stat().st_mtime, UTC)


def test_fps_sampling_halves_the_frames(data_dir) -> None:
    frames = read_all(data_dir / "video/pedestrians-768x576.avi", fps=5)
    assert len(frames) == 398  # frames 0, 2, …, 794 of 795
    assert [f.index for f in frames[:4]] == [0, 2, 4, 6]
    assert np.allclose(np.diff([f.pts for f in frames]), 0.2)

    frames = read_all(data_dir / "video/arcade-crowd-1080p.mp4", fps=10)
    pts = np.array([f.pts for f in frames])
    # 25 fps down to 10: never two kept frames closer than one 10 fps slot allows.
    assert 40 <= len(frames) <= 43
    assert np.diff(pts).min() >= 0.08 - 1e-9


def test_sampling_skips_conversion(data_dir) -> None:
    url = data_dir / "video/arcade-crowd-1080p.mp4"
    with open_source(camera(url, fps=5, decode={"skip": "none"})) as source:
        frames = list(source)
    assert source.frames_decoded == 105
    assert source.frames_yielded == len(frames) == 21


def test_keyframes_only_mode(data_dir) -> None:
    frames = read_all(data_dir / "video/pedestrians-768x576.avi", keyframes_only=True)
    # The AVI has a keyframe every 250 frames.
    assert [round(f.pts, 3) for f in frames] == [0.0, 25.0, 50.0, 75.0]


def test_loop_replays_a_file_with_pts_running_on(data_dir) -> None:
    with open_source(camera(data_dir / "video/seated-faces-480x270.gif", loop=True)) as source:
        frames = [f for _, f in zip(range(130), source, strict=False)]
    assert len(frames) == 130  # more than two passes of 56 frames
    assert [f.index for f in frames] == list(range(130))
    assert np.all(np.diff([f.pts for f in frames]) > 0)
    assert frames[56].pts == pytest.approx(4.58 + 0.08, abs=1e-6)


# -- broken files --------------------------------------------------------------------
def remux(src: Path, dst: Path, **output: object) -> None:
    """Copy the video packets of ``src`` into a new container (no re-encoding)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", **output) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is not None:  # the demuxer's final flush packet
                packet.stream = stream
                out.mux(packet)


def truncated_copy(src: Path, dst: Path, size: int) -> Path:
    dst.write_bytes(src.read_bytes()[:size])
    return dst


def test_truncated_avi_yields_what_decodes_then_raises(data_dir, tmp_path) -> None:
    src = data_dir / "video/pedestrians-768x576.avi"
    path = truncated_copy(src, tmp_path / "cut.avi", src.stat().st_size // 2)
    frames, error, source = read_until_error(path)
    assert 300 < len(frames) < 500
    assert not source.ended_cleanly
    message = str(error)
    assert message.startswith(f"camera 'cam-1' stopped after frame {frames[-1].index}:")
    assert "truncated" in message and "Traceback" not in message


def test_avi_cut_exactly_between_frames_is_caught_by_the_frame_count(data_dir, tmp_path) -> None:
    # Cut where packet 400 starts: the demuxer sees no partial packet, only an early end.
    src = data_dir / "video/pedestrians-768x576.avi"
    with av.open(str(src)) as container:
        packets = [p for _, p in zip(range(401), container.demux(video=0), strict=False)]
    path = truncated_copy(src, tmp_path / "cut.avi", packets[400].pos)
    frames, error, _ = read_until_error(path)
    assert len(frames) == 400
    assert "400 of the 795 frames" in str(error)


def test_truncated_faststart_mp4_raises_after_some_frames(data_dir, tmp_path) -> None:
    # The test MP4 keeps its index at the end, so first move it to the front
    # (as streaming encoders do), then cut the copy in half.
    whole = tmp_path / "faststart.mp4"
    remux(data_dir / "video/arcade-crowd-1080p.mp4", whole, options={"movflags": "faststart"})
    assert len(read_all(whole)) == 105
    path = truncated_copy(whole, tmp_path / "cut.mp4", whole.stat().st_size // 2)
    frames, error, _ = read_until_error(path)
    assert 10 < len(frames) < 100
    assert "truncated or corrupt" in str(error)


def test_mp4_without_its_index_cannot_be_opened(data_dir, tmp_path) -> None:
    src = data_dir / "video/arcade-crowd-1080p.mp4"
    path = truncated_copy(src, tmp_path / "cut.mp4", src.stat().st_size // 2)
    with pytest.raises(SourceError, match=r"^cannot open camera 'cam-1': the file is not a video"):
        open_source(camera(path))


def test_truncated_gif_is_reported(data_dir, tmp_path) -> None:
    src = data_dir / "video/seated-faces-480x270.gif"
    path = truncated_copy(src, tmp_path / "cut.gif", src.stat().st_size // 2)
    frames, error, _ = read_until_error(path)
    assert 10 < len(frames) < 56
    assert "GIF file is truncated" in str(error)


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda d, t: t / "missing.mp4", "file not found"),
        (lambda d, t: t, "is a directory"),
        (lambda d, t: _write(t / "notes.mp4", b"just some text\n" * 20), "not a video"),
        (lambda d, t: _write(t / "empty.avi", b""), "not a video"),
        (
            lambda d, t: _write(t / "photo.mp4", (d / "images/obama.jpg").read_bytes()),
            "still image, not a video",
        ),
    ],
    ids=["missing", "directory", "text", "empty", "jpeg-renamed"],
)
def test_things_that_are_not_videos(data_dir, tmp_path, make, phrase) -> None:
    with pytest.raises(SourceError) as info:
        open_source(camera(make(data_dir, tmp_path)))
    message = str(info.value)
    assert message.startswith("cannot open camera 'cam-1': ")
    assert phrase in message
    assert "\n" not in message


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- network -------------------------------------------------------------------------
def test_refused_rtsp_fails_at_once(closed_port) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match="connection was refused"):
        open_source(camera(f"rtsp://127.0.0.1:{closed_port}/stream"))
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_times_out_within_the_timeout(silent_port, scheme) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_source(camera(f"{scheme}://127.0.0.1:{silent_port}/stream", timeout_s=1.0))
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 4
    assert str(info.value).startswith("cannot open camera 'cam-1':")


def test_passwords_never_reach_messages(closed_port) -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{closed_port}/live"
    with pytest.raises(SourceError) as info:
        open_source(camera(url))
    assert "hunter2" not in str(info.value)
    assert "admin:***@127.0.0.1" in str(info.value)
    assert redact_url("http://cam.local/x.mjpg") == "http://cam.local/x.mjpg"


def test_mjpeg_over_http_is_live_and_timed_on_arrival(mjpeg_server) -> None:
    server = mjpeg_server(frames_per_connection=8, interval_s=0.05)
    before = datetime.now(UTC)
    source = open_source(camera(server.url))
    assert source.live and source.info.codec == "mjpeg"
    frames = []
    with pytest.raises(SourceError, match=r"^camera 'cam-1' stopped after frame 7: "):
        for frame in source:
            frames.append(frame)
    assert len(frames) == 8
    assert frames[0].image.shape == (576, 768, 3)
    # MJPEG carries no timestamps: pts follow arrival, about 0.05 s apart, not 1/25 s.
    gaps = np.diff([f.pts for f in frames])
    assert gaps.mean() == pytest.approx(0.05, abs=0.02)
    assert before <= frames[0].time <= datetime.now(UTC)


def test_hls_and_progressive_http(data_dir, tmp_path, file_server) -> None:
    hls = tmp_path / "hls"
    hls.mkdir()
    remux(
        data_dir / "video/arcade-crowd-1080p.mp4",
        hls / "index.m3u8",
        format="hls",
        options={"hls_time": "1"},
    )
    frames = read_all(file_server(hls) + "/index.m3u8")
    assert len(frames) == 105 and frames[-1].pts == pytest.approx(4.16, abs=1e-6)

    url = file_server(data_dir / "video") + "/pedestrians-768x576.avi"
    assert not probe(url).live  # a file over HTTP has a duration: timed like a file
    assert len(read_all(url, fps=1)) == 80
