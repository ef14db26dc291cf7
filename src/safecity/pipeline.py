"""Wires the stages for one camera: frames in, tracks and finished events out.

The pipeline owns no I/O: it never opens a file, a socket or the database. A
source feeds it frames, it returns :class:`FrameResult` values, and whoever runs
it (``safecity.runtime``) hands finished events to sinks.

Per frame::

    MotionGate ─▶ ObjectDetector ─▶ Tracker ──────────────┐
        (still frames analysed anyway at motion.track_min_fps while a track lives)
    FaceDetector over the whole frame ─▶ faces ─▶ person track whose head holds the face
                                          └─▶ else face-only Tracker (its own ids)
    per track: best K faces by quality ─▶ Embedder ─▶ quality-weighted aggregate
        ─▶ Matcher ─▶ Match | None

Faces are searched wherever they are (``faces.full_frame``): a person the object
detector misses (body cut by the frame's edge, seated close to the camera) is
still identified, through a *face-only* track whose event is a person event
with ``face_only`` set and a head-and-shoulders snapshot.

What lives how long (DESIGN.md invariant 2): a probe face vector is kept in
memory only, in its track's :class:`TrackIdentity` (at most
``faces.track_best_k`` vectors per track, those of its best faces), for as long
as the track lives; when the track ends (or the stream does) the vectors are
zeroed and dropped, matched or not. No vector is ever put in an event, a
snapshot, a log line or a :class:`FrameResult`. Snapshots carry the regions
that sinks must pixelate before the first write (invariant 3); a face-only
track's face is one of them unless it is the matched face.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

from safecity.config import SafecityConfig
from safecity.events import VEHICLE_LABELS, Event, PlateRead, Snapshot
from safecity.video.pacing import due_again
from safecity.vision.coco import LABEL_TO_ID
from safecity.vision.filters import StillSpots, TrackEvidence, detection_mask
from safecity.vision.nms import box_iou, nms
from safecity.vision.plate_track import TrackPlate
from safecity.vision.redact import FaceRedactor, clip_boxes, privacy_boxes
from safecity.vision.types import Detections, Face, Frame, Match, Track

if TYPE_CHECKING:  # the stages load models: imported only when Stages.load runs
    from safecity.video.motion import MotionGate
    from safecity.vision.detector import ObjectDetector
    from safecity.vision.embedder import Embedder
    from safecity.vision.faces import FaceDetector
    from safecity.vision.plates import PlateReader
    from safecity.vision.tracker import Tracker

log = logging.getLogger(__name__)

PERSON = LABEL_TO_ID["person"]

#: Returns the matcher for a camera at a frame's time, or None when no watchlist
#: is authorised there and then. The runtime supplies it; the pipeline never
#: reads the database.
MatcherProvider = Callable[[str, datetime], "MatcherLike | None"]
#: The same for plate watchlists: asked when a vehicle's event ends with a plate read.
PlateMatcherProvider = Callable[[str, datetime], "PlateMatcherLike | None"]


class MatcherLike(Protocol):
    def match(self, vector: np.ndarray, embedder: str | None = None) -> Match | None:
        """``embedder`` names who made ``vector``; a gallery of another embedder refuses it."""
        ...


class PlateMatcherLike(Protocol):
    def match(self, read: PlateRead) -> Match | None:
        """The listed vehicle ``read`` is (safecity.identity.plate_lists), or None."""
        ...


# Snapshot crops keep some context around the object.
CROP_MARGIN = 0.15
# Once a track holds its K best faces, a new face is embedded only when its quality
# beats the worst of them by this much. Each such face raises the K qualities' sum
# by more than this, and the sum is at most K, so a track is embedded at most
# K + K / EMBED_MARGIN times however long it lives (105 for K = 5).
EMBED_MARGIN = 0.05
# A track's aggregate match stands only when faces that match the same person on
# their own hold more than this share of its best faces' quality weight.
MIN_SUPPORT = 0.5
# ... and at least this many of its faces match that person on their own: one face
# never makes a match. Arcade clip, dlib: a 25-30 px face of a woman far behind
# another person's head (quality 0.30-0.36, the only faces of that track good
# enough to embed) scored 0.927 against the enrolled man; his own tracks have
# dozens of matching faces at 0.98.
MIN_AGREEING_FACES = 2
# Face-only tracks come from a tracker of their own, whose ids start at 1 as the
# person tracker's do: they are shifted by this much so that the two never meet
# (in events, event uuids and views). Below 2**31: the store's track_id column is
# a 32-bit integer on PostgreSQL.
FACE_TRACK_ID_BASE = 1_000_000_000
# A face-only track's box (and snapshot) is the head and shoulders around its
# face: this many face widths to either side of the face's centre, face heights
# above its top and below its bottom.
HS_HALF_WIDTH = 1.25
HS_ABOVE = 0.4
HS_BELOW = 1.5
# Faces found again in overlapping regions between whole-frame searches: boxes
# overlapping more than this are one face (the face detector's own NMS overlap).
FOLLOW_NMS_IOU = 0.4
# The whole-frame face search limited to motion (CameraPipeline._new_faces_region): a
# motion box at least this share inside a person's box is that person's movement; the
# box around the rest grows by this share of the frame's long side (a head whose
# body moved, the face at the edge of the change); covering at least this share of
# the frame, the whole frame is searched instead.
MOVED_INSIDE_PERSON = 0.7
NEW_FACE_MARGIN = 0.05
WHOLE_FRAME_SHARE = 0.7
# A face is at most this share of its person box's width, so a box narrower than
# faces.min_size / MAX_FACE_SHARE holds no face worth a search. Measured (issue 13,
# faces found in person heads): arcade crowd at 25 fps median 0.23, p99 0.38, max 0.48
# of 897; seated GIF max 0.39. On the pedestrians clip 93 % of the head searches
# were of boxes under 48 px wide, and none of them found a face.
MAX_FACE_SHARE = 0.6


@dataclass
class Stages:
    """The models, loaded once and shared by every camera of a process."""

    motion_factory: Callable[[], MotionGate]
    detector: ObjectDetector
    tracker_factory: Callable[[float], Tracker]
    face_detector: FaceDetector | None
    embedder: Embedder | None
    redactor: FaceRedactor  # always loaded: configuration cannot switch redaction off
    # Licence plates: the reader loads at the first vehicle worth reading (about a second
    # of model loading that a camera seeing no vehicles never pays).
    plate_reader_factory: Callable[[], PlateReader] | None = None
    _plate_reader: PlateReader | None = field(default=None, init=False, repr=False)
    _plate_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def plate_reader(self) -> PlateReader | None:
        """The shared plate reader (loaded once, on first use), or None when plates are off."""
        if self.plate_reader_factory is None:
            return None
        with self._plate_lock:
            if self._plate_reader is None:
                self._plate_reader = self.plate_reader_factory()
            return self._plate_reader

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
        plates = None
        if config.plates.enabled:

            def plates() -> PlateReader:
                from safecity.vision.plates import PlateReader

                return PlateReader(
                    countries=config.plates.countries,
                    threads=config.detector.threads,
                    det_side=config.plates.det_side,
                )

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
            plate_reader_factory=plates,
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
class FaceEvidence:
    """One of a track's best faces: its quality, its probe vector (memory only) and
    what a match on it would show (the snapshot and the face box in its pixels)."""

    quality: float
    vector: np.ndarray
    person_id: int | None = None  # whom this face alone matches, if anyone
    snapshot: Snapshot | None = None
    face_box: np.ndarray | None = None


class TrackIdentity:
    """Up to ``k`` best faces of one track, by quality; the track's identity is the
    match of their quality-weighted aggregate, backed by a quality-weighted
    majority of them (:meth:`decide`), so one blurred or misread frame neither
    makes nor breaks a match. (The pipeline keeps a track's best decision: a later
    set of faces that no longer matches does not withdraw it.)

    The aggregate is re-normalised per part (``parts``: lengths of the unit-norm
    sub-vectors an embedder concatenates, e.g. ``(128, 1024)`` for dlib + FaceRes),
    so each embedder keeps its own weight in a fused vector.

    >>> ident = TrackIdentity(k=2, parts=(2,))
    >>> ident.wants(0.5)
    True
    >>> ident.add(FaceEvidence(0.9, np.array([1.0, 0.0], np.float32)))
    >>> ident.add(FaceEvidence(0.3, np.array([0.0, 1.0], np.float32)))
    >>> [round(float(v), 3) for v in ident.aggregate()]  # the sharp face weighs 3 times more
    [0.949, 0.316]
    >>> ident.wants(0.32), ident.wants(0.4)
    (False, True)
    >>> ident.clear(); ident.aggregate() is None
    True
    """

    def __init__(self, k: int, parts: tuple[int, ...], embedder: str | None = None) -> None:
        self.k = int(k)
        self.parts = tuple(int(p) for p in parts)
        self.embedder = embedder  # checked against the gallery's at every match
        self.best: list[FaceEvidence] = []

    def wants(self, quality: float) -> bool:
        """Whether a face of this quality would enter the best ``k`` (worth embedding)."""
        if len(self.best) < self.k:
            return True
        return quality > min(e.quality for e in self.best) + EMBED_MARGIN

    def add(self, evidence: FaceEvidence) -> None:
        """Keep ``evidence`` among the best ``k``; the face pushed out is zeroed and dropped."""
        self.best.append(evidence)
        self.best.sort(key=lambda e: e.quality, reverse=True)
        for dropped in self.best[self.k :]:
            dropped.vector.fill(0.0)
        del self.best[self.k :]

    def observe(
        self,
        quality: float,
        vector: np.ndarray,
        matcher: MatcherLike,
        snapshot: Snapshot | None = None,
        face_box: np.ndarray | None = None,
    ) -> None:
        """Add one embedded face, noting whom it matches on its own."""
        alone = matcher.match(vector, self.embedder)
        person_id = None if alone is None else alone.person_id
        self.add(FaceEvidence(quality, vector, person_id, snapshot, face_box))

    def aggregate(self) -> np.ndarray | None:
        """Quality-weighted sum of the best vectors, each part scaled back to unit norm."""
        if not self.best:
            return None
        weights = np.array([max(e.quality, 1e-3) for e in self.best], np.float32)
        total = (weights[:, None] * np.stack([e.vector for e in self.best])).sum(axis=0)
        start = 0
        for size in self.parts if sum(self.parts) == total.size else (total.size,):
            norm = float(np.linalg.norm(total[start : start + size]))
            if norm > 0:
                total[start : start + size] /= norm
            start += size
        return total.astype(np.float32)

    def support(self, person_id: int) -> float:
        """Share of the best faces' quality weight held by faces that match
        ``person_id`` on their own (0..1)."""
        total = sum(e.quality for e in self.best)
        mine = sum(e.quality for e in self.best if e.person_id == person_id)
        return mine / total if total > 0 else 0.0

    def decide(self, matcher: MatcherLike) -> Match | None:
        """The track's match: its aggregate's, when faces matching that person on their
        own also hold more than half the quality weight (:data:`MIN_SUPPORT`) and
        number at least :data:`MIN_AGREEING_FACES`.

        The second rule is there because averaging pulls a vector toward the mean
        face: with dlib on the seated gif, the woman's faces score 0.86-0.89 against
        the man's template each, their aggregate 0.90, and with one of his faces
        among her five best, 0.94, over the 0.925 threshold. A stray face must not
        make a match, so the aggregate decides only with the majority behind it.
        """
        aggregate = self.aggregate()
        if aggregate is None:
            return None
        match = matcher.match(aggregate, self.embedder)
        if match is None or self.support(match.person_id) <= MIN_SUPPORT:
            return None
        if sum(e.person_id == match.person_id for e in self.best) < MIN_AGREEING_FACES:
            return None
        return match

    def evidence_for(self, person_id: int) -> FaceEvidence | None:
        """The best face supporting a match on ``person_id``: the highest-quality face
        that matches that person on its own, else the face nearest the aggregate."""
        if not self.best:
            return None
        own = [e for e in self.best if e.person_id == person_id]
        if own:
            return own[0]  # self.best is sorted by quality
        aggregate = self.aggregate()
        return max(self.best, key=lambda e: float(e.vector @ aggregate))

    def clear(self) -> None:
        """Zero and drop every vector (the track ended: invariant 2)."""
        for evidence in self.best:
            evidence.vector.fill(0.0)
        self.best.clear()


@dataclass
class _TrackState:
    track_id: int
    label: str
    started_at: datetime
    ended_at: datetime
    identity: TrackIdentity
    face_only: bool = False
    face_quality: float = 0.0  # the best quality of its faces
    frames: int = 0
    best_score: float = -1.0
    snapshot: Snapshot | None = None
    embeds: int = 0
    match: Match | None = None
    match_snapshot: Snapshot | None = None
    match_face: np.ndarray | None = None  # the matched face box, in match-snapshot pixels
    evidence: TrackEvidence = field(default_factory=TrackEvidence)  # score and movement
    plate: TrackPlate | None = None  # vehicles, when this camera reads plates


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
        read_plates: bool = True,
        plate_matcher_for: PlateMatcherProvider | None = None,
        search_phase: float = 0.0,
    ) -> None:
        """``read_plates``: the camera's own switch (``cameras[].read_plates``); plates are
        read only when ``plates.enabled`` is on too. ``plate_matcher_for``: the plate
        watchlists a vehicle's read is checked against when its event ends.
        ``search_phase`` (0 to 1): how far into each ``faces.full_frame_every_s`` period
        this camera's whole-frame face search falls (:meth:`_full_frame_due`)."""
        if not 0.0 <= search_phase < 1.0:
            raise ValueError("search_phase must be in [0, 1)")
        self.camera = camera
        self.config = config
        self.stages = stages
        self.motion = stages.motion_factory() if config.motion.enabled else None
        self.tracker = stages.tracker_factory(fps)
        # Faces no person track claims are tracked here, as boxes of class person.
        self.face_tracker: Tracker | None = (
            stages.tracker_factory(fps)
            if config.faces.full_frame and stages.face_detector is not None
            else None
        )
        # Tracks seen at the last analysed frame: shown again on frames the
        # motion gate skips, since nothing moved.
        self._last_active: list[Track] = []
        self._last_analysed_pts: float | None = None
        self.matcher_for = matcher_for
        self.plate_matcher_for = plate_matcher_for
        self.read_plates = read_plates and stages.plate_reader_factory is not None
        self._states: dict[int, _TrackState] = {}
        self._still_spots = StillSpots()  # where still false alarms were
        self._face_side = min(config.faces.max_side, config.faces.full_frame_side)
        self._full_frame_pts: float | None = None  # the last whole-frame face search
        self._whole_pts: float | None = None  # the last one not limited to motion
        self._moved: np.ndarray | None = None  # motion boxes of this frame; None: anywhere
        self._search_delay_s = search_phase * config.faces.full_frame_every_s
        self._face_trail: list[np.ndarray] = []  # face-only faces at the last analysed frame
        self._parts: tuple[int, ...] = ()
        self._embedder_name = None if stages.embedder is None else stages.embedder.name
        if stages.embedder is not None:
            self._parts = tuple(getattr(stages.embedder, "parts", (stages.embedder.dim,)))
        self.frames_in = 0
        self.frames_analysed = 0

    # -- per frame ---------------------------------------------------------------
    def process(self, frame: Frame) -> FrameResult:
        timings: dict[str, float] = {}
        self.frames_in += 1
        t0 = time.perf_counter()
        moving = True
        self._moved = None  # anywhere, as far as we know
        if self.motion is not None:
            regions = self.motion.update(frame.for_detection())
            moving = regions.moving or self._rate_due(frame.pts)
            sx, sy = frame.detect_scale
            self._moved = regions.boxes * np.array([sx, sy, sx, sy], np.float32)
            timings["motion"] = (time.perf_counter() - t0) * 1000
        if not moving:
            ended_tracks = self.tracker.update(None, frame.pts).ended
            if self.face_tracker is not None:
                ended_tracks += _face_ids(self.face_tracker.update(None, frame.pts).ended)
            ended = self._ended_events(ended_tracks)
            return FrameResult(frame, False, self._views(self._last_active), ended, timings)

        self.frames_analysed += 1
        self._last_analysed_pts = frame.pts
        t1 = time.perf_counter()
        # A detect-stream frame is searched at its own size; its boxes scale to the main image.
        detections: Detections = self.stages.detector.detect(frame.for_detection().image).scaled(
            *frame.detect_scale
        )
        timings["detector"] = (time.perf_counter() - t1) * 1000
        # Boxes outside their label's area/ratio limits are not tracked; every person
        # box still counts below for hiding heads.
        keep = detection_mask(detections, self.config.detector)
        tracked = detections if keep.all() else detections[keep]
        update = self.tracker.update(tracked, frame.pts, image=frame.image)
        ended_tracks = list(update.ended)
        people = detections.boxes[detections.class_ids == PERSON]

        # Which watchlists apply decides whether heads are searched; its time counts as
        # identification's, as it did when it was looked up after the faces.
        t_lookup = time.perf_counter()
        matcher = None
        if self.matcher_for is not None and self.stages.embedder is not None:
            matcher = self.matcher_for(self.camera, frame.time)
        t2 = time.perf_counter()
        lookup_ms = (t2 - t_lookup) * 1000
        bodies = tracked.boxes[tracked.class_ids == PERSON]
        faces, face_tracks, face_ended = self._find_faces(
            frame, list(update.active), bodies, search_heads=matcher is not None
        )
        ended_tracks += face_ended
        active: list[Track] = list(update.active) + face_tracks
        self._last_active = active
        timings["faces"] = (time.perf_counter() - t2) * 1000

        to_embed: list[tuple[_TrackState, Track, Face]] = []
        for track in active:
            state = self._state_for(track, frame)
            state.frames += 1
            state.ended_at = frame.time
            state.evidence.add(track.box, track.score, frame.pts)
            face = faces.get(track.track_id)
            if track.score > state.best_score:
                state.best_score = track.score
                state.snapshot = self._snapshot(frame, track, active, faces, people, keep=None)
            if state.plate is not None and state.plate.due(track.box, frame.pts):
                t3 = time.perf_counter()
                state.plate.read(self.stages.plate_reader(), frame.image, track.box, frame.pts)
                timings["plates"] = timings.get("plates", 0.0) + (time.perf_counter() - t3) * 1000
            if face is not None:
                state.face_quality = max(state.face_quality, face.quality)
                if self._worth_embedding(state, face, matcher):
                    to_embed.append((state, track, face))
        if to_embed:
            # All faces of the frame in one call: a batched embedder runs them together.
            vectors = embed_faces(self.stages.embedder, frame.image, [f for _, _, f in to_embed])
            for (state, track, face), vector in zip(to_embed, vectors, strict=True):
                self._consider_face(
                    state, frame, track, face, vector, active, faces, people, matcher
                )
        timings["identify"] = (time.perf_counter() - t2) * 1000 - timings["faces"] + lookup_ms
        ended = self._ended_events(ended_tracks)
        views = [
            TrackView(t, faces.get(t.track_id), self._states[t.track_id].match) for t in active
        ]
        return FrameResult(frame, True, views, ended, timings, people=people)

    def finish(self) -> list[Event]:
        """End every open track (end of stream) and return their events."""
        ended = self.tracker.flush()
        if self.face_tracker is not None:
            ended += _face_ids(self.face_tracker.flush())
        events = self._ended_events(ended)
        events += [e for e in (self._close(s) for s in self._states.values()) if e]
        self._states.clear()
        self._last_active = []
        return events

    def _rate_due(self, pts: float) -> bool:
        """A still frame is analysed anyway when a track is alive and the last analysed
        frame is ``1 / motion.track_min_fps`` seconds old, so a person who stands still
        and turns his head is seen at that rate (and his track kept alive)."""
        rate = self.config.motion.track_min_fps
        last = self._last_analysed_pts
        if rate <= 0 or last is None:
            return False
        alive = bool(self.tracker.tracks) or (
            self.face_tracker is not None and bool(self.face_tracker.tracks)
        )
        return alive and due_again(last, pts, 1.0 / rate)

    # -- faces and identity ------------------------------------------------------
    def _find_faces(
        self, frame: Frame, person_tracks: list[Track], bodies: np.ndarray, search_heads: bool
    ) -> tuple[dict[int, Face], list[Track], list[Track]]:
        """Faces of this frame by track id, the face-only tracks seen now and those ended.

        With ``search_heads`` (a watchlist applies to the camera now) person tracks
        get the best face of their head, searched at full resolution. Without, their
        faces are not looked for: nothing could be done with them (a person track's
        head is hidden in anything stored whether its face was found or not, and the
        redaction detector looks again), and the search was half the face stage's time.
        With ``faces.full_frame`` the face detector also runs over the whole frame
        (shrunk to ``faces.full_frame_side``) every ``faces.full_frame_every_s``, and
        around the face-only faces in between; the faces it finds outside every
        person's head feed the face-only tracker. A face is claimed by one track at
        most: a person track, or else a face-only track.
        """
        detector = self.stages.face_detector
        if detector is None:
            return {}, [], []
        persons = [t for t in person_tracks if t.class_id == PERSON and search_heads]
        # Person tracks: each head searched at full resolution, as without full_frame.
        faces = self._faces_for(frame, persons)
        if self.face_tracker is None:
            return faces, [], []
        # Everyone else: one search over the whole frame, shrunk to full_frame_side. A
        # face in the head of a person with a body — a person track seen now or missed
        # by the detector in this frame only, or a tracked person detection whose
        # track is not confirmed yet (``bodies``) — is that person's and left to the
        # search above: a face-only track of it would make one person two events (and
        # at a shrunk scale YuNet can read hair as a second face just above the real
        # one). Faces in a head are still hidden in anything stored.
        tracked = np.array(
            [t.box for t in self.tracker.tracks if t.class_id == PERSON], np.float32
        ).reshape(-1, 4)
        heads = np.concatenate([np.asarray(bodies, np.float32).reshape(-1, 4), tracked])
        searched = self._full_frame_due(frame.pts)
        region = self._new_faces_region(frame, heads) if searched else None
        if searched:
            self._full_frame_pts = frame.pts
        if region is not None and len(region) == 0:
            searched = False  # nothing moved where an unknown face could be
        if searched:
            found = detector.detect(frame.image, max_side=self._face_side, region=region)
        else:
            found = self._follow_face_tracks(frame)
        upper = self.config.faces.upper_fraction
        leftover = [f for f in found if not _in_a_head(f, heads, upper)]
        # Followed until the next whole-frame search: these faces, and those in the head
        # of a detection no confirmed track holds yet (the seated gif's man: a person
        # once, at 0.42 in frame 0, then a face only).
        self._face_trail = [f.box for f in found if not _in_a_head(f, tracked, upper)]
        if searched and max(frame.width, frame.height) > self._face_side:
            refined = (detector.refine(frame.image, f) for f in leftover)
            leftover = [f for f in refined if f is not None]
        boxes = np.array([f.box for f in leftover], np.float32).reshape(-1, 4)
        update = self.face_tracker.update(
            Detections(boxes, [f.score for f in leftover], np.full(len(leftover), PERSON)),
            frame.pts,
        )
        face_tracks = []
        for track in update.active:
            # The tracker returns each active track with its detection's box: the face.
            face = leftover[int(np.argmax(box_iou(track.box[None], boxes)[0]))]
            shoulders = head_and_shoulders(face.box, frame.width, frame.height)
            face_id = track.track_id + FACE_TRACK_ID_BASE
            face_tracks.append(Track(face_id, PERSON, shoulders, face.score))
            faces[face_id] = face
        return faces, face_tracks, _face_ids(update.ended)

    def _full_frame_due(self, pts: float) -> bool:
        """Whether this frame gets the whole-frame face search: every
        ``faces.full_frame_every_s`` seconds (every analysed frame at 0), the first
        one ``search_phase`` of a period after the stream (re)started.

        The search is the costliest step of a frame. Cameras of one worker start
        together and a looped or restarted clip starts over together, so with one phase
        for all every camera would search in the same fraction of a second: a burst
        the worker cannot absorb (frames dropped) while it idles between bursts.
        """
        every = self.config.faces.full_frame_every_s
        last = self._full_frame_pts
        if self._search_delay_s and (last is None or pts < last):
            # As if the last search had been a period less the delay ago.
            self._full_frame_pts = last = pts - every + self._search_delay_s
        return due_again(last, pts, every)

    def _new_faces_region(self, frame: Frame, people: np.ndarray) -> np.ndarray | None:
        """Where the due whole-frame search looks: ``None`` for the whole frame, an empty
        array for nowhere, else one box.

        A face not seen yet can only be where something moved, outside the ``people``
        whose heads are searched anyway (faces around face-only tracks are followed
        between searches). So the search covers the motion boxes not mostly inside a
        person's box, grown by :data:`NEW_FACE_MARGIN` of the frame's long side: on a
        street of walkers about 0.4 of the frame. The whole frame is searched on the
        first frame, when the motion gate is off or sees change nearly everywhere,
        and at least every ``faces.full_frame_still_every_s`` (someone who sat still
        through the searches so far).
        """
        still_every = self.config.faces.full_frame_still_every_s
        if (
            self._moved is None
            or still_every <= 0
            or due_again(self._whole_pts, frame.pts, still_every)
        ):
            self._whole_pts = frame.pts
            return None
        moved = self._moved
        if len(moved) and len(people):
            inside = _share_inside(moved, people).max(axis=1)
            moved = moved[inside < MOVED_INSIDE_PERSON]
        if len(moved) == 0:
            return np.zeros(0, np.float32)
        margin = NEW_FACE_MARGIN * max(frame.width, frame.height)
        x1, y1 = moved[:, :2].min(axis=0) - margin
        x2, y2 = moved[:, 2:].max(axis=0) + margin
        x1, y1 = max(float(x1), 0.0), max(float(y1), 0.0)
        x2, y2 = min(float(x2), frame.width), min(float(y2), frame.height)
        if (x2 - x1) * (y2 - y1) >= WHOLE_FRAME_SHARE * frame.width * frame.height:
            self._whole_pts = frame.pts
            return None
        return np.array([x1, y1, x2, y2], np.float32)

    def _follow_face_tracks(self, frame: Frame) -> list[Face]:
        """Between whole-frame searches, the faces near those of the face-only tracks:
        each face kept at the last analysed frame, and each face-only track's last
        box, searched at full resolution in the region around it
        (:meth:`FaceDetector.around`). A face that shows up elsewhere waits for the
        next whole-frame search."""
        detector = self.stages.face_detector
        boxes = list(self._face_trail)
        for track in self.face_tracker.tracks:
            if not boxes or box_iou(track.box[None], np.stack(boxes))[0].max() < 0.3:
                boxes.append(track.box)
        found = [face for box in boxes for face in detector.around(frame.image, box)]
        if len(found) < 2:
            return found
        # Regions overlap (two faces side by side): one face, found twice, is kept once.
        scores = np.array([f.score for f in found], np.float32)
        keep = nms(np.stack([f.box for f in found]), scores, FOLLOW_NMS_IOU)
        return [found[int(i)] for i in keep]

    def _faces_for(self, frame: Frame, tracks: list[Track]) -> dict[int, Face]:
        """Best face inside the upper part of each person box, by quality."""
        detector = self.stages.face_detector
        if detector is None:
            return {}
        found: dict[int, Face] = {}
        boxes: dict[int, np.ndarray] = {}
        for track in tracks:
            width = track.box[2] - track.box[0]
            if track.class_id != PERSON or width * MAX_FACE_SHARE < self.config.faces.min_size:
                continue  # too narrow to hold a face of the smallest useful size
            faces = detector.detect_in_box(frame.image, track.box)
            if faces:
                found[track.track_id] = max(faces, key=lambda f: f.quality)
                boxes[track.track_id] = track.box
        return assign_faces(found, boxes)

    def _worth_embedding(self, state: _TrackState, face: Face, matcher: MatcherLike | None) -> bool:
        """Whether the face is good enough and would enter the track's best K."""
        return (
            matcher is not None
            and face.quality >= self.config.faces.min_quality
            and state.identity.wants(face.quality)
        )

    def _consider_face(
        self,
        state: _TrackState,
        frame: Frame,
        track: Track,
        face: Face,
        vector: np.ndarray,
        active: list[Track],
        faces: dict[int, Face],
        people: np.ndarray,
        matcher: MatcherLike,
    ) -> None:
        """Add the face's vector to the track's best K, then match their aggregate."""
        # The vector lives in the track's TrackIdentity until the track ends (invariant 2).
        snapshot = self._snapshot(frame, track, active, faces, people, keep=track.track_id)
        offset = snapshot.frame_box[[0, 1, 0, 1]]
        state.identity.observe(
            face.quality, vector, matcher, snapshot, (face.box - offset).astype(np.float32)
        )
        state.embeds += 1
        match = state.identity.decide(matcher)
        # The track keeps its best decision: a match made on its best faces stands
        # when later faces of another pose no longer reach the threshold on their
        # own (arcade clip: the red-haired man's three-quarter views score 0.86-0.90
        # against his frontal template, and YuNet's quality ranks them above his
        # frontal faces, so they push those out of the best K).
        if match is None or (state.match is not None and match.score <= state.match.score):
            return
        best = state.identity.evidence_for(match.person_id)
        state.match = match
        state.match_snapshot, state.match_face = best.snapshot, best.face_box
        log.info(
            "camera %s track %d: CANDIDATE match of person %d on %s (%.3f, from %d face(s)); "
            "not confirmed until %d reviewers agree",
            self.camera,
            track.track_id,
            match.person_id,
            match.watchlist_name,
            match.score,
            len(state.identity.best),
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
            state = _TrackState(
                track.track_id,
                track.label,
                frame.time,
                frame.time,
                identity=TrackIdentity(
                    self.config.faces.track_best_k, self._parts, self._embedder_name
                ),
                face_only=track.track_id >= FACE_TRACK_ID_BASE,
            )
            if self.read_plates and track.label in VEHICLE_LABELS:
                state.plate = TrackPlate(self.config.plates)
            self._states[track.track_id] = state
        return state

    def _views(self, tracks: list[Track]) -> list[TrackView]:
        return [
            TrackView(t, None, self._states[t.track_id].match)
            for t in tracks
            if t.track_id in self._states
        ]

    def _ended_events(self, ended_tracks: list[Track]) -> list[Event]:
        events = []
        for track in ended_tracks:
            event = self._close(self._states.pop(track.track_id, None))
            if event is not None:
                events.append(event)
        if ended_tracks:
            ended_ids = {t.track_id for t in ended_tracks}
            self._last_active = [t for t in self._last_active if t.track_id not in ended_ids]
        return events

    def _close(self, state: _TrackState | None) -> Event | None:
        """The event of an ended track; its face vectors are zeroed and dropped."""
        if state is None:
            return None
        try:
            return self._event(state)
        finally:
            state.identity.clear()

    def _event(self, state: _TrackState) -> Event | None:
        if state.snapshot is None:
            return None
        plate = self._plate(state)
        plate_match = self._plate_match(plate, state.snapshot) if state.match is None else None
        matched = state.match is not None or plate_match is not None
        if not matched and state.face_only and state.face_quality < self.config.faces.min_quality:
            # A face-only track is a person on its face's word alone: one never good
            # enough to search is too weak (arcade clip: a lion's head of the Royal
            # Opera House crest, a 24 px "face" of quality 0.13-0.15, for 1.8 s).
            # Its face is hidden in anything stored all the same.
            log.debug(
                "camera %s track %d: no event, a face-only track whose best face has quality %.2f",
                self.camera,
                state.track_id,
                state.face_quality,
            )
            return None
        limits = self.config.detector.filter_for(state.label)
        if not matched and state.evidence.is_brief_repeat(limits, self._still_spots, state.label):
            log.debug(
                "camera %s track %d (%s): no event, a brief still track where a still false "
                "alarm was",
                self.camera,
                state.track_id,
                state.label,
            )
            return None
        if not matched and state.evidence.is_still_false_alarm(limits):
            self._still_spots.add(
                state.label, state.evidence.last_box, state.evidence.last_pts or 0.0
            )
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
        snapshot = self._finalise_snapshot(state.snapshot, keep_face=None)
        match_snapshot = None
        if state.match is not None:
            match_snapshot = self._finalise_snapshot(
                state.match_snapshot, keep_face=state.match_face
            )
        elif plate_match is not None:
            match_snapshot = snapshot  # a listed vehicle's evidence: its snapshot (and plate)
        return Event(
            camera=self.camera,
            track_id=state.track_id,
            label=state.label,
            started_at=state.started_at,
            ended_at=state.ended_at,
            best_score=float(state.best_score),
            frames=state.frames,
            snapshot=snapshot,
            match=state.match or plate_match,
            match_snapshot=match_snapshot,
            face_only=state.face_only,
            plate=plate,
        )

    def _plate_match(self, plate: PlateRead | None, snapshot: Snapshot) -> Match | None:
        """The listed vehicle a plate read is, on the plate watchlists authorised for this
        camera at the snapshot's time (the time the store checks the match against)."""
        if plate is None or self.plate_matcher_for is None:
            return None
        matcher = self.plate_matcher_for(self.camera, snapshot.time)
        match = None if matcher is None else matcher.match(plate)
        if match is not None:
            log.info(
                "camera %s: plate %s matches %s on %s (read confidence %.2f)",
                self.camera,
                plate.text,
                match.person_id,
                match.watchlist_name,
                match.score,
            )
        return match

    def _plate(self, state: _TrackState) -> PlateRead | None:
        """The track's voted plate, any face the redaction detector finds in its crop
        pixelated (a plate crop is stored like a snapshot: invariant 3)."""
        plate = None if state.plate is None else state.plate.result()
        if plate is None:
            return None
        from safecity.store.media import pixelate

        faces = self.stages.redactor.faces(plate.crop)
        return replace(plate, crop=pixelate(plate.crop, faces)) if len(faces) else plate


# -- pure helpers --------------------------------------------------------------
def embed_faces(embedder: Embedder, image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
    """``(len(faces), dim)`` vectors of faces in one image: one batched call when the
    embedder has ``embed_many``, else one call a face."""
    many = getattr(embedder, "embed_many", None)
    if many is not None:
        return np.asarray(many(image_bgr, faces), np.float32).reshape(len(faces), embedder.dim)
    return np.stack([embedder.embed(image_bgr, f) for f in faces]).astype(np.float32)


def _share_inside(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``(N, M)``: the share of each of ``boxes``' area that lies inside each of ``others``.

    >>> _share_inside(np.array([[0, 0, 10, 10]], np.float32), np.array([[5, 0, 20, 10]]))
    array([[0.5]], dtype=float32)
    """
    a, b = boxes[:, None, :], np.asarray(others, np.float32)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return (w * h / np.maximum(area, 1e-6)[:, None]).astype(np.float32)


def _in_a_head(face: Face, boxes: np.ndarray, upper_fraction: float) -> bool:
    """Whether the face's centre lies in the top ``upper_fraction`` of a person box.

    >>> f = Face(np.array([10, 0, 20, 10], np.float32), np.zeros((5, 2), np.float32), 0.9)
    >>> _in_a_head(f, np.array([[0, 0, 30, 90]]), 0.5), _in_a_head(f, np.zeros((0, 4)), 0.5)
    (True, False)
    """
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    x1, y1, x2, y2 = np.asarray(boxes, np.float32).reshape(-1, 4).T
    inside = (x1 <= cx) & (cx <= x2) & (y1 <= cy) & (cy <= y1 + upper_fraction * (y2 - y1))
    return bool(inside.any())


def _face_ids(tracks: list[Track]) -> list[Track]:
    """Face-only tracker tracks with their ids shifted out of the person tracks' range."""
    return [replace(t, track_id=t.track_id + FACE_TRACK_ID_BASE) for t in tracks]


def head_and_shoulders(face_box: np.ndarray, width: int, height: int) -> np.ndarray:
    """The head and shoulders around a face, clipped to the frame: a face-only track's box.

    >>> head_and_shoulders(np.array([40, 40, 60, 70], np.float32), 100, 100).tolist()
    [25.0, 28.0, 75.0, 100.0]
    """
    x1, y1, x2, y2 = (float(v) for v in face_box)
    fw, fh = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    box = [cx - HS_HALF_WIDTH * fw, y1 - HS_ABOVE * fh, cx + HS_HALF_WIDTH * fw, y2 + HS_BELOW * fh]
    return np.array(
        [max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)], np.float32
    )


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
