"""Live frames of the cameras this server runs, annotated and redacted for each watcher.

Camera threads call :meth:`LiveHub.publish` with every
:class:`~safecity.pipeline.FrameResult`; that only keeps a reference to the
newest one, so a camera never waits for a watcher. Frames are drawn on demand,
at most once per frame and mode, however many people watch:

- every face not matched is pixelated for everyone (as in stored snapshots);
- for users who may not see faces (viewers) matched faces are pixelated too and
  no person name is drawn.

A frame is first shrunk to at most ``max_width`` (960) pixels wide, then the
regions to hide are worked out afresh on exactly those pixels (the redaction
face detector runs on the image served; at full 1080p resolution it cost a
second a frame): frames the motion gate skipped borrow the tracks of the last
analysed frame, as nothing moved. The two modes never share a drawing: a
borrowed track may carry a match the frame itself does not show.

>>> hub = LiveHub(fps=4)
>>> hub.cameras(), hub.latest_jpeg("gate-1", faces_visible=False)
([], None)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool

from safecity.api.imaging import DETECT_LOCK, MAX_WIDTH, encode_jpeg
from safecity.pipeline import FrameResult, TrackView

if TYPE_CHECKING:
    from safecity.video.annotate import Annotator
    from safecity.vision.redact import FaceRedactor

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """One camera in one mode: its annotator and the last frame drawn."""

    annotator: Annotator
    lock: threading.Lock = field(default_factory=threading.Lock)
    rendered: tuple[FrameResult, bytes] | None = None  # replaced whole, read without the lock
    # Watchers waiting for a frame to be drawn (an asyncio lock serves one event loop).
    _waiting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def cached(self, result: FrameResult) -> bytes | None:
        rendered = self.rendered
        return rendered[1] if rendered is not None and rendered[0] is result else None

    def waiting(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._waiting.get(loop)
        if lock is None:
            lock = self._waiting[loop] = asyncio.Lock()
        return lock


class LiveHub:
    """The newest frame of each running camera, drawn as JPEG for watchers.

    ``fps`` caps the rate of each MJPEG stream; ``redactor`` (a
    :class:`~safecity.vision.redact.FaceRedactor`) is loaded on first use when
    not given.
    """

    def __init__(
        self, fps: float, redactor: FaceRedactor | None = None, *, max_width: int = MAX_WIDTH
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.max_width = int(max_width)
        self._redactor = redactor
        self._latest: dict[str, FrameResult] = {}
        self._analysed: dict[str, FrameResult] = {}
        self._slots: dict[tuple[str, bool], _Slot] = {}
        self._lock = threading.Lock()

    # -- camera side ---------------------------------------------------------------
    def publish(self, camera: str, result: FrameResult) -> None:
        """Note the newest result of ``camera`` (cheap: two dict assignments)."""
        if result.analysed:
            self._analysed[camera] = result
        self._latest[camera] = result

    def forget(self, camera: str) -> None:
        """The camera stopped: no more live frames for it (its streams end)."""
        self._latest.pop(camera, None)
        self._analysed.pop(camera, None)
        with self._lock:
            for mode in (True, False):
                self._slots.pop((camera, mode), None)

    # -- watcher side --------------------------------------------------------------
    def cameras(self) -> list[str]:
        """The cameras with live frames, by name."""
        return sorted(self._latest)

    def latest_jpeg(self, camera: str, *, faces_visible: bool) -> bytes | None:
        """The newest frame of ``camera``, annotated and redacted, as JPEG; None: no frames."""
        rendered = self._render_latest(camera, faces_visible)
        return rendered[1] if rendered is not None else None

    async def frames(
        self,
        camera: str,
        faces_visible: bool,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[bytes]:
        """JPEGs of each new frame, at most ``fps`` a second.

        Ends when the camera stops or ``is_disconnected()`` says the client left
        (a server also cancels the generator when the connection drops). Watchers
        of a frame already drawn get it without a thread; for a new frame one of
        them draws it in a worker thread while the others wait without one.
        """
        interval = 1.0 / self.fps
        sent: FrameResult | None = None
        while True:
            began = time.monotonic()
            if is_disconnected is not None and await is_disconnected():
                return
            result = self._latest.get(camera)
            if result is None:
                return
            if result is not sent:
                try:
                    rendered = await self._render_async(camera, faces_visible, result)
                except Exception:
                    log.exception("camera %s: cannot draw a live frame", camera)
                    rendered = None
                if rendered is not None:
                    sent = rendered[0]
                    yield rendered[1]
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))

    # -- drawing -------------------------------------------------------------------
    def _slot(self, camera: str, faces_visible: bool) -> _Slot:
        key = (camera, faces_visible)
        slot = self._slots.get(key)
        if slot is None:
            with self._lock:
                slot = self._slots.get(key)
                if slot is None:
                    from safecity.video.annotate import Annotator

                    if self._redactor is None:
                        from safecity.vision.redact import FaceRedactor

                        self._redactor = FaceRedactor()
                    slot = self._slots[key] = _Slot(Annotator(self._redactor))
        return slot

    async def _render_async(
        self, camera: str, faces_visible: bool, result: FrameResult
    ) -> tuple[FrameResult, bytes] | None:
        slot = self._slot(camera, faces_visible)
        cached = slot.cached(result)
        if cached is not None:
            return result, cached
        async with slot.waiting():  # one worker thread per camera and mode at a time
            latest = self._latest.get(camera, result)
            cached = slot.cached(latest)
            if cached is not None:
                return latest, cached
            return await run_in_threadpool(self._render_latest, camera, faces_visible)

    def _render_latest(self, camera: str, faces_visible: bool) -> tuple[FrameResult, bytes] | None:
        result = self._latest.get(camera)
        if result is None:
            return None
        # One slot per mode, never shared: a frame the motion gate skipped is drawn with
        # the last analysed frame's tracks, whose matches it does not show by itself.
        slot = self._slot(camera, faces_visible)
        with slot.lock:
            result = self._latest.get(camera, result)  # it may have moved on while we waited
            cached = slot.cached(result)
            if cached is not None:
                return result, cached
            basis = _shrunk(self._basis(camera, result, faces_visible), self.max_width)
            with DETECT_LOCK:  # the annotator's redactor is shared with other slots
                drawn = slot.annotator.draw(basis)
            jpeg = encode_jpeg(drawn)
            slot.rendered = (result, jpeg)
            return result, jpeg

    def _basis(self, camera: str, result: FrameResult, faces_visible: bool) -> FrameResult:
        """What to draw: always 'analysed', so the regions to hide are found on this image."""
        if not result.analysed:
            last = self._analysed.get(camera)
            result = replace(
                result,
                analysed=True,
                tracks=last.tracks if last is not None else result.tracks,
                people=last.people if last is not None else None,
            )
        if not faces_visible:
            # No match: every face is hidden, no name is drawn.
            result = replace(result, tracks=[replace(v, match=None) for v in result.tracks])
        return result


def _shrunk(result: FrameResult, max_width: int) -> FrameResult:
    """``result`` with its image (and every box) scaled to at most ``max_width`` wide."""
    height, width = result.frame.image.shape[:2]
    if width <= max_width:
        return result
    scale = max_width / width
    size = (max_width, max(1, round(height * scale)))
    image = cv2.resize(result.frame.image, size, interpolation=cv2.INTER_AREA)
    views = [
        TrackView(
            replace(v.track, box=np.asarray(v.track.box, np.float32) * scale),
            None
            if v.face is None
            else replace(
                v.face,
                box=np.asarray(v.face.box, np.float32) * scale,
                landmarks=np.asarray(v.face.landmarks, np.float32) * scale,
            ),
            v.match,
        )
        for v in result.tracks
    ]
    people = None if result.people is None else np.asarray(result.people, np.float32) * scale
    return replace(result, frame=replace(result.frame, image=image), tracks=views, people=people)
