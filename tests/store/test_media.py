"""pixelate and MediaStore: mosaic properties, atomic writes, safe paths."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from safecity.store.media import MediaStore, pixelate

WHEN = datetime(2024, 5, 1, 23, 30, tzinfo=UTC)


def test_every_tile_is_flat_and_outside_is_untouched(portrait: np.ndarray) -> None:
    boxes = np.array([[300, 200, 600, 560]], np.float32)
    out = pixelate(portrait, boxes, block=30)
    region = out[200:560, 300:600].astype(int)
    for y in range(0, 360, 30):
        for x in range(0, 300, 30):
            tile = region[y : y + 30, x : x + 30]
            assert (tile == tile[0, 0]).all()
    # each tile holds the mean of the original pixels under it
    original = portrait[200:230, 300:330].reshape(-1, 3).mean(0)
    assert np.abs(region[0, 0] - original).max() <= 0.5
    mask = np.ones(portrait.shape[:2], bool)
    mask[200:560, 300:600] = False
    assert np.array_equal(out[mask], portrait[mask])


def test_default_block_makes_at_most_six_tiles_across(portrait: np.ndarray) -> None:
    out = pixelate(portrait, np.array([[300, 200, 600, 560]]))
    row = out[300, 300:600].astype(int)
    changes = np.count_nonzero(np.any(np.diff(row, axis=0) != 0, axis=1))
    assert changes <= 5


def test_input_is_not_modified_and_no_boxes_is_a_copy(portrait: np.ndarray) -> None:
    before = portrait.copy()
    out = pixelate(portrait, np.zeros((0, 4), np.float32))
    assert np.array_equal(out, before) and out is not portrait
    pixelate(portrait, np.array([[0, 0, 100, 100]]))
    assert np.array_equal(portrait, before)


def test_boxes_are_clipped_to_the_image() -> None:
    image = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    out = pixelate(image, np.array([[-20, -20, 10.2, 10.7], [55, 45, 500, 500]]), block=4)
    assert out.shape == image.shape
    assert (out[0:4, 0:4] == out[0, 0]).all()
    assert not np.array_equal(out[45:, 55:], image[45:, 55:])


def test_detail_cannot_come_back(portrait: np.ndarray) -> None:
    """Two different images with the same tile means pixelate to the same output."""
    box = np.array([[0, 0, 64, 64]])
    noise = np.random.default_rng(1).integers(-10, 11, (8, 8, 3))
    noise -= noise.mean(axis=(0, 1), keepdims=True).round().astype(int)
    flat = np.full((64, 64, 3), 128, np.uint8)
    textured = flat.astype(int)
    textured[:8, :8] += noise
    assert np.array_equal(pixelate(flat, box, block=8), pixelate(textured.astype(np.uint8), box, 8))


def test_non_finite_box_refuses_to_write() -> None:
    with pytest.raises(ValueError, match="not finite"):
        pixelate(np.zeros((10, 10, 3), np.uint8), np.array([[0, 0, np.nan, 5]]))


def test_write_is_atomic_and_laid_out_by_camera_and_day(tmp_path: Path, portrait) -> None:
    media = MediaStore(tmp_path / "media")
    relative = media.write_jpeg(portrait, np.zeros((0, 4)), "gate-1", WHEN, "abc")
    assert relative == "gate-1/2024-05-01/abc.jpg"
    files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert files == [media.path(relative)]  # no temp file left
    decoded = cv2.imread(str(files[0]))
    assert decoded.shape == portrait.shape


def test_camera_names_cannot_leave_the_media_folder(tmp_path: Path, portrait) -> None:
    media = MediaStore(tmp_path / "media")
    relative = media.write_jpeg(portrait[:50, :50], np.zeros((0, 4)), "../../etc", WHEN, "x")
    assert media.path(relative).is_relative_to((tmp_path / "media").resolve())
    with pytest.raises(ValueError, match="leaves the media folder"):
        media.path("../outside.jpg")


def test_failed_write_leaves_nothing(tmp_path: Path, portrait) -> None:
    media = MediaStore(tmp_path / "media")
    (tmp_path / "media" / "gate-1").write_text("a file where the camera folder should be")
    with pytest.raises(OSError):
        media.write_jpeg(portrait, np.zeros((0, 4)), "gate-1", WHEN, "x")
    assert [p.name for p in (tmp_path / "media").rglob("*")] == ["gate-1"]
