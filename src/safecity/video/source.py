"""Video sources: files and network streams decoded by PyAV into :class:`Frame` values.

>>> # with open_source(CameraConfig(name="gate", url="clip.mp4", fps=5)) as source:
>>> #     for frame in source: ...

Local files (AVI, MP4, GIF, anything FFmpeg reads), ``rtsp://`` (TCP by
default), ``http(s)://`` MJPEG (multipart) and HLS or progressive files.

How a source ends, and why it matters: a :class:`VideoSource` yields every frame
that decodes and then either stops (``ended_cleanly`` becomes True) or raises
:class:`SourceError` ("camera 'x' stopped after frame 123: the file is truncated
or corrupt"). A file is judged strictly — a corrupt packet, a decoder error, a
missing GIF trailer or fewer packets than the header announces all raise — so a
caller that stores results only after the loop finishes never commits a partial
analysis of a damaged file. Live streams tolerate a few undecodable packets, as
network streams lose data; :class:`ReconnectingSource` reopens them when they drop.

Decoding only what is needed: a camera analysed at ``fps`` F that sends many more
frames may let the decoder skip frames no other frame refers to (``decode.skip``:
``nonref``; ``auto`` does so for H.264/HEVC sent at 3 F or more) or all but
keyframes (``nonkey``). Skipped frames cost neither decoding nor conversion; the
frames that come out keep their true ``pts`` and their position in the stream as
``index``, so sampling, tracks and progress see real times.

A camera's ``detect_url`` (a lower-resolution substream) is opened as a source of
its own with ``role="detect"``: it is not sampled (every frame it decodes comes
out, for pairing with the main stream's; see :mod:`safecity.video.substream`) and
its errors name it ("camera 'gate' detect stream stopped after frame 12: ...").

Times: ``pts`` counts seconds from the stream's start. For a file (or any source
with a known duration) ``time`` is a start time plus ``pts`` so that a run is
reproducible; for a live stream it is the wall-clock time the frame arrived.
"""

from __future__ import annotations

import heapq
import logging
import socket
import threading
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import av
import av.error

from safecity.config import CameraConfig, ReconnectConfig
from safecity.errors import SourceError
from safecity.vision.types import Frame

log = logging.getLogger(__name__)

# FFmpeg's AVFMT_NOTIMESTAMPS: the demuxer invents timestamps (MJPEG over HTTP
# counts frames at an assumed 25 fps), so live frames are timed on arrival instead.
_NO_TIMESTAMPS = 0x0080
# A pts within this of the next sampling slot still takes it (float rounding).
_PTS_SLACK = 1e-3
# A live stream may lose packets; this many undecodable ones in a row means it is broken.
_MAX_LIVE_DECODE_ERRORS = 25
# Containers may count one frame more than they hold; more than this missing is truncation.
_FRAME_COUNT_SLACK = 1
_GIF_TRAILER = b"\x3b"
# While a camera's server is down, how often a reconnect wait checks whether it listens again.
_PORT_POLL_S = 0.25
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
# Frames FFmpeg reads to estimate an RTSP stream's frame rate when it opens (its default,
# 20, is 2 s at 10 fps and 4 s at 5 fps, all added to every reconnect). The nominal rate
# usually comes from the H.264 parameter sets anyway; a few frames cover cameras without.
_RTSP_FPS_PROBE_FRAMES = 5
# decode.skip "auto" skips non-reference frames when a stream sends at least this many
# frames per analysed frame: what is left (a third of the frames or more with up to two
# B frames in a row, half with x264's B-pyramid) still holds a frame near every slot.
AUTO_SKIP_RATIO = 3.0
# Codecs whose non-reference frames FFmpeg's decoder skips without harm to the others.
_NONREF_CODECS = frozenset({"h264", "hevc"})
# decode.skip values as FFmpeg's AVDiscard names (codec_context.skip_frame).
_SKIP_FRAME = {"none": "DEFAULT", "nonref": "NONREF", "nonkey": "NONKEY"}

Role = Literal["main", "detect"]


def choose_skip(mode: str, codec: str, stream_fps: float | None, analysis_fps: float | None) -> str:
    """What the decoder skips for a camera: ``"none"``, ``"nonref"`` or ``"nonkey"``.

    >>> choose_skip("auto", "h264", 25.0, 5.0), choose_skip("auto", "h264", 10.0, 5.0)
    ('nonref', 'none')
    >>> choose_skip("auto", "msmpeg4v3", 25.0, 5.0), choose_skip("nonkey", "gif", None, None)
    ('none', 'nonkey')
    """
    if mode != "auto":
        return mode
    if analysis_fps is None or stream_fps is None or codec not in _NONREF_CODECS:
        return "none"
    return "nonref" if stream_fps >= AUTO_SKIP_RATIO * analysis_fps else "none"


