"""The motion gate never starves a live track (issue 12): while anyone is tracked,
still frames are analysed at ``motion.track_min_fps`` at least.

The seated-faces gif (4.6 s, 12.5 fps) is followed by its last frame held for
6 s of pts: nothing moves, yet both people stay tracked — one track each, none
ended — and the held part is analysed once a second.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from safecity.config import CameraConfig
from safecity.pipeline import FACE_TRACK_ID_BASE, CameraPipeline

pytestmark = pytest.mark.slow

HELD_S = 6.0
STEP_S = 0.08  # the gif's frame period


@pytest.fixture(scope="module")
def held_frames(data_dir):
    """The gif's frames, then its last frame repeated for ``HELD_S`` seconds of pts."""
    from safecity.video.source import open_source

    source = open_source(
        CameraConfig(name="still", url=str(data_dir / "video/seated-faces-480x270.gif"))
    )
    try:
        frames = list(source)
    finally:
        source.close()
    last = frames[-1]
    held = [
        replace(
            last,
            index=last.index + i,
            pts=round(last.pts + i * STEP_S, 3),
            time=last.time + timedelta(seconds=i * STEP_S),
        )
        for i in range(1, int(HELD_S / STEP_S) + 1)
    ]
    return frames, held


def _run(config, stages, frames, held):
    pipeline = CameraPipeline("still", config, stages, fps=12.5)
    results = [pipeline.process(f) for f in frames + held]
    return pipeline, results[len(frames) :]


def test_people_held_still_are_analysed_at_the_minimum_rate(held_frames, config, stages):
    frames, held = held_frames
    assert config.motion.track_min_fps == 1.0
    pipeline, still = _run(config, stages, frames, held)
    # Nothing moves in the held part: the gate alone would call every frame still
    # (its 2 s keepalive aside).
    ids_seen = {tuple(sorted(v.track.track_id for v in r.tracks)) for r in still}
    assert len(ids_seen) == 1, ids_seen
    (ids,) = ids_seen
    # One track each: the woman's person track and the man's face-only track.
    assert len(ids) == 2 and sum(i >= FACE_TRACK_ID_BASE for i in ids) == 1, ids
    assert all(not r.ended for r in still)
    analysed = [r.frame.pts for r in still if r.analysed]
    expected = HELD_S * config.motion.track_min_fps
    assert abs(len(analysed) - expected) <= 1, analysed
    gaps = [b - a for a, b in zip(analysed, analysed[1:], strict=False)]
    assert all(gap <= 1.0 / config.motion.track_min_fps + STEP_S for gap in gaps), gaps
    events = pipeline.finish()
    assert len(events) == 2


def test_without_a_minimum_rate_only_the_keepalive_runs(held_frames, config, stages):
    """Control: with ``track_min_fps: 0`` the held part is analysed only at the
    gate's keepalive (every 2 s), so the test above measures the new rule."""
    frames, held = held_frames
    off = config.model_copy(
        update={"motion": config.motion.model_copy(update={"track_min_fps": 0.0})}
    )
    _, still = _run(off, stages, frames, held)
    analysed = [r.frame.pts for r in still if r.analysed]
    assert len(analysed) <= HELD_S / config.motion.keepalive_s + 1, analysed
