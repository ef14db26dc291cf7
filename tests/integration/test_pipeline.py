"""End to end on real media: source → detector → tracker → faces → matcher → store.

These are the issue's evidence: people tracked in the pedestrians clip, one
enrolled person of the arcade clip identified and nobody else, and the privacy
invariants proven by scanning the database file and the media folder.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from safecity import pipeline
from safecity.config import CameraConfig
from safecity.governance.clock import ManualClock
from safecity.identity.gallery import GalleryCache
from safecity.identity.photos import ENROLLED_DIR
from safecity.runtime.local import analyze_one
from safecity.store.queries import list_events
from safecity.store.sink import StoreSink

pytestmark = pytest.mark.slow


def _run(
    store, config, stages, path: Path, name: str, start, fps=None, annotated=None, record=None
):
    camera = CameraConfig(name=name, url=str(path), fps=fps)
    # Closed after the run: its watcher thread, left running, opened connections to the
    # store after the test closed it, and closing those checkpointed the WAL into the
    # file between the raw scan's reads of the file and of the WAL (CI saw the enrolled
    # template in neither).
    gallery = GalleryCache(store, config)
    try:
        return analyze_one(
            camera,
            config,
            stages,
            # The sink checks the authorisation at the frame's time and "now": both at start.
            write=StoreSink(store, ManualClock(start)).write_many,
            matcher_for=gallery.matcher_for,
            annotated_video=annotated,
            start_time=start,
            on_frame=record,
        )
    finally:
        gallery.close()


def test_pedestrians_are_tracked_into_events(data_dir, store, config, stages, tmp_path, e2e):
    video = data_dir / "video/pedestrians-768x576.avi"
    annotated = tmp_path / "annotated.mp4"
    report = _run(store, config, stages, video, "campus", e2e.now, fps=5, annotated=annotated)

    assert report.frames_in == 398  # 795 frames at 10 fps, sampled at 5 fps
    rows = list_events(store, camera="campus", limit=1000)
    assert len(rows) == len(report.event_ids)
    people = [r for r in rows if r.label == "person"]
    vehicles = [r for r in rows if r.label in ("car", "truck", "bus")]
    # 19 different people cross the campus in the 80 s (counted by eye:
    # tests/integration/test_tracking_rate.py says how); someone hidden longer than
    # lost_after_s rightly becomes a second event, so a range, not an exact figure.
    assert 15 <= len(people) <= 25, len(people)
    # Most walkers stay in view for several seconds: stable ids give long events.
    long_events = [r for r in people if (r.ended_at - r.started_at).total_seconds() >= 5]
    assert len(long_events) >= 15, len(long_events)
    # The parked van and car on the left are seen as vehicles.
    assert vehicles, "the parked van/car were not detected"
    # Every event has its snapshot on disk; nobody matched (no watchlist exists).
    for row in rows:
        assert row.snapshot_file is not None and row.snapshot_file.exists()
        assert row.person_id is None
    assert annotated.exists() and annotated.stat().st_size > 100_000


# The red-haired young man left of centre in the first frame of the arcade clip
# (1920×1080): his face is frontal and about 67 px wide there; the crop holds no
# other face (the nearest, the boy's, starts at x=866).
ENROL_CROP = (600, 480, 820, 720)  # x1, y1, x2, y2


def _first_frame(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="bgr24")


@pytest.fixture(scope="module")
def arcade_store(tmp_path_factory, e2e):
    folder = tmp_path_factory.mktemp("arcade")
    opened = e2e.make_store(folder)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def arcade_run(data_dir, arcade_store, config, stages, tmp_path_factory, e2e):
    """Enrol one person from a crop of frame 0, then analyse the whole clip."""
    from safecity.identity.enrol import enroll
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    store = arcade_store
    video = data_dir / "video/arcade-crowd-1080p.mp4"
    x1, y1, x2, y2 = ENROL_CROP
    photo = tmp_path_factory.mktemp("photo") / "enrolled.png"
    cv2.imwrite(str(photo), _first_frame(video)[y1:y2, x1:x2])
    enroll(
        store,
        e2e.authorise(store),
        "Red-haired man",
        [photo],
        detector=FaceDetector(config.faces),
        embedder=make_embedder(config.embedder),
        by="alice",
        clock=ManualClock(e2e.now),
    )
    # Record every face vector the pipeline computes, to look for them on disk.
    vectors: list[np.ndarray] = []
    original = pipeline.embed_faces

    def recording(embedder, image, faces):
        found = original(embedder, image, faces)
        vectors.extend(np.array(v, np.float32) for v in found)
        return found

    pipeline.embed_faces = recording
    try:
        views: dict[int, list] = {}
        matched_boxes: dict[int, list] = {}  # frame index -> boxes of matched tracks

        def record(result):
            for view in result.tracks:
                views.setdefault(view.track.track_id, []).append(view.track.box)
                if view.match is not None:
                    matched_boxes.setdefault(result.frame.index, []).append(view.track.box)

        annotated = tmp_path_factory.mktemp("video") / "arcade-annotated.mp4"
        report = _run(
            store, config, stages, video, "arcade", e2e.now, annotated=annotated, record=record
        )
    finally:
        pipeline.embed_faces = original
    return report, vectors, views, matched_boxes


def test_enrolled_person_is_identified_and_nobody_else(arcade_run, arcade_store):
    report, vectors, views, _ = arcade_run
    store = arcade_store
    rows = list_events(store, camera="arcade", limit=1000)
    matched = [r for r in rows if r.person_id is not None]
    # He is one person, but the tracker's distance gate lets a second box of him
    # become a track of its own (tracks 3 and 8 of this clip): at most two events,
    # both his. Nobody else matches (a woman's 25-30 px face behind another
    # person's head scored 0.927 once: one face never makes a match).
    assert 1 <= len(matched) <= 2, [(r.track_id, r.person_name, r.match_score) for r in matched]
    cx, cy = (ENROL_CROP[0] + ENROL_CROP[2]) / 2, (ENROL_CROP[1] + ENROL_CROP[3]) / 2
    for match in matched:
        assert match.person_name == "Red-haired man"
        assert match.label == "person"
        # It is the enrolled person's track: where it starts, its box holds (or is
        # within a face's width of) the enrolment crop's face centre.
        first_box = views[match.track_id][0]
        assert first_box[0] - 100 <= cx <= first_box[2] and first_box[1] <= cy <= first_box[3]
    # Several other people's faces were embedded and compared, and none matched.
    assert len(vectors) >= 5
    assert len([r for r in rows if r.label == "person"]) >= 5


def test_no_unmatched_face_vector_is_written(arcade_run, arcade_store):
    """Invariant 2: scan every byte of the database file and the media folder."""
    from safecity.store.schema import Template

    report, vectors, _, _ = arcade_run
    store = arcade_store
    with store.transaction() as session:
        templates = [np.frombuffer(t.vector, "<f4") for t in session.query(Template).all()]
    assert len(templates) == 1
    store.close()  # flush SQLite pages to the file before reading it raw
    db_path = Path(str(store.engine.url.database))
    blobs = [db_path.read_bytes()]
    blobs += [p.read_bytes() for p in store.media_dir.rglob("*") if p.is_file()]
    blobs += [p.read_bytes() for p in db_path.parent.glob("*.db-*")]  # WAL/journal if any
    data = b"".join(blobs)
    # Positive control: the enrolled template is found by this very scan.
    assert templates[0].tobytes()[:64] in data
    for vector in vectors:
        # A 16-byte window of each vector (4 floats) is enough to find a copy.
        needle = vector.astype("<f4").tobytes()[16:32]
        if any(np.allclose(vector, t, atol=1e-6) for t in templates):
            continue
        assert needle not in data


def strict_face_detector():
    """A face detector stricter than the redaction one in score, but just as keen
    on small faces: what it finds in stored images is a real face left visible."""
    from safecity.config import FacesConfig
    from safecity.vision.faces import FaceDetector

    return FaceDetector(FacesConfig(min_score=0.6, min_size=8))


def test_stored_snapshots_show_no_unmatched_face(arcade_run, arcade_store, config):
    """Invariant 3: a face detector finds no face in any stored image, except the
    matched person's face in the match snapshot (and the enrolled photo)."""

    store = arcade_store
    detector = strict_face_detector()
    rows = list_events(store, camera="arcade", limit=1000)
    match_files = {store.media_dir / r.match_snapshot_path for r in rows if r.match_snapshot_path}
    checked = 0
    enrolled = store.media_dir / ENROLLED_DIR
    for path in store.media_dir.rglob("*.jpg"):
        faces = detector.detect(cv2.imread(str(path)))
        if enrolled in path.parents:
            # The enrolled person's own photo, kept for reviewers: exactly that face.
            assert len(faces) == 1, path
        elif path in match_files:
            assert len(faces) <= 1, path
        else:
            assert faces == [], f"{path.name}: {len(faces)} face(s) visible"
        checked += 1
    assert checked >= len(rows)
    assert match_files, "the match snapshot was not stored"
    # The match snapshot does show the matched face (for human review).
    assert any(detector.detect(cv2.imread(str(p))) for p in match_files)


def test_annotated_video_shows_no_unmatched_face(arcade_run):
    """Invariant 3 for the annotated video: decode it and look for faces. Any face
    found must be the matched person's, inside that track's box in that frame."""
    import av

    report, _, _, matched_boxes = arcade_run
    detector = strict_face_detector()
    # The lions' heads of the crest on the Royal Opera House sign score 0.2 as
    # faces in the decoded clip and up to 0.7 once re-encoded; they are nobody's.
    crest = (860, 100, 1120, 320)
    frames = 0
    with av.open(str(report.annotated_video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            frames += 1
            for face in detector.detect(frame.to_ndarray(format="bgr24")):
                cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
                if crest[0] <= cx <= crest[2] and crest[1] <= cy <= crest[3]:
                    continue
                inside = [
                    b
                    for b in matched_boxes.get(index, [])
                    if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]
                ]
                assert inside, (
                    f"frame {index}: an unmatched face at ({cx:.0f}, {cy:.0f}) is visible"
                )
    assert frames == report.frames_in
