"""Face detection and quality on real media (YuNet from the yuface wheel)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from safecity.config import FacesConfig
from safecity.errors import ConfigError
from safecity.vision.faces import (
    FaceDetector,
    decode_scrfd,
    face_quality,
    nms,
    pose_score,
    scrfd_preprocess,
)
from safecity.vision.types import Face


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FacesConfig())


@pytest.fixture(scope="module")
def obama(data_dir: Path) -> np.ndarray:
    return cv2.imread(str(data_dir / "images/obama.jpg"))


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_portrait_has_one_face_with_landmarks_in_documented_order(detector, obama):
    faces = detector.detect(obama)
    assert len(faces) == 1
    face = faces[0]
    right_eye, left_eye, nose, right_mouth, left_mouth = face.landmarks
    # The person's right eye is on the image's left; the nose lies between and below
    # the eyes, the mouth corners below the nose.
    assert right_eye[0] < nose[0] < left_eye[0]
    assert right_mouth[0] < left_mouth[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])
    x1, y1, x2, y2 = face.box
    assert (face.landmarks[:, 0] > x1).all() and (face.landmarks[:, 0] < x2).all()
    assert (face.landmarks[:, 1] > y1).all() and (face.landmarks[:, 1] < y2).all()
    assert 200 < face.width < 300  # the face is ~230 px wide in this 910x1137 photo
    assert face.score > 0.9 and face.quality > 0.8


def test_detect_in_box_maps_crop_coordinates_back_to_the_frame(detector, obama):
    # The portrait pasted into a larger, darker scene, shrunk so the "person" is small:
    # the crop must be upscaled for YuNet and the result mapped back to frame pixels.
    small = cv2.resize(obama, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)  # 182x227
    frame = np.full((720, 1280, 3), 40, np.uint8)
    ox, oy = 900, 300
    frame[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    expected = detector.detect(small)[0]
    person = np.array([ox, oy, ox + small.shape[1], oy + 2 * small.shape[0]], np.float32)
    faces = detector.detect_in_box(frame, person)
    assert len(faces) == 1
    shift = np.array([ox, oy, ox, oy], np.float32)
    assert _iou(faces[0].box, expected.box + shift) > 0.8
    assert np.abs(faces[0].landmarks - (expected.landmarks + [ox, oy])).max() < 4


def test_detect_in_box_searches_only_the_head_region(detector, obama):
    h = obama.shape[0]
    # A "person" whose upper half lies below the face: nothing may be found.
    assert detector.detect_in_box(obama, np.array([0, 0.45 * h, 910, h], np.float32)) == []
    # A box off to the side, whose padding does not reach the face's centre.
    assert detector.detect_in_box(obama, np.array([0, 0, 150, h], np.float32)) == []
    assert detector.detect_in_box(obama, np.array([10, 10, 11, 11], np.float32)) == []


def test_min_size_and_min_score_filter(obama):
    assert FaceDetector(FacesConfig(min_size=300)).detect(obama) == []
    assert FaceDetector(FacesConfig(min_score=0.99)).detect(obama) == []


def test_quality_ranks_sharp_frontal_above_blurred_tiny_and_turned(detector, obama):
    sharp = detector.detect(obama)[0]
    blurred_img = cv2.GaussianBlur(obama, (0, 0), 6)
    blurred = detector.detect(blurred_img)[0]
    tiny_img = cv2.resize(obama, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    tiny = detector.detect(tiny_img)[0]
    assert sharp.quality > blurred.quality + 0.2
    assert sharp.quality > tiny.quality + 0.2
    # Same face box, landmarks of a head turned to profile (nose over one eye).
    turned = Face(sharp.box, sharp.landmarks.copy(), sharp.score)
    turned.landmarks[2, 0] = turned.landmarks[1, 0]
    assert face_quality(obama, turned) < 0.1
    assert pose_score(turned.landmarks) == 0.0


def test_quality_ranks_portrait_above_its_blur_in_a_city_frame(detector, data_dir):
    # The GIF's woman (left) is frontal in every frame; blurring her face must lower it.
    frame = _decode(data_dir / "video/seated-faces-480x270.gif")[0]
    face = min(detector.detect(frame), key=lambda f: f.box[0])
    x1, y1, x2, y2 = face.box.astype(int)
    blurred = frame.copy()
    blurred[y1:y2, x1:x2] = cv2.GaussianBlur(frame[y1:y2, x1:x2], (0, 0), 3)
    assert face_quality(blurred, face) < face_quality(frame, face) - 0.15


def test_seated_gif_two_faces_in_most_frames(detector, data_dir):
    frames = _decode(data_dir / "video/seated-faces-480x270.gif")
    assert len(frames) == 56
    counts = [len(detector.detect(f)) for f in frames]
    # Both people stay in view and roughly facing the camera (heads tilted up to
    # ~40 degrees) for the whole GIF; YuNet found exactly two in all 56 frames.
    # 50 leaves room for a different yuface build without hiding a regression.
    assert sum(c == 2 for c in counts) >= 50, counts
    assert max(counts) <= 3


def test_yunet_through_ctypes_gives_the_wheels_own_results(detector, data_dir):
    """The detector calls libfacedetection through ctypes (the GIL is released);
    its faces must be those of the yuface binding itself, border faces included."""
    from yuface import c_detect

    frame = _decode(data_dir / "video/seated-faces-480x270.gif")[0]
    # The whole frame, a crop cutting the man's face at its left edge, a faceless patch.
    for image in (frame, frame[:, 350:], frame[200:, :60]):
        image = np.ascontiguousarray(image)
        expected = np.asarray(c_detect(image), np.float32)
        boxes, landmarks, scores = detector._backend(image, 0.0)
        assert len(scores) == len(expected)
        assert np.array_equal(scores, expected[:, 0] / 100)
        assert np.array_equal(boxes[:, :2], expected[:, 1:3])
        assert np.array_equal(boxes[:, 2:], expected[:, 1:3] + expected[:, 3:5])
        assert np.array_equal(landmarks.reshape(-1, 10), expected[:, 5:15])
    assert (detector._backend(np.ascontiguousarray(frame[:, 350:]), 0.0)[0][:, 0] < 0).any()


def test_around_finds_a_face_that_moved(detector, data_dir):
    """Between whole-frame searches a face-only track's face is looked for around its
    last box: found again when it moved by a third of its width and a quarter of its
    height, not found when the region holds no face."""
    frames = _decode(data_dir / "video/seated-faces-480x270.gif")
    man = max(detector.detect(frames[0]), key=lambda f: f.box[0])
    for dx, dy in ((0.0, 0.0), (0.33, 0.0), (-0.33, 0.25)):
        width, height = man.box[2] - man.box[0], man.box[3] - man.box[1]
        moved = man.box + np.array([dx * width, dy * height] * 2, np.float32)
        found = detector.around(frames[0], moved)
        assert found and _iou(found[0].box, man.box) > 0.8, (dx, dy)
    assert detector.around(frames[0], np.array([200, 200, 240, 250], np.float32)) == []
    # refine() keeps its meaning: the same face at full resolution, else None.
    assert _iou(detector.refine(frames[0], man).box, man.box) > 0.8


# Face centres (frame pixels, rounded to 10) of the three people walking in front in
# every 5th frame of the arcade clip, read off contact sheets of the frames with the
# detections drawn on them: the red-haired teen, the white-haired woman at the left,
# and the boy in the blue hoodie. All three are in view the whole clip, except the
# woman in frame 100 (hidden behind the teen); the boy turns to profile in frames
# 0-5 and looks aside (three-quarter) from frame 70 on.
ARCADE_PEOPLE = {
    "teen": [
        (710, 600),
        (740, 620),
        (760, 610),
        (760, 630),
        (720, 640),
        (680, 630),
        (670, 630),
        (660, 680),
        (660, 670),
        (630, 660),
        (600, 690),
        (580, 670),
        (570, 660),
        (570, 680),
        (560, 660),
        (540, 680),
        (490, 680),
        (490, 630),
        (490, 640),
        (480, 650),
        (430, 620),
    ],
    "woman": [
        (320, 660),
        (320, 670),
        (320, 700),
        (320, 700),
        (310, 720),
        (300, 710),
        (290, 710),
        (280, 730),
        (270, 710),
        (260, 730),
        (240, 720),
        (230, 700),
        (240, 720),
        (230, 700),
        (230, 720),
        (220, 710),
        (230, 700),
        (240, 730),
        (250, 710),
        (260, 720),
        None,
    ],
    "boy": [
        (950, 680),
        (940, 670),
        (970, 690),
        (1000, 710),
        (1020, 700),
        (1020, 740),
        (1010, 730),
        (1020, 750),
        (1040, 770),
        (1030, 740),
        (990, 760),
        (960, 720),
        (950, 740),
        (950, 730),
        (920, 710),
        (880, 730),
        (850, 710),
        (840, 750),
        (830, 710),
        (810, 730),
        (790, 740),
    ],
}


def _found(faces, point) -> bool:
    x, y = point
    return any(f.box[0] <= x <= f.box[2] and f.box[1] <= y <= f.box[3] for f in faces)


@pytest.fixture(scope="module")
def arcade(data_dir: Path) -> list[np.ndarray]:
    return _decode(data_dir / "video/arcade-crowd-1080p.mp4")[::5]  # 21 frames, 0.2 s apart


def _assert_people_found(per_frame: list[list], boxes: list[np.ndarray] | None = None) -> None:
    """Each person's face is found in 90 % of the frames where visible (and, given
    person ``boxes``, where the object detector framed them)."""
    for name, points in ARCADE_PEOPLE.items():
        visible = [
            (faces, p)
            for k, (faces, p) in enumerate(zip(per_frame, points, strict=True))
            if p and (boxes is None or _found_box(boxes[k], p))
        ]
        found = sum(_found(faces, p) for faces, p in visible)
        # each of the three is in view (and framed by NanoDet) in most of the 21 frames
        assert len(visible) >= 15, (name, len(visible))
        assert found >= 0.9 * len(visible), (name, found, len(visible))


def _found_box(boxes: np.ndarray, point) -> bool:
    x, y = point
    return bool(
        ((boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])).any()
    )


@pytest.mark.slow
def test_arcade_people_in_front_are_found_in_whole_frames(detector, arcade):
    per_frame = [detector.detect(frame) for frame in arcade]
    # Measured: found in 21, 20 and 21 of the 21, 20 and 21 frames where visible.
    _assert_people_found(per_frame)
    # Quality tells the frontal teen from the boy in profile (frames 0 and 5).
    teen_q = [
        f.quality
        for faces, p in zip(per_frame, ARCADE_PEOPLE["teen"], strict=True)
        for f in faces
        if _found([f], p)
    ]
    assert np.median(teen_q) > 0.6, teen_q
    for k in (0, 1):
        boy = [f for f in per_frame[k] if _found([f], ARCADE_PEOPLE["boy"][k])]
        assert boy and boy[0].quality < 0.2


@pytest.mark.slow
def test_arcade_people_in_front_are_found_in_their_person_boxes(detector, arcade):
    from safecity.errors import ModelError

    try:
        from safecity.config import DetectorConfig
        from safecity.vision.detector import ObjectDetector

        people = ObjectDetector(DetectorConfig(classes=["person"]))
    except (ImportError, ModelError) as exc:
        pytest.skip(f"object detector unavailable: {exc}")
    per_frame, boxes = [], []
    for frame in arcade:
        dets = people.detect(frame)
        boxes.append(dets.boxes)
        per_frame.append([f for box in dets.boxes for f in detector.detect_in_box(frame, box)])
    # Measured: NanoDet framed the teen 21 times, the woman 18 (not in frames 15 and
    # 60), the boy 21; YuNet found the face in every one of those boxes.
    _assert_people_found(per_frame, boxes)


# --------------------------------------------------------------------------- pure parts


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.7], np.float32)).tolist() == [1, 2]


def _scrfd_outputs(hw: tuple[int, int]) -> tuple[list[np.ndarray], dict]:
    """Nine synthetic SCRFD outputs with one confident anchor at stride 16."""
    outs: dict[tuple[int, int], np.ndarray] = {}
    for stride in (8, 16, 32):
        n = (hw[0] // stride) * (hw[1] // stride) * 2
        outs[(stride, 1)] = np.full((n, 1), 0.01, np.float32)
        outs[(stride, 4)] = np.ones((n, 4), np.float32)
        outs[(stride, 10)] = np.zeros((n, 10), np.float32)
    # stride 16 on 64x64 input: a 4x4 grid; cell (x=2, y=1), second anchor → row 13.
    row, cx, cy = (1 * 4 + 2) * 2 + 1, 32.0, 16.0
    outs[(16, 1)][row] = 0.95
    outs[(16, 4)][row] = [1.0, 0.5, 1.5, 2.0]  # left, top, right, bottom in strides
    outs[(16, 10)][row] = [-0.5, -0.25, 0.5, -0.25, 0, 0.25, -0.4, 0.75, 0.4, 0.75]
    truth = {
        "box": [cx - 16, cy - 8, cx + 24, cy + 32],
        "kps": [
            [cx - 8, cy - 4],
            [cx + 8, cy - 4],
            [cx, cy + 4],
            [cx - 6.4, cy + 12],
            [cx + 6.4, cy + 12],
        ],
    }
    return [outs[k] for k in sorted(outs, key=lambda k: (k[1], k[0]))], truth


def test_scrfd_decoder_on_synthetic_outputs():
    # No SCRFD model is obtainable here (none is published on PyPI/npm/Debian), so
    # the decoder is tested on hand-made arrays with a known answer.
    outputs, truth = _scrfd_outputs((64, 64))
    # Any output order, with or without the batch axis, must decode the same.
    shuffled = [outputs[i][None] if i % 2 else outputs[i] for i in (8, 0, 4, 2, 6, 1, 3, 5, 7)]
    for outs in (outputs, shuffled):
        boxes, kps, scores = decode_scrfd(outs, (64, 64), min_score=0.5)
        assert scores.tolist() == pytest.approx([0.95])
        assert boxes[0].tolist() == pytest.approx(truth["box"])
        np.testing.assert_allclose(kps[0], truth["kps"], atol=1e-5)
    assert len(decode_scrfd(outputs, (64, 64), min_score=0.99)[2]) == 0


def test_scrfd_preprocess_letterboxes_rgb():
    img = np.zeros((32, 64, 3), np.uint8)
    img[..., 0] = 255  # pure blue in BGR
    blob, scale = scrfd_preprocess(img, (64, 64))
    assert blob.shape == (1, 3, 64, 64) and scale == 1.0
    assert blob[0, 2, 0, 0] == pytest.approx(127.5 / 128)  # blue is the third RGB plane
    assert blob[0, 0, 0, 0] == pytest.approx(-127.5 / 128)
    assert blob[0, 2, 40, 0] == pytest.approx(-127.5 / 128)  # padding below the image


def test_scrfd_detector_runs_a_synthetic_onnx(tmp_path):
    # A stand-in ONNX with SCRFD's interface whose outputs are constants: it checks
    # the session wrapper, letterbox scale and mapping back to image pixels.
    outputs, truth = _scrfd_outputs((64, 64))
    names = [f"out{i}" for i in range(9)]
    nodes = [
        helper.make_node("Constant", [], [n], value=numpy_helper.from_array(a))
        for n, a in zip(names, outputs, strict=True)
    ]
    graph = helper.make_graph(
        nodes,
        "scrfd_stub",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 64, 64])],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
            for n, a in zip(names, outputs, strict=True)
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "scrfd.onnx"
    onnx.save(model, path)
    det = FaceDetector(FacesConfig(kind="scrfd", model_path=path, min_size=8))
    image = np.full((128, 128, 3), 128, np.uint8)  # letterboxed at scale 0.5
    faces = det.detect(image)
    assert len(faces) == 1
    assert faces[0].box.tolist() == pytest.approx([2 * v for v in truth["box"]])
    np.testing.assert_allclose(faces[0].landmarks, 2 * np.array(truth["kps"]), atol=1e-4)


def test_scrfd_without_model_path_is_a_config_error():
    with pytest.raises(ConfigError):
        FaceDetector(FacesConfig(kind="scrfd"))
