"""Face detection with a quality score: YuNet (default) or a user's own SCRFD ONNX.

:class:`FaceDetector` finds faces in a whole image or in the head region of a
person box and returns :class:`~safecity.vision.types.Face` values in frame
pixels, each with its :func:`face_quality`, best first.

>>> det = FaceDetector(FacesConfig())                        # doctest: +SKIP
>>> faces = det.detect_in_box(frame.image, track.box)        # doctest: +SKIP
>>> best = faces[0] if faces and faces[0].quality >= 0.3 else None  # doctest: +SKIP

Supported SCRFD format (``kind: scrfd``, ``model_path: my.onnx``): the standard
insightface export with keypoints — one input ``1x3xHxW`` (RGB, ``(x-127.5)/128``,
fixed or dynamic size; dynamic runs at 640x640) and nine outputs, per stride 8,
16, 32 a score ``(N,1)``, a box ``(N,4)`` and a keypoint ``(N,10)`` tensor (a
leading batch axis of 1 is accepted), two anchors per grid cell, boxes as
distances from the cell centre in stride units. Outputs are recognised by their
last axis (1/4/10) and their length (stride 8 is the longest), not by name.
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from safecity.config import FacesConfig
from safecity.errors import ConfigError, ModelError
from safecity.vision.types import Face

# YuNet (libfacedetection) finds faces from about 10 px to about 400 px wide; beyond
# that it returns garbage. Crops are scaled so that their long side lies in this
# range: small person crops are upscaled so a head has enough pixels, large ones
# shrunk because a bigger input only costs time.
CROP_MIN_SIDE = 160
CROP_MAX_SIDE = 320
# A second, coarse pass at this long side catches faces too big for YuNet at full
# resolution (portrait photos). Only its faces at least COARSE_MIN_FACE frame px
# wide are kept: smaller ones the fine pass sees better, and at 1/3 scale YuNet
# mistakes the hair of a head bowed down for a second face (arcade clip).
COARSE_SIDE = 640
COARSE_MIN_FACE = 250.0
# The whole-frame search for faces outside person boxes (``faces.full_frame_side``)
# measured on every 5th frame of the 1080p arcade clip: at 1920 (+ the coarse pass)
# 479 ms a frame and 98 faces of quality >= 0.3; at 1280, 184 ms and 99; at 960,
# 72 ms and 112 of lower mean quality (0.59 vs 0.61). At 1280 and below YuNet also
# reads a red-haired man's hair as a face just above his own: the pipeline
# therefore leaves every face in a person's head to that person's own full-
# resolution search, and refines the faces it keeps at full resolution
# (:meth:`FaceDetector.refine`).
# Faces narrower than this are hopeless for recognition; at GOOD_SIZE and above
# size no longer limits quality (dlib's chip is 150 px for a face of ~100 px).
QUALITY_MIN_SIZE = 20.0
QUALITY_GOOD_SIZE = 80.0
# Variance of the Laplacian of the face resized to 64x64 grey at which sharpness
# scores 0.5 (measured: sharp LFW and arcade faces give 150-1500, a 5x5
# Gaussian-blurred one a fifth of that).
SHARPNESS_HALF = 100.0
NMS_IOU = 0.4


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best first.

    >>> nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32),
    ...     np.array([0.9, 0.8, 0.7], np.float32)).tolist()
    [0, 2]
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(xx2 - xx1, 0) * np.maximum(yy2 - yy1, 0)
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, np.int64)


# --------------------------------------------------------------------------- quality


def size_score(face: Face) -> float:
    """0 at ``QUALITY_MIN_SIZE`` px wide, 1 from ``QUALITY_GOOD_SIZE`` px up."""
    span = QUALITY_GOOD_SIZE - QUALITY_MIN_SIZE
    return float(np.clip((face.width - QUALITY_MIN_SIZE) / span, 0.0, 1.0))


def sharpness_score(image_bgr: np.ndarray, face: Face) -> float:
    """Variance of the Laplacian of the face, at a fixed 64x64 scale, mapped to 0..1.

    The crop is resized first so the figure measures detail *per face*, not per
    pixel: an upscaled tiny face is as blurred as it looks.
    """
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    grey = cv2.cvtColor(image_bgr[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    interp = cv2.INTER_AREA if (x2 - x1) > 64 else cv2.INTER_LINEAR
    grey = cv2.resize(grey, (64, 64), interpolation=interp)
    var = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return var / (var + SHARPNESS_HALF)


def pose_score(landmarks: np.ndarray) -> float:
    """1 for a frontal, upright face; falls with yaw (nose off the eyes' midline) and roll.

    Yaw: where the nose projects on the eye-to-eye segment (0.5 when frontal); a
    profile puts it near an eye. Roll up to 15 degrees costs nothing (alignment
    undoes it); beyond, it signals landmarks that are probably wrong.
    """
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    right_eye, left_eye, nose = pts[0], pts[1], pts[2]
    axis = left_eye - right_eye
    eye_dist2 = float(axis @ axis)
    if eye_dist2 < 1.0:
        return 0.0
    t = float((nose - right_eye) @ axis) / eye_dist2
    yaw = abs(t - 0.5) * 2.0  # 0 frontal, 1 nose under an eye
    roll = abs(math.degrees(math.atan2(axis[1], axis[0])))
    yaw_s = np.clip(1.0 - yaw / 0.8, 0.0, 1.0)
    roll_s = np.clip(1.0 - max(roll - 15.0, 0.0) / 45.0, 0.0, 1.0)
    return float(yaw_s * roll_s)


def face_quality(image_bgr: np.ndarray, face: Face) -> float:
    """How useful a face is for recognition, 0..1: geometric mean of size, sharpness and pose.

    A geometric mean so that any one factor near zero (tiny, blurred, profile)
    sinks the whole score, while three good factors keep their common level.
    """
    parts = (size_score(face), sharpness_score(image_bgr, face), pose_score(face.landmarks))
    return float(np.prod(parts) ** (1.0 / 3.0))


# --------------------------------------------------------------------------- backends

_Raw = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N,4), landmarks (N,5,2), scores (N,)


def _empty() -> _Raw:
    return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, np.float32)


class _YuNet:
    """libfacedetection's YuNet from the ``yuface`` wheel; weights are compiled in.

    The network is called through :mod:`ctypes`, not through ``yuface.detect``:
    the wheel's own binding holds the GIL for the whole call (measured: two
    threads detecting at once used 0.98 of a core), so cameras, which run one
    thread each, took turns at the costliest stage. A ``ctypes.CDLL`` call
    releases the GIL, and the library keeps no state between calls once its
    weights are unpacked (done once, at load, under a lock). Results are the
    same bytes ``yuface`` returns.
    """

    name = "yunet"

    def __init__(self) -> None:
        self._detect = _libfacedetection()

    def __call__(self, image_bgr: np.ndarray, min_score: float) -> _Raw:
        image = np.ascontiguousarray(image_bgr, np.uint8)
        h, w = image.shape[:2]
        result = np.zeros(_RESULT_BYTES, np.uint8)  # one per call: calls run in parallel
        self._detect(result.ctypes.data, image.ctypes.data, w, h, image.strides[0])
        count = int(result[:4].view(np.int32)[0])
        if count == 0:
            return _empty()
        # One face: 16 int16 (score 0..100, x, y, w, h, 5 landmark points, padding).
        # Kept signed, so a face cut by the image border keeps its negative coordinates.
        raw = result[4 : 4 + 32 * count].view(np.int16).reshape(count, 16).astype(np.float32)
        scores = raw[:, 0] / 100.0
        raw = raw[scores >= min_score]
        scores = scores[scores >= min_score]
        x, y, w, h = raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 4]
        boxes = np.stack([x, y, x + w, y + h], axis=1)
        landmarks = raw[:, 5:15].reshape(-1, 5, 2)
        return boxes, landmarks, scores


# libfacedetection's result buffer must be this large (facedetectcnn.cpp).
_RESULT_BYTES = 0x20000
_YUNET_LOCK = threading.Lock()
_YUNET_FUNCTION: Callable[..., object] | None = None


def _libfacedetection() -> Callable[..., object]:
    """``facedetect_cnn`` of the library inside the ``yuface`` wheel, its weights unpacked."""
    global _YUNET_FUNCTION
    with _YUNET_LOCK:
        if _YUNET_FUNCTION is not None:
            return _YUNET_FUNCTION
        spec = importlib.util.find_spec("yuface")
        if spec is None or not spec.submodule_search_locations:  # pragma: no cover
            raise ModelError("the yuface package is missing; reinstall safecity")
        folder = Path(next(iter(spec.submodule_search_locations)))
        try:
            library = ctypes.CDLL(str(folder / "libfacedetection.so"))
            # A C++ function: its mangled name, facedetect_cnn(uchar*, uchar*, int, int, int).
            function = library["_Z14facedetect_cnnPhS_iii"]
        except (OSError, AttributeError) as exc:  # pragma: no cover - another yuface build
            raise ModelError(
                f"cannot load YuNet from the yuface package in {folder}: {exc}"
            ) from None
        function.restype = ctypes.c_void_p
        function.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 3
        # The first call unpacks the weights into globals, unguarded: done here, once.
        # (Both arrays are held by names: a temporary's address would be freed memory.)
        side = CROP_MIN_SIDE
        result, blank = np.zeros(_RESULT_BYTES, np.uint8), np.zeros((side, side, 3), np.uint8)
        function(result.ctypes.data, blank.ctypes.data, side, side, blank.strides[0])
        _YUNET_FUNCTION = function
        return function


def _scrfd_anchor_centres(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    """Centres (x, y) of a stride's grid cells in input pixels, each repeated per anchor."""
    ys, xs = np.mgrid[: height // stride, : width // stride]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, anchors, axis=0)


def decode_scrfd(
    outputs: Sequence[np.ndarray],
    input_hw: tuple[int, int],
    min_score: float,
    strides: Sequence[int] = (8, 16, 32),
    anchors: int = 2,
) -> _Raw:
    """Decode the nine SCRFD outputs into boxes, landmarks and scores in input pixels.

    ``outputs`` may come in any order; each is ``(N, k)`` or ``(1, N, k)`` with k = 1
    (score), 4 (box distances) or 10 (keypoint offsets), in stride units. No NMS.
    """
    by_kind: dict[int, list[np.ndarray]] = {1: [], 4: [], 10: []}
    for out in outputs:
        arr = np.asarray(out, np.float32)
        arr = arr.reshape(-1, arr.shape[-1])
        if arr.shape[-1] not in by_kind:
            raise ModelError(f"unexpected SCRFD output with last axis {arr.shape[-1]}")
        by_kind[arr.shape[-1]].append(arr)
    if any(len(v) != len(strides) for v in by_kind.values()):
        raise ModelError("an SCRFD model needs 9 outputs: scores, boxes and keypoints per stride")
    for kind in by_kind:  # the finest stride has the most cells
        by_kind[kind].sort(key=len, reverse=True)
    height, width = input_hw
    all_boxes, all_kps, all_scores = [], [], []
    for level, stride in enumerate(strides):
        scores = by_kind[1][level][:, 0]
        centres = _scrfd_anchor_centres(height, width, stride, anchors)
        if len(centres) != len(scores):
            raise ModelError(
                f"SCRFD stride {stride}: {len(scores)} scores for {len(centres)} anchors"
            )
        keep = scores >= min_score
        if not keep.any():
            continue
        c = centres[keep]
        d = by_kind[4][level][keep] * stride
        k = by_kind[10][level][keep].reshape(-1, 5, 2) * stride
        all_boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
        all_kps.append(k + c[:, None, :])
        all_scores.append(scores[keep])
    if not all_scores:
        return _empty()
    return np.concatenate(all_boxes), np.concatenate(all_kps), np.concatenate(all_scores)


class _Scrfd:
    """A user's SCRFD ONNX (see the module docstring for the supported export)."""

    name = "scrfd"

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        from safecity.models.onnx import open_session

        self.session = open_session(model_path, threads, what="SCRFD model")
        if len(self.session.get_outputs()) != 9:
            raise ModelError(
                f"{model_path} has {len(self.session.get_outputs())} outputs; "
                "safecity supports SCRFD exports with keypoints (9 outputs)"
            )
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        self.input_hw = (h, w) if isinstance(h, int) and isinstance(w, int) else (640, 640)

    def __call__(self, image_bgr: np.ndarray, min_score: float) -> _Raw:
        blob, scale = scrfd_preprocess(image_bgr, self.input_hw)
        outputs = self.session.run(None, {self.input_name: blob})
        boxes, kps, scores = decode_scrfd(outputs, self.input_hw, min_score)
        if len(scores):
            keep = nms(boxes, scores)
            boxes, kps, scores = boxes[keep] / scale, kps[keep] / scale, scores[keep]
        return boxes, kps, scores


def scrfd_preprocess(image_bgr: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Letterbox into the input (top-left, aspect kept), RGB, ``(x-127.5)/128``, NCHW.

    Returns the blob and the scale from image to input pixels.
    """
    ih, iw = input_hw
    h, w = image_bgr.shape[:2]
    scale = min(ih / h, iw / w)
    nh, nw = max(int(round(h * scale)), 1), max(int(round(w * scale)), 1)
    canvas = np.zeros((ih, iw, 3), np.uint8)
    canvas[:nh, :nw] = cv2.resize(image_bgr, (nw, nh))
    rgb = canvas[:, :, ::-1].astype(np.float32)
    blob = ((rgb - 127.5) / 128.0).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(blob), scale


# --------------------------------------------------------------------------- detector


class FaceDetector:
    """Finds faces (box, 5 landmarks, score, quality) in frames or person boxes.

    Faces are filtered by ``config.min_score`` and ``config.min_size`` (width in
    frame pixels) and returned best quality first; ``config.min_quality`` is left
    to the caller (a low-quality face is still a face, e.g. for redaction).
    """

    def __init__(self, config: FacesConfig | None = None) -> None:
        self.config = config or FacesConfig()
        if self.config.kind == "yunet":
            self._backend: _YuNet | _Scrfd = _YuNet()
        elif self.config.model_path is None:
            raise ConfigError("faces.kind 'scrfd' needs faces.model_path pointing to an ONNX file")
        else:
            self._backend = _Scrfd(self.config.model_path)

    def detect(
        self,
        image_bgr: np.ndarray,
        max_side: int | None = None,
        region: np.ndarray | None = None,
    ) -> list[Face]:
        """All faces in a whole image, shrunk first to ``max_side`` (default
        ``config.max_side``) on its long side.

        ``region`` (x1, y1, x2, y2 in image pixels): only that part is searched, at the
        scale the whole image would be; faces come in whole-image pixels.
        """
        h, w = image_bgr.shape[:2]
        long_side = max(h, w)
        scales = [min(1.0, (max_side or self.config.max_side) / long_side)]
        if isinstance(self._backend, _YuNet) and long_side * scales[0] > 1.5 * COARSE_SIDE:
            scales.append(COARSE_SIDE / long_side)
        part, offset = image_bgr, (0.0, 0.0)
        if region is not None:
            x1, y1, x2, y2 = (int(round(float(v))) for v in region)
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if x2 - x1 < 2 or y2 - y1 < 2:
                return []
            part, offset = image_bgr[y1:y2, x1:x2], (float(x1), float(y1))
        raws = [self._run(part, s, offset) for s in scales]
        if len(raws) > 1:
            boxes, kps, scores = raws[1]
            big = boxes[:, 2] - boxes[:, 0] >= COARSE_MIN_FACE
            raws[1] = (boxes[big], kps[big], scores[big])
        boxes, kps, scores = (np.concatenate(parts) for parts in zip(*raws, strict=True))
        if len(raws) > 1 and len(scores):
            keep = nms(boxes, scores)
            boxes, kps, scores = boxes[keep], kps[keep], scores[keep]
        return self._faces(image_bgr, boxes, kps, scores)

    def detect_in_box(self, image_bgr: np.ndarray, person_box: np.ndarray) -> list[Face]:
        """Faces in the head region of a person box: its top ``upper_fraction``, padded.

        Only faces whose centre lies inside the person box are kept, so a
        neighbour's head that enters the padding is not attributed to this person.
        """
        h, w = image_bgr.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in np.asarray(person_box, np.float32).reshape(4))
        bw, bh = x2 - x1, y2 - y1
        if bw < 2 or bh < 2:
            return []
        # Detector boxes often clip the top of the head or an ear; a little padding
        # lets YuNet see the whole face, which its box and landmarks need.
        pad_x, pad_y = 0.1 * bw, 0.1 * bh * self.config.upper_fraction
        cx1 = int(max(math.floor(x1 - pad_x), 0))
        cy1 = int(max(math.floor(y1 - pad_y), 0))
        cx2 = int(min(math.ceil(x2 + pad_x), w))
        cy2 = int(min(math.ceil(y1 + bh * self.config.upper_fraction + pad_y), h))
        if cx2 - cx1 < 4 or cy2 - cy1 < 4:
            return []
        crop = image_bgr[cy1:cy2, cx1:cx2]
        long_side = max(crop.shape[:2])
        scale = float(np.clip(long_side, CROP_MIN_SIDE, CROP_MAX_SIDE)) / long_side
        boxes, kps, scores = self._run(crop, scale, (float(cx1), float(cy1)))
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (centres[:, 0] >= x1) & (centres[:, 0] <= x2) & (centres[:, 1] >= y1)
        return self._faces(image_bgr, boxes[inside], kps[inside], scores[inside])

    def refine(self, image_bgr: np.ndarray, face: Face) -> Face | None:
        """The same face found again at full resolution around ``face`` (from a shrunk
        whole-frame search): its landmarks are then precise enough to align. None
        when the closer look finds no face there."""
        found = self.around(image_bgr, face.box)
        if not found:
            return None
        from safecity.vision.nms import box_iou

        overlap = box_iou(face.box[None], np.stack([f.box for f in found]))[0]
        best = int(np.argmax(overlap))
        return found[best] if overlap[best] > 0.3 else None

    def around(self, image_bgr: np.ndarray, face_box: np.ndarray) -> list[Face]:
        """Faces at full resolution in the region around a face box: a face width to
        either side, half a face height above, one below (room for the face to
        have moved), best quality first.

        The region is searched as the head part of a pseudo person box.
        """
        x1, y1, x2, y2 = (float(v) for v in np.asarray(face_box, np.float32).reshape(4))
        fw, fh = x2 - x1, y2 - y1
        top = y1 - 0.5 * fh
        box = np.array(
            [x1 - fw, top, x2 + fw, top + 2.0 * fh / self.config.upper_fraction], np.float32
        )
        return self.detect_in_box(image_bgr, box)

    def _run(self, image: np.ndarray, scale: float, offset: tuple[float, float]) -> _Raw:
        """Run the backend on ``image`` resized by ``scale``; results in frame pixels."""
        if abs(scale - 1.0) > 1e-3:
            h, w = image.shape[:2]
            size = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(image, size, interpolation=interp)
        else:
            scale = 1.0
        boxes, kps, scores = self._backend(image, self.config.min_score)
        ox, oy = offset
        boxes = boxes / scale + np.array([ox, oy, ox, oy], np.float32)
        kps = kps / scale + np.array([ox, oy], np.float32)
        return boxes.astype(np.float32), kps.astype(np.float32), scores.astype(np.float32)

    def _faces(
        self, image_bgr: np.ndarray, boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray
    ) -> list[Face]:
        faces = []
        for box, lm, score in zip(boxes, kps, scores, strict=True):
            if box[2] - box[0] < self.config.min_size:
                continue
            face = Face(box=box.copy(), landmarks=lm.copy(), score=float(score))
            faces.append(replace(face, quality=face_quality(image_bgr, face)))
        faces.sort(key=lambda f: f.quality, reverse=True)
        return faces
