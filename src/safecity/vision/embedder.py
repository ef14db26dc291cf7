"""Face embedders: an aligned face → a unit vector; cosine similarity compares two.

- :class:`DlibEmbedder` (default): dlib's ResNet, 128-d, fed a chip from
  :class:`~safecity.vision.align.DlibAligner`; the network runs in ONNX Runtime
  (:mod:`safecity.models.dlib_onnx`), several faces in one call.
- :class:`~safecity.vision.faceres.FaceResEmbedder` (``faceres``): HSE FaceRes, 1024-d.
- :class:`FusedEmbedder` (``fused``): both of the above in one vector, compared by
  the fused score of :mod:`safecity.identity.matcher` (not by a plain cosine).
- :class:`ArcFaceEmbedder`: a user's own ArcFace ONNX (112x112 RGB,
  ``(x-127.5)/127.5``, NCHW or NHWC input, one 512-d (any size) output).

Every embedder has ``parts``: the sizes of the unit-length sub-vectors its vector
is made of, in order (``(dim,)`` for a single embedder). Whoever averages or
compares vectors does it per part.

>>> emb = make_embedder(EmbedderConfig())                 # doctest: +SKIP
>>> v = emb.embed(image_bgr, face)                        # doctest: +SKIP
>>> v.shape, v.dtype, round(float(v @ v), 3)              # doctest: +SKIP
((128,), dtype('float32'), 1.0)
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from safecity.config import EmbedderConfig
from safecity.errors import ConfigError, ModelError
from safecity.vision.align import ARCFACE_SIZE, DLIB_CHIP_SIZE, DlibAligner, arcface_chip
from safecity.vision.types import Face


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns a face in an image into a unit vector of ``dim`` floats."""

    name: str
    dim: int
    parts: tuple[int, ...]  # sizes of the unit-norm sub-vectors, summing to dim

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """float32 ``(dim,)`` vector of L2 norm 1."""
        ...


