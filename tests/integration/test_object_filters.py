"""Object filters on real media: a still false alarm gives no event, people still do.

The detector runs once per clip; its detections are replayed into two pipelines,
one with the track threshold switched off (the behaviour before the filters) and
one with the defaults, so the comparison is exact and the model costs one run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from safecity.config import CameraConfig, SafecityConfig
from safecity.pipeline import CameraPipeline, Stages
from safecity.video.source import open_source

# The yellow traffic cone beside the path (pedestrians clip), which NanoDet reads as
# a "person" at 0.44-0.49 in three separate 2-3 s tracks: its box, x1 y1 x2 y2 in
# frame pixels, read off frame 560 with the boxes drawn and looked at by eye.
CONE = (163, 188, 180, 208)
# Different walkers crossing the campus in the 80 s clip: some 40-50, by an earlier
# count by eye on contact sheets (see test_pipeline.py; not recounted here). Groups
# walking together make one track, so person events stay at or below the low end.
WALKERS_BY_EYE = 40


class _Replay:
    """Stands in for the detector: returns what the real one found, frame by frame."""

    def __init__(self, detector) -> None:
        self.detector, self.seen, self.replaying = detector, [], False

    def detect(self, image):
        if self.replaying:
            return self.seen.pop(0)
        found = self.detector.detect(image)
        self.seen.append(found)
        return found


def _events(path, config: SafecityConfig, stages: Stages, fps=None):
    source = open_source(
        CameraConfig(name="c", url=str(path), fps=fps), start_time=datetime(2026, 1, 1, tzinfo=UTC)
    )
    pipeline = CameraPipeline("c", config, stages, fps=source.fps or 10.0)
    events = []
    try:
        for frame in source:
            events += pipeline.process(frame).ended
    finally:
        source.close()
    return events + pipeline.finish()


def _before_and_after(path, fps=None):
    after = SafecityConfig.model_validate({"faces": {"enabled": False}})
    before = SafecityConfig.model_validate(
        {"faces": {"enabled": False}, "detector": {"filters": {"person": {"threshold": 0}}}}
    )
    stages = Stages.load(after)
    replay = _Replay(stages.detector)
    stages = replace(stages, detector=replay)
    old = _events(path, before, stages, fps)
    replay.replaying = True
    new = _events(path, after, stages, fps)
    assert replay.seen == []  # the same frames were analysed both times
    return old, new


def _at_cone(event) -> bool:
    box = event.snapshot.box + event.snapshot.frame_box[[0, 1, 0, 1]]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return CONE[0] <= cx <= CONE[2] and CONE[1] <= cy <= CONE[3]


@pytest.mark.slow
@pytest.mark.parametrize("fps", [None, 5])
def test_the_still_traffic_cone_gives_no_event_and_every_walker_still_does(data_dir, fps):
    old, new = _before_and_after(data_dir / "video/pedestrians-768x576.avi", fps)
    cone_before = [e for e in old if _at_cone(e)]
    assert cone_before and {e.label for e in cone_before} == {"person"}
    assert max(e.best_score for e in cone_before) < 0.5
    assert not [e for e in new if _at_cone(e)]
    # Nothing else was dropped: every other event (walkers, the parked van and car)
    # is still there, the same track with the same best score.
    kept = {(e.track_id, e.label, round(e.best_score, 4)) for e in old if not _at_cone(e)}
    assert {(e.track_id, e.label, round(e.best_score, 4)) for e in new} == kept
    people = [e for e in new if e.label == "person"]
    if fps is None:  # at 5 frames/s more walkers split into two tracks (46 events)
        assert len(people) <= WALKERS_BY_EYE, len(people)
    assert sorted(e.label for e in new if e.label != "person") == ["car", "car"]


@pytest.mark.slow
def test_people_who_hardly_move_keep_their_events(data_dir):
    # The seated woman moves less than the cone (5 % of her size) but scores 0.67;
    # the arcade's standing people score as low as 0.46 but shift 13 % or more.
    for clip in ("seated-faces-480x270.gif", "arcade-crowd-1080p.mp4"):
        old, new = _before_and_after(data_dir / "video" / clip)
        assert old and len(new) == len(old), clip
        assert np.all([e.label == "person" for e in new])
