"""A camera's detect substream beside its main stream (``detect_url``, Frigate's roles).

Many cameras send the same picture twice: a main stream at full resolution and a
substream at a fraction of it. The object detector shrinks every frame to its
input size anyway (416 px for NanoDet), so it may as well read the substream;
faces, identification and snapshots need the main stream's pixels.
:class:`PairedFrames` walks the main stream (sampled at the camera's fps) and
gives each of its frames the substream's frame of the same moment as
``Frame.detect_image``; the pipeline detects on that and scales the boxes to the
main image (``Frame.detect_scale``).

Same moment: for files, the same ``pts``; for live streams each stream's frames
are placed on one clock as the wall time of that stream's first frame plus their
``pts`` since it, which is off by the difference of the two sessions' latencies
when they started (tens of milliseconds) and does not drift with the analyser's
lag, as decode times would. A main frame
takes the nearest substream frame within ``decode.detect_tolerance_s``; with none
that near (the substream reconnecting, say) it keeps ``detect_image`` None and is
detected at full size: no frame is lost for want of its twin.

The substream is read in a thread of its own, a few frames ahead at most. Its
errors are the camera's: a broken or missing detect stream raises
:class:`~safecity.errors.SourceError` naming it, as a broken main stream does, and a
file substream that ends before the main stream is an error too (its frames would
not cover the analysis).

>>> # frames = PairedFrames(main_source, open_source(camera, start, role="detect"),
>>> #                       camera.name, tolerance_s=camera.decode.detect_tolerance_s)
>>> # for frame in frames: pipeline.process(frame)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace

from safecity.config import CameraConfig
from safecity.errors import SourceError
from safecity.video.source import is_network
from safecity.vision.types import Frame

log = logging.getLogger(__name__)

# Substream frames held ahead of the main stream: enough to cover the tolerance at
# 25 fps, few enough that a full-size "substream" does not fill the memory.
_BUFFER = 8
# How long a main frame waits (wall time) for a live substream frame of its moment
# beyond the tolerance; a substream that stalls (reconnecting) must not stall the camera.
_LIVE_WAIT_S = 1.0
# Longest a wait sleeps before it looks at the stop flags again.
_POLL_S = 0.1


class _Clock:
    """Places a stream's frames on one clock: a file's pts; a live stream's first
    frame's wall time plus pts since then."""

    def __init__(self, live: bool) -> None:
        self._origin: float | None = None if live else 0.0

    def __call__(self, frame: Frame) -> float:
        if self._origin is None:
            self._origin = frame.time.timestamp() - frame.pts
        return self._origin + frame.pts


class PairedFrames:
    """Main-stream frames, each with the detect stream's frame of the same moment.

    ``main`` and ``detect`` are iterables of :class:`Frame` (sources). ``live``:
    the streams are network streams, paired by wall clock, and a main frame waits
    only a bounded wall time for its twin; files are paired by pts, a main frame
    waiting until the substream has passed it (deterministic pairing).
    ``detect_stop`` is set when the pairing ends, for a detect source that waits on
    an event (a reconnecting one's backoff).
    :attr:`paired` and :attr:`unpaired` count main frames with and without a twin.
    One iteration per instance.
    """

    def __init__(
        self,
        main: Iterable[Frame],
        detect: Iterable[Frame],
        camera: str,
        *,
        tolerance_s: float,
        live: bool = False,
        detect_stop: threading.Event | None = None,
    ) -> None:
        self._main = main
        self._detect = detect
        self.camera = camera
        self.tolerance_s = float(tolerance_s)
        self.live = live
        self._detect_stop = detect_stop
        self.paired = 0
        self.unpaired = 0
        self._cond = threading.Condition()
        self._buffer: deque[tuple[float, Frame]] = deque()
        self._ended = False  # the detect reader is done (end of stream or error)
        self._error: BaseException | None = None
        self._closed = False
        self._wanted = float("-inf")  # clock time of the main frame being paired
        self._main_clock = _Clock(live)
        self._detect_clock = _Clock(live)

    @classmethod
    def for_camera(
        cls,
        main: Iterable[Frame],
        detect: Iterable[Frame],
        camera: CameraConfig,
        detect_stop: threading.Event | None = None,
    ) -> PairedFrames:
        """The pairing a camera's config asks for (its tolerance; live if it is a stream)."""
        return cls(
            main,
            detect,
            camera.name,
            tolerance_s=camera.decode.detect_tolerance_s,
            live=is_network(camera.url),
            detect_stop=detect_stop,
        )

    @property
    def fps(self) -> float | None:
        """The main source's rate (what the pipeline is built for)."""
        return getattr(self._main, "fps", None)

    def __iter__(self) -> Iterator[Frame]:
        reader = threading.Thread(target=self._read, name=f"detect-{self.camera}", daemon=True)
        reader.start()
        try:
            for frame in self._main:
                twin = self._twin(self._main_clock(frame))
                if twin is None:
                    if not self.live and self._ended:
                        raise SourceError(
                            f"camera '{self.camera}' detect stream ended before the main "
                            f"stream: no detect frame within {self.tolerance_s:g} s of the "
                            f"main frame at {frame.pts:.2f} s"
                        )
                    self.unpaired += 1
                    if self.unpaired == 1 or self.unpaired % 100 == 0:
                        log.warning(
                            "camera %s: %d frame(s) without a detect-stream frame within %g s; "
                            "detected on the main stream instead",
                            self.camera,
                            self.unpaired,
                            self.tolerance_s,
                        )
                    yield frame
                else:
                    self.paired += 1
                    yield replace(frame, detect_image=twin.image)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._detect_stop is not None:
                self._detect_stop.set()
            close = getattr(self._main, "close", None)
            if close is not None:
                close()

    def _twin(self, at: float) -> Frame | None:
        """The detect frame nearest clock time ``at``, within the tolerance."""
        deadline = time.monotonic() + self.tolerance_s + _LIVE_WAIT_S
        with self._cond:
            self._wanted = at
            self._cond.notify_all()
            while True:
                # Drop frames a later buffered frame is nearer to ``at`` than.
                while len(self._buffer) >= 2 and self._buffer[1][0] <= at:
                    self._buffer.popleft()
                self._cond.notify_all()
                if self._error is not None:
                    raise self._error
                passed = bool(self._buffer) and self._buffer[-1][0] >= at
                if passed or self._ended:
                    break
                if self.live and time.monotonic() >= deadline:
                    break
                self._cond.wait(_POLL_S)
            near = [(abs(t - at), f) for t, f in list(self._buffer)[:2]]
            near = [pair for pair in near if pair[0] <= self.tolerance_s]
            return min(near, key=lambda pair: pair[0])[1] if near else None

    def _read(self) -> None:
        iterator: Iterator[Frame] | None = None
        try:
            iterator = iter(self._detect)
            for frame in iterator:
                at = self._detect_clock(frame)
                with self._cond:
                    # Hold at most _BUFFER frames, and none far past the main stream.
                    while not self._closed and (
                        len(self._buffer) >= _BUFFER
                        or (self._buffer and self._buffer[-1][0] > self._wanted + self.tolerance_s)
                    ):
                        self._cond.wait(_POLL_S)
                    if self._closed:
                        return
                    self._buffer.append((at, frame))
                    self._cond.notify_all()
        except BaseException as exc:  # raised to the consumer at its next frame
            self._error = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    self._error = self._error or exc
            with self._cond:
                self._ended = True
                self._cond.notify_all()


__all__ = ["PairedFrames"]