def camera_url(camera: CameraConfig, role: Role = "main") -> str:
    """The URL a camera's stream of ``role`` is read from."""
    if role == "detect":
        if camera.detect_url is None:
            raise ValueError(f"camera '{camera.name}' has no detect_url")
        return camera.detect_url
    return camera.url


def _describe_role(camera: CameraConfig, role: Role) -> str:
    return f"camera '{camera.name}'" + (" detect stream" if role == "detect" else "")


def is_network(url: str) -> bool:
    """True for URLs FFmpeg fetches over a network (rtsp, http, …), False for files."""
    return "://" in url and not url.startswith("file://")


def redact_url(url: str) -> str:
    """The URL without its password, fit for messages and logs.

    >>> redact_url("rtsp://admin:secret@10.0.0.5/live")
    'rtsp://admin:***@10.0.0.5/live'
    """
    if not is_network(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("@")[-1]
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class SourceInfo:
    """What a source says about itself when opened."""

    url: str  # with any password hidden
    format: str  # FFmpeg demuxer, e.g. "avi", "mov,mp4,…", "mpjpeg", "rtsp"
    codec: str  # e.g. "h264", "msmpeg4", "gif", "mjpeg"
    width: int
    height: int
    fps: float | None  # nominal frame rate; None when the stream does not say
    frames: int | None  # frame count from the header; None when unknown (live)
    duration_s: float | None  # None for live streams
    live: bool  # no known duration: frames are timed on arrival and may drop


def probe(url: str, timeout_s: float = 5.0, rtsp_transport: str = "tcp") -> SourceInfo:
    """Open ``url``, read its stream parameters and close it.

    >>> # probe("clip.mp4").fps
    """
    container, stream = _open(url, f"'{redact_url(url)}'", timeout_s, rtsp_transport)
    try:
        return _describe(url, container, stream)
    finally:
        container.close()


def open_source(
    camera: CameraConfig, start_time: datetime | None = None, role: Role = "main"
) -> VideoSource:
    """Open a camera's source now (raises :class:`SourceError` if it cannot be opened).

    ``start_time`` is the wall-clock time of a file's first frame; without it the
    file's ``creation_time`` tag is used, else its modification time. ``role``
    ``"detect"`` opens the camera's ``detect_url`` instead of its ``url``.
    """
    return VideoSource(camera, start_time=start_time, role=role)


class VideoSource:
    """An iterator of :class:`Frame` from one camera; see the module docstring.

    ``camera.fps`` keeps at most that many frames a second (by pts); the others
    are decoded (the codec needs them) but never converted to arrays.
    ``camera.decode.skip`` lets the decoder skip frames (:func:`choose_skip`; the
    choice is :attr:`skip`); ``camera.keyframes_only`` is ``skip: nonkey``.
    ``camera.loop`` replays a file from the start with pts and index running on.
    """

    def __init__(
        self, camera: CameraConfig, start_time: datetime | None = None, role: Role = "main"
    ) -> None:
        self.camera = camera
        self.role = role
        self.url = camera_url(camera, role)
        self.ended_cleanly = False
        self.frames_decoded = 0  # every frame the decoder returned
        self.frames_yielded = 0
        self._position = 0  # stream position (Frame.index) of the next frame not skipped
        self._what = _describe_role(camera, role)
        # The detect stream is not sampled: each of its frames may be the nearest to a main one.
        sampled = camera.fps is not None and role == "main"
        self._period = 1.0 / camera.fps if sampled else None
        self._next_due: float | None = None
        self._pass_end = 0.0  # pts of the last frame of the current pass over a file
        self._closed = False
        self._container, self._stream = self._open()
        self.info = _describe(self.url, self._container, self._stream)
        mode = "nonkey" if camera.keyframes_only else camera.decode.skip
        self.skip = choose_skip(mode, self.info.codec, self.info.fps, camera.fps)
        self._stream.codec_context.skip_frame = _SKIP_FRAME[self.skip]
        self.live = self.info.live
        self._start_time = None if self.live else (start_time or self._file_start_time())
        self._frames = self._run()

    @property
    def fps(self) -> float | None:
        """Rate frames come out at: the sampling rate, else the stream's nominal rate."""
        nominal = self.info.fps
        if self.camera.fps is None:
            return nominal
        return self.camera.fps if nominal is None else min(self.camera.fps, nominal)

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        return next(self._frames)

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the decoder and any connection; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._frames.close()
            self._container.close()

    # -- internals -------------------------------------------------------------
    def _open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        container, stream = _open(
            self.url, self._what, self.camera.timeout_s, self.camera.rtsp_transport
        )
        ctx = stream.codec_context
        ctx.thread_type = "AUTO"
        skip = getattr(self, "skip", None)  # chosen once the first open described the stream
        if skip is not None:
            ctx.skip_frame = _SKIP_FRAME[skip]
        return container, stream

    def _file_start_time(self) -> datetime:
        tag = self._container.metadata.get("creation_time")
        if tag:
            try:
                parsed = datetime.fromisoformat(tag.replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except ValueError:
                pass
        if not is_network(self.url):
            return datetime.fromtimestamp(_local_path(self.url).stat().st_mtime, UTC)
        return datetime.now(UTC)

    def _due(self, pts: float) -> bool:
        """Sampling: keep a frame when its pts reaches the next slot of 1/fps."""
        if self._period is None:
            return True
        if self._next_due is not None and pts < self._next_due - _PTS_SLACK:
            return False
        if self._next_due is None or pts > self._next_due + self._period:
            self._next_due = pts + self._period  # first frame, or after a gap: restart the grid
        else:
            self._next_due += self._period
        return True

    def _run(self) -> Iterator[Frame]:
        pts_offset = 0.0
        try:
            while True:
                count_before = self.frames_decoded
                self._pass_end = pts_offset
                yield from self._decode(pts_offset)
                if not (self.camera.loop and not self.live) or self.frames_decoded == count_before:
                    self.ended_cleanly = True
                    return
                # Loop: continue one frame period after the last frame of the pass (not the
                # last one sampled, nor the last one decoded when the decoder skips).
                pts_offset = self._pass_end + 1.0 / (self.info.fps or 25.0)
                self._container.close()
                self._container, self._stream = self._open()
        finally:
            self._container.close()

    def _decode(self, pts_offset: float) -> Iterator[Frame]:
        stream, live = self._stream, self.live
        timed_on_arrival = live and bool(self._container.format.flags & _NO_TIMESTAMPS)
        base = Fraction(stream.time_base) if stream.time_base else None
        first_pts: int | None = None if live else (stream.start_time or 0)
        t0: float | None = None
        last_pts = -1.0
        packets = errors = count = 0
        # With skipping, the pts of every packet demuxed and not yet matched by a frame:
        # frames come out in pts order, so those below a frame's pts were skipped.
        pending: list[int] | None = [] if self.skip != "none" else None
        demuxer = self._container.demux(stream)
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError) as exc:
                raise self._broken(_reason(exc, self.camera.timeout_s)) from None
            if packet.size:
                packets += 1
                if packet.is_corrupt and not live:
                    raise self._broken("the file is truncated or corrupt")
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None and base is not None and first_pts is not None:
                    end = float((stamp - first_pts) * base) + pts_offset
                    self._pass_end = max(self._pass_end, end)
                if pending is not None and stamp is not None:
                    heapq.heappush(pending, stamp)
            try:
                decoded = packet.decode()
            except (av.error.FFmpegError, OSError) as exc:
                if not live:
                    reason = f"the file is truncated or corrupt ({_strerror(exc)})"
                    raise self._broken(reason) from None
                errors += 1
                if errors >= _MAX_LIVE_DECODE_ERRORS:
                    reason = "the stream keeps sending data that does not decode"
                    raise self._broken(reason) from None
                continue
            errors = 0
            for av_frame in decoded:
                index = self._index(pending, av_frame.pts)
                self.frames_decoded += 1
                count += 1
                now = _time.monotonic()
                if t0 is None:
                    t0 = now
                if timed_on_arrival or av_frame.pts is None or base is None:
                    pts = now - t0 if live else (count - 1) / (self.info.fps or 25.0)
                else:
                    if first_pts is None:
                        first_pts = av_frame.pts
                    pts = float((av_frame.pts - first_pts) * base)
                # Live timestamps can jump back at a discontinuity; keep them ordered.
                pts = max(pts + pts_offset, last_pts) if live else pts + pts_offset
                last_pts = pts
                self._pass_end = max(self._pass_end, pts)
                if not self._due(pts):
                    continue
                wall = (
                    datetime.now(UTC)
                    if self._start_time is None
                    else self._start_time + timedelta(seconds=pts)
                )
                image = av_frame.to_ndarray(format="bgr24")
                self.frames_yielded += 1
                yield Frame(self.camera.name, index, pts, wall, image)
        if pending:
            self._position += len(pending)  # skipped frames after the last one out
        if not live:
            self._check_complete(packets)

    def _index(self, pending: list[int] | None, pts: int | None) -> int:
        """Stream position of a decoded frame: skipped frames before it count too."""
        if pending and pts is not None:
            while pending and pending[0] < pts:
                heapq.heappop(pending)
                self._position += 1
            if pending and pending[0] == pts:
                heapq.heappop(pending)
        index = self._position
        self._position += 1
        return index

    def _check_complete(self, packets: int) -> None:
        """A file that ends without error may still be cut short: compare with its header."""
        expected = self.info.frames
        if expected and packets < expected - _FRAME_COUNT_SLACK:
            raise self._broken(
                f"the file is truncated ({packets} of the {expected} frames its header announces)"
            )
        if self._stream.codec_context.name == "gif" and not is_network(self.url):
            path = _local_path(self.url)
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 1))
                if fh.read(1) != _GIF_TRAILER:
                    raise self._broken("the GIF file is truncated (its end marker is missing)")

    def _broken(self, reason: str) -> SourceError:
        if self.frames_decoded == 0:
            return SourceError(f"{self._what} stopped before its first frame: {reason}")
        return SourceError(f"{self._what} stopped after frame {self.frames_decoded - 1}: {reason}")


