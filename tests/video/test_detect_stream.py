"""A detect substream beside the main stream (``detect_url``), on real media.

The substream is made here from the arcade clip as a camera would send it: the same
moments, a quarter of the size (480x270), re-encoded as H.264 with B frames.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from safecity.config import CameraConfig, SafecityConfig
from safecity.errors import SourceError
from safecity.runtime.bench_pipeline import watching_nobody
from safecity.video.source import open_source
from safecity.video.substream import PairedFrames
from safecity.vision.nms import box_iou

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ARCADE = "video/arcade-crowd-1080p.mp4"
SUB_SIZE = (480, 270)


def make_substream(src: Path, dst: Path, size: tuple[int, int], frames: int | None = None) -> Path:
    """``src`` shrunk to ``size``, H.264 with B frames, every frame at its own pts."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=vin.average_rate, options={"bf": "3"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = vin.time_base
        for n, frame in enumerate(inp.decode(vin)):
            if frames is not None and n >= frames:
                break
            small = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            small.pts, small.time_base = frame.pts, frame.time_base
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return dst


@pytest.fixture(scope="module")
def substream(data_dir: Path, tmp_path_factory) -> Path:
    return make_substream(
        data_dir / ARCADE, tmp_path_factory.mktemp("sub") / "arcade-sub.mp4", SUB_SIZE
    )


def camera(main: Path, detect: Path | str, **kw) -> CameraConfig:
    return CameraConfig(name="arcade", url=str(main), detect_url=str(detect), fps=5, **kw)


def paired(cam: CameraConfig) -> tuple[list, PairedFrames]:
    main = open_source(cam, start_time=START)
    frames = PairedFrames.for_camera(main, open_source(cam, start_time=START, role="detect"), cam)
    return list(frames), frames


def shrink(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, SUB_SIZE, interpolation=cv2.INTER_AREA).astype(np.int16)


def test_each_main_frame_gets_the_substream_frame_of_its_moment(
    data_dir: Path, substream: Path
) -> None:
    frames, pairing = paired(camera(data_dir / ARCADE, substream))
    assert len(frames) == 21 and pairing.paired == 21 and pairing.unpaired == 0
    for frame in frames:
        assert frame.image.shape == (1080, 1920, 3)
        assert frame.detect_image.shape == (270, 480, 3)
        assert frame.detect_scale == (4.0, 4.0)
    # The twin shows the same moment: closer to the main frame shrunk than the
    # substream frame shown a fifth of a second earlier or later is.
    same = [np.abs(shrink(f.image) - f.detect_image).mean() for f in frames]
    off = [
        np.abs(shrink(a.image) - b.detect_image).mean()
        for a, b in zip(frames[:-1], frames[1:], strict=True)
    ]
    # (Arcade clip: 3.8-4.3 grey levels apart, re-encoding noise; 12-29 a frame off.)
    assert max(same) < 6.0, same
    assert min(off) > 2 * max(same), (same, off)


def test_a_missing_detect_stream_is_a_camera_error(data_dir: Path, tmp_path: Path) -> None:
    cam = camera(data_dir / ARCADE, tmp_path / "nothing.mp4")
    with pytest.raises(SourceError, match=r"camera 'arcade' detect stream: file not found"):
        open_source(cam, role="detect")


def test_a_truncated_detect_stream_is_a_camera_error(
    data_dir: Path, substream: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.mp4"
    data = substream.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"camera 'arcade' detect stream"):
        paired(camera(data_dir / ARCADE, cut))


def test_a_detect_stream_shorter_than_the_main_one_is_a_camera_error(
    data_dir: Path, tmp_path: Path
) -> None:
    short = make_substream(data_dir / ARCADE, tmp_path / "short.mp4", SUB_SIZE, frames=50)
    with pytest.raises(SourceError, match=r"detect stream ended before the main stream"):
        paired(camera(data_dir / ARCADE, short))


@pytest.mark.slow
def test_the_substream_finds_the_same_people(data_dir: Path, substream: Path) -> None:
    from safecity.vision.detector import ObjectDetector

    detector = ObjectDetector(SafecityConfig().detector)
    frames, _ = paired(camera(data_dir / ARCADE, substream))
    found = matched = 0
    for frame in frames:
        full = detector.detect(frame.image)
        sub = detector.detect(frame.detect_image).scaled(*frame.detect_scale)
        people = full.boxes[(full.class_ids == 0) & (full.scores >= 0.5)]
        others = sub.boxes[sub.class_ids == 0]
        found += len(people)
        if len(people) and len(others):
            matched += int((box_iou(people, others).max(axis=1) >= 0.5).sum())
    assert found >= 3 * len(frames)  # a crowd: several people in every frame
    assert matched >= 0.9 * found, f"{matched} of {found} people found on the substream"


@pytest.mark.slow
def test_faces_and_snapshots_come_from_the_main_stream(data_dir: Path, substream: Path) -> None:
    from safecity.pipeline import CameraPipeline, Stages

    config = SafecityConfig()
    stages = Stages.load(config)
    cam = camera(data_dir / ARCADE, substream)
    frames, _ = paired(cam)
    # A watched camera: its people's faces are searched.
    pipeline = CameraPipeline("arcade", config, stages, fps=5, matcher_for=watching_nobody)
    faces, events = [], []
    for frame in frames:
        result = pipeline.process(frame)
        faces += [(frame, v.face) for v in result.tracks if v.face is not None]
        events += result.ended
    events += pipeline.finish()
    assert len(faces) >= 10
    # Faces are found in the 1920x1080 picture: boxes in its pixels, most beyond the
    # substream's 480x270, and sharp enough to embed.
    assert max(float(f.box[2]) for _, f in faces) > 480
    assert max(f.width for _, f in faces) >= 40
    assert events
    for event in events:
        snap = event.snapshot
        x1, y1, x2, y2 = (int(v) for v in snap.frame_box)
        assert snap.image.shape[:2] == (y2 - y1, x2 - x1)
    # Snapshots are full-resolution crops: the tallest is taller than the whole substream.
    assert max(e.snapshot.image.shape[0] for e in events) > SUB_SIZE[1]
