"""LivePacer on a real clip: frames at their own pace, the newest held, the rest dropped.

The arcade clip runs at 25 fps; its first two seconds are 50 frames that decode
in a fraction of a second, so a pacer that did not wait would end far sooner
than a live camera.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from itertools import islice, takewhile

import pytest
from clock_support import needs_real_timed_waits

from safecity.config import CameraConfig
from safecity.errors import SourceError
from safecity.video.pacing import LivePacer
from safecity.video.source import open_source

pytestmark = needs_real_timed_waits  # the pacer waits on the wall clock


@pytest.fixture
def arcade(data_dir):
    """The first two seconds (50 frames) of the 25 fps arcade clip."""
    source = open_source(
        CameraConfig(name="arcade", url=str(data_dir / "video/arcade-crowd-1080p.mp4"))
    )
    yield takewhile(lambda frame: frame.pts < 2.0, source)
    _reader_gone()  # the reader owns the source while it runs
    source.close()


def test_frames_are_released_at_their_pace_and_stamped_on_release(arcade):
    pacer = LivePacer(arcade)
    started = time.monotonic()
    arrivals = []
    for frame in pacer:
        arrivals.append((time.monotonic() - started, datetime.now(UTC), frame))
    elapsed = time.monotonic() - started
    assert 1.8 < elapsed < 3.0  # 2 s of video takes about 2 s, not the decoder's 0.1 s
    assert pacer.released == 50
    assert pacer.taken + pacer.dropped == pacer.released
    assert pacer.taken >= 45  # an idle consumer takes (nearly) every frame
    for offset, received, frame in arrivals:
        # Released at its pts, stamped with the wall-clock time of its release.
        assert abs(offset - frame.pts) < 0.25
        assert frame.time.tzinfo is not None
        assert 0 <= (received - frame.time).total_seconds() < 0.25
    first, last = arrivals[0][2], arrivals[-1][2]
    span = (last.time - first.time).total_seconds()
    assert span == pytest.approx(last.pts - first.pts, abs=0.25)


def test_a_slow_consumer_gets_fewer_frames_and_the_rest_are_dropped(arcade):
    pacer = LivePacer(arcade)
    started = time.monotonic()
    taken = []
    for frame in pacer:
        taken.append(frame)
        time.sleep(0.2)  # an analyser five times slower than the camera
    elapsed = time.monotonic() - started
    assert elapsed < 3.0  # the source kept its pace: no backlog to work through
    assert pacer.released == 50
    assert 6 <= len(taken) <= 14  # about one frame in five
    assert pacer.dropped == pacer.released - len(taken) >= 36
    # What it got is the newest frame each time: the indexes skip, in order.
    indexes = [frame.index for frame in taken]
    assert indexes == sorted(indexes) and indexes[-1] - indexes[0] > 40


def test_stop_ends_a_looping_source(data_dir):
    source = open_source(
        CameraConfig(name="loop", url=str(data_dir / "video/arcade-crowd-1080p.mp4"), loop=True)
    )
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    frames = sum(1 for _ in LivePacer(source, stop))
    assert time.monotonic() - started < 1.0  # a loop never ends by itself
    assert 5 <= frames <= 20  # about 0.5 s of 25 fps
    _reader_gone()


def test_leaving_the_loop_ends_the_reader_and_closes_the_source(data_dir):
    source = open_source(
        CameraConfig(name="loop", url=str(data_dir / "video/arcade-crowd-1080p.mp4"), loop=True)
    )
    assert len(list(islice(LivePacer(source), 3))) == 3
    _reader_gone()
    with pytest.raises(StopIteration):
        next(source)  # closed by the reader on its way out


def test_a_source_error_reaches_the_consumer_after_the_frames_before_it(data_dir):
    clip = CameraConfig(name="c", url=str(data_dir / "video/arcade-crowd-1080p.mp4"))
    with open_source(clip) as source:
        frames = list(islice(source, 3))

    def broken():
        yield from frames
        raise SourceError("camera 'c' stopped after frame 2: the file is truncated or corrupt")

    got = []
    with pytest.raises(SourceError, match="truncated"):
        for frame in LivePacer(broken()):
            got.append(frame.index)
    assert got == [0, 1, 2]


def test_a_pacer_is_iterated_once(arcade):
    pacer = LivePacer(arcade)
    next(iter(pacer))
    with pytest.raises(RuntimeError):
        next(iter(pacer))


def _reader_gone(timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while any(t.name == "live-pacer" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the pacer's reader thread is still running"
        time.sleep(0.02)
