"""Live pacing: a file played as a live camera would send it.

A file decodes as fast as the machine allows, so an analyser reading it never
falls behind and never loses a frame; a live camera sends frames at its own
rate whatever the analyser does, and a frame not taken before the next one
arrives is gone. :class:`LivePacer` turns the first into the second, so that
benchmarks and rehearsals on files see what a real camera network would:
frames released at the wall time their ``pts`` says, only the newest one held,
the others dropped (and counted) when the consumer is slower than the source.

>>> # for frame in LivePacer(ReconnectingSource(camera, reconnect, stop=stop), stop):
>>> #     pipeline.process(frame)  # frame.time is when it was released
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

from safecity.vision.types import Frame

# Stream times are rounded (a 12.5 fps GIF gives 0.08, 0.17, ...): a period counts as
# elapsed a millisecond early.
PTS_SLACK_S = 1e-3


def due_again(last_pts: float | None, pts: float, period_s: float) -> bool:
    """Whether something done at stream time ``last_pts`` is due again at ``pts``:
    never done, the stream restarted (``pts`` went back), or ``period_s`` has passed.

    >>> due_again(None, 3.0, 1.0), due_again(2.0, 2.5, 1.0), due_again(2.0, 2.9995, 1.0)
    (True, False, True)
    >>> due_again(2.0, 0.1, 1.0)  # the file looped
    True
    """
    return last_pts is None or pts < last_pts or pts - last_pts >= period_s - PTS_SLACK_S


# Longest a wait sleeps before it looks at the caller's stop event again: that event
# cannot wake our condition, so a stop is noticed within this many seconds.
_STOP_POLL_S = 0.1


class LivePacer:
    """An iterable of :class:`Frame` released at the pace of their ``pts``.

    A reader thread pulls frames from ``frames`` and releases each at the wall
    time its ``pts`` says (the first frame at once). Only the newest released
    frame is held: when the consumer has not taken it by the time the next one is
    released, it is replaced and counted in :attr:`dropped`. A released frame's
    ``time`` is the wall-clock time (UTC) of its release, as a live camera's frames
    are stamped when they arrive. A reader that falls behind (decoding slower than
    the clip's rate) releases each frame as soon as it has it.

    Iteration ends when the source ends (after its last frame is taken), when
    ``stop`` is set, or when the consumer stops iterating; an error of the source
    (:class:`~safecity.errors.SourceError`) is raised to the consumer after the
    frames released before it. One iteration per pacer.
    """

    def __init__(self, frames: Iterable[Frame], stop: threading.Event | None = None) -> None:
        self._frames = frames
        self.stop = stop or threading.Event()
        self.released = 0  # frames the reader released (taken + dropped + one pending)
        self.taken = 0  # frames the consumer got
        self.dropped = 0  # released frames replaced before the consumer took them
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._ended = False  # the reader is done: source ended, failed, or stopped
        self._error: BaseException | None = None
        self._closed = False  # the consumer stopped iterating
        self._started = False

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError("a LivePacer can be iterated once")
        self._started = True
        reader = threading.Thread(target=self._read, name="live-pacer", daemon=True)
        reader.start()
        try:
            while True:
                with self._cond:
                    while self._slot is None and not self._ended and not self.stop.is_set():
                        self._cond.wait(_STOP_POLL_S)
                    if self.stop.is_set():
                        return
                    frame, self._slot = self._slot, None
                    if frame is None:  # ended with nothing pending
                        if self._error is not None:
                            raise self._error
                        return
                    self.taken += 1
                yield frame
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _halted(self) -> bool:
        return self._closed or self.stop.is_set()

    def _read(self) -> None:
        iterator: Iterator[Frame] | None = None
        t0: float | None = None
        pts0 = 0.0
        try:
            iterator = iter(self._frames)
            for frame in iterator:
                if t0 is None:
                    t0, pts0 = time.monotonic(), frame.pts
                due = t0 + (frame.pts - pts0)
                with self._cond:
                    while not self._halted():
                        left = due - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(min(left, _STOP_POLL_S))
                    if self._halted():
                        return
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = replace(frame, time=datetime.now(UTC))
                    self.released += 1
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the consumer, who raises it
            self._error = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()  # a generator's own cleanup (a source closes its decoder) runs here
                except Exception as exc:  # the source's own error is the one that matters
                    self._error = self._error or exc
            with self._cond:
                self._ended = True
                self._cond.notify_all()


__all__ = ["LivePacer"]
