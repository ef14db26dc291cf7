"""Face embedders: an aligned face → a unit vector; cosine similarity compares two.

- :class:`DlibEmbedder` (default): dlib's ResNet, 128-d, fed a chip from
  :class:`~safecity.vision.align.DlibAligner`.
- :class:`ArcFaceEmbedder`: a user's own ArcFace ONNX (112x112 RGB,
  ``(x-127.5)/127.5``, NCHW or NHWC input, one 512-d (any size) output).

>>> emb = make_embedder(EmbedderConfig())                 # doctest: +SKIP
>>> v = emb.embed(image_bgr, face)                        # doctest: +SKIP
>>> v.shape, v.dtype, round(float(v @ v), 3)              # doctest: +SKIP
((128,), dtype('float32'), 1.0)
"""

from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from safecity.config import EmbedderConfig
from safecity.errors import ConfigError, ModelError
from safecity.vision.align import ARCFACE_SIZE, DlibAligner, arcface_chip
from safecity.vision.types import Face


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns a face in an image into a unit vector of ``dim`` floats."""

    name: str
    dim: int

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """float32 ``(dim,)`` vector of L2 norm 1."""
        ...


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    """float32 copy of ``vector`` scaled to unit length (zero stays zero).

    >>> l2_normalise(np.array([3.0, 4.0])).tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    v = np.asarray(vector, np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v.copy()


class DlibEmbedder:
    """dlib's face-recognition ResNet (128-d; dlib's rule: same person if euclidean < 0.6)."""

    name = "dlib"
    dim = 128

    def __init__(self, resnet_model: Path | None = None, shape_model: Path | None = None) -> None:
        import dlib

        if resnet_model is None:
            from safecity.models import model_path

            resnet_model = model_path("dlib_resnet")
        try:
            self._net = dlib.face_recognition_model_v1(str(resnet_model))
        except RuntimeError as exc:
            raise ModelError(f"cannot load dlib face model {resnet_model}: {exc}") from None
        self.aligner = DlibAligner(shape_model)
        # dlib's network keeps its layer outputs inside the object and is not
        # documented as thread-safe; camera threads share this one, so take turns
        # (the binding seems to hold the GIL anyway, so this costs nothing).
        self._lock = threading.RLock()

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        with self._lock:
            chip = self.aligner.chip(image_bgr, face)
            return self.embed_chip(chip)

    def embed_chip(self, chip_rgb: np.ndarray) -> np.ndarray:
        """Vector of an already aligned 150x150 RGB chip."""
        with self._lock:
            return l2_normalise(np.asarray(self._net.compute_face_descriptor(chip_rgb)))


def arcface_blob(chip_bgr: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """ArcFace input from a 112x112 BGR chip: RGB, ``(x-127.5)/127.5``, batch of one.

    >>> b = arcface_blob(np.full((112, 112, 3), 255, np.uint8)); b.shape, float(b.max())
    ((1, 3, 112, 112), 1.0)
    """
    rgb = chip_bgr[:, :, ::-1].astype(np.float32)
    x = (rgb - 127.5) / 127.5
    x = x[None] if nhwc else x.transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x)


class ArcFaceEmbedder:
    """A user's ArcFace ONNX (e.g. insightface's exports), fed the 112x112 template chip.

    Its ``name`` carries the model's sha256 prefix (:func:`arcface_name`), so
    templates made with one ArcFace model are never compared with another's.
    """

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        from safecity.models.onnx import open_session

        self.session = open_session(model_path, threads, what="ArcFace model")
        self.name = arcface_name(model_path)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ModelError(f"{model_path}: expected a 4-d image input, got shape {shape}")
        # NCHW (insightface) unless the channel axis is clearly last.
        self.nhwc = shape[3] == 3 and shape[1] != 3
        side = shape[1:3] if self.nhwc else shape[2:4]
        if any(isinstance(s, int) and s != ARCFACE_SIZE for s in side):
            raise ModelError(f"{model_path}: expected a 112x112 input, got shape {shape}")
        out = self.session.get_outputs()[0].shape
        last = out[-1] if out else None
        self.dim = int(last) if isinstance(last, int) else int(self._probe_dim())

    def _probe_dim(self) -> int:
        blank = np.zeros((ARCFACE_SIZE, ARCFACE_SIZE, 3), np.uint8)
        return int(self._run(arcface_blob(blank, self.nhwc)).size)

    def _run(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: blob})[0]).reshape(-1)

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_chip(arcface_chip(image_bgr, face))

    def embed_chip(self, chip_bgr: np.ndarray) -> np.ndarray:
        """Vector of an already aligned 112x112 BGR chip."""
        return l2_normalise(self._run(arcface_blob(chip_bgr, self.nhwc)))


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def arcface_name(model_path: Path) -> str:
    """``arcface-<12 hex of the model's sha256>``: two ArcFace models never share templates."""
    path = Path(model_path)
    try:
        stat = path.stat()
    except OSError:
        raise ModelError(f"ArcFace model file not found: {model_path}") from None
    return f"arcface-{_file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[:12]}"


def embedder_name(config: EmbedderConfig | None = None) -> str:
    """The name templates are stored under; equals ``make_embedder(config).name``.

    >>> embedder_name(EmbedderConfig())
    'dlib'
    """
    config = config or EmbedderConfig()
    if config.kind == "dlib":
        return DlibEmbedder.name
    if config.model_path is None:
        raise ConfigError("embedder.kind 'arcface' needs embedder.model_path (an ONNX file)")
    return arcface_name(config.model_path)


def make_embedder(config: EmbedderConfig | None = None) -> Embedder:
    """The embedder the config names (``dlib`` default, ``arcface`` with ``model_path``)."""
    config = config or EmbedderConfig()
    if config.kind == "dlib":
        return DlibEmbedder()
    if config.model_path is None:
        raise ConfigError("embedder.kind 'arcface' needs embedder.model_path (an ONNX file)")
    return ArcFaceEmbedder(config.model_path)
