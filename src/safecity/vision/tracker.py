"""A ByteTrack-style multi-object tracker: stable ids for detections across frames.

Per update (Zhang et al., "ByteTrack", ECCV 2022):

1. every track's Kalman filter (constant velocity on centre x, centre y, aspect
   w/h and height) predicts its box at the frame's pts;
2. confirmed tracks, seen lately or lost for a while, are matched to high-score
   detections (Hungarian) by IoU with the predicted box or, where they do not
   overlap, by a distance gate that widens with the time the track was unseen;
3. confirmed tracks still unmatched that were seen at the previous update are
   matched to low-score detections with a stricter IoU: this keeps a person
   whose score dips under occlusion;
4. tentative tracks are matched to what is left; unmatched ones are dropped;
5. detections still unmatched with ``new_track_score`` or more start tentative
   tracks, confirmed after ``min_hits`` matches, when they get their id.

Matching is class-aware: a person never continues as a car. Time is pts, not
frame counts, so the detector can run at any rate: a track ends once unseen for
``lost_after_s`` seconds.

Given the frame (``update(detections, pts, image=frame.image)``) the tracker also
keeps a colour descriptor of each track's torso and legs
(:mod:`safecity.vision.reid`): a detection whose colours differ from a track's
(similarity under ``appearance_min``) never continues it, and among the ones
that may, the closer colours win. This is what holds people at low frame rates,
where a walker moves a good part of his width between analysed frames, groups
pass behind the sign, and the nearest box is not always the same person.
Without the frame, matching is by motion alone. ``update(None, pts)`` says "the motion gate skipped
the detector: nothing moved": tracks seen at the last update are kept as still
present where they were, and only tracks already lost keep ageing.

>>> # tracker = Tracker(TrackerConfig(), fps=10)
>>> # step = tracker.update(detections, frame.pts)   # step.active, step.ended
>>> # ended_at_stream_end = tracker.flush()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from safecity.config import TrackerConfig
from safecity.vision import reid
from safecity.vision.coco import COCO_LABELS
from safecity.vision.types import Detections, Track

# ByteTrack's second round asks for more overlap: low scores are often clutter.
_LOW_SCORE_IOU = 0.5
# Weights of the parts of a pair's gain: IoU above the minimum counts most; the
# nearness within the distance gate ranks pairs that do not overlap; colour
# similarity above ``appearance_min`` breaks ties between people side by side.
_GATE_WEIGHT = 0.2
_APPEARANCE_WEIGHT = 0.5
# A track's colours follow its detections slowly (exponential average), and only
# from boxes that no other detection overlaps this much (a crop of two people
# would teach the track someone else's colours).
_APPEARANCE_RATE = 0.2
_APPEARANCE_CLEAR_IOU = 0.2
# Kalman noise as a share of box height per frame period (DeepSORT/ByteTrack values).
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160


@dataclass(frozen=True)
class TrackerUpdate:
    """What one update produced."""

    active: list[Track]  # confirmed tracks matched in this frame (box = the detection's)
    ended: list[Track]  # confirmed tracks that ended now (box and score last seen)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): (N, M).

    >>> float(box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0])
    0.3333333333333333
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def assign(gain: np.ndarray) -> list[tuple[int, int]]:
    """Row-column pairs maximising the total gain; pairs with gain <= 0 are left out.

    Hungarian algorithm (shortest augmenting paths with potentials), O(n²m).
    Leaving a pair out is worth 0, so a pair is only taken where it pays, as with
    ByteTrack's cost limit.

    >>> assign(np.array([[0.9, 0.8], [0.7, -1.0]]))
    [(0, 1), (1, 0)]
    """
    gain = np.asarray(gain, np.float64)
    if gain.size == 0:
        return []
    # Rows and columns without a single positive gain cannot be in a useful pair.
    rows = np.flatnonzero((gain > 0).any(axis=1))
    cols = np.flatnonzero((gain > 0).any(axis=0))
    if len(rows) == 0:
        return []
    cost = -np.maximum(gain[np.ix_(rows, cols)], 0.0)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    pairs = _hungarian(cost)
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    out = [(int(rows[r]), int(cols[c])) for r, c in pairs]
    return sorted((r, c) for r, c in out if gain[r, c] > 0)


def _hungarian(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment of every row of an n×m matrix (n <= m)."""
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, np.int64)  # owner[j]: 1-based row holding column j; 0 = free
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    return [(int(owner[j]) - 1, j - 1) for j in range(1, m + 1) if owner[j]]


# -- Kalman filter, batched over tracks ----------------------------------------------
# State: cx, cy, aspect (w/h), h and their velocities per frame period.
_H = np.hstack([np.eye(4), np.zeros((4, 4))])


