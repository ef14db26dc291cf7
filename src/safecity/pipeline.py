"""Wires the stages for one camera: frames in, tracks and finished events out.

The pipeline owns no I/O: it never opens a file, a socket or the database. A
source feeds it frames, it returns :class:`FrameResult` values, and whoever runs
it (``safecity.runtime``) hands finished events to sinks.

Per frame::

    MotionGate ─▶ ObjectDetector ─▶ Tracker ─▶ (person tracks) FaceDetector
        ─▶ best face of the track ─▶ Embedder ─▶ Matcher ─▶ Match | None

A face vector lives only inside the call that compares it and is dropped right
after (DESIGN.md invariant 2); snapshots carry the regions that sinks must
pixelate before the first write (invariant 3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

from safecity.config import SafecityConfig
from safecity.events import Event, Snapshot
from safecity.vision.coco import LABEL_TO_ID
from safecity.vision.filters import TrackEvidence, detection_mask
from safecity.vision.nms import box_iou
from safecity.vision.redact import FaceRedactor, clip_boxes, privacy_boxes
from safecity.vision.types import Detections, Face, Frame, Match, Track

if TYPE_CHECKING:  # the stages load models: imported only when Stages.load runs
    from safecity.video.motion import MotionGate
    from safecity.vision.detector import ObjectDetector
    from safecity.vision.embedder import Embedder
    from safecity.vision.faces import FaceDetector
    from safecity.vision.tracker import Tracker

log = logging.getLogger(__name__)

PERSON = LABEL_TO_ID["person"]

#: Returns the matcher for a camera at a frame's time, or None when no watchlist
#: is authorised there and then. The runtime supplies it; the pipeline never
#: reads the database.
MatcherProvider = Callable[[str, datetime], "MatcherLike | None"]


class MatcherLike(Protocol):
    def match(self, vector: np.ndarray) -> Match | None: ...


# Snapshot crops keep some context around the object.
CROP_MARGIN = 0.15
# A track's face is embedded again only when its quality beats the last
# embedded one by this much, and at most this often per track.
QUALITY_STEP = 0.08
MAX_EMBEDS_PER_TRACK = 6


@dataclass
class Stages:
    """The models, loaded once and shared by every camera of a process."""

    motion_factory: Callable[[], MotionGate]
    detector: ObjectDetector
    tracker_factory: Callable[[float], Tracker]
    face_detector: FaceDetector | None
    embedder: Embedder | None
    redactor: FaceRedactor  # always loaded: configuration cannot switch redaction off

    @classmethod
    def load(cls, config: SafecityConfig) -> Stages:
        from safecity.video.motion import MotionGate
        from safecity.vision.detector import ObjectDetector, nms_groups
        from safecity.vision.tracker import Tracker

        face_detector = embedder = None
        if config.faces.enabled:
            from safecity.vision.embedder import make_embedder
            from safecity.vision.faces import FaceDetector

            face_detector = FaceDetector(config.faces)
            embedder = make_embedder(config.embedder)
        return cls(
            motion_factory=lambda: MotionGate(config.motion),
            detector=ObjectDetector(config.detector),
            # Classes merged by NMS (car/truck/bus) also continue one another's tracks.
            tracker_factory=lambda fps: Tracker(
                config.tracker, fps=fps, class_groups=nms_groups(config.detector)
            ),
            face_detector=face_detector,
            embedder=embedder,
            redactor=FaceRedactor(),
        )


@dataclass
class TrackView:
    """What the console or an annotated video shows of a track in one frame."""

    track: Track
    face: Face | None = None
    match: Match | None = None


@dataclass
class FrameResult:
    frame: Frame
    analysed: bool  # False when the motion gate skipped the detector
    tracks: list[TrackView]
    ended: list[Event]
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Every person the detector saw in this frame, tracked or not: their heads are
    # hidden in anything stored (None when the detector did not run).
    people: np.ndarray | None = None


@dataclass
class _TrackState:
    track_id: int
    label: str
    started_at: datetime
    ended_at: datetime
    frames: int = 0
    best_score: float = -1.0
    snapshot: Snapshot | None = None
    embedded_quality: float = -1.0
    embeds: int = 0
    match: Match | None = None
    match_snapshot: Snapshot | None = None
    match_face: np.ndarray | None = None  # the matched face box, in match-snapshot pixels
    evidence: TrackEvidence = field(default_factory=TrackEvidence)  # score and movement


class CameraPipeline:
    """All stages for one camera.

    >>> # pipeline = CameraPipeline("gate-1", config, Stages.load(config), fps=10)
    >>> # for frame in source: result = pipeline.process(frame)
    >>> # events = pipeline.finish()
    """

    def __init__(
        self,
        camera: str,
        config: SafecityConfig,
        stages: Stages,
        fps: float,
        matcher_for: MatcherProvider | None = None,
    ) -> None:
        self.camera = camera
        self.config = config
        self.stages = stages
        self.motion = stages.motion_factory() if config.motion.enabled else None
        self.tracker = stages.tracker_factory(fps)
        # Tracks seen at the last analysed frame: shown again on frames the
        # motion gate skips, since nothing moved.
        self._last_active: list[Track] = []
        self.matcher_for = matcher_for
        self._states: dict[int, _TrackState] = {}
        self.frames_in = 0
        self.frames_analysed = 0

    # -- per frame ---------------------------------------------------------------
    def process(self, frame: Frame) -> FrameResult:
        timings: dict[str, float] = {}
        self.frames_in += 1
        t0 = time.perf_counter()
        moving = True
        if self.motion is not None:
            moving = self.motion.update(frame).moving
            timings["motion"] = (time.perf_counter() - t0) * 1000
        if not moving:
            ended = self._ended_events(self.tracker.update(None, frame.pts).ended, frame)
            return FrameResult(frame, False, self._views(self._last_active), ended, timings)

        self.frames_analysed += 1
        t1 = time.perf_counter()
        detections: Detections = self.stages.detector.detect(frame.image)
        timings["detector"] = (time.perf_counter() - t1) * 1000
        # Boxes outside their label's area/ratio limits are not tracked; every person
        # box still counts below for hiding heads.
        keep = detection_mask(detections, self.config.detector)
        tracked = detections if keep.all() else detections[keep]
        update = self.tracker.update(tracked, frame.pts)
        active: list[Track] = list(update.active)
        self._last_active = active
        people = detections.boxes[detections.class_ids == PERSON]

        t2 = time.perf_counter()
        faces = self._faces_for(frame, active)
        timings["faces"] = (time.perf_counter() - t2) * 1000
        matcher = None
        if self.matcher_for is not None and self.stages.embedder is not None:
            matcher = self.matcher_for(self.camera, frame.time)

        for track in active:
            state = self._state_for(track, frame)
            state.frames += 1
            state.ended_at = frame.time
            state.evidence.add(track.box, track.score, frame.pts)
            face = faces.get(track.track_id)
            if track.score > state.best_score:
                state.best_score = track.score
                state.snapshot = self._snapshot(frame, track, active, faces, people, keep=None)
            if face is not None:
                self._consider_face(state, frame, track, face, active, faces, people, matcher)
        timings["identify"] = (time.perf_counter() - t2) * 1000 - timings["faces"]
        ended = self._ended_events(update.ended, frame)
        views = [
            TrackView(t, faces.get(t.track_id), self._states[t.track_id].match) for t in active
        ]
        return FrameResult(frame, True, views, ended, timings, people=people)

    def finish(self) -> list[Event]:
        """End every open track (end of stream) and return their events."""
        ended = self.tracker.flush()
        events = [e for e in (self._event(self._states.pop(t.track_id, None)) for t in ended) if e]
        events += [e for e in (self._event(s) for s in self._states.values()) if e]
        self._states.clear()
        return events

    # -- faces and identity ------------------------------------------------------
    def _faces_for(self, frame: Frame, tracks: list[Track]) -> dict[int, Face]:
        """Best face inside the upper part of each person box, by quality."""
        detector = self.stages.face_detector
        if detector is None:
            return {}
        found: dict[int, Face] = {}
        boxes: dict[int, np.ndarray] = {}
        for track in tracks:
            if track.class_id != PERSON or track.box[2] - track.box[0] < self.config.faces.min_size:
                continue  # a person narrower than the smallest useful face has none
            faces = detector.detect_in_box(frame.image, track.box)
            if faces:
                found[track.track_id] = max(faces, key=lambda f: f.quality)
                boxes[track.track_id] = track.box
        return assign_faces(found, boxes)

    def _consider_face(
        self,
        state: _TrackState,
        frame: Frame,
        track: Track,
        face: Face,
        active: list[Track],
        faces: dict[int, Face],
        people: np.ndarray,
        matcher: MatcherLike | None,
    ) -> None:
        if (
            matcher is None
            or face.quality < self.config.faces.min_quality
            or state.embeds >= MAX_EMBEDS_PER_TRACK
            or face.quality < state.embedded_quality + QUALITY_STEP
        ):
            return
        # The vector lives only in this call: compared, then dropped (invariant 2).
        match = matcher.match(self.stages.embedder.embed(frame.image, face))
        state.embeds += 1
        state.embedded_quality = face.quality
        if match is not None and (state.match is None or match.score > state.match.score):
            state.match = match
            state.match_snapshot = self._snapshot(
                frame, track, active, faces, people, keep=track.track_id
            )
            offset = state.match_snapshot.frame_box[[0, 1, 0, 1]]
            state.match_face = (face.box - offset).astype(np.float32)
            log.info(
                "camera %s track %d: CANDIDATE match of person %d on %s (%.3f); "
                "not confirmed until %d reviewers agree",
                self.camera,
                track.track_id,
                match.person_id,
                match.watchlist_name,
                match.score,
                self.config.review.required_confirmations,
            )

    # -- snapshots ---------------------------------------------------------------
    def _snapshot(
        self,
        frame: Frame,
        track: Track,
        active: list[Track],
        faces: dict[int, Face],
        people: np.ndarray,
        keep: int | None,
    ) -> Snapshot:
        """Crop around the track; list every head and face in it that must be hidden.

        ``keep`` is the id of a matched track whose face stays visible for review.
        """
        h, w = frame.height, frame.width
        x1, y1, x2, y2 = track.box
        mx, my = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
        cx1, cy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
        cx2, cy2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if cx2 <= cx1 or cy2 <= cy1:
            cx1, cy1, cx2, cy2 = 0, 0, w, h
        crop = frame.image[cy1:cy2, cx1:cx2].copy()
        offset = np.array([cx1, cy1, cx1, cy1], np.float32)
        hide = [b - offset for b in privacy_boxes(active, faces, keep=keep, people=people)]
        redact = clip_boxes(np.array(hide, np.float32).reshape(-1, 4), crop.shape[1], crop.shape[0])
        return Snapshot(
            image=crop,
            box=(track.box - offset).astype(np.float32),
            frame_box=np.array([cx1, cy1, cx2, cy2], np.float32),
            redact_boxes=redact,
            frame_index=frame.index,
            time=frame.time,
        )

    def _finalise_snapshot(self, snapshot: Snapshot, keep_face: np.ndarray | None) -> Snapshot:
        """Also hide every face the redaction detector finds in the crop itself (a
        person the object detector missed), sparing only the matched face."""
        boxes = self.stages.redactor.hide(snapshot.image, snapshot.redact_boxes, keep=keep_face)
        return replace(snapshot, redact_boxes=boxes)

    # -- lifecycle ---------------------------------------------------------------
    def _state_for(self, track: Track, frame: Frame) -> _TrackState:
        state = self._states.get(track.track_id)
        if state is None:
            state = _TrackState(track.track_id, track.label, frame.time, frame.time)
            self._states[track.track_id] = state
        return state

    def _views(self, tracks: list[Track]) -> list[TrackView]:
        return [
            TrackView(t, None, self._states[t.track_id].match)
            for t in tracks
            if t.track_id in self._states
        ]

    def _ended_events(self, ended_tracks: list[Track], frame: Frame) -> list[Event]:
        events = []
        for track in ended_tracks:
            event = self._event(self._states.pop(track.track_id, None))
            if event is not None:
                events.append(event)
        if ended_tracks:
            ended_ids = {t.track_id for t in ended_tracks}
            self._last_active = [t for t in self._last_active if t.track_id not in ended_ids]
        return events

    def _event(self, state: _TrackState | None) -> Event | None:
        if state is None or state.snapshot is None:
            return None
        matched = state.match is not None
        if not matched and state.evidence.is_still_false_alarm(
            self.config.detector.filter_for(state.label)
        ):
            log.debug(
                "camera %s track %d (%s): no event, still (moved %.2f of its size) with a "
                "median score of %.2f",
                self.camera,
                state.track_id,
                state.label,
                state.evidence.movement,
                state.evidence.peak_median,
            )
            return None
        return Event(
            camera=self.camera,
            track_id=state.track_id,
            label=state.label,
            started_at=state.started_at,
            ended_at=state.ended_at,
            best_score=float(state.best_score),
            frames=state.frames,
            snapshot=self._finalise_snapshot(state.snapshot, keep_face=None),
            match=state.match,
            match_snapshot=(
                self._finalise_snapshot(state.match_snapshot, keep_face=state.match_face)
                if matched
                else None
            ),
        )


# -- pure helpers --------------------------------------------------------------
def assign_faces(faces: dict[int, Face], person_boxes: dict[int, np.ndarray]) -> dict[int, Face]:
    """Give a face seen through several overlapping person boxes to one person only.

    The owner is the person whose head (top centre of the box) is nearest the face
    centre, relative to the box width; the other boxes lose the face, so a
    neighbour can never be identified by someone else's face.

    >>> f = Face(np.array([10, 0, 20, 10], np.float32), np.zeros((5, 2), np.float32), 0.9)
    >>> boxes = {1: np.array([0, 0, 30, 90], np.float32), 2: np.array([12, 5, 60, 95], np.float32)}
    >>> sorted(assign_faces({1: f, 2: f}, boxes))
    [1]
    """
    ids = list(faces)
    owner: dict[int, int] = {}
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            if box_iou(faces[a].box[None], faces[b].box[None])[0, 0] > 0.5:
                keep = min((a, b), key=lambda t: _head_distance(faces[t], person_boxes[t]))
                drop = b if keep == a else a
                owner[drop] = keep
    return {t: f for t, f in faces.items() if t not in owner}


def _head_distance(face: Face, box: np.ndarray) -> float:
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    width = max(float(box[2] - box[0]), 1.0)
    head_x, head_y = (box[0] + box[2]) / 2, box[1] + 0.12 * (box[3] - box[1])
    return float(np.hypot(cx - head_x, cy - head_y)) / width
