"""GET /cameras, /health and the live view (LiveHub) on real frames.

The hub is fed real FrameResults: from the real pipeline on the arcade clip
(slow), and from a real portrait with a matched track built by hand, to check
who sees which face.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from api_support import signed_in
from fastapi import FastAPI

from safecity.api.context import ApiContext
from safecity.api.live import LiveHub
from safecity.config import CameraConfig
from safecity.governance.clock import ManualClock
from safecity.pipeline import FrameResult, TrackView
from safecity.runtime.bench_pipeline import watching_nobody
from safecity.store import Store
from safecity.store.health import report_health
from safecity.vision.faces import FaceDetector
from safecity.vision.redact import REDACTION_FACES, FaceRedactor
from safecity.vision.types import Frame, Match, Track

NOW = datetime.now(UTC)


def _stats(camera: str, state: str, **kw) -> SimpleNamespace:
    figures = dict(frames_in=100, frames_analysed=40, events=3, reconnects=1, lag_s=0.2)
    return SimpleNamespace(
        camera=camera, state=state, detector_ms=[10.0, 12.0, 30.0], **(figures | kw)
    )


@pytest.fixture
def cameras(ctx: ApiContext, api_store: Store) -> None:
    """gate-1 and square configured; gate-1, square and dock report health."""
    ctx.clock = ManualClock(NOW)
    ctx.config.cameras = [
        CameraConfig(name="gate-1", url="rtsp://cam/1", location="North gate"),
        CameraConfig(name="square", url="rtsp://cam/2"),
    ]
    report_health(api_store, [_stats("gate-1", "running")], "edge-1", NOW - timedelta(seconds=60))
    report_health(api_store, [_stats("square", "running", last_error="")], "edge-2", NOW)
    report_health(api_store, [_stats("dock", "stopped")], "edge-1", NOW - timedelta(days=1))


def test_cameras_are_the_configured_and_reporting_ones(app: FastAPI, cameras) -> None:
    listed = signed_in(app, "ada").get("/api/v1/cameras")
    assert listed.status_code == 200
    body = listed.json()
    assert [c["name"] for c in body["items"]] == ["dock", "gate-1", "square"]
    gate = body["items"][1]
    assert gate["location"] == "North gate" and gate["live"] is False
    assert gate["health"]["state"] == "running" and gate["health"]["host"] == "edge-1"
    assert body["next_cursor"] is None
    paged = signed_in(app, "ada").get("/api/v1/cameras", params={"limit": 2}).json()
    assert len(paged["items"]) == 2 and paged["next_cursor"] == "2"
    mine = signed_in(app, "vic").get("/api/v1/cameras").json()["items"]
    assert [c["name"] for c in mine] == ["gate-1"]


def test_health_flags_stale_running_cameras(app: FastAPI, cameras) -> None:
    rows = signed_in(app, "ada").get("/api/v1/health").json()["items"]
    by_camera = {r["camera"]: r for r in rows}
    assert list(by_camera) == ["dock", "gate-1", "square"]
    assert by_camera["gate-1"]["stale"] is True  # running, silent for 60 s
    assert by_camera["square"]["stale"] is False
    assert by_camera["dock"]["stale"] is False  # stopped: silence is expected
    assert by_camera["gate-1"]["detector_ms"] == 12.0
    assert by_camera["gate-1"]["frames_in"] == 100
    olga = signed_in(app, "olga").get("/api/v1/health").json()["items"]
    assert [r["camera"] for r in olga] == ["gate-1"]


def test_live_view_is_404_without_frames(app: FastAPI, ctx: ApiContext) -> None:
    ada = signed_in(app, "ada")
    for path in ("frame.jpg", "live.mjpg"):
        missing = ada.get(f"/api/v1/cameras/gate-1/{path}")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "camera gate-1 is not running in this server"}
    ctx.live = LiveHub(4)
    assert ada.get("/api/v1/cameras/gate-1/frame.jpg").status_code == 404
    assert signed_in(app, "olga").get("/api/v1/cameras/square/frame.jpg").status_code == 403


# -- a real portrait as a frame, with a matched track -----------------------------------
@pytest.fixture(scope="module")
def redactor() -> FaceRedactor:
    return FaceRedactor()


@pytest.fixture(scope="module")
def scene(data_dir: Path) -> SimpleNamespace:
    """A 1920×1080 frame with a real face, its person box and face box."""
    photo = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    photo = cv2.resize(photo, (455, 568))
    image = np.full((1080, 1920, 3), 90, np.uint8)
    image[300:868, 700:1155] = photo
    face = max(FaceDetector(REDACTION_FACES).detect(image), key=lambda f: f.width)
    person = np.array([690, 280, 1165, 1075], np.float32)
    return SimpleNamespace(image=image, face=face, person=person)


def frame_result(scene, *, index: int = 1, match: bool = True, analysed: bool = True):
    frame = Frame("gate-1", index, index / 10, NOW, scene.image)
    track = Track(7, 0, scene.person, 0.9)
    who = Match(1, "Jane Doe", 1, "wanted", 0.97, 0.2) if match else None
    view = TrackView(track, scene.face if analysed else None, who)
    people = np.array([scene.person]) if analysed else None
    return FrameResult(frame, analysed, [view], [], people=people)


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def face_difference(scene, shown: np.ndarray) -> float:
    """Mean difference between the shown face (960 px wide) and the original's."""
    small = cv2.resize(scene.image, (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_AREA)
    x1, y1, x2, y2 = (int(v / 2) for v in scene.face.box)
    x1, y1, x2, y2 = x1 + 5, y1 + 15, x2 - 5, y2 - 5  # inside, clear of the drawn box
    return float(np.abs(shown[y1:y2, x1:x2].astype(int) - small[y1:y2, x1:x2].astype(int)).mean())


def test_matched_face_hidden_from_viewers_only(scene, redactor: FaceRedactor) -> None:
    hub = LiveHub(4, redactor)
    hub.publish("gate-1", frame_result(scene))
    assert hub.cameras() == ["gate-1"]
    seen = decode(hub.latest_jpeg("gate-1", faces_visible=True))
    hidden = decode(hub.latest_jpeg("gate-1", faces_visible=False))
    assert seen.shape == hidden.shape == (540, 960, 3)
    assert face_difference(scene, seen) < 6.0  # the matched face, for reviewers
    assert face_difference(scene, hidden) > 12.0  # a mosaic, for viewers
    assert FaceDetector(REDACTION_FACES).detect(hidden) == []
    # The viewer's frame is the one drawn without the match: no name on it.
    plain = LiveHub(4, redactor)
    plain.publish("gate-1", frame_result(scene, match=False))
    assert plain.latest_jpeg("gate-1", faces_visible=False) == hub.latest_jpeg(
        "gate-1", faces_visible=False
    )


def test_frames_are_drawn_once_per_mode(
    scene, redactor: FaceRedactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safecity.video import annotate

    draws = []
    real_draw = annotate.Annotator.draw
    monkeypatch.setattr(
        annotate.Annotator, "draw", lambda self, r: draws.append(r) or real_draw(self, r)
    )
    hub = LiveHub(4, redactor)
    hub.publish("gate-1", frame_result(scene, match=False))
    first = hub.latest_jpeg("gate-1", faces_visible=True)
    assert hub.latest_jpeg("gate-1", faces_visible=True) is first  # many watchers, one draw
    hub.latest_jpeg("gate-1", faces_visible=False)
    assert len(draws) == 2  # the modes never share a drawing (a borrowed track may match)
    # Unmatched faces are pixelated for everyone.
    assert face_difference(scene, decode(first)) > 12.0
    hub.publish("gate-1", frame_result(scene, index=2))
    hub.latest_jpeg("gate-1", faces_visible=True)
    hub.latest_jpeg("gate-1", faces_visible=False)
    hub.latest_jpeg("gate-1", faces_visible=False)
    assert len(draws) == 4


def test_frames_the_motion_gate_skipped(scene, redactor: FaceRedactor) -> None:
    """A skipped frame carries no faces: the hub borrows the last analysed tracks."""
    hub = LiveHub(4, redactor)
    hub.publish("gate-1", frame_result(scene, index=1))
    hub.publish("gate-1", frame_result(scene, index=2, analysed=False))
    assert face_difference(scene, decode(hub.latest_jpeg("gate-1", faces_visible=True))) < 6.0
    hidden = decode(hub.latest_jpeg("gate-1", faces_visible=False))
    assert face_difference(scene, hidden) > 12.0
    # With no analysed frame at all, every face found is hidden, even a matched one.
    alone = LiveHub(4, redactor)
    alone.publish("gate-1", frame_result(scene, index=3, analysed=False))
    assert face_difference(scene, decode(alone.latest_jpeg("gate-1", faces_visible=True))) > 12.0


def test_frames_generator_paces_and_ends(scene, redactor: FaceRedactor) -> None:
    hub = LiveHub(20, redactor)
    hub.publish("gate-1", frame_result(scene, match=False))

    async def watch() -> list[float]:
        times = []
        gone = asyncio.Event()

        async def disconnected() -> bool:
            return gone.is_set()

        frames = hub.frames("gate-1", False, disconnected)
        async for jpeg in frames:
            assert decode(jpeg).shape == (540, 960, 3)
            times.append(asyncio.get_running_loop().time())
            if len(times) == 3:
                gone.set()  # the client leaves: the generator ends by itself
            else:
                hub.publish("gate-1", frame_result(scene, index=len(times) + 1, match=False))
        return times

    times = asyncio.run(watch())
    assert len(times) == 3
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(times))  # ≤ 20 a second

    async def until_forgotten() -> int:
        count = 0
        async for _ in hub.frames("gate-1", True):
            count += 1
            hub.forget("gate-1")  # the camera stopped
        return count

    hub.publish("gate-1", frame_result(scene, index=9, match=False))
    assert asyncio.run(until_forgotten()) == 1
    assert hub.cameras() == [] and hub.latest_jpeg("gate-1", faces_visible=True) is None


def test_frame_endpoint(app: FastAPI, ctx: ApiContext, scene, redactor: FaceRedactor) -> None:
    ctx.live = LiveHub(4, redactor)
    ctx.live.publish("gate-1", frame_result(scene))
    ctx.live.publish("square", frame_result(scene))
    olga = signed_in(app, "olga").get("/api/v1/cameras/gate-1/frame.jpg")
    assert olga.status_code == 200 and olga.headers["content-type"] == "image/jpeg"
    assert face_difference(scene, decode(olga.content)) < 6.0
    vic = signed_in(app, "vic").get("/api/v1/cameras/gate-1/frame.jpg")
    assert vic.status_code == 200
    assert face_difference(scene, decode(vic.content)) > 12.0
    assert signed_in(app, "vic").get("/api/v1/cameras/square/frame.jpg").status_code == 403
    listed = signed_in(app, "ada").get("/api/v1/cameras").json()["items"]
    assert [(c["name"], c["live"]) for c in listed] == [("gate-1", True), ("square", True)]


# -- the real pipeline on the arcade clip -----------------------------------------------
@pytest.mark.slow
def test_hub_with_the_real_pipeline(data_dir: Path) -> None:
    from safecity.config import SafecityConfig
    from safecity.pipeline import CameraPipeline, Stages
    from safecity.video.source import open_source

    config = SafecityConfig()
    stages = Stages.load(config)
    camera = CameraConfig(name="arcade", url=str(data_dir / "video/arcade-crowd-1080p.mp4"))
    source = open_source(camera, start_time=NOW)
    # A watched camera: its people's faces are searched (and must still be hidden).
    pipeline = CameraPipeline("arcade", config, stages, fps=25, matcher_for=watching_nobody)
    hub = LiveHub(4, stages.redactor)
    frames = []
    for frame in itertools.islice(iter(source), 4):
        result = pipeline.process(frame)
        hub.publish("arcade", result)
        frames.append(result)
    assert any(v.face is not None for v in frames[-1].tracks), "the clip shows faces"
    jpeg = hub.latest_jpeg("arcade", faces_visible=True)
    assert jpeg is not None
    shown = decode(jpeg)
    assert shown.shape == (540, 960, 3)
    # No match in the clip: every face is pixelated, none is found in the picture.
    found = FaceDetector(REDACTION_FACES).detect(shown)
    assert found == [], [f.box for f in found]
    viewer = hub.latest_jpeg("arcade", faces_visible=False)
    assert viewer is not None and FaceDetector(REDACTION_FACES).detect(decode(viewer)) == []
