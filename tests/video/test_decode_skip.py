"""Decoding only what is needed: frames the decoder skips (decode.skip) on real media.

The arcade clip is H.264 High profile with B frames (x264's B-pyramid: 78 B, 26 P,
1 I of 105), so skipping its non-reference frames is a real test, not a no-op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from safecity.config import CameraConfig, DecodeConfig
from safecity.video.source import choose_skip, open_source

ARCADE = "video/arcade-crowd-1080p.mp4"
PEDESTRIANS = "video/pedestrians-768x576.avi"


def read(path: Path, skip: str = "none", **kw) -> tuple[list, object]:
    camera = CameraConfig(name="cam-1", url=str(path), decode=DecodeConfig(skip=skip), **kw)
    with open_source(camera) as source:
        frames = list(source)
    assert source.ended_cleanly
    return frames, source


@pytest.fixture(scope="module")
def arcade_full(data_dir: Path) -> dict[int, object]:
    frames, _ = read(data_dir / ARCADE)
    return {f.index: f for f in frames}


def test_nonref_decodes_half_the_arcade_clip_and_keeps_what_it_yields_exact(
    data_dir: Path, arcade_full: dict
) -> None:
    frames, source = read(data_dir / ARCADE, skip="nonref", fps=5)
    assert source.skip == "nonref"
    # The B frames no other frame refers to (half of the clip) are never decoded.
    assert source.frames_decoded == 53
    assert len(frames) == source.frames_yielded == 21  # 4.2 s at 5 fps, as without skipping
    for frame in frames:
        # Index is the position in the stream, pts its true time, the picture the same
        # pixels as a full decode's: no reference frame was lost.
        full = arcade_full[frame.index]
        assert frame.pts == full.pts == pytest.approx(frame.index / 25)
        assert np.array_equal(frame.image, full.image)
    gaps = np.diff([f.pts for f in frames])
    assert gaps.min() >= 0.16 - 1e-9 and gaps.max() <= 0.24 + 1e-9  # 5 fps within a frame
    assert frames[-1].pts == pytest.approx(4.0, abs=0.08)


def test_auto_skips_where_the_stream_sends_three_times_the_analysis_rate(
    data_dir: Path,
) -> None:
    assert read(data_dir / ARCADE, skip="auto", fps=5)[1].skip == "nonref"  # 25 fps for 5
    assert read(data_dir / ARCADE, skip="auto", fps=10)[1].skip == "none"  # 25 < 3 x 10
    assert read(data_dir / ARCADE, skip="auto")[1].skip == "none"  # every frame wanted
    # MS-MPEG4 is not a codec auto skips in (10 fps for 2 would qualify by rate).
    assert read(data_dir / PEDESTRIANS, skip="auto", fps=2)[1].skip == "none"
    assert CameraConfig(name="c", url="x").decode.skip == "auto"
    assert choose_skip("none", "h264", 25.0, 1.0) == "none"


def test_keyframes_only_frames_keep_their_position_in_the_stream(data_dir: Path) -> None:
    frames, source = read(data_dir / PEDESTRIANS, skip="nonkey")
    assert source.frames_decoded == 4
    assert [f.index for f in frames] == [0, 250, 500, 750]
    assert [round(f.pts, 3) for f in frames] == [0.0, 25.0, 50.0, 75.0]
    frames, source = read(data_dir / PEDESTRIANS, keyframes_only=True)
    assert source.skip == "nonkey" and [f.index for f in frames] == [0, 250, 500, 750]


def test_a_looped_file_counts_skipped_frames_into_the_next_pass(
    data_dir: Path, arcade_full: dict
) -> None:
    camera = CameraConfig(
        name="cam-1", url=str(data_dir / ARCADE), fps=5, loop=True, decode={"skip": "nonref"}
    )
    with open_source(camera) as source:
        frames = [f for _, f in zip(range(30), source, strict=False)]
    second = [f for f in frames if f.index >= 105]
    assert second, "the second pass never started"
    # The second pass starts at the first frame again: position 105, a frame period on.
    assert second[0].index == 105
    assert second[0].pts == pytest.approx(104 / 25 + 1 / 25)
    assert np.array_equal(second[0].image, arcade_full[0].image)
