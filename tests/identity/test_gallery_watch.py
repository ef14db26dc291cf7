"""Watchlist changes reach every analysing process within 2 s, and templates live in
memory only while an authorisation allows matching.

Two gallery caches stand for two workers: one in this process, one in a real
second process (its own interpreter, its own connections). Both must see a
revocation (the matcher goes, and so do the vectors) and a new watchlist within
2 s of the commit, on PostgreSQL (LISTEN/NOTIFY) and on SQLite (data_version).
"""

from __future__ import annotations

import json
import logging
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from clock_support import needs_real_timed_waits
from governance.governance_support import DAY, HOUR, T0, add_person, authorised_watchlist, unit
from sqlalchemy import text, update

from safecity.config import SafecityConfig
from safecity.governance.authorisations import revoke, start_emergency
from safecity.governance.clock import ManualClock
from safecity.governance.uses import AuditedGallery
from safecity.identity.gallery import GalleryCache
from safecity.identity.watchlists import create_watchlist
from safecity.store import Store, open_store
from safecity.store.schema import Authorisation

log = logging.getLogger(__name__)

WITHIN_S = 2.0
CAMERA = "gate-1"

# The second worker: prints its view (is there a matcher on gate-1, which templates
# are held) with time.monotonic() (one clock for every process on Linux) at each change.
CHILD = """
import json, sys, time
from datetime import datetime
from pathlib import Path
from safecity.config import SafecityConfig
from safecity.governance.clock import ManualClock
from safecity.identity.gallery import GalleryCache
from safecity.identity.watchlists import create_watchlist
from safecity.store import open_store

url, media, at = sys.argv[1], Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
store = open_store(url, media, migrate=False)
cache = GalleryCache(store, SafecityConfig(), reload_s=3600, clock=ManualClock(at))
if not cache.wait_watching(10):
    sys.exit("the second worker's gallery is not watching")
last = None
while True:
    state = {"matcher": cache.matcher_for("gate-1", at) is not None,
             "held": {str(k): v for k, v in sorted(cache.held().items())}}
    if state != last:
        print(json.dumps({**state, "t": time.monotonic()}), flush=True)
        last = state
    time.sleep(0.005)
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


class SecondWorker:
    """A gallery cache in another process, and the states it reported, in order."""

    def __init__(self, url: str, media: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(media), T0.isoformat()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.states: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.last: dict = {}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.states.put(json.loads(line))

    def until(self, wanted: Callable[[dict], bool], timeout: float) -> float:
        """The monotonic time at which the worker first reported a wanted state."""
        deadline = time.monotonic() + timeout
        while not wanted(self.last):
            left = deadline - time.monotonic()
            try:
                self.last = self.states.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"the second worker still reports {self.last} after {timeout} s"
                ) from None
        return self.last["t"]

    def close(self) -> str:
        self.process.kill()
        _, err = self.process.communicate(timeout=10)
        return err


def _until(wanted: Callable[[], bool], timeout: float) -> float:
    """Poll ``wanted`` every 5 ms (a camera's frames are slower); when it turned true."""
    deadline = time.monotonic() + timeout
    while not wanted():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s")
        time.sleep(0.005)
    return time.monotonic()


def _watchlist_with_one_face(store: Store, clock: ManualClock, name: str) -> tuple[int, int]:
    """A watchlist approved for gate-1 with one template: (its id, its authorisation's)."""
    info = authorised_watchlist(store, clock, name, cameras=[CAMERA])
    add_person(store, info.id, f"person of {name}", [unit(len(name))])
    return info.id, info.authorisation_id


@needs_real_timed_waits  # SQLite's watcher polls every 0.5 s: a timed wait
def test_two_workers_see_revocations_and_new_watchlists_within_2_s(
    backend_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    store = open_store(backend_url, tmp_path / "media")
    first, authorisation = _watchlist_with_one_face(store, clock, "wanted-0")
    here = GalleryCache(store, SafecityConfig(), reload_s=3600, clock=clock)
    there = SecondWorker(backend_url, tmp_path / "media")
    delays: dict[str, list[float]] = {"revoked here": [], "revoked there": []}
    delays.update({"added here": [], "added there": []})
    try:
        assert here.wait_watching(10)
        assert here.matcher_for(CAMERA, T0) is not None and here.held() == {first: 1}
        there.until(lambda s: s.get("held") == {str(first): 1}, 30)
        current = first
        for round_ in range(1, 4):
            revoke(store, authorisation, by="carol", reason="case closed", clock=clock)
            committed = time.monotonic()
            seen = _until(lambda: here.matcher_for(CAMERA, T0) is None, WITHIN_S)
            assert here.held() == {}  # the vectors left memory, not only the matcher
            delays["revoked here"].append(seen - committed)
            seen = there.until(lambda s: not s["matcher"] and s["held"] == {}, WITHIN_S)
            delays["revoked there"].append(seen - committed)

            current, authorisation = _watchlist_with_one_face(store, clock, f"wanted-{round_}")
            committed = time.monotonic()
            seen = _until(lambda c=current: here.held() == {c: 1}, WITHIN_S)
            assert here.matcher_for(CAMERA, T0) is not None
            delays["added here"].append(seen - committed)
            seen = there.until(
                lambda s, c=current: s["matcher"] and s["held"] == {str(c): 1}, WITHIN_S
            )
            delays["added there"].append(seen - committed)
    finally:
        here.close()
        errors = there.close()
        store.close()
    assert "Traceback" not in errors, errors
    backend = backend_url.split(":", 1)[0]
    for what, values in delays.items():
        log.warning(
            "%s: %s within %.3f s of the commit (median of %s)",
            backend,
            what,
            statistics.median(values),
            ", ".join(f"{v:.3f}" for v in values),
        )
        assert max(values) < WITHIN_S


def test_templates_leave_memory_when_the_window_ends_even_without_the_store(
    tmp_path: Path,
) -> None:
    """An authorisation's end drops its vectors at that instant (the clock passes it),
    with no store to read and no frame to ask; a window not yet started holds none."""
    clock = ManualClock(T0)
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "media")
    ending = authorised_watchlist(store, clock, "ending", valid_until=T0 + HOUR)
    add_person(store, ending.id, "Jane Roe", [unit(1)])
    later = authorised_watchlist(
        store, clock, "later", valid_from=T0 + DAY, valid_until=T0 + 2 * DAY
    )
    add_person(store, later.id, "John Doe", [unit(2)])
    cache = GalleryCache(store, SafecityConfig(), reload_s=3600, clock=clock, watch=False)
    try:
        assert cache.matcher_for(CAMERA, T0) is not None
        assert cache.held() == {ending.id: 1}  # "later" has not started: not in memory

        store.engine.dispose()
        (tmp_path / "db.sqlite").rename(tmp_path / "gone.sqlite")  # the store is unreadable
        clock.set(T0 + HOUR)
        cache._tick()  # what the timer does at the window's end (its delay is real time)
        assert cache.held() == {}
        assert cache.matcher_for(CAMERA, T0 + HOUR - timedelta(seconds=1)) is None

        store.engine.dispose()  # its connection was to an empty file made meanwhile
        (tmp_path / "gone.sqlite").rename(tmp_path / "db.sqlite")
        clock.set(T0 + DAY)  # "later" starts: read at that instant, without any notice
        assert cache.matcher_for(CAMERA, T0 + DAY) is not None
        assert cache.held() == {later.id: 1}
    finally:
        cache.close()
        store.close()
    assert cache.held() == {}  # closing drops everything


@needs_real_timed_waits  # a threading.Timer
def test_the_timer_drops_templates_at_the_end_with_no_frame(tmp_path: Path) -> None:
    """With the real clock: an authorisation ending in 1.5 s loses its vectors then,
    though nobody asks for a matcher (the camera is idle)."""
    from safecity.governance.clock import SYSTEM_CLOCK

    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "media")
    now = SYSTEM_CLOCK.now()
    info = authorised_watchlist(
        store, ManualClock(now), "short", valid_from=now - HOUR, valid_until=now + HOUR
    )
    add_person(store, info.id, "Jane Roe", [unit(3)])
    cache = GalleryCache(store, SafecityConfig(), clock=SYSTEM_CLOCK, watch=False)
    try:
        cache.reload()
        assert cache.held() == {info.id: 1}
        now = SYSTEM_CLOCK.now()
        ends = time.monotonic() + 1.5  # the same instant on the monotonic clock
        with store.transaction() as session:  # the window now ends in 1.5 s
            session.execute(update(Authorisation).values(valid_until=now + timedelta(seconds=1.5)))
        cache.reload()  # may take a while on a loaded machine: the end does not move
        assert cache.held() == {info.id: 1}
        gone = _until(lambda: cache.held() == {}, 5)
        assert ends - 0.2 < gone < ends + 0.5
    finally:
        cache.close()
        store.close()


