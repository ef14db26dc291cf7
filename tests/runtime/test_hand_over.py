"""A camera handed over to another worker: a file camera (which the other worker plays
again from its beginning) drops its open tracks instead of ending them early; a looped
or live camera ends and stores them as on any stop."""

from __future__ import annotations

import pytest

from safecity.config import SafecityConfig
from safecity.pipeline import Stages
from safecity.runtime.local import CameraFleet

STOP_AFTER = 40  # analysed frames: people are in view and tracked by then


@pytest.fixture(scope="module")
def stages(data_dir):
    return Stages.load(SafecityConfig())


def run_until_stopped(data_dir, stages, *, loop: bool, hand_over: bool):
    """Events stored, and events that ended while frames came, of a fleet stopped after
    :data:`STOP_AFTER` analysed frames of the pedestrians clip."""
    clip = data_dir / "video" / "pedestrians-768x576.avi"
    config = SafecityConfig.model_validate(
        {"cameras": [{"name": "gate", "url": str(clip), "fps": 5, "loop": loop}]}
    )
    stored, ended, analysed = [], [], []

    def write(events):
        stored.extend(events)
        return []

    def on_frame(camera, result):
        ended.extend(result.ended)
        analysed.append(result.analysed)
        if sum(analysed) == STOP_AFTER:
            fleet.hand_over() if hand_over else fleet.stop.set()

    fleet = CameraFleet(config, stages, write=write, on_frame=on_frame)
    fleet.start()
    fleet.join(timeout=120)
    assert not fleet.running and sum(analysed) == STOP_AFTER
    return stored, ended


def keys(events):
    return sorted((e.track_id, e.started_at, e.ended_at) for e in events)


def test_a_file_camera_handed_over_keeps_only_the_tracks_that_ended(data_dir, stages):
    stored, ended = run_until_stopped(data_dir, stages, loop=False, hand_over=True)
    assert keys(stored) == keys(ended)
    # The same stop at the end of the run ends the open tracks: more events, cut short.
    stopped, ended_before_stop = run_until_stopped(data_dir, stages, loop=False, hand_over=False)
    assert keys(ended_before_stop) == keys(ended)
    assert len(stopped) > len(ended)


def test_a_looped_camera_handed_over_ends_its_open_tracks(data_dir, stages):
    stored, ended = run_until_stopped(data_dir, stages, loop=True, hand_over=True)
    assert len(stored) > len(ended) and set(keys(ended)) <= set(keys(stored))