def _to_xyah(boxes: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def _to_xyxy(xyah: np.ndarray) -> np.ndarray:
    h = np.maximum(xyah[:, 3], 1e-3)
    w = xyah[:, 2] * h
    cx, cy = xyah[:, 0], xyah[:, 1]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _kalman_init(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = _to_xyah(boxes)
    mean = np.hstack([z, np.zeros_like(z)])
    h = z[:, 3]
    std = np.stack(
        [2 * _STD_POSITION * h, 2 * _STD_POSITION * h, np.full_like(h, 1e-2), 2 * _STD_POSITION * h,
         10 * _STD_VELOCITY * h, 10 * _STD_VELOCITY * h, np.full_like(h, 1e-5),
         10 * _STD_VELOCITY * h],
        axis=1,
    )  # fmt: skip
    cov = np.einsum("ni,ij->nij", std**2, np.eye(8))
    return mean, cov


def _kalman_predict(
    mean: np.ndarray, cov: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Advance each state by ``steps`` frame periods (fractional allowed)."""
    n = len(mean)
    f = np.tile(np.eye(8), (n, 1, 1))
    f[:, np.arange(4), np.arange(4) + 4] = steps[:, None]
    h = mean[:, 3]
    std = np.stack(
        [_STD_POSITION * h, _STD_POSITION * h, np.full_like(h, 1e-2), _STD_POSITION * h,
         _STD_VELOCITY * h, _STD_VELOCITY * h, np.full_like(h, 1e-5), _STD_VELOCITY * h],
        axis=1,
    )  # fmt: skip
    # Process noise grows with the time elapsed (a random walk per frame period).
    q = np.einsum("ni,ij->nij", std**2 * steps[:, None], np.eye(8))
    mean = np.einsum("nij,nj->ni", f, mean)
    cov = f @ cov @ f.transpose(0, 2, 1) + q
    return mean, cov


def _kalman_update(
    mean: np.ndarray, cov: np.ndarray, boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    z = _to_xyah(boxes)
    h = mean[:, 3]
    r_std = np.stack(
        [_STD_POSITION * h, _STD_POSITION * h, np.full_like(h, 1e-1), _STD_POSITION * h], axis=1
    )
    s = cov[:, :4, :4] + np.einsum("ni,ij->nij", r_std**2, np.eye(4))
    gain = np.linalg.solve(s, cov[:, :4, :]).transpose(0, 2, 1)  # K = P Hᵀ S⁻¹, (n, 8, 4)
    mean = mean + np.einsum("nij,nj->ni", gain, z - mean[:, :4])
    cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return mean, cov


@dataclass
class _State:
    class_id: int
    mean: np.ndarray  # (8,)
    cov: np.ndarray  # (8, 8)
    box: np.ndarray  # last detection box
    score: float
    last_seen: float  # pts of the last match (or of a still frame while present)
    predicted_at: float  # pts the Kalman state refers to
    hits: int = 1
    present: bool = True  # matched at the latest update
    track_id: int = 0  # 0 while tentative
    votes: dict[int, float] = field(default_factory=dict)  # summed score per class
    appearance: np.ndarray | None = None  # reid descriptor (None: never seen in a frame)

    def vote(self, class_id: int, score: float) -> None:
        """Within a class group (car/truck/bus) the label is the class with the most
        summed score so far, so a van read as car then truck stays one track."""
        self.votes[class_id] = self.votes.get(class_id, 0.0) + score
        self.class_id = max(self.votes, key=self.votes.__getitem__)

    def as_track(self) -> Track:
        return Track(self.track_id, self.class_id, self.box.copy(), self.score)


class Tracker:
    """One tracker per camera stream; see the module docstring."""

    def __init__(
        self, config: TrackerConfig, fps: float, class_groups: np.ndarray | None = None
    ) -> None:
        """``class_groups`` maps each COCO class id to a group id: a track continues
        only with detections of its group (default: each class its own group)."""
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.config = config
        self.class_groups = (
            np.arange(len(COCO_LABELS)) if class_groups is None else np.asarray(class_groups)
        )
        self.fps = float(fps)
        self._tracks: list[_State] = []
        self._next_id = 1
        self._pts: float | None = None

    @property
    def tracks(self) -> list[Track]:
        """Confirmed tracks alive now (seen or not at the latest update)."""
        return [t.as_track() for t in self._tracks if t.track_id]

    def update(
        self, detections: Detections | None, pts: float, image: np.ndarray | None = None
    ) -> TrackerUpdate:
        """Feed one frame's detections (``None``: the detector was skipped, nothing moved).

        ``image`` is the frame the detections come from (BGR): with it, the colours
        of each box help decide who continues which track.
        """
        if self._pts is not None and pts < self._pts:
            # A stream restarted (pts went back): nothing can be continued across that.
            ended = self.flush()
            self._pts = pts
            return TrackerUpdate([], ended)
        self._pts = pts
        if detections is None:
            return TrackerUpdate([], self._still(pts))
        self._predict(pts)
        cfg = self.config
        scores = detections.scores
        looks = None
        if image is not None and cfg.appearance_min > 0 and len(detections):
            looks = reid.describe(image, detections.boxes)
        unused = np.ones(len(detections), bool)
        matched: dict[int, int] = {}  # index into self._tracks -> detection index

        confirmed = [i for i, t in enumerate(self._tracks) if t.track_id]
        tentative = [i for i, t in enumerate(self._tracks) if not t.track_id]
        high = scores >= cfg.high_score
        low = (scores >= cfg.low_score) & ~high

        match = self._match
        match(confirmed, detections, unused & high, cfg.match_iou, matched, unused, pts, looks)
        recent = [i for i in confirmed if i not in matched and self._tracks[i].present]
        # ByteTrack's low-score round stays by overlap alone: low scores are often clutter.
        low_iou = max(_LOW_SCORE_IOU, cfg.match_iou)
        match(recent, detections, unused & low, low_iou, matched, unused, pts, looks, gate=False)
        strong = scores >= cfg.new_track_score
        match(tentative, detections, unused & strong, cfg.match_iou, matched, unused, pts, looks)

        if matched:
            idx = np.array(list(matched))
            det = np.array([matched[i] for i in idx])
            mean, cov = _kalman_update(
                np.stack([self._tracks[i].mean for i in idx]),
                np.stack([self._tracks[i].cov for i in idx]),
                detections.boxes[det].astype(np.float64),
            )
            clear = _clear_of_others(detections.boxes) if looks is not None else None
            for k, (i, d) in enumerate(zip(idx, det, strict=True)):
                t = self._tracks[i]
                t.mean, t.cov = mean[k], cov[k]
                t.box = detections.boxes[d].copy()
                t.score = float(scores[d])
                t.vote(int(detections.class_ids[d]), t.score)
                t.hits += 1
                t.last_seen = pts
                if clear is not None and (clear[d] or t.appearance is None):
                    t.appearance = reid.blend(t.appearance, looks[d], _APPEARANCE_RATE)
        for i, t in enumerate(self._tracks):
            t.present = i in matched

        # Tentative tracks must be seen again at once, or they were noise.
        survivors = [t for i, t in enumerate(self._tracks) if t.track_id or i in matched]
        ended = [t for t in survivors if pts - t.last_seen > cfg.lost_after_s]
        self._tracks = [t for t in survivors if pts - t.last_seen <= cfg.lost_after_s]
        self._start(detections, np.flatnonzero(unused & strong), pts, looks)
        for t in self._tracks:
            if not t.track_id and t.hits >= cfg.min_hits:
                t.track_id = self._next_id
                self._next_id += 1
        active = [t.as_track() for t in self._tracks if t.track_id and t.present]
        return TrackerUpdate(active, [t.as_track() for t in ended])

    def flush(self) -> list[Track]:
        """End every confirmed track (end of stream); the tracker starts empty again."""
        ended = [t.as_track() for t in self._tracks if t.track_id]
        self._tracks = []
        return ended

    # -- internals -------------------------------------------------------------
    def _still(self, pts: float) -> list[Track]:
        """Nothing moved: present tracks stay where they are; lost ones keep ageing."""
        for t in self._tracks:
            if t.present:
                t.last_seen = pts
                t.predicted_at = pts  # still: the Kalman state is not advanced
        ended = [t for t in self._tracks if pts - t.last_seen > self.config.lost_after_s]
        self._tracks = [t for t in self._tracks if pts - t.last_seen <= self.config.lost_after_s]
        return [t.as_track() for t in ended if t.track_id]

    def _predict(self, pts: float) -> None:
        if not self._tracks:
            return
        steps = np.array([max(0.0, pts - t.predicted_at) * self.fps for t in self._tracks])
        mean = np.stack([t.mean for t in self._tracks])
        # As ByteTrack: a track not seen last time keeps its size rather than growing
        # or shrinking on a stale height velocity.
        lost = np.array([not t.present for t in self._tracks])
        mean[lost, 7] = 0.0
        mean, cov = _kalman_predict(mean, np.stack([t.cov for t in self._tracks]), steps)
        for k, t in enumerate(self._tracks):
            t.mean, t.cov, t.predicted_at = mean[k], cov[k], pts

    def _match(
        self,
        track_idx: list[int],
        detections: Detections,
        allowed: np.ndarray,
        min_iou: float,
        matched: dict[int, int],
        unused: np.ndarray,
        pts: float,
        looks: np.ndarray | None,
        gate: bool = True,
    ) -> None:
        det_idx = np.flatnonzero(allowed)
        if not track_idx or len(det_idx) == 0:
            return
        cfg = self.config
        tracks = [self._tracks[i] for i in track_idx]
        predicted = _to_xyxy(np.stack([t.mean[:4] for t in tracks]))
        boxes = detections.boxes[det_idx].astype(np.float64)
        iou = box_iou(predicted, boxes)
        groups = self.class_groups
        same_class = (
            groups[np.array([t.class_id for t in tracks])][:, None]
            == groups[detections.class_ids[det_idx]][None, :]
        )
        gain = np.where(iou >= min_iou, iou - min_iou, 0.0)
        allowed_pairs = iou >= min_iou
        if gate and cfg.gate_heights > 0:
            # Centre distance in track heights, to the predicted centre or to the last
            # one seen, whichever is nearer: a walker who turns back is nearer where
            # he was than where his old velocity would take him.
            last = np.stack([t.box for t in tracks]).astype(np.float64)
            height = np.maximum(predicted[:, 3] - predicted[:, 1], 1.0)[:, None]
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            distance = (
                np.minimum(_centre_distance(predicted, centres), _centre_distance(last, centres))
                / height
            )
            unseen = np.array([max(0.0, pts - t.last_seen) for t in tracks])[:, None]
            radius = cfg.gate_heights + cfg.gate_heights_per_s * unseen
            near = distance <= radius
            allowed_pairs |= near
            gain += np.where(near, _GATE_WEIGHT * (1 - distance / radius), 0.0)
        if looks is not None:
            known = np.array([t.appearance is not None for t in tracks])
            if known.any():
                own = np.stack(
                    [t.appearance if t.appearance is not None else looks[0] for t in tracks]
                )
                similar = reid.similarity(own[:, None, :], looks[det_idx][None, :, :])
                # Colours veto every re-link of a lost track and every continuation
                # by the gate alone; not a track seen at the last update that
                # overlaps: crops of people in a group mix their colours.
                present = np.array([t.present for t in tracks])[:, None]
                sure = present & (iou >= min_iou)
                alike = ~known[:, None] | (similar >= cfg.appearance_min) | sure
                allowed_pairs &= alike
                gain += np.where(
                    known[:, None], _APPEARANCE_WEIGHT * (similar - cfg.appearance_min), 0.0
                )
        # Every allowed pair is worth a little more than no pair at all.
        gain = np.where(same_class & allowed_pairs, np.maximum(gain, 0.0) + 1e-6, 0.0)
        for r, c in assign(gain):
            matched[track_idx[r]] = int(det_idx[c])
            unused[det_idx[c]] = False

    def _start(
        self, detections: Detections, det_idx: np.ndarray, pts: float, looks: np.ndarray | None
    ) -> None:
        if len(det_idx) == 0:
            return
        boxes = detections.boxes[det_idx].astype(np.float64)
        mean, cov = _kalman_init(boxes)
        for k, d in enumerate(det_idx):
            class_id = int(detections.class_ids[d])
            self._tracks.append(
                _State(
                    class_id=class_id,
                    votes={class_id: float(detections.scores[d])},
                    mean=mean[k],
                    cov=cov[k],
                    box=detections.boxes[d].copy(),
                    score=float(detections.scores[d]),
                    last_seen=pts,
                    predicted_at=pts,
                    appearance=None if looks is None else looks[d].copy(),
                )
            )


def _centre_distance(boxes: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Distance from the centre of every box (N, 4) to every point (M, 2): (N, M)."""
    own = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.hypot(own[:, None, 0] - centres[None, :, 0], own[:, None, 1] - centres[None, :, 1])


def _clear_of_others(boxes: np.ndarray) -> np.ndarray:
    """(N,) bool: the boxes that no other box overlaps by ``_APPEARANCE_CLEAR_IOU`` or more."""
    iou = box_iou(boxes, boxes)
    np.fill_diagonal(iou, 0.0)
    return (
        (iou < _APPEARANCE_CLEAR_IOU).all(axis=1) if len(boxes) > 1 else np.ones(len(boxes), bool)
    )


__all__ = ["Tracker", "TrackerUpdate", "assign", "box_iou"]