class ReconnectingSource:
    """Frames from a camera, reopened with exponential backoff whenever a live stream drops.

    Index and pts run on across reconnects (pts also counts the time spent
    offline), so trackers and samplers downstream see one continuous stream.
    A file is passed through: its end ends iteration and its errors propagate.
    Backoff waits ``initial_s``, doubling up to ``max_s``; after
    ``max_attempts`` failed attempts in a row :class:`SourceError` is raised.
    While the camera's server refuses connections (down, restarting) the wait
    checks every 0.25 s whether it listens again and ends early when it does, so a
    server back after a long outage is reopened at once, not after a backoff grown
    to ``max_s``; a server that accepts connections but fails keeps the full backoff.
    ``on_reconnect(attempt, error)`` is called before each attempt (attempt counts
    from 1 within one outage). Setting ``stop`` ends iteration at the next frame
    or during a wait (a blocked read returns within ``camera.timeout_s``).
    ``wait(seconds)`` sleeps (True: stopped); a wait that checks the server is
    made of several calls of at most 0.25 s. ``role="detect"`` reads the camera's
    ``detect_url`` (``opener`` then defaults to opening that).

    >>> # for frame in ReconnectingSource(camera, config.reconnect, stop=event): ...
    """

    def __init__(
        self,
        camera: CameraConfig,
        reconnect: ReconnectConfig,
        stop: threading.Event | None = None,
        *,
        on_reconnect: Callable[[int, str], None] | None = None,
        wait: Callable[[float], bool] | None = None,
        opener: Callable[[CameraConfig], VideoSource] | None = None,
        role: Role = "main",
    ) -> None:
        self.camera = camera
        self.role = role
        self.url = camera_url(camera, role)
        self._what = _describe_role(camera, role)
        self.config = reconnect
        self.stop = stop or threading.Event()
        self.on_reconnect = on_reconnect
        # Waiting on the stop event makes a stop interrupt the backoff at once.
        self._wait = wait or self.stop.wait
        self._opener = opener or (lambda c: open_source(c, role=role))
        self.reconnects = 0  # attempts made after a drop or a failed open
        self.sessions = 0  # successful opens
        self.fps: float | None = None
        self._source: VideoSource | None = None

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1, 2, …)."""
        return min(self.config.initial_s * 2 ** (attempt - 1), self.config.max_s)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()

    def _wait_out(self, delay: float) -> bool:
        """Wait ``delay`` s before the next attempt, less if a down server listens again.

        Returns True when stopped. The check is a bare TCP connect: cheap for the
        server, and it tells "still down" (refused, no answer) from "back".
        """
        address = _tcp_address(self.url)
        if address is None or delay <= _PORT_POLL_S or _listens(address):
            return self._wait(delay) or self.stop.is_set()
        deadline = _time.monotonic() + delay
        while (left := deadline - _time.monotonic()) > 0:
            if self._wait(min(_PORT_POLL_S, left)) or self.stop.is_set():
                return True
            if _listens(address):
                log.info("%s: its server listens again", self._what)
                return False
        return False

    def __iter__(self) -> Iterator[Frame]:
        what = self._what
        attempt = 0  # failed attempts in a row; 0 while the stream is healthy
        error = ""
        index_offset = 0
        pts_offset = 0.0
        last: tuple[int, float, float] | None = None  # index, pts, monotonic of the last frame
        while not self.stop.is_set():
            if error:
                attempt += 1
                if self.config.max_attempts is not None and attempt > self.config.max_attempts:
                    raise SourceError(
                        f"{what} gave up after {self.config.max_attempts} reconnect "
                        f"attempts: {error}"
                    )
                delay = self.backoff(attempt)
                log.warning("%s: reconnect attempt %d in %.3g s (%s)", what, attempt, delay, error)
                if self._wait_out(delay):
                    return
                self.reconnects += 1
                if self.on_reconnect is not None:
                    self.on_reconnect(attempt, error)
            try:
                source = self._opener(self.camera)
            except SourceError as exc:
                if not is_network(self.url):
                    raise  # a missing or unreadable file does not heal by waiting
                error = str(exc)
                continue
            self._source = source
            self.sessions += 1
            self.fps = source.fps
            if attempt:
                log.info("%s: reconnected after %d attempt(s)", what, attempt)
            first = True
            try:
                for frame in source:
                    if first:
                        first = False
                        attempt = 0
                        if last is not None:
                            index_offset = last[0] + 1 - frame.index
                            pts_offset = last[1] + (_time.monotonic() - last[2]) - frame.pts
                    out = replace(
                        frame, index=frame.index + index_offset, pts=frame.pts + pts_offset
                    )
                    last = (out.index, out.pts, _time.monotonic())
                    yield out
                    if self.stop.is_set():
                        return
                if not source.live:
                    return
                error = "the stream ended"
            except SourceError as exc:
                if not source.live:
                    raise
                error = str(exc)
            finally:
                source.close()
                self._source = None


# -- helpers -----------------------------------------------------------------------
def _local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url)


def _tcp_address(url: str) -> tuple[str, int] | None:
    """Host and port a network camera's server listens on; None for files and odd URLs."""
    if not is_network(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


def _listens(address: tuple[str, int]) -> bool:
    """True when a TCP connection to ``address`` is accepted (within half a second)."""
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def _strerror(exc: BaseException) -> str:
    # FFmpeg errors carry the URL (and so any password) in str(exc): use strerror only.
    return getattr(exc, "strerror", None) or type(exc).__name__


def _reason(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, av.error.ExitError | TimeoutError):
        return f"no data within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, av.error.HTTPError):
        return f"the server answered: {_strerror(exc)}"
    return _strerror(exc).rstrip(".").lower()


def _open(
    url: str, what: str, timeout_s: float, rtsp_transport: str
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    network = is_network(url)
    shown = redact_url(url)
    options: dict[str, str] = {}
    if network:
        if urlsplit(url).scheme.lower() in ("rtsp", "rtsps"):
            options["rtsp_transport"] = rtsp_transport
            options["fpsprobesize"] = str(_RTSP_FPS_PROBE_FRAMES)
        target, timeout = url, (timeout_s, timeout_s)
    else:
        path = _local_path(url)
        if not path.exists():
            raise SourceError(f"cannot open {what}: file not found ({path})")
        if path.is_dir():
            raise SourceError(f"cannot open {what}: {path} is a directory, not a video file")
        target, timeout = str(path), None
    try:
        container = av.open(target, options=options, timeout=timeout)
    except av.error.InvalidDataError:
        reason = (
            "the server did not send a video stream FFmpeg understands"
            if network
            else "the file is not a video, or is damaged"
        )
        raise SourceError(f"cannot open {what}: {reason} ({shown})") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {what}: {_reason(exc, timeout_s)} ({shown})") from None
    fmt = container.format.name
    if not container.streams.video:
        container.close()
        raise SourceError(f"cannot open {what}: it has no video stream ({shown})")
    if fmt.endswith("_pipe") or fmt == "image2":
        container.close()
        raise SourceError(f"cannot open {what}: it is a still image, not a video ({shown})")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise SourceError(f"cannot open {what}: its video codec cannot be decoded ({shown})")
    return container, stream


def _describe(
    url: str, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> SourceInfo:
    duration: float | None = None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
    elif stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    no_timestamps = bool(container.format.flags & _NO_TIMESTAMPS)
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate and not no_timestamps else None
    return SourceInfo(
        url=redact_url(url),
        format=container.format.name,
        codec=stream.codec_context.name,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=fps,
        frames=stream.frames or None,
        duration_s=duration,
        live=is_network(url) and duration is None,
    )


__all__ = [
    "AUTO_SKIP_RATIO",
    "ReconnectingSource",
    "SourceInfo",
    "VideoSource",
    "camera_url",
    "choose_skip",
    "is_network",
    "open_source",
    "probe",
    "redact_url",
]
