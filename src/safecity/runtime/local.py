"""Runs camera pipelines on one machine.

``analyze_one`` runs one source to its end; ``CameraFleet`` runs every camera of a
config at once, each in its own thread with reconnect and backoff, so one
dropped camera never stops the others. A camera with ``live_pace`` plays its file
as a live camera would (:class:`~safecity.video.pacing.LivePacer`): at its own
rate, the frames the analyser cannot take dropped and counted. Models are loaded
once and shared: decoding and ONNX Runtime release the GIL and run in parallel;
YuNet and dlib hold it, so face work of several cameras takes turns.

Writes are all-or-nothing for a file: its events are stored in one transaction
only after the file decoded to its end, so a corrupt or truncated file leaves no
rows. Live sources store each event as its track ends.

``HealthReporter`` writes the fleet's :class:`CameraStats` to the database every
few seconds (:mod:`safecity.store.health`), so the console, in another process,
can show each camera's health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING

import numpy as np

from safecity.config import CameraConfig, SafecityConfig
from safecity.errors import SafecityError, SourceError
from safecity.events import Event
from safecity.pipeline import (
    CameraPipeline,
    FrameResult,
    MatcherProvider,
    PlateMatcherProvider,
    Stages,
)
from safecity.store.db import Store
from safecity.store.health import default_host, report_health
from safecity.vision.types import Frame

if TYPE_CHECKING:
    from safecity.metrics import ProcessMetrics

log = logging.getLogger(__name__)

#: Seconds between two health reports of a running fleet.
HEALTH_INTERVAL_S = 5.0

#: Seconds of recent frames that lags and the analysed rate of :class:`CameraStats` cover.
WINDOW_S = 30.0
#: At most this many recent lags are kept per camera, whatever the window.
WINDOW_MAX = 10_000

#: Receives finished events; returns their ids. The store sink is one.
EventWriter = Callable[[list[Event]], list[int]]


@dataclass
class CameraStats:
    """Health figures of one camera, for logs, the CLI, the console and benchmarks.

    Counters run from the start; lags and the analysed rate cover a recent window
    (the last ``window_s`` seconds, at most :data:`WINDOW_MAX` entries), so a
    long-running camera shows how it does now, and a benchmark can
    :meth:`restart_window` after its warm-up. A camera thread records while any
    thread reads (:meth:`summary`): the windows are guarded by a lock.
    """

    camera: str
    frames_in: int = 0
    frames_analysed: int = 0
    events: int = 0
    reconnects: int = 0
    detector_ms: list[float] = field(default_factory=list)
    lag_s: float = 0.0
    state: str = "starting"
    last_error: str = ""
    dropped: int = 0  # frames a live-paced source dropped because the analyser was busy
    window_s: float = WINDOW_S
    # (monotonic time, seconds) per frame: from frame.time to the end of its analysis
    _lags: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=WINDOW_MAX), init=False, repr=False, compare=False
    )
    # (monotonic time, seconds) per stored event: from its last frame's time to stored
    _event_lags: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=WINDOW_MAX), init=False, repr=False, compare=False
    )
    _since: float = field(default_factory=time.monotonic, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def record(self, result: FrameResult) -> None:
        """One frame through the pipeline: called right after its analysis ended."""
        self.frames_in += 1
        if result.analysed:
            self.frames_analysed += 1
            self.detector_ms.append(result.timings_ms.get("detector", 0.0))
            del self.detector_ms[:-200]  # a rolling window is enough for health
        self.lag_s = max(0.0, (datetime.now(UTC) - result.frame.time).total_seconds())
        with self._lock:
            self._lags.append((time.monotonic(), self.lag_s))

    def record_stored(self, events: Iterable[Event], stored_at: datetime) -> None:
        """Events stored at ``stored_at``: each one's lag from its last frame (``ended_at``)."""
        now = time.monotonic()
        lags = [max(0.0, (stored_at - e.ended_at).total_seconds()) for e in events]
        with self._lock:
            self._event_lags.extend((now, lag) for lag in lags)

    def restart_window(self) -> None:
        """Forget the recent window (lags, rate): figures from now on only."""
        with self._lock:
            self._lags.clear()
            self._event_lags.clear()
            self._since = time.monotonic()

    @property
    def detector_ms_median(self) -> float:
        return median(self.detector_ms) if self.detector_ms else 0.0

    def summary(self) -> dict:
        """The figures as a JSON-ready dict (lags in seconds, over the recent window).

        ``analysed_fps`` counts every frame the pipeline finished per second, whether
        or not the motion gate let the detector run on it (``frames_analysed`` counts
        the detector runs): it is the rate the camera keeps up with.
        """
        now = time.monotonic()
        start = max(self._since, now - self.window_s)
        with self._lock:
            lags = [lag for at, lag in self._lags if at >= start]
            event_lags = [lag for at, lag in self._event_lags if at >= start]
        span = now - start
        return {
            "camera": self.camera,
            "state": self.state,
            "frames_in": self.frames_in,
            "frames_analysed": self.frames_analysed,
            "dropped": self.dropped,
            "analysed_fps": round(len(lags) / span, 3) if span > 0 else 0.0,
            "lag_p50_s": _percentile(lags, 50),
            "lag_p95_s": _percentile(lags, 95),
            "event_lag_p50_s": _percentile(event_lags, 50),
            "event_lag_p95_s": _percentile(event_lags, 95),
            "events": self.events,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }


