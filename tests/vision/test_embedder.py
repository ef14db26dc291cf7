"""Alignment and embedding: dlib's ResNet on real portraits; ArcFace wrapper on a stand-in."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from safecity.config import EmbedderConfig, FacesConfig, SafecityConfig
from safecity.errors import ConfigError
from safecity.identity.matcher import matcher_settings
from safecity.vision.align import ARCFACE_TEMPLATE, DlibAligner, arcface_chip, arcface_matrix
from safecity.vision.embedder import (
    ArcFaceEmbedder,
    DlibEmbedder,
    Embedder,
    arcface_blob,
    embedder_name,
    make_embedder,
)
from safecity.vision.faces import FaceDetector

PORTRAITS = ("obama", "obama2", "obama3", "biden")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FacesConfig())


@pytest.fixture(scope="module")
def embedder() -> DlibEmbedder:
    return DlibEmbedder()


@pytest.fixture(scope="module")
def portraits(data_dir: Path, detector: FaceDetector) -> dict:
    out = {}
    for name in PORTRAITS:
        image = cv2.imread(str(data_dir / f"images/{name}.jpg"))
        faces = detector.detect(image)
        assert len(faces) == 1, name
        out[name] = (image, faces[0])
    return out


@pytest.fixture(scope="module")
def vectors(portraits: dict, embedder: DlibEmbedder) -> dict[str, np.ndarray]:
    return {name: embedder.embed(img, face) for name, (img, face) in portraits.items()}


def test_dlib_vectors_are_unit_float32(vectors, embedder):
    assert isinstance(embedder, Embedder) and embedder.parts == (128,)
    for v in vectors.values():
        assert v.shape == (128,) and v.dtype == np.float32
        assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-5)


def test_obama_photos_match_each_other_and_biden_matches_none(vectors):
    threshold, _ = matcher_settings(SafecityConfig())  # dlib's default, cosine 0.925
    obamas = ["obama", "obama2", "obama3"]
    for i, a in enumerate(obamas):
        for b in obamas[i + 1 :]:
            assert float(vectors[a] @ vectors[b]) >= threshold, (a, b)
        assert float(vectors[a] @ vectors["biden"]) < threshold, a
    # Measured: Obama pairs 0.95-0.97, Obama-Biden 0.80-0.83 (threshold 0.93).


def test_dlib_chip_is_upright_and_mirror_stable(portraits, embedder, detector):
    image, face = portraits["obama"]
    chip = DlibAligner().chip(image, face)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    # The chip is RGB; YuNet (BGR) finds an upright face with level eyes in it.
    found = detector.detect(np.ascontiguousarray(chip[:, :, ::-1]))
    assert len(found) == 1
    (rx, ry), (lx, ly) = found[0].landmarks[:2]
    assert abs(ly - ry) < 0.1 * (lx - rx)
    # A mirrored photo is the same person: its vector stays very close.
    mirrored = np.ascontiguousarray(image[:, ::-1])
    mface = detector.detect(mirrored)[0]
    assert float(embedder.embed(image, face) @ embedder.embed(mirrored, mface)) > 0.95


def test_arcface_alignment_puts_landmarks_on_the_template(portraits, detector):
    image, face = portraits["obama"]
    matrix = arcface_matrix(face.landmarks)
    moved = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    # A similarity transform cannot fit five points exactly; a few pixels is normal.
    assert np.abs(moved - ARCFACE_TEMPLATE).max() < 6
    chip = arcface_chip(image, face)
    assert chip.shape == (112, 112, 3)
    # Eyes of the warped face are level and where the template puts them: the eye
    # rows are the darkest bands around y = 51.
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY).astype(np.float32)
    assert grey[46:57].mean() < grey[60:70].mean()


# --------------------------------------------------------------------------- ArcFace stand-in


def _arcface_stub(path: Path, nhwc: bool = False) -> np.ndarray:
    """A tiny ONNX with ArcFace's interface: a 14x14/14 conv to 8x8x8 = 512 values.

    No ArcFace model is obtainable from PyPI/npm/Debian, so the wrapper is checked
    with this stand-in whose output can be recomputed in numpy.
    """
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(8, 3, 14, 14)).astype(np.float32)
    shape = [1, 112, 112, 3] if nhwc else [1, 3, 112, 112]
    nodes = []
    src = "data"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["data"], ["nchw"], perm=[0, 3, 1, 2]))
        src = "nchw"
    nodes += [
        helper.make_node("Conv", [src, "w"], ["conv"], kernel_shape=[14, 14], strides=[14, 14]),
        helper.make_node("Flatten", ["conv"], ["fc1"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_stub",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return weight


def _reference(chip_bgr: np.ndarray, weight: np.ndarray) -> np.ndarray:
    x = (chip_bgr[:, :, ::-1].astype(np.float32) - 127.5) / 127.5  # RGB, [-1, 1]
    patches = x.reshape(8, 14, 8, 14, 3)  # (py, ky, px, kx, c)
    out = np.einsum("yaxbc,ocab->oyx", patches, weight).reshape(-1)
    return out / np.linalg.norm(out)


def test_arcface_blob_is_rgb_scaled_to_unit_range():
    chip = np.zeros((112, 112, 3), np.uint8)
    chip[..., 0] = 255  # blue
    blob = arcface_blob(chip)
    assert blob.shape == (1, 3, 112, 112)
    assert blob[0, 2].min() == 1.0 and blob[0, 0].max() == -1.0
    assert arcface_blob(chip, nhwc=True).shape == (1, 112, 112, 3)


@pytest.mark.parametrize("nhwc", [False, True])
def test_arcface_embedder_feeds_the_model_as_arcface_expects(tmp_path, portraits, nhwc):
    path = tmp_path / "arcface.onnx"
    weight = _arcface_stub(path, nhwc)
    emb = ArcFaceEmbedder(path)
    assert emb.nhwc is nhwc and emb.dim == 512 and emb.parts == (512,)
    image, face = portraits["obama"]
    vector = emb.embed(image, face)
    assert vector.shape == (512,) and vector.dtype == np.float32
    np.testing.assert_allclose(vector, _reference(arcface_chip(image, face), weight), atol=1e-4)


def test_make_embedder_by_config(tmp_path):
    path = tmp_path / "arcface.onnx"
    _arcface_stub(path)
    config = EmbedderConfig(kind="arcface", model_path=path)
    emb = make_embedder(config)
    assert isinstance(emb, ArcFaceEmbedder)
    assert emb.name == embedder_name(config) and emb.name.startswith("arcface-")
    assert embedder_name(EmbedderConfig()) == "dlib"
    with pytest.raises(ConfigError):
        make_embedder(EmbedderConfig(kind="arcface"))


def test_dlib_mirror_averaging(portraits):
    # The fused embedder may average dlib's vectors of a photo and its mirror image
    # (calibration's fused.dlib_flip); a mirrored photo then gives nearly the same vector.
    from safecity.vision.embedder import mirror

    image, face = portraits["obama"]
    mirrored, mface = mirror(image, face)
    assert np.array_equal(mirrored[:, ::-1], image)
    # The person's right eye is image-left in both: landmarks are re-ordered, not just moved.
    assert mface.landmarks[0, 0] < mface.landmarks[1, 0]
    flipped = DlibEmbedder(flip=True)
    plain = DlibEmbedder()
    with_flip = float(flipped.embed(image, face) @ flipped.embed(mirrored, mface))
    without = float(plain.embed(image, face) @ plain.embed(mirrored, mface))
    assert with_flip > 0.99 and 1 - with_flip < (1 - without) / 2, (with_flip, without)
    assert float(np.linalg.norm(flipped.embed(image, face))) == pytest.approx(1.0, abs=1e-5)


def test_dlib_batches_equal_single_faces(data_dir: Path, detector, embedder, portraits):
    # The crowd frame has several faces; one ONNX call for all gives each face's own vector.
    video = cv2.VideoCapture(str(data_dir / "video/arcade-crowd-1080p.mp4"))
    ok, frame = video.read()
    video.release()
    faces = detector.detect(frame)
    assert ok and len(faces) >= 3
    many = embedder.embed_many(frame, faces)
    assert many.shape == (len(faces), 128) and many.dtype == np.float32
    single = np.stack([embedder.embed(frame, f) for f in faces])
    np.testing.assert_allclose(many, single, atol=1e-5)
    assert float((many[0] @ many[1:].T).max()) < 0.99  # different people, different vectors
    chips = embedder.chips(frame, faces)
    np.testing.assert_allclose(embedder.embed_chips(chips), many, atol=1e-5)
    assert embedder.embed_many(frame, []).shape == (0, 128)
    # flip: the mirrored chips ride in the same call; the vector is the unit mean of both
    from safecity.vision.embedder import mirror

    flipped = DlibEmbedder(flip=True)
    image, face = portraits["obama"]
    both = embedder.embed(image, face) + embedder.embed(*mirror(image, face))
    np.testing.assert_allclose(
        flipped.embed_many(image, [face, face])[1], both / np.linalg.norm(both), atol=1e-5
    )
