"""FaceRes, the second embedder: equal to TF.js, fed as DESIGN.md says, tells people apart."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from safecity.config import EmbedderConfig, FacesConfig
from safecity.errors import ModelError
from safecity.identity.calibration import load_calibration
from safecity.vision.embedder import Embedder, embedder_name, make_embedder
from safecity.vision.faceres import (
    FACERES_DIM,
    FaceResEmbedder,
    faceres_blob,
    faceres_crop,
    faceres_crop_box,
)
from safecity.vision.faces import FaceDetector
from safecity.vision.types import Face

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tfjs_faceres.npz"
PORTRAITS = ("obama", "obama2", "obama3", "biden")


@pytest.fixture(scope="module")
def embedder() -> FaceResEmbedder:
    return FaceResEmbedder()


@pytest.fixture(scope="module")
def portraits(data_dir: Path) -> dict:
    detector = FaceDetector(FacesConfig())
    out = {}
    for name in PORTRAITS:
        image = cv2.imread(str(data_dir / f"images/{name}.jpg"))
        (face,) = detector.detect(image)
        out[name] = (image, face)
    return out


def test_session_output_equals_tfjs_reference(embedder):
    # The fixture holds TF.js 4.22's own descriptor of a 224x224 input; the embedder's
    # session must give the same raw descriptor (what the mean is later taken from).
    ref = np.load(FIXTURE)
    assert json.loads(str(ref["meta"]))["outputs"] == ["global_pooling/Mean"]
    raw = embedder.session.run(None, {embedder.input_name: ref["input"]})[0]
    assert raw.shape == (1, FACERES_DIM)
    assert float(ref["output_0"].std()) > 1e-3  # a real signal
    np.testing.assert_allclose(raw, ref["output_0"], atol=1e-4)
    # The input is BGR minus the channel means, as faceres_blob makes it.
    crop = (ref["input"][0] + np.array([103.939, 116.779, 123.68], np.float32)).round()
    np.testing.assert_allclose(faceres_blob([crop.astype(np.uint8)]), ref["input"], atol=1e-3)


def test_crop_is_the_face_box_enlarged_1_4_square(portraits):
    image, face = portraits["obama"]
    # YuNet's box (373, 95)-(605, 414): side 1.4 x 319, centred -> x 266..713, y 31..478
    # (the square tools/tfjs-reference/make_fixtures.py describes as FACE_CROP).
    x0, y0, x1, y1 = faceres_crop_box(face)
    assert (x1 - x0) == (y1 - y0) == round(1.4 * max(face.box[2:] - face.box[:2]))
    assert abs((x0 + x1) / 2 - (face.box[0] + face.box[2]) / 2) <= 1
    crop = faceres_crop(image, face)
    expected = cv2.resize(image[y0:y1, x0:x1], (224, 224), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop, expected)
    # The crop holds the whole face: YuNet finds one face filling its middle.
    (found,) = FaceDetector(FacesConfig()).detect(crop)
    cx, cy = (found.box[:2] + found.box[2:]) / 2
    assert abs(cx - 112) < 20 and abs(cy - 112) < 25


def test_face_at_the_edge_is_padded_not_shifted(portraits):
    image, face = portraits["obama"]
    left = image[:, 300:]  # the face box now starts 73 px from the left edge
    moved = Face(face.box - np.array([300, 0, 300, 0], np.float32), face.landmarks, face.score)
    crop = faceres_crop(left, moved)
    assert crop.shape == (224, 224, 3)
    pad = round(224 * (300 - 266) / 447)  # the part of the square left of the image
    assert crop[:, : pad - 2].max() == 0 and crop[:, pad + 2 :].max() > 0


def test_vectors_are_unit_and_same_person_scores_higher(embedder, portraits):
    assert isinstance(embedder, Embedder) and embedder.parts == (FACERES_DIM,)
    vec = {n: embedder.embed(img, face) for n, (img, face) in portraits.items()}
    for v in vec.values():
        assert v.shape == (FACERES_DIM,) and v.dtype == np.float32
        assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-5)
    obamas = ("obama", "obama2", "obama3")
    same = [float(vec[a] @ vec[b]) for i, a in enumerate(obamas) for b in obamas[i + 1 :]]
    other = [float(vec[a] @ vec["biden"]) for a in obamas]
    assert min(same) > max(other) + 0.2, (same, other)
    threshold = load_calibration().threshold("faceres")
    assert min(same) >= threshold > max(other)


def test_embed_many_equals_embed(embedder, portraits):
    image, face = portraits["obama"]
    one = embedder.embed(image, face)
    many = embedder.embed_many(image, [face, face])
    np.testing.assert_allclose(many, np.stack([one, one]), atol=1e-5)


def test_mirror_setting_follows_the_calibration(portraits):
    image, face = portraits["obama2"]
    mean = load_calibration().faceres_mean
    plain = FaceResEmbedder(mean=mean, flip=False)
    flipped = FaceResEmbedder(mean=mean, flip=True)
    assert FaceResEmbedder().flip is load_calibration().faceres_flip
    mirrored = np.ascontiguousarray(image[:, ::-1])
    w = image.shape[1]
    mface = Face(
        np.array([w - face.box[2], face.box[1], w - face.box[0], face.box[3]], np.float32),
        face.landmarks,
        face.score,
    )
    # Mirror averaging makes a photo and its mirror image give nearly the same vector
    # (not exactly: the crop's pixel rounding differs by a pixel or so).
    with_flip = float(flipped.embed(image, face) @ flipped.embed(mirrored, mface))
    without = float(plain.embed(image, face) @ plain.embed(mirrored, mface))
    assert with_flip > 0.995 and 1 - with_flip < (1 - without) / 3, (with_flip, without)


def test_made_by_config_and_bad_mean_refused():
    assert embedder_name(EmbedderConfig(kind="faceres")) == "faceres"
    assert isinstance(make_embedder(EmbedderConfig(kind="faceres")), FaceResEmbedder)
    with pytest.raises(ModelError, match="1024"):
        FaceResEmbedder(mean=np.zeros(10, np.float32), flip=False)