def _percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation), ``None`` for no values (JSON null)."""
    if not values:
        return None
    return round(float(np.percentile(values, q)), 4)


@dataclass
class AnalyzeReport:
    camera: str
    source: str
    frames_in: int
    frames_analysed: int
    seconds: float
    event_ids: list[int]
    events: list[Event]
    annotated_video: Path | None


def analyze_one(
    camera: CameraConfig,
    config: SafecityConfig,
    stages: Stages,
    write: EventWriter,
    matcher_for: MatcherProvider | None = None,
    annotated_video: Path | None = None,
    start_time: datetime | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    stop: threading.Event | None = None,
    plate_matcher_for: PlateMatcherProvider | None = None,
) -> AnalyzeReport:
    """Run one source to its end (or until ``stop`` is set) and store its events.

    A file is all-or-nothing: if it turns out corrupt part-way, or is stopped
    before its end, nothing is stored and no annotated video is left behind
    (``SourceError``). A live stream that is stopped ends its open tracks and
    stores their events.
    """
    from safecity.video.annotate import Annotator, open_writer
    from safecity.video.source import open_source
    from safecity.video.substream import PairedFrames

    started = time.perf_counter()
    start_time = start_time or datetime.now(UTC)
    source = open_source(camera, start_time=start_time)
    frames: Iterable[Frame] = source
    if camera.detect_url is not None:
        try:
            detect = open_source(camera, start_time=start_time, role="detect")
        except SourceError:
            source.close()
            raise
        frames = PairedFrames.for_camera(source, detect, camera)
    # The source knows the rate it yields: min(requested, native).
    fps = source.fps or 10.0
    pipeline = CameraPipeline(
        camera.name,
        config,
        stages,
        fps=fps,
        matcher_for=matcher_for,
        read_plates=camera.read_plates,
        plate_matcher_for=plate_matcher_for,
    )
    # Live sources store events as tracks end; a file (even over HTTP) all at the end.
    live = source.live
    writer = None
    annotator = Annotator(stages.redactor)
    pending: list[Event] = []
    ids: list[int] = []
    try:
        for frame in frames:
            if stop is not None and stop.is_set():
                if not live:
                    raise SourceError(f"stopped before the end of {camera.url}; nothing was stored")
                break
            result = pipeline.process(frame)
            if on_frame is not None:
                on_frame(result)
            if annotated_video is not None:
                if writer is None:
                    writer = open_writer(annotated_video, fps, frame.width, frame.height)
                writer.write(annotator.draw(result))
            if live and result.ended:
                ids += write(result.ended)
            else:
                pending += result.ended
        pending += pipeline.finish()
        ids += write(pending)
        video = writer.close() if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        source.close()
    return AnalyzeReport(
        camera=camera.name,
        source=camera.url,
        frames_in=pipeline.frames_in,
        frames_analysed=pipeline.frames_analysed,
        seconds=time.perf_counter() - started,
        event_ids=ids,
        events=pending,
        annotated_video=video,
    )


def replays_from_start(camera: CameraConfig) -> bool:
    """Whether ``camera`` started again elsewhere sees the same frames again: a file
    played once as fast as it decodes (not looped, not live-paced, not a stream)."""
    from safecity.video.source import is_network

    return not (camera.loop or camera.live_pace or is_network(camera.url))


class CameraFleet:
    """Every enabled camera of a config, each in a thread, until stopped.

    A live source that drops is reopened with exponential backoff
    (``config.reconnect``); the other cameras keep going meanwhile. A file camera
    ends at its end unless ``loop`` is set.
    """

    def __init__(
        self,
        config: SafecityConfig,
        stages: Stages,
        write: EventWriter,
        matcher_for: MatcherProvider | None = None,
        stop: threading.Event | None = None,
        on_frame: Callable[[str, FrameResult], None] | None = None,
        on_camera_end: Callable[[str], None] | None = None,
        metrics: ProcessMetrics | None = None,
        plate_matcher_for: PlateMatcherProvider | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics  # stage timings and lags of every frame, for Prometheus
        # Sees every frame's result (the console's live view); must return at once.
        self.on_frame = on_frame
        self.on_camera_end = on_camera_end  # a camera stopped for good (live view ends)
        self.stages = stages
        self.write = write
        self.matcher_for = matcher_for
        self.plate_matcher_for = plate_matcher_for
        self.stop = stop or threading.Event()
        self._handed_over = False
        cameras = [c for c in config.cameras if c.enabled]
        self.stats = {c.name: CameraStats(c.name) for c in cameras}
        # The i-th of n cameras searches its whole frame for faces i/n into each
        # period: the searches spread evenly over it rather than all at once.
        self._threads = [
            threading.Thread(
                target=self._run_camera,
                args=(c, i / len(cameras)),
                name=f"camera-{c.name}",
                daemon=True,
            )
            for i, c in enumerate(cameras)
        ]
        self._write_lock = threading.Lock()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def hand_over(self) -> None:
        """Stop because the cameras move to another process, which starts them afresh.

        A file camera there plays its file again from the beginning and ends every track
        with its whole evidence; tracks still open here are dropped rather than ended
        early, or the early end would be stored first and keep the uuid (the stored
        event cut short, or one the whole run would not keep at all). A live camera's open
        tracks end and are stored as on any stop: nobody sees those seconds again.
        """
        self._handed_over = True
        self.stop.set()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _store(self, events: list[Event], stats: CameraStats) -> None:
        if not events:
            return
        with self._write_lock:
            try:
                self.write(events)
                stats.record_stored(events, datetime.now(UTC))  # "stored": the write returned
                stats.events += len(events)
            except SafecityError as exc:
                # The database went away: say so, keep analysing; these events are lost
                # rather than half-written.
                stats.last_error = str(exc)
                log.error("camera %s: %d event(s) not stored: %s", stats.camera, len(events), exc)

    def _run_camera(self, camera: CameraConfig, search_phase: float = 0.0) -> None:
        from safecity.video.pacing import LivePacer
        from safecity.video.source import ReconnectingSource
        from safecity.video.substream import PairedFrames

        stats = self.stats[camera.name]
        pipeline: CameraPipeline | None = None
        pacer: LivePacer | None = None

        def on_reconnect(attempt: int, error: str) -> None:
            stats.reconnects += 1
            stats.state = "reconnecting"
            stats.last_error = error

        try:
            source = ReconnectingSource(
                camera, self.config.reconnect, stop=self.stop, on_reconnect=on_reconnect
            )
            frames: Iterable[Frame] = source
            if camera.detect_url is not None:
                detect_stop = threading.Event()
                detect = ReconnectingSource(
                    camera,
                    self.config.reconnect,
                    detect_stop,
                    on_reconnect=on_reconnect,
                    role="detect",
                )
                frames = PairedFrames.for_camera(source, detect, camera, detect_stop)
            # A live-paced file sends frames at its own rate and drops what we miss.
            if camera.live_pace:
                frames = pacer = LivePacer(frames, self.stop)
            for frame in _until(frames, self.stop):
                if pipeline is None:
                    fps = source.fps or 10.0
                    pipeline = CameraPipeline(
                        camera.name,
                        self.config,
                        self.stages,
                        fps=fps,
                        matcher_for=self.matcher_for,
                        read_plates=camera.read_plates,
                        plate_matcher_for=self.plate_matcher_for,
                        search_phase=search_phase,
                    )
                stats.state = "running"
                result = pipeline.process(frame)
                stats.record(result)
                if self.metrics is not None:
                    self.metrics.observe_frame(stats, result)
                if pacer is not None:
                    stats.dropped = pacer.dropped
                if self.on_frame is not None:
                    self.on_frame(camera.name, result)
                self._store(result.ended, stats)
            stats.state = "stopped"
        except SafecityError as exc:
            stats.state = "failed"
            stats.last_error = str(exc)
            log.error("camera %s stopped: %s", camera.name, exc)
        except Exception as exc:  # one camera's bug must not take the others down
            stats.state = "failed"
            stats.last_error = f"internal error: {exc!r}"
            log.exception("camera %s crashed", camera.name)
        finally:
            if pacer is not None:
                stats.dropped = pacer.dropped
            if pipeline is not None and not (self._handed_over and replays_from_start(camera)):
                self._store(pipeline.finish(), stats)
            if self.on_camera_end is not None:
                self.on_camera_end(camera.name)


class HealthReporter:
    """A daemon thread that writes camera health to the store every ``interval_s``.

    ``stats`` is the fleet's :class:`CameraStats` (``fleet.stats.values()``) or a
    function returning them. One report at start, one every ``interval_s``, and
    one more on :meth:`stop` (the final states). A failing database is logged
    (once per outage) and retried at the next tick; it never stops the fleet.

    >>> reporter = HealthReporter(store, fleet.stats.values())  # doctest: +SKIP
    >>> reporter.start(); ...; reporter.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        stats: Iterable[CameraStats] | Callable[[], Iterable[CameraStats]],
        *,
        interval_s: float = HEALTH_INTERVAL_S,
        host: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be positive")
        self.store = store
        self._stats = stats
        self.interval_s = float(interval_s)
        self.host = host or default_host()
        self._now = now
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread's tick and stop()'s last report
        self._failing = False
        self.reports = 0  # successful reports so far
        self._thread = threading.Thread(target=self._loop, name="health-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread and report the final figures once more."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.report()

    def report(self) -> bool:
        """Write the current figures now; ``False`` (logged) when that failed."""
        with self._lock:
            try:
                stats = list(self._stats() if callable(self._stats) else self._stats)
                report_health(self.store, stats, self.host, self._now())
            except Exception as exc:  # the database is down: say so, keep analysing
                if not self._failing:
                    log.warning("camera health not reported: %s", exc)
                else:
                    log.debug("camera health not reported: %s", exc)
                self._failing = True
                return False
            if self._failing:
                log.info("camera health reported again")
            self._failing = False
            self.reports += 1
            return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.report()
            self._stop.wait(self.interval_s)


def _until(frames: Iterable, stop: threading.Event) -> Iterable:
    for frame in frames:
        if stop.is_set():
            return
        yield frame


__all__ = [
    "AnalyzeReport",
    "CameraFleet",
    "CameraStats",
    "HealthReporter",
    "SourceError",
    "analyze_one",
]
