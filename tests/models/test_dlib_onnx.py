"""dlib's face ResNet read from its .dat by our own parser and run in ONNX Runtime
gives dlib's descriptors: the library itself is the reference, on real faces."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from safecity.config import FacesConfig
from safecity.errors import ModelError
from safecity.models import model_path
from safecity.models.catalog import get
from safecity.models.dlib_onnx import (
    ARCHITECTURE,
    INPUT_NAME,
    OUTPUT_NAME,
    convert,
    load_dlib_resnet,
)
from safecity.vision.align import DlibAligner
from safecity.vision.faces import FaceDetector

TOLERANCE = 1e-4  # max abs difference allowed between ONNX Runtime and dlib (seen: 5e-7)


@pytest.fixture(scope="module")
def dat() -> Path:
    return model_path("dlib_resnet")


@pytest.fixture(scope="module")
def chips(data_dir: Path) -> list[np.ndarray]:
    """Aligned chips of real faces: four portraits and the crowd in two arcade frames."""
    detector, aligner = FaceDetector(FacesConfig()), DlibAligner()
    images = [cv2.imread(str(data_dir / f"images/{n}.jpg")) for n in ("obama", "biden")]
    video = cv2.VideoCapture(str(data_dir / "video/arcade-crowd-1080p.mp4"))
    for index in range(31):
        ok, frame = video.read()
        assert ok
        if index in (0, 30):
            images.append(frame)
    video.release()
    out = [aligner.chip(image, face) for image in images for face in detector.detect(image)]
    assert len(out) >= 10  # several faces per frame, not one face over and over
    return out


def test_onnx_descriptors_equal_dlibs_on_real_faces(dat: Path, chips: list[np.ndarray]) -> None:
    import dlib

    reference = dlib.face_recognition_model_v1(str(dat))
    expected = np.array([np.asarray(reference.compute_face_descriptor(c)) for c in chips])
    session = ort.InferenceSession(str(model_path("dlib_resnet_onnx")))
    batched = session.run(None, {INPUT_NAME: np.stack(chips)})[0]
    single = np.concatenate([session.run(None, {INPUT_NAME: c[None]})[0] for c in chips])
    assert batched.shape == (len(chips), 128) and batched.dtype == np.float32
    assert float(np.abs(batched - expected).max()) <= TOLERANCE
    assert float(np.abs(single - expected).max()) <= TOLERANCE
    # the faces are different people and poses: their descriptors are far apart
    distances = np.linalg.norm(expected[:, None] - expected[None], axis=-1)
    assert float(distances[~np.eye(len(chips), dtype=bool)].min()) > 100 * TOLERANCE


def test_conversion_is_repeatable_and_pinned(dat: Path) -> None:
    first = convert(dat).SerializeToString()
    second = convert(dat).SerializeToString()
    assert first == second
    spec = get("dlib_resnet_onnx")
    assert (hashlib.sha256(first).hexdigest(), len(first)) == (spec.sha256, spec.size)


def test_parser_reads_the_example_network(dat: Path) -> None:
    net = load_dlib_resnet(dat)
    # input_rgb_image_sized's defaults in dlib/dnn/input.h, as the file stores them
    assert net.channel_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    convs = [s for s in net.steps if s.layer.kind == "con"]
    assert len(convs) == 29 and len(net.steps) == len(ARCHITECTURE)
    assert convs[0].weights is not None and convs[0].weights.shape == (32, 3, 7, 7)
    model = onnx.load_from_string(convert(dat).SerializeToString())
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 29 and ops.count("Add") == 14 and ops.count("Relu") == 29
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == (INPUT_NAME, OUTPUT_NAME)
    assert inp.type.tensor_type.shape.dim[0].dim_param == "N"  # any batch size


def test_other_files_are_refused_in_words(dat: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(dat.read_bytes()[:1_000_000])
    with pytest.raises(ModelError, match="not dlib's face-recognition ResNet: the file ends early"):
        load_dlib_resnet(truncated)
    with pytest.raises(ModelError, match="expected loss_metric"):
        load_dlib_resnet(model_path("dlib_shape5"))
    with pytest.raises(ModelError, match="cannot read dlib model"):
        load_dlib_resnet(tmp_path / "missing.dat")


def test_model_path_converts_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # like the .dat copies: offline, from the installed face_recognition_models, sha256-checked
    monkeypatch.setenv("SAFECITY_MODELS", str(tmp_path / "models"))
    path = model_path("dlib_resnet_onnx")
    assert path == tmp_path / "models" / "dlib_face_recognition_resnet_model_v1.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == get("dlib_resnet_onnx").sha256
