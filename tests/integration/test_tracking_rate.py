"""Tracking holds people at 5 fps as at 10 fps (issue 12): the pedestrians clip,
real detector, real pipeline, real SQLite store, at both rates.

The true number of people was counted once by eye: every 10th frame of the clip
(795 frames, 10 fps) as contact sheets, with the 10 fps tracker's boxes and ids
drawn in to follow each walker, and close-ups where ids changed. Rule: one
person is one count for the whole clip; someone who leaves the picture and comes
back is counted once when clearly the same (same clothes, same edge, a few
seconds later: the woman in the red top who walks out on the left at frame ~575
and back at ~610; the blonde woman who steps out at the bottom edge at ~575 and
back at ~640); someone who turns back behind the sign or up the road is one
person (the man in the black coat who walks up the road and turns round at
frame ~405; the man in jeans who turns behind the sign at ~350); parked cars
and traffic cones read as "person" are nobody. Counted this way: 3 walkers at
frame 0, then entries at frames ~10 (a pair from the right), ~40, ~85 (far, top
left), ~115, ~135, ~220, ~225, ~425, ~465, ~505, ~535 (two, from the bottom),
~575, ~655 and ~695: **19 people**.

Events can exceed people: a person hidden for longer than ``lost_after_s``
(2 s; behind the sign, in a group) rightly ends one event and starts another,
and a pass behind the sign may still split a track. Hence the tolerance below.
"""

from __future__ import annotations

import pytest

from safecity.config import CameraConfig
from safecity.governance.clock import ManualClock
from safecity.runtime.local import analyze_one
from safecity.store.queries import list_events
from safecity.store.sink import StoreSink

pytestmark = pytest.mark.slow

TRUE_PEOPLE = 19
# Events of people allowed for those 19: -20 % (a missed walker) to +30 % (splits).
LOW, HIGH = 15, 25


def _person_events(data_dir, config, stages, e2e, tmp_path, fps: float) -> int:
    store = e2e.make_store(tmp_path / f"fps{fps:g}")
    try:
        camera = CameraConfig(
            name="campus", url=str(data_dir / "video/pedestrians-768x576.avi"), fps=fps
        )
        report = analyze_one(
            camera,
            config,
            stages,
            write=StoreSink(store, ManualClock(e2e.now)).write_many,
            start_time=e2e.now,
        )
        assert report.frames_in == (795 if fps == 10 else 398)
        rows = list_events(store, camera="campus", limit=1000)
        return sum(r.label == "person" for r in rows)
    finally:
        store.close()


def test_people_events_at_5_fps_match_10_fps_and_the_true_count(
    data_dir, config, stages, e2e, tmp_path
) -> None:
    at_10 = _person_events(data_dir, config, stages, e2e, tmp_path, 10)
    at_5 = _person_events(data_dir, config, stages, e2e, tmp_path, 5)
    # Before the distance gate and re-linking (IoU-only ByteTrack rounds): 29 person
    # events at 10 fps and 46 at 5 fps for these 19 people.
    assert abs(at_5 - at_10) <= 0.15 * at_10, (at_10, at_5)
    assert LOW <= at_10 <= HIGH, (at_10, TRUE_PEOPLE)
    assert LOW <= at_5 <= HIGH, (at_5, TRUE_PEOPLE)
