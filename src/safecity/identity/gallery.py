"""Which enrolled faces may be searched, for a camera, at a frame's time.

The pipeline asks :meth:`GalleryCache.matcher_for` on every analysed frame. The
answer depends on the *frame's* time, not the wall clock: a watchlist is
searched only while its authorisation is valid at that instant and its camera
scope includes the camera (DESIGN.md invariant 1). With no such watchlist the
answer is ``None`` and no face is even embedded.

Freshness: a change to watchlists, persons, templates or authorisations is
heard through :mod:`safecity.identity.gallery_watch` (PostgreSQL notices, or
SQLite's data version) and re-read at once, in the watcher's thread, so a
revocation reaches every process within about a second. The store is also
re-read every ``reload_s`` seconds, in case a notice was lost.

What is held in memory: only the templates of watchlists whose authorisation
allows matching *now* on one of this process's cameras (``cameras``; None: any).
A proposed, refused or revoked authorisation holds none. An approved one whose
window has not started holds none either: nothing may match under it yet, and
no notice comes when it starts, so the cache re-reads at that instant instead
(one query, against keeping faces in memory for weeks ahead). When a window or
an emergency deadline ends, its templates leave memory at that instant (a timer,
and a check on every call), even while the store cannot be read.

"Now" is the ``clock`` (:class:`~safecity.governance.uses.AuditedGallery` hands
over its own). Without one the cache cannot tell an ended window from a
recording's past, and holds every active or emergency authorisation's
templates; frame times still decide each match.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from safecity.config import SafecityConfig
from safecity.errors import SafecityError
from safecity.governance.authorisations import allows_matching
from safecity.governance.clock import Clock
from safecity.identity.gallery_watch import watch_gallery
from safecity.vision.embedder import embedder_name

if TYPE_CHECKING:
    from safecity.identity.matcher import GalleryEntry
    from safecity.identity.plate_lists import PlateMatcher
    from safecity.identity.watchlists import WatchlistInfo

log = logging.getLogger(__name__)

_MAY_MATCH = ("active", "emergency")  # statuses under which matching can happen
_TIMER_MAX_S = 3600.0  # a far window end is re-checked hourly (timers drift, clocks jump)


class GalleryCache:
    """Builds and caches one FAISS matcher per set of searchable watchlists."""

    def __init__(
        self,
        store,
        config: SafecityConfig,
        reload_s: float = 30.0,
        *,
        cameras: Collection[str] | None = None,
        clock: Clock | None = None,
        watch: bool = True,
    ) -> None:
        self.store = store
        self.config = config
        # Templates are stored per embedder: vectors of two embedders never mix.
        self.embedder = embedder_name(config.embedder)
        self.reload_s = reload_s
        self.cameras = None if cameras is None else frozenset(cameras)
        self.clock = clock
        self._lock = threading.Lock()  # guards the fields below
        self._reload_lock = threading.Lock()  # one store read at a time
        self._changes = 0  # bumped by every change notice
        self._loaded_changes = -1  # the count the last read started at
        self._loaded_at = -float("inf")
        self._infos: list[WatchlistInfo] = []  # every watchlist in scope, held or not
        self._watchlists: list[WatchlistInfo] = []  # those whose templates are held
        self._vectors = np.zeros((0, 0), np.float32)
        self._meta: list[GalleryEntry] = []
        self._matchers: dict[frozenset[int], object] = {}
        # Plate watchlists' listed plates, held like templates (identity.plate_lists).
        self._plates: list[tuple[str, GalleryEntry]] = []
        self._plate_matchers: dict[frozenset[int], PlateMatcher | None] = {}
        self._next_change: datetime | None = None  # when the held set must be decided again
        self._timer: threading.Timer | None = None
        self._closed = False
        self._warned: set[str] = set()
        self._watch = watch_gallery(store, _weakly(self, "mark_changed")) if watch else None
        if self._watch is not None:
            # A cache dropped without close() stops its watcher too.
            weakref.finalize(self, self._watch.close, 0)

    # -- freshness ----------------------------------------------------------------------
    def mark_changed(self) -> None:
        """The gallery may have changed (a notice, a reconnection): re-read it now."""
        with self._lock:
            self._changes += 1
        self._refresh()

    def use_clock(self, clock: Clock) -> None:
        """Hold templates only while their authorisation allows matching by ``clock``."""
        with self._lock:
            self.clock = clock
            self._changes += 1  # decide again what is held, at the next call

    def use_cameras(self, cameras: Collection[str] | None) -> None:
        """This process now runs ``cameras`` (a cluster worker's set changes): re-read for them."""
        with self._lock:
            self.cameras = None if cameras is None else frozenset(cameras)
        self.mark_changed()

    def reload(self) -> None:
        """Read authorisation windows and templates from the store now."""
        with self._reload_lock:
            self._load()

    def close(self) -> None:
        """Stop watching, and drop every template from memory; nothing matches after."""
        self._closed = True
        if self._watch is not None:
            self._watch.close()
        with self._lock:
            self._set([], [], np.zeros((0, 0), np.float32), [], None)

    def wait_watching(self, timeout: float) -> bool:
        """Wait until changes are heard (the watcher is connected); False if not by then."""
        return self._watch is not None and self._watch.listening.wait(timeout)

    def held(self) -> dict[int, int]:
        """How many templates (or listed plates) this process holds in memory, per watchlist id."""
        with self._lock:
            return dict(Counter(m.watchlist_id for m in [*self._meta, *self._entries()]))

    def _entries(self) -> list[GalleryEntry]:
        return [entry for _, entry in self._plates]

    def _refresh(self) -> None:
        """Drop what ended, then re-read the store if a change or the period asks."""
        self._expire()
        if not self._due():
            return
        with self._reload_lock:
            if not self._due():  # another thread has just read it
                return
            try:
                self._load()
            except SafecityError as exc:
                log.error("watchlists not reloaded (retrying in %.0f s): %s", self.reload_s, exc)

    def _due(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            stale = self._changes != self._loaded_changes
            return stale or time.monotonic() - self._loaded_at > self.reload_s

    def _load(self) -> None:
        """Read the store (with the reload lock held); on failure the old gallery stays."""
        from safecity.identity.plate_lists import load_listed_plates
        from safecity.identity.watchlists import list_watchlists, load_templates

        with self._lock:
            changes, clock = self._changes, self.clock
        try:
            now = clock.now() if clock is not None else None
            infos = [w for w in list_watchlists(self.store) if self._in_scope(w)]
            held = [w for w in infos if self._may_hold(w, now)]
            if held:
                vectors, meta = load_templates(self.store, self.embedder, [w.id for w in held])
            else:
                vectors, meta = np.zeros((0, 0), np.float32), []
            plates = load_listed_plates(self.store, [w.id for w in held if w.kind == "plate"])
            with self._lock:
                if not self._closed:
                    self._set(infos, held, vectors, meta, now, plates)
        finally:
            with self._lock:
                # A failed attempt counts too: a failing store is retried after
                # reload_s or at the next notice, not on every frame.
                self._loaded_changes = changes
                self._loaded_at = time.monotonic()

    def _expire(self) -> None:
        """At a window's end or start: drop ended templates now, and ask for a re-read."""
        clock = self.clock
        if clock is None:
            return
        now = clock.now()
        with self._lock:
            if self._next_change is None or now < self._next_change:
                return
            held = [w for w in self._watchlists if self._may_hold(w, now)]
            ids = {w.id for w in held}
            rows = [i for i, m in enumerate(self._meta) if m.watchlist_id in ids]
            vectors = self._vectors[rows] if rows else np.zeros((0, 0), np.float32)
            plates = [p for p in self._plates if p[1].watchlist_id in ids]
            self._set(self._infos, held, vectors, [self._meta[i] for i in rows], now, plates)
            self._changes += 1  # a window that starts now needs its templates read

    def _set(self, infos, held, vectors: np.ndarray, meta, now: datetime | None, plates=()) -> None:
        """Replace what is held (lock held); the replaced vectors are zeroed, not just freed."""
        old = self._vectors
        self._infos, self._watchlists = infos, held
        self._vectors, self._meta = vectors, meta
        self._plates = list(plates)
        self._matchers.clear()
        self._plate_matchers.clear()
        if old is not vectors:
            old.fill(0)  # matchers copy their rows; nothing else reads this array
        self._next_change = self._next(infos, now) if now is not None else None
        self._arm()

    def _arm(self) -> None:
        """Wake at the next window end or start even if no frame comes (lock held)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._next_change is None or self._closed or self.clock is None:
            return
        wait_s = (self._next_change - self.clock.now()).total_seconds()
        self._timer = threading.Timer(
            min(max(wait_s, 0.0) + 0.001, _TIMER_MAX_S), _weakly(self, "_tick")
        )
        self._timer.daemon = True
        self._timer.start()

    def _tick(self) -> None:
        self._refresh()
        with self._lock:
            if self._timer is threading.current_thread():  # not re-armed by a read or expiry
                self._arm()

    # -- what is held -------------------------------------------------------------------
    def _in_scope(self, watchlist: WatchlistInfo) -> bool:
        """Whether the authorisation covers one of this process's cameras."""
        if self.cameras is None or watchlist.cameras is None:
            return True
        return not self.cameras.isdisjoint(watchlist.cameras)

    @staticmethod
    def _may_hold(watchlist: WatchlistInfo, now: datetime | None) -> bool:
        """Whether its templates may be in memory at ``now`` (None: no clock, see above)."""
        if now is None:
            return watchlist.status in _MAY_MATCH
        return allows_matching(watchlist, None, None, now)

    def _next(self, infos: Iterable[WatchlistInfo], now: datetime) -> datetime | None:
        """The next instant the held set changes by time alone: a window ends or starts."""
        times = []
        for w in infos:
            if w.status not in _MAY_MATCH:
                continue
            end = _matching_ends(w)
            if self._may_hold(w, now):
                times.append(end)
            elif now < w.valid_from < end:
                times.append(w.valid_from)
        return min(times, default=None)

    # -- the pipeline's questions -------------------------------------------------------
    def matcher_for(self, camera: str, at: datetime):
        """The matcher over every watchlist authorised for ``camera`` at ``at``, or None.

        If the store cannot be read, the last gallery read stays in use (its
        authorisation windows are still checked against ``at``); with none read
        yet, nobody is matched. Either way the camera keeps analysing.
        """
        return self.matcher_over(self.allowed(camera, at))

    def allowed(self, camera: str, at: datetime) -> dict[int, WatchlistInfo]:
        """The watchlists (by id) that may be searched on ``camera`` at ``at``.

        A camera this process was not given holds no templates: none, said once.
        """
        if self.cameras is not None and camera not in self.cameras:
            if camera not in self._warned:
                self._warned.add(camera)
                log.warning("camera %s is not one of this gallery's cameras: no matching", camera)
            return {}
        if self._closed:
            return {}
        self._refresh()
        with self._lock:
            return {w.id: w for w in self._watchlists if w.covers(camera, at)}

    def matcher_over(self, watchlist_ids: Iterable[int]):
        """The matcher over these watchlists' templates; None when they hold none."""
        allowed = frozenset(watchlist_ids)
        with self._lock:
            if not allowed or not self._meta:
                return None
            if allowed not in self._matchers:
                self._matchers[allowed] = self._build(allowed)
            return self._matchers[allowed]

    def plate_matcher_for(self, camera: str, at: datetime) -> PlateMatcher | None:
        """The plate matcher over every plate watchlist authorised for ``camera`` at ``at``."""
        return self.plate_matcher_over(self.allowed(camera, at))

    def plate_matcher_over(self, watchlist_ids: Iterable[int]) -> PlateMatcher | None:
        """The plate matcher over these watchlists' listed plates; None when they list none."""
        from safecity.identity.plate_lists import PlateMatcher

        allowed = frozenset(watchlist_ids)
        with self._lock:
            if allowed not in self._plate_matchers:
                listed = [p for p in self._plates if p[1].watchlist_id in allowed]
                max_edits = self.config.plates.match_max_edits
                self._plate_matchers[allowed] = PlateMatcher(listed, max_edits) if listed else None
            return self._plate_matchers[allowed]

    def _build(self, allowed: frozenset[int]):
        """A matcher over the allowed watchlists' templates; None when they hold none."""
        from safecity.identity.matcher import FaissMatcher, matcher_settings

        rows = [i for i, m in enumerate(self._meta) if m.watchlist_id in allowed]
        if not rows:
            return None
        threshold, margin = matcher_settings(self.config)
        matcher = FaissMatcher(threshold, margin, embedder=self.embedder)
        matcher.build(self._vectors[rows], [self._meta[i] for i in rows])
        return matcher


def _matching_ends(watchlist: WatchlistInfo) -> datetime:
    """When matching under its authorisation stops by time: window end or emergency deadline."""
    deadline = watchlist.emergency_deadline_at
    if watchlist.status == "emergency" and deadline is not None:
        return min(deadline, watchlist.valid_until)
    return watchlist.valid_until


def _weakly(owner: object, method: str) -> Callable[[], None]:
    """``owner.method()`` as a callback that does not keep ``owner`` alive.

    The watcher and timer threads outlive a cache that nobody closed; holding it
    strongly would keep it (and its templates) in memory for ever.
    """
    ref = weakref.ref(owner)

    def call() -> None:
        target = ref()
        if target is not None:
            getattr(target, method)()

    return call