def test_only_this_process_cameras_and_live_authorisations_are_held(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Held: in scope of one of the process's cameras, and matching allowed now (an
    emergency use until its deadline). Not held: other cameras' and proposed ones."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "media")
    gate = authorised_watchlist(store, clock, "gate", cameras=[CAMERA])
    square = authorised_watchlist(store, clock, "square", cameras=["square"])
    proposed = authorised_watchlist(store, clock, "proposed", approved=False)
    emergency = start_emergency(
        store,
        by="alice",
        purpose="a child is missing",
        reason="no time for a court order",
        valid_until=T0 + DAY,
        cameras=None,
        deadline_h=1,
        clock=clock,
    )
    urgent = create_watchlist(store, "urgent", by="alice", authorisation=emergency.id, clock=clock)
    for i, watchlist in enumerate((gate, square, proposed, urgent)):
        add_person(store, watchlist.id, f"person {i}", [unit(10 + i)])
    cache = GalleryCache(store, SafecityConfig(), cameras=[CAMERA], clock=clock, watch=False)
    try:
        cache.reload()
        assert cache.held() == {gate.id: 1, urgent.id: 1}
        assert cache.matcher_for("square", T0) is None  # not this process's camera
        clock.set(T0 + HOUR)  # the emergency deadline passes, no request filed
        cache._tick()
        assert cache.held() == {gate.id: 1}
    finally:
        cache.close()
        store.close()