def l2_normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 copy of a ``(n, d)`` matrix with each row scaled to unit length (zero rows stay).

    >>> l2_normalise_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    m = np.asarray(matrix, np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return (m / np.where(norms > 0, norms, 1)).astype(np.float32)


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    """float32 copy of ``vector`` scaled to unit length (zero stays zero).

    >>> l2_normalise(np.array([3.0, 4.0])).tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    v = np.asarray(vector, np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v.copy()


class DlibEmbedder:
    """dlib's face-recognition ResNet (128-d; dlib's rule: same person if euclidean < 0.6).

    The network is dlib's own, converted to ONNX by :mod:`safecity.models.dlib_onnx`
    (catalogue ``dlib_resnet_onnx``): its vectors equal dlib's
    ``compute_face_descriptor`` within 1e-6, so the name stays ``dlib`` and stored
    templates stay valid. Chips are aligned as before, by dlib's 5-point predictor
    and ``get_face_chip``. :meth:`embed_many` runs all faces of an image (and their
    mirror images, with ``flip``) in one ONNX Runtime call.

    >>> emb = DlibEmbedder(threads=2)                       # doctest: +SKIP
    >>> emb.embed_many(image_bgr, faces).shape              # doctest: +SKIP
    (3, 128)
    """

    name = "dlib"
    dim = 128
    parts = (128,)

    def __init__(
        self,
        model_path: Path | None = None,
        shape_model: Path | None = None,
        flip: bool = False,
        threads: int = 1,
    ) -> None:
        """``model_path``: the converted ONNX (default: the installed ``dlib_resnet_onnx``).
        ``flip``: average with the mirror image's vector (only inside the fused
        embedder, whose name covers it; plain ``dlib`` templates never are).
        ``threads``: ONNX Runtime intra-op threads."""
        from safecity.models.onnx import open_session

        if model_path is None:
            from safecity.models import model_path as installed

            model_path = installed("dlib_resnet_onnx")
        self.session = open_session(model_path, threads, what="dlib face model")
        self.input_name = self.session.get_inputs()[0].name
        self.aligner = DlibAligner(shape_model)
        self.flip = bool(flip)
        # ONNX Runtime sessions are thread-safe for run(); dlib's shape predictor is not
        # documented as such, and camera threads share this embedder: align in turns.
        self._align_lock = threading.Lock()

    def chips(self, image_bgr: np.ndarray, faces: Sequence[Face]) -> list[np.ndarray]:
        """Aligned 150x150 RGB chips of ``faces``; with ``flip``, then those of the
        mirror image (same order)."""
        with self._align_lock:
            chips = self.aligner.chips(image_bgr, faces)
            if self.flip and faces:
                width = image_bgr.shape[1]
                mirrored = [mirror_face(f, width) for f in faces]
                chips += self.aligner.chips(cv2.flip(image_bgr, 1), mirrored)
        return chips

    def raw_chips(self, chips_rgb: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, 128)`` descriptors as dlib returns them (not unit length), one call."""
        if len(chips_rgb) == 0:
            return np.zeros((0, self.dim), np.float32)
        batch = np.ascontiguousarray(np.stack(chips_rgb), dtype=np.uint8)
        if batch.shape[1:] != (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE, 3):
            raise ValueError(
                f"dlib chips are {DLIB_CHIP_SIZE}x{DLIB_CHIP_SIZE} RGB; got {batch.shape[1:]}"
            )
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, np.float32).reshape(len(chips_rgb), self.dim)

    def embed_chips(self, chips_rgb: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, 128)`` unit vectors of already aligned 150x150 RGB chips (no flip)."""
        return l2_normalise_rows(self.raw_chips(chips_rgb))

    def embed_chip(self, chip_rgb: np.ndarray) -> np.ndarray:
        """Vector of an already aligned 150x150 RGB chip."""
        return self.embed_chips([chip_rgb])[0]

    def embed_many(self, image_bgr: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """``(len(faces), 128)`` unit vectors of faces of one image, in one batch."""
        vectors = self.embed_chips(self.chips(image_bgr, faces))
        if not self.flip:
            return vectors
        n = len(faces)
        return l2_normalise_rows(vectors[:n] + vectors[n:])

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_many(image_bgr, [face])[0]


def mirror_face(face: Face, width: int) -> Face:
    """The same face in the image flipped left-right (box and landmarks).

    >>> f = Face(np.array([2, 1, 6, 5], np.float32), np.zeros((5, 2), np.float32), 0.9)
    >>> mirror_face(f, 20).box.tolist()
    [14.0, 1.0, 18.0, 5.0]
    """
    from dataclasses import replace

    x1, y1, x2, y2 = (float(v) for v in face.box)
    marks = np.asarray(face.landmarks, np.float32).copy()
    marks[:, 0] = width - marks[:, 0]
    # The person's right eye and mouth corner are image-left again after the flip.
    marks = marks[[1, 0, 2, 4, 3]]
    box = np.array([width - x2, y1, width - x1, y2], np.float32)
    return replace(face, box=box, landmarks=marks)


def mirror(image_bgr: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
    """The image flipped left-right and the same face in it (box and landmarks).

    >>> img = np.zeros((10, 20, 3), np.uint8)
    >>> f = Face(np.array([2, 1, 6, 5], np.float32), np.zeros((5, 2), np.float32), 0.9)
    >>> mirror(img, f)[1].box.tolist()
    [14.0, 1.0, 18.0, 5.0]
    """
    return np.ascontiguousarray(image_bgr[:, ::-1]), mirror_face(face, image_bgr.shape[1])


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
        self.parts = (self.dim,)

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


class FusedEmbedder:
    """dlib and FaceRes in one vector: ``[dlib (128) | faceres (1024)] / sqrt(2)``.

    Each part is a unit vector, and the whole is scaled by 1/sqrt(2) so that it is
    a unit vector too (enrolment checks that). A stored template therefore holds
    both embeddings. Two fused vectors are compared part by part: the fused
    score w·z_dlib + (1 − w)·z_faceres (:mod:`safecity.identity.matcher`), never
    the plain cosine of the whole. ``name`` is the calibration's version
    (``dlib+faceres-2``): the FaceRes mean descriptor lives there, so new
    calibration constants mean new vectors, stored under a new name.

    >>> emb = FusedEmbedder()                                 # doctest: +SKIP
    >>> v = emb.embed(image_bgr, face); emb.parts, v.shape    # doctest: +SKIP
    ((128, 1024), (1152,))
    """

    def __init__(self, dlib: DlibEmbedder | None = None, faceres=None, threads: int = 1) -> None:
        from safecity.identity.calibration import FUSED_NAME, load_calibration
        from safecity.vision.faceres import FaceResEmbedder

        self.dlib = dlib or DlibEmbedder(flip=load_calibration().dlib_flip, threads=threads)
        self.faceres = faceres or FaceResEmbedder(threads=threads)
        self.name = FUSED_NAME
        self.parts = (self.dlib.dim, self.faceres.dim)
        self.dim = sum(self.parts)

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        return self.embed_many(image_bgr, [face])[0]

    def embed_many(self, image_bgr: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """``(len(faces), dim)`` fused vectors: one batched call per network."""
        dlib = self.dlib.embed_many(image_bgr, faces)
        faceres = self.faceres.embed_many(image_bgr, faces)
        fused = [fuse_vectors(a, b) for a, b in zip(dlib, faceres, strict=True)]
        return np.stack(fused) if fused else np.zeros((0, self.dim), np.float32)


def fuse_vectors(*parts: np.ndarray) -> np.ndarray:
    """Unit parts → one unit vector: each part normalised, all scaled by 1/sqrt(n).

    >>> v = fuse_vectors(np.array([3.0, 4.0]), np.array([0.0, 2.0, 0.0]))
    >>> [round(float(x), 3) for x in v], round(float(v @ v), 3)
    ([0.424, 0.566, 0.0, 0.707, 0.0], 1.0)
    """
    units = [l2_normalise(p) for p in parts]
    return (np.concatenate(units) / np.sqrt(len(units))).astype(np.float32)


def split_parts(vector: np.ndarray, parts: tuple[int, ...]) -> list[np.ndarray]:
    """The unit sub-vectors of ``vector`` (each re-normalised), by ``parts``.

    >>> [p.tolist() for p in split_parts(np.array([0.6, 0.8, 0.0, 2.0]), (2, 2))]
    [[0.6000000238418579, 0.800000011920929], [0.0, 1.0]]
    """
    v = np.asarray(vector, np.float32).reshape(-1)
    if sum(parts) != v.size:
        raise ValueError(f"a vector of {v.size} values does not split into parts {parts}")
    bounds = np.cumsum((0, *parts))
    return [l2_normalise(v[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


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
    >>> embedder_name(EmbedderConfig(kind="fused"))
    'dlib+faceres-2'
    """
    config = config or EmbedderConfig()
    if config.kind == "dlib":
        return DlibEmbedder.name
    if config.kind == "faceres":
        return "faceres"
    if config.kind == "fused":
        from safecity.identity.calibration import FUSED_NAME

        return FUSED_NAME
    if config.model_path is None:
        raise ConfigError("embedder.kind 'arcface' needs embedder.model_path (an ONNX file)")
    return arcface_name(config.model_path)


def make_embedder(config: EmbedderConfig | None = None) -> Embedder:
    """The embedder the config names: ``dlib`` (default), ``faceres``, ``fused``, or
    ``arcface`` with ``model_path``."""
    config = config or EmbedderConfig()
    if config.kind == "dlib":
        return DlibEmbedder(threads=config.threads)
    if config.kind == "faceres":
        from safecity.vision.faceres import FaceResEmbedder

        return FaceResEmbedder(threads=config.threads)
    if config.kind == "fused":
        return FusedEmbedder(threads=config.threads)
    if config.model_path is None:
        raise ConfigError("embedder.kind 'arcface' needs embedder.model_path (an ONNX file)")
    return ArcFaceEmbedder(config.model_path, threads=config.threads)
