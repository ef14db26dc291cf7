"""Plates read on tracked vehicles: a real road photo driven across a frame.

The photo (OpenALPR's eu5, a British car) slides 200 px over 15 frames at 5 fps,
so the car is a moving, tracked vehicle whose plate is read while in view.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from safecity.config import CameraConfig, PlatesConfig, SafecityConfig
from safecity.pipeline import CameraPipeline, Stages
from safecity.vision.types import Frame

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def drive(photo: np.ndarray, frames: int = 15, shift: int = 200) -> list[Frame]:
    h, w = photo.shape[:2]
    out = []
    for i in range(frames):
        image = np.full((h, w + shift, 3), 90, np.uint8)
        x = round(i * shift / (frames - 1))
        image[:, x : x + w] = photo
        out.append(Frame("road", i, i / 5, T0 + timedelta(seconds=i / 5), image))
    return out


@pytest.fixture(scope="module")
def stages():
    return Stages.load(SafecityConfig())


@pytest.fixture(scope="module")
def frames(data_dir):
    return drive(cv2.imread(str(data_dir / "plates" / "eu" / "eu5.jpg")))


def run(stages, frames, **kwargs):
    pipeline = CameraPipeline("road", SafecityConfig(), stages, fps=5, **kwargs)
    events = [e for f in frames for e in pipeline.process(f).ended]
    return events + pipeline.finish()


@pytest.mark.slow
def test_a_passing_car_is_read_a_few_times_and_its_event_carries_the_plate(stages, frames):
    [car] = [e for e in run(stages, frames) if e.label == "car"]
    assert car.plate is not None
    # The label file says OYO9FEU; a British plate's third and fourth places are digits.
    assert car.plate.text == "OY09FEU"
    assert 1 < car.plate.reads <= PlatesConfig().max_reads and car.plate.confidence > 0.8
    h, w = car.plate.crop.shape[:2]
    assert 2 < w / h < 8 and w < 300  # the plate, not the car


@pytest.mark.slow
def test_a_camera_that_reads_no_plates_stores_the_car_without_one(stages, frames):
    assert CameraConfig(name="road", url="x").read_plates is True  # on unless switched off
    [car] = [e for e in run(stages, frames, read_plates=False) if e.label == "car"]
    assert car.plate is None