def test_an_audited_gallery_closes_its_cache(tmp_path: Path, clock: ManualClock) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "media")
    info = authorised_watchlist(store, clock, "wanted", valid_until=T0 + HOUR)
    add_person(store, info.id, "Jane Roe", [unit(4)])
    cache = GalleryCache(store, SafecityConfig())
    gallery = AuditedGallery(cache, store, clock)
    assert cache.wait_watching(5)
    assert gallery.matcher_for(CAMERA, T0) is not None
    assert cache.clock is clock  # its templates follow the audited clock
    gallery.close()
    assert not cache.wait_watching(0)  # the watcher stopped
    assert cache.held() == {} and gallery.matcher_for(CAMERA, T0) is None
    store.close()


@pytest.mark.slow
def test_after_a_postgresql_restart_the_watcher_reconnects_and_rereads(
    pg_url: str, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Notices sent while nobody listens are lost: a change made without one (triggers
    off for that session) reaches the cache through the re-read after reconnecting."""
    store = open_store(pg_url, tmp_path / "media")
    wid, _ = _watchlist_with_one_face(store, clock, "wanted")
    cache = GalleryCache(store, SafecityConfig(), reload_s=3600, clock=clock)
    caplog.set_level(logging.WARNING, logger="safecity.identity.gallery_watch")
    try:
        assert cache.wait_watching(10) and cache.held() == {wid: 1}
        with store.transaction() as session:  # a change no notice tells of
            session.execute(text("SET LOCAL session_replication_role = replica"))
            session.execute(text("UPDATE authorisations SET status = 'revoked'"))
        time.sleep(1.0)
        assert cache.held() == {wid: 1}  # not heard, not re-read (reload_s is an hour)

        _pg_cluster("stop")
        try:
            _until(lambda: not cache.wait_watching(0), 10)
        finally:
            starting = time.monotonic()
            _pg_cluster("start")
        up = time.monotonic()
        assert cache.wait_watching(15)
        seen = _until(lambda: cache.held() == {}, 5)
        log.warning(
            "PostgreSQL started in %.3f s; the gallery was re-read %.3f s after the start "
            "began (%.3f s after pg_ctlcluster returned)",
            up - starting,
            seen - starting,
            seen - up,
        )
        assert cache.matcher_for(CAMERA, T0) is None
    finally:
        cache.close()
        store.close()
    outages = [r for r in caplog.records if "not heard" in r.getMessage()]
    assert len(outages) == 1  # logged once, however many reconnection attempts
    assert any("heard again" in r.getMessage() for r in caplog.records)


def _pg_cluster(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", action],
        check=True,
        timeout=60,
    )
