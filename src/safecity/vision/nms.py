"""Non-maximum suppression in pure numpy.

>>> boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
>>> nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), iou_threshold=0.5).tolist()
[0, 2]
>>> batched_nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 1, 0]), 0.5).tolist()
[0, 1, 2]
"""

from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(N, 4)`` x1, y1, x2, y2 boxes (0 for inverted boxes)."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over union of two sets of x1, y1, x2, y2 boxes."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first.

    A box is dropped when its IoU with an already kept, higher-scoring box is
    above ``iou_threshold``.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    areas = box_area(boxes)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        top_left = np.maximum(boxes[i, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """Class-wise NMS: boxes of different classes never suppress each other.

    Returns kept indices, highest score first.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, np.int64)
    # shift each class into its own region of the plane so one NMS pass does all classes
    span = float(boxes.max() - min(boxes.min(), 0.0)) + 1.0
    offsets = np.asarray(class_ids, np.float32).reshape(-1, 1) * span
    return nms(boxes + offsets, scores, iou_threshold)
