"""The motion gate on synthetic frames and on the real pedestrians video."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from safecity.config import CameraConfig, MotionConfig
from safecity.video.motion import MotionGate
from safecity.video.source import open_source
from safecity.vision.types import Frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def frame(image: np.ndarray, index: int, fps: float = 10.0) -> Frame:
    return Frame("cam", index, index / fps, T0, image)


def textured(h: int = 576, w: int = 768, seed: int = 0) -> np.ndarray:
    """A still scene with texture and a little sensor noise per call."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(40, 200, (h // 16, w // 16, 3)), np.ones((16, 16, 1)))
    return base.astype(np.uint8)


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = 4) -> np.ndarray:
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def contains(boxes: np.ndarray, x: float, y: float) -> bool:
    return bool(
        np.any((boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3]))
    )


def test_first_frame_runs_the_detector_then_a_still_scene_does_not() -> None:
    gate = MotionGate(MotionConfig(keepalive_s=1000))
    scene, rng = textured(), np.random.default_rng(1)
    first = gate.update(frame(noisy(scene, rng), 0))
    assert first.moving
    assert first.boxes.tolist() == [[0, 0, 768, 576]]
    results = [gate.update(frame(noisy(scene, rng), i)) for i in range(1, 40)]
    assert not any(r.moving for r in results)
    assert max(r.fraction for r in results) < MotionConfig().min_fraction


def test_keepalive_reports_motion_every_keepalive_seconds_of_pts() -> None:
    gate = MotionGate(MotionConfig(keepalive_s=2.0))
    scene = textured()
    moving = [i for i in range(100) if gate.update(frame(scene, i, fps=10)).moving]
    assert moving == [0, 20, 40, 60, 80]


def test_a_moving_square_is_boxed_where_it_is() -> None:
    gate = MotionGate(MotionConfig(keepalive_s=1000))
    scene, rng = textured(1080, 1920), np.random.default_rng(2)
    gate.update(frame(noisy(scene, rng), 0))
    for i in range(1, 6):
        image = noisy(scene, rng)
        x = 400 + 40 * i
        image[500:700, x : x + 120] = 255  # a bright object moving right
        result = gate.update(frame(image, i))
        assert result.moving
        assert len(result.boxes) <= 2  # the object (and its fading trail)
        assert contains(result.boxes, x + 60, 600)
        # Boxes are in full-frame pixels and stay near the object.
        assert result.boxes[:, 0].min() > 250 and result.boxes[:, 2].max() < x + 250
        assert result.boxes[:, 1].min() > 400 and result.boxes[:, 3].max() < 800
        assert 0.005 < result.fraction < 0.05


def test_disabled_gate_always_runs_the_detector() -> None:
    gate = MotionGate(MotionConfig(enabled=False))
    scene = textured()
    assert all(gate.update(frame(scene, i)).moving for i in range(5))


def test_a_new_frame_size_resets_the_background() -> None:
    gate = MotionGate(MotionConfig(keepalive_s=1000))
    gate.update(frame(textured(), 0))
    assert not gate.update(frame(textured(), 1)).moving
    assert gate.update(frame(textured(480, 640), 2)).moving


@pytest.fixture(scope="module")
def pedestrian_regions(data_dir) -> dict[int, np.ndarray]:
    gate = MotionGate(MotionConfig())
    out = {}
    cam = CameraConfig(name="campus", url=str(data_dir / "video/pedestrians-768x576.avi"))
    with open_source(cam) as source:
        for f in source:
            regions = gate.update(f)
            if f.index in (100, 300):
                out[f.index] = regions.boxes
            if f.index == 300:
                break
    return out


# People located by eye on those frames (box centres, pixels of the 768x576 frame),
# and the parked white van and car, which never move.
PEOPLE = {
    100: [(230, 77), (365, 237), (391, 216), (440, 222), (507, 185), (528, 185), (603, 192)],
    300: [(203, 197), (256, 189), (310, 194), (330, 253), (596, 197), (631, 198)],
}
PARKED = [(652, 45, 722, 98), (735, 52, 768, 92)]


@pytest.mark.parametrize("index", [100, 300])
def test_pedestrians_move_parked_cars_and_grass_do_not(pedestrian_regions, index) -> None:
    boxes = pedestrian_regions[index]
    assert len(boxes) >= 2
    for x, y in PEOPLE[index]:
        assert contains(boxes, x, y), (x, y)
    for x1, y1, x2, y2 in PARKED:
        overlap = (np.minimum(boxes[:, 2], x2) > np.maximum(boxes[:, 0], x1)) & (
            np.minimum(boxes[:, 3], y2) > np.maximum(boxes[:, 1], y1)
        )
        assert not overlap.any()
    assert boxes[:, 1].min() > 40  # nothing on the buildings' roofline
    assert boxes[:, 3].max() < 350  # nothing on the lawn below the path
